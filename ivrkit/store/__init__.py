"""The durable state store: what must survive a crash of the server (outbox, estimate log, callbacks,
maintenance windows). SQLite by default (`database.py`); each concern has its own module with its tables and queries,
behind a small protocol that a PostgreSQL backend can implement later.

Every concern's module is imported here, so its schema is registered before ``open_database`` migrates.
"""

from ivrkit.store.callbacks import (
    CallbackFinished,
    CallbackNotFound,
    CallbackStore,
    CallbackSummary,
    SqliteCallbacks,
)
from ivrkit.store.database import Database, StoreError, open_database
from ivrkit.store.estimates import EstimateLog, LoggedWait, SqliteEstimateLog
from ivrkit.store.maintenance import (
    DeclaredChanges,
    MaintenanceStore,
    SqliteMaintenance,
    WindowDeclared,
    WindowNotFound,
)
from ivrkit.store.outbox import Enqueued, Outbox, OutboxEntry, SqliteOutbox

__all__ = [
    "CallbackFinished",
    "CallbackNotFound",
    "CallbackStore",
    "CallbackSummary",
    "Database",
    "DeclaredChanges",
    "Enqueued",
    "EstimateLog",
    "LoggedWait",
    "MaintenanceStore",
    "Outbox",
    "OutboxEntry",
    "SqliteCallbacks",
    "SqliteEstimateLog",
    "SqliteMaintenance",
    "SqliteOutbox",
    "StoreError",
    "WindowDeclared",
    "WindowNotFound",
    "open_database",
]
