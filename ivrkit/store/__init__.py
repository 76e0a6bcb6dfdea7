"""The durable state store: what must survive a crash of the server (outbox, estimate log, later callbacks and
maintenance). SQLite by default (`database.py`); each concern has its own module with its tables and queries,
behind a small protocol that a PostgreSQL backend can implement later."""

from ivrkit.store.database import Database, StoreError, open_database

__all__ = ["Database", "StoreError", "open_database"]
