"""``ivrkit serve`` assembled: flows, FastAGI listener, admin endpoint, store and outbox worker, callbacks and
their dispatcher (with an AMI connection), reloads, signals and the drain.

Signals: SIGTERM (and Ctrl-C) drain the server: no new sessions, running calls finish, then the process
exits; a second SIGTERM exits at once. SIGHUP reloads the flows now; they are also reloaded when their files
change (polled every ``reload_seconds``). After each load the maintenance windows the flow files declare are
stored (:mod:`ivrkit.maintenance.declared`), so operators see them and their changes are audited.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ivrkit.callbacks.dispatcher import DispatcherLocked
from ivrkit.callbacks.live import LiveCallbacks
from ivrkit.callbacks.running import AmiSettings, CallbackDispatch
from ivrkit.engine.maintenance import mode_now
from ivrkit.flow.model import Flow
from ivrkit.maintenance.breaker import CircuitBreaker
from ivrkit.maintenance.declared import store_declared
from ivrkit.maintenance.mirror import AstDbMirror
from ivrkit.ops.admin import AdminServer
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary, ReloadReport
from ivrkit.server.listener import AgiListener, ListenerSettings
from ivrkit.server.session import SessionHandler, SessionSettings
from ivrkit.server.world import LiveMaintenance, LiveQueues, LiveWorld
from ivrkit.sms.links import LinkSigner
from ivrkit.sms.settings import SmsSettings
from ivrkit.sms.texts import OutboxTexts
from ivrkit.sms.worker import OutboxWorker
from ivrkit.store import SqliteCallbacks, SqliteMaintenance, SqliteOutbox, open_database

log = logging.getLogger("ivrkit.server")

# The collector while serving: a call allocates a few thousand objects and leaves no cycles behind, so young
# collections can be far rarer than Python's default (700 allocations) without memory growing.
GC_THRESHOLDS = (10_000, 20, 100)


@dataclass
class ServiceSettings:
    flows: Path = Path("flows")
    prompts: Path | None = Path("prompts")
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    admin_host: str = "127.0.0.1"
    admin_port: int = 4574  # 0: no admin endpoint
    admin_token: str = ""
    reload_seconds: float = 2.0  # 0: reload on SIGHUP only
    drain_seconds: float | None = None  # None: wait for every call however long it takes
    data_dir: Path = Path(".ivrkit")  # the store and the link-signing key
    sms: SmsSettings = field(default_factory=SmsSettings)  # default: the console sink (development)
    ami: AmiSettings | None = None  # None: callbacks are stored, and dialled by `ivrkit dispatcher` elsewhere
    dispatch_poll: float = 1.0  # seconds between the dispatcher's looks for due callbacks and free agents
    mirror_check: float = 30.0  # seconds between two reads of AstDB by the maintenance mirror (with --ami)


class Service:
    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.metrics = ServerMetrics()
        # The store and the texts come first: the world calls run in is composed from them.
        self.database = open_database(settings.data_dir)
        self.outbox = SqliteOutbox(self.database)
        self.links = LinkSigner.from_data_dir(settings.data_dir)
        sms = settings.sms
        self.outbox_worker = OutboxWorker(self.outbox, sms.gateway, sms.retry, metrics=self.metrics)
        self.texts = OutboxTexts(self.outbox, self.links, sms.link_ttl, on_queued=self.outbox_worker.wake)
        self.queues = LiveQueues(self.database, metrics=self.metrics)
        self.callback_store = SqliteCallbacks(self.database)
        self.metrics.watch_callbacks(lambda: self.callback_store.summary(time.time()))
        callbacks = LiveCallbacks(
            self.callback_store, lambda: self.library.flows, on_change=self._callbacks_changed, metrics=self.metrics
        )
        self.maintenance_store = SqliteMaintenance(self.database)
        self.world = LiveWorld(self.queues, self.texts, callbacks, LiveMaintenance(self.maintenance_store))
        self.library = FlowLibrary(settings.flows, settings.prompts, world=self.world)
        self.dispatch: CallbackDispatch | None = None
        if settings.ami is not None:
            self.dispatch = CallbackDispatch(
                settings.data_dir,
                self.callback_store,
                lambda: self.library.flows,
                settings.ami,
                maintenance=self._maintenance_mode,
                metrics=self.metrics,
                poll=settings.dispatch_poll,
            )
        # With AMI, the maintenance store is mirrored into AstDB: the compiled gate's flags when the server is down.
        self.mirror: AstDbMirror | None = None
        if settings.ami is not None:
            self.mirror = AstDbMirror.over_ami(
                settings.ami, self.maintenance_store, lambda: self.library.flows, interval=settings.mirror_check,
                on_change=self._maintenance_changed,
            )
        self.listener = AgiListener(
            SessionHandler(self.library, self.metrics, settings.session), self.metrics, settings.listener
        )
        self.admin: AdminServer | None = None
        self.started = time.monotonic()
        self.last_reload: ReloadReport | None = None
        self._draining = threading.Event()
        self._reload_now = threading.Event()
        self._stopped = threading.Event()
        self._declared_failed = False  # the declared windows of some flow are not in the store: try again
        self._declared_gone: list[Flow] = []  # flows no longer served whose windows are still to cancel

    # -- lifetime -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the flows, start listening and the admin endpoint; returns at once."""
        self.reload()
        self._start_breaker()
        self.listener.start()
        if self.settings.admin_port:
            self.admin = AdminServer(
                self.settings.admin_host,
                self.settings.admin_port,
                self.settings.admin_token,
                self.health,
                self.metrics,
                links=self.links,
                callbacks=self.callback_store,
                maintenance=self.maintenance_store,
                flow_names=lambda: self.library.flows.keys(),
            )
            self.admin.start()
        if self.settings.sms.source is None:
            log.warning("no SMS config (--sms-config, $IVRKIT_SMS_CONFIG): texts are printed on standard output, "
                        "not sent; fine for development")
        log.info("store in %s", self.database.path, extra={"data_dir": str(self.settings.data_dir)})
        self.outbox_worker.start()
        self._start_dispatch()
        self._start_mirror()
        threading.Thread(target=self._watch_flows, name="flow-reload", daemon=True).start()

    def run(self) -> int:
        """Start, then serve until drained (SIGTERM or Ctrl-C). Must be called in the main thread."""
        signal.signal(signal.SIGTERM, self._on_terminate)
        signal.signal(signal.SIGINT, self._on_terminate)
        signal.signal(signal.SIGHUP, lambda signum, frame: self._reload_now.set())
        self.start()
        _settle_heap()
        while not self._draining.wait(0.5):
            pass
        return 0 if self.drain() else 1

    def drain(self) -> bool:
        """Stop accepting, let running calls finish, stop. False when calls were cut at ``drain_seconds``."""
        self._draining.set()
        self.listener.stop_accepting()
        running = self.listener.active
        log.info("draining: no new calls; waiting for %d running call(s)", running, extra={"active": running})
        finished = self.listener.wait_idle(self.settings.drain_seconds)
        if not finished:
            log.error("drain time is up with %d call(s) still running; exiting", self.listener.active)
        self.stop()
        log.info("stopped", extra={"sessions_total": self.listener.total})
        return finished

    def stop(self) -> None:
        self._draining.set()
        self._stopped.set()
        self._reload_now.set()
        if self.admin is not None:
            self.admin.stop()
        self._stop_breaker()
        # Unsent texts stay in the outbox for the next start; a send in flight ends within the gateway timeout.
        queues_written = self.queues.close()
        dispatch_stopped = self.dispatch.stop() if self.dispatch is not None else True
        mirror_stopped = self.mirror.stop() if self.mirror is not None else True  # AstDB keeps its flags
        if (self.outbox_worker.stop(timeout=self.settings.sms.retry.lease) and queues_written and dispatch_stopped
                and mirror_stopped):
            self.settings.sms.gateway.close()
            self.database.close()

    def _start_dispatch(self) -> None:
        if self.dispatch is None:
            log.info("no --ami: callbacks are stored; run `ivrkit dispatcher` on this data directory to dial them")
            return
        try:
            self.dispatch.start()
        except (DispatcherLocked, OSError) as error:
            log.warning("callbacks are not dialled by this server: %s", error)
            self.dispatch = None

    # -- the circuit breaker (J) ----------------------------------------------------------------------------

    breaker: CircuitBreaker | None = None

    def _start_breaker(self) -> None:
        """Before the first call: the breaker watches the new calls of flows declaring ``maintenance.breaker``
        and switches emergency mode on and off for them in the store."""
        self.breaker = CircuitBreaker(
            self.maintenance_store, lambda: self.library.flows, metrics=self.metrics, on_change=self._windows_switched
        )
        self.listener.handler.watcher = self.breaker
        self.breaker.start()

    def _stop_breaker(self) -> None:
        if self.breaker is not None and not self.breaker.stop():
            log.warning("the circuit breaker was still switching when the server stopped")

    def _windows_switched(self) -> None:
        """This process switched windows (the breaker tripped or cleared, a flow file's windows were stored): the
        next call meets them, not the windows read up to a second before, and the AstDB mirror copies them now,
        not at its next look."""
        if self.world.maintenance_windows is not None:
            self.world.maintenance_windows.refresh()
        if self.mirror is not None:
            self.mirror.wake()

    def _start_mirror(self) -> None:
        if self.mirror is None:
            log.info("no --ami: maintenance is not mirrored into AstDB; the compiled gate keeps the flags it has")
            return
        self.mirror.start()

    def _maintenance_changed(self) -> None:
        """The mirror saw a change in the store (the CLI, the admin API, a window's start or end): calls meet it
        from now on, as the gate does once AstDB has it, not up to a second later."""
        if self.world.maintenance_windows is not None:
            self.world.maintenance_windows.refresh()

    def _maintenance_mode(self, flow: str) -> str | None:
        """The mode a call to ``flow`` meets now: the dispatcher dials none of the flow's callbacks then."""
        return mode_now(self.world, self.library.flows, flow)

    def _callbacks_changed(self) -> None:
        """A callback was requested or an attempt ended here: the dispatcher looks now, not at its next poll."""
        if self.dispatch is not None:
            self.dispatch.wake()

    def _on_terminate(self, signum: int, frame: FrameType | None) -> None:
        if self._draining.is_set():
            log.warning("second stop signal: exiting without waiting for running calls")
            raise SystemExit(1)
        self._draining.set()

    # -- flows ----------------------------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        previous = self.library.flows
        report = self.library.reload()
        self.last_reload = report
        self.metrics.flows_loaded(len(self.library.flows), report.ok)
        self._store_declared([previous[name] for name in report.removed if name in previous])
        return report

    def _store_declared(self, gone: list[Flow]) -> None:
        """The maintenance windows the served flows declare into the store (a flow that keeps its previous
        version after an error keeps that version's windows), and those of flows no longer served cancelled.
        When the store fails, the next look for changed files tries again."""
        gone = [*self._declared_gone, *gone]
        stored = store_declared(self.maintenance_store, self.library.flows.values(), gone)
        self._declared_failed = bool(stored.failed)
        self._declared_gone = [flow for flow in gone if flow.name in stored.failed]
        if stored.changes:
            self._windows_switched()

    def _watch_flows(self) -> None:
        interval = self.settings.reload_seconds
        while not self._stopped.is_set():
            asked = self._reload_now.wait(interval if interval > 0 else None)
            if self._stopped.is_set():
                return
            if asked:
                self._reload_now.clear()
            try:
                if asked or self.library.changed():
                    log.info("reloading flows (%s)", "SIGHUP" if asked else "files changed")
                    self.reload()
                elif self._declared_failed:
                    self._store_declared([])
            except Exception:  # a reload must never take the server down
                self.metrics.error("reload")
                log.exception("flow reload failed; the previous flows keep serving")

    # -- health ---------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        report = self.last_reload
        return {
            "status": "draining" if self._draining.is_set() else "ok",
            "sessions_active": self.listener.active,
            "sessions_total": self.listener.total,
            "max_sessions": self.listener.settings.max_sessions,
            "flows": sorted(self.library.flows),
            "last_reload_ok": report.ok if report else None,
            "flows_kept_after_errors": report.kept if report else [],
            "uptime_seconds": round(time.monotonic() - self.started, 1),
        }


def _settle_heap() -> None:
    """Take what start-up built (flows, templates, libraries) out of the collector's way: otherwise every full
    collection walks it again while all calls wait (``tools/bench/agi_server.py``: p99 turnaround at 100 calls
    30 → 22 ms, 8 % more calls/s). The process's own serve loop calls it once, after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
