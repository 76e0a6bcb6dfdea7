"""Windows declared in flow files (``maintenance: windows:``), kept in the maintenance store.

Why: operators look at the store (``ivrkit maintenance status`` and ``history``, ``/v1/maintenance``) and the
audit trail must record every change, also those made by editing a flow file. So each time a process that
serves flows (``ivrkit serve``, ``ivrkit dispatcher``) has loaded them, :func:`store_declared` makes the store's
declared windows of each flow equal to its file's (:meth:`~ivrkit.store.maintenance.SqliteMaintenance.
sync_declared`): new windows are stored and audited by the flow file, windows taken out of it are cancelled.
Calls do not depend on it: the engine also reads the windows from the flow it runs, so a store that cannot be
written is logged and tried again, and callers still meet the windows.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from ivrkit.flow.model import Flow
    from ivrkit.maintenance.model import Window
    from ivrkit.store.maintenance import MaintenanceStore

log = logging.getLogger("ivrkit.maintenance")


@dataclass
class Stored:
    """What one :func:`store_declared` did: how many windows it stored or cancelled, which flows failed."""

    changes: int = 0
    failed: list[str] = field(default_factory=list)


def store_declared(store: MaintenanceStore, flows: Iterable[Flow], gone: Iterable[Flow] = ()) -> Stored:
    """Store the windows each of ``flows`` declares now, and cancel those of ``gone`` (flows no longer served:
    their file was removed). A flow whose windows cannot be stored is logged and named in ``failed``; the
    others are stored all the same."""
    stored = Stored()
    wanted = [(flow, flow.maintenance.windows if flow.maintenance is not None else ()) for flow in flows]
    served = {flow.name for flow, _ in wanted}
    ended = [(flow, ()) for flow in gone if flow.name not in served]  # a name served again keeps its windows
    for flow, windows in [*wanted, *ended]:
        try:
            changes = store.sync_declared(flow.name, windows, by=flow.file)
        except (StoreError, sqlite3.Error, ValueError) as error:
            stored.failed.append(flow.name)
            log.error("maintenance windows of flow %s (%s) not stored: %s; callers still meet them, status and "
                      "history show them once they are", flow.name, flow.file, error,
                      extra={"flow": flow.name})  # fmt: skip
            continue
        for window in changes.added:
            log.info("maintenance window %s of flow %s stored from %s: %s", window.id, flow.name, flow.file,
                     _describe(window), extra={"flow": flow.name, "window": window.id})  # fmt: skip
        for window in changes.removed:
            log.info("maintenance window %s of flow %s cancelled: no longer in %s (%s)", window.id, flow.name,
                     flow.file, _describe(window), extra={"flow": flow.name, "window": window.id})  # fmt: skip
        stored.changes += len(changes.added) + len(changes.removed)
    return stored


def _describe(window: Window) -> str:
    """ "planned from 2026-12-01 21:00 UTC until 2026-12-02 01:00 UTC (database upgrade)"."""
    until = f" until {window.ends_at:%Y-%m-%d %H:%M} UTC" if window.ends_at is not None else ""
    reason = f" ({window.reason})" if window.reason else ""
    return f"{window.mode.value} from {window.starts_at:%Y-%m-%d %H:%M} UTC{until}{reason}"
