"""The AstDB mirror: Asterisk's ``ivrkit-maintenance`` family kept equal to the maintenance store.

Why: the compiled gate reads these flags before it asks the FastAGI server, and plays the mode's announcement
itself when the server cannot be reached (see ``extensions.conf.j2``). The store is the truth (operators,
the admin API, the schedule and the breaker write it); AstDB is Asterisk's copy, written over AMI.

What is written: key ``<flow>`` for every loaded flow holds the mode a call to that flow meets now (the
store's windows and the flow's own YAML windows, with the precedence of
:func:`~ivrkit.engine.maintenance.in_force_for`), key ``global`` the mode of the global windows; a key with
nothing in force is deleted. Keys of flows this server does not load are managed only when the store has a
window for them, or when this mirror wrote them before: another server's flows are left alone.

When: a *round* reads the store (about once a second: a switch by ``ivrkit maintenance`` in another process is
seen within ``poll`` seconds, and a window's start or end to the moment) and writes what changed since the
last round. A *check* also reads the family back (``DBGetTree``) and rewrites what disagrees, logged as a
repair: after every AMI login (a restarted Asterisk keeps AstDB, a wiped or edited one is repaired) and every
``interval`` seconds. Rounds at a window's start or end, and every check, also record scheduled starts and
expiries in the store (``start_due``, ``expire``), so they are audited even when no call comes. A round that
finds a change calls ``on_change`` before it writes AstDB: the server's calls then meet the change no later
than the gate does.

AMI rights (checked on Asterisk 22.10): ``DBPut`` and ``DBDel`` need ``write = system``, ``DBGetTree`` takes
``system`` or ``reporting``. Without them the mirror logs what to grant and the gate keeps its old flags.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ivrkit.ami.client import AmiConnectionLost, AmiError, HeaderValue, Message
from ivrkit.compiler.plan import GLOBAL_KEY, MAINTENANCE_FAMILY
from ivrkit.flow.fields import NAME_PATTERN
from ivrkit.maintenance.model import GLOBAL, Window, in_force
from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from ivrkit.callbacks.running import AmiSettings
    from ivrkit.flow.model import Flow
    from ivrkit.store.maintenance import MaintenanceStore

log = logging.getLogger("ivrkit.maintenance")

POLL = 1.0  # seconds between two reads of the store
INTERVAL = 30.0  # seconds between two checks of AstDB itself
MISSING = ("Database entry could not be deleted", "Database entry not found")  # DBDel of a key already gone


class AmiLink(Protocol):
    """What the mirror needs of an AMI connection (:class:`~ivrkit.ami.session.AmiSession` has it)."""

    @property
    def connected(self) -> bool: ...

    def send(
        self, action: str, /, *, timeout: float | None = None, generation: int | None = None, **headers: HeaderValue
    ) -> Message: ...

    def send_list(
        self, action: str, /, *, timeout: float | None = None, generation: int | None = None, **headers: HeaderValue
    ) -> Message: ...

    def on_connected(self, hook: Callable[[int], None]) -> Callable[[], None]: ...


@dataclass(frozen=True)
class Write:
    """One change the mirror made in AstDB: ``key`` set to ``value`` (None: deleted); ``was`` what it held."""

    key: str
    value: str | None
    was: str | None
    repair: bool  # AstDB disagreed with what the mirror had written (read back at a check)

    def describe(self) -> str:
        was = "unset" if self.was is None else repr(self.was)
        where = f"{MAINTENANCE_FAMILY}/{self.key}"
        if self.repair:
            should = "unset" if self.value is None else repr(self.value)
            return f"AstDB {where} repaired: it held {was}, the maintenance store says {should}"
        if self.value is None:
            return f"AstDB {where} deleted (was {was})"
        return f"AstDB {where} set to {self.value} (was {was})"


def wanted(windows: Iterable[Window], flows: Mapping[str, Flow], now: dt.datetime) -> dict[str, str]:
    """The family's keys and values at ``now``: each flow's mode (store and YAML windows), ``global``'s mode,
    and the mode of any other scope with a window in the store; keys with nothing in force are absent.

    A flow's YAML windows are windows of that flow, so one :func:`in_force` over both chooses as
    :func:`~ivrkit.engine.maintenance.in_force_for` does (mode, then the flow's own scope, then the latest
    start).

    >>> from ivrkit.maintenance.model import Mode, Source
    >>> now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    >>> def window(scope, mode):
    ...     return Window(scope + mode, scope, Mode(mode), now, None, "", "ops", Source.CLI)
    >>> wanted([window("support", "planned"), window("sales", "closed")], {}, now)  # no flow loaded
    {'sales': 'closed', 'support': 'planned'}
    >>> wanted([window("support", "planned"), window(GLOBAL, "emergency")], {}, now)["global"]
    'emergency'
    >>> wanted([window("not a flow", "planned"), window("global", "planned")], {}, now)  # no compiled key
    {}
    """
    stored = list(windows)
    keys: dict[str, str] = {}
    found = in_force(stored, GLOBAL, now)  # only global windows have the scope GLOBAL
    if found is not None:
        keys[GLOBAL_KEY] = found.mode.value
    for name, flow in flows.items():
        if not is_key(name):
            continue  # the compiler refuses such a flow: no gate reads its key
        declared = flow.maintenance.windows if flow.maintenance is not None else ()
        found = in_force([*stored, *declared], name, now)
        if found is not None:
            keys[name] = found.mode.value
    for scope in sorted({window.scope for window in stored} - set(flows) - {GLOBAL}):
        found = in_force(stored, scope, now) if is_key(scope) else None
        if found is not None:
            keys[scope] = found.mode.value
    return keys


def is_key(name: str) -> bool:
    """Whether ``name`` can be a flow's key (a compiled flow's name; ``global`` is the global flag's)."""
    return bool(NAME_PATTERN.match(name)) and name != GLOBAL_KEY


def next_change(windows: Iterable[Window], now: dt.datetime) -> dt.datetime | None:
    """The next start or end of a window after ``now``: what a call meets may change then.

    >>> from ivrkit.maintenance.model import Mode, Source
    >>> at = lambda minute: dt.datetime(2026, 12, 1, 9, minute, tzinfo=dt.UTC)
    >>> running = Window("w1", "support", Mode.CLOSED, at(0), at(30), "", "ops", Source.CLI)
    >>> later = Window("w2", GLOBAL, Mode.PLANNED, at(20), None, "", "ops", Source.CLI)
    >>> next_change([running, later], at(10)).minute, next_change([running, later], at(25)).minute
    (20, 30)
    >>> next_change([running], at(30)) is None
    True
    """
    moments = [moment for window in windows for moment in (window.starts_at, window.ends_at)
               if moment is not None and moment > now]  # fmt: skip
    return min(moments, default=None)


def events_off(link: AmiLink, generation: int) -> None:
    """Ask Asterisk to send this connection no events: the mirror reads none, and a busy PBX sends many."""
    try:
        link.send("Events", EventMask="off", generation=generation)
    except AmiError as error:
        log.info("AstDB mirror: events stay on for its AMI connection (%s)", error.response_message())


class AstDbMirror:
    """Keeps the AstDB family equal to the store, on a thread of its own; see the module docstring.

    ``flows`` gives the loaded flows (the library's); ``link`` is an AMI session the mirror may use alone.
    :meth:`sync` is one round (the thread's, or a test's).
    """

    def __init__(
        self,
        store: MaintenanceStore,
        flows: Callable[[], Mapping[str, Flow]],
        link: AmiLink,
        *,
        poll: float = POLL,
        interval: float = INTERVAL,
        stop_link: Callable[[], None] | None = None,
        start_link: Callable[[], object] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] = lambda: None,
    ):
        if poll <= 0 or interval < poll:
            raise ValueError(f"the mirror needs 0 < poll <= interval, got poll={poll}, interval={interval}")
        self.store = store
        self.flows = flows
        self.link = link
        self.poll = poll
        self.interval = interval
        self.monotonic = monotonic  # when checks are due (tests pass their own)
        self.on_change = on_change  # what calls meet changed (seen before AstDB is written): the server's cache
        self._start_link = start_link
        self._stop_link = stop_link
        self._astdb: dict[str, str] | None = None  # what the family holds, as far as the mirror knows; None: read it
        self._check_due = True  # set by every AMI login: read the family back at the next round
        self._owned: set[str] = set()  # keys this mirror wrote: managed even when nothing names them any more
        self._seen: dict[str, str] | None = None  # the keys the previous round computed
        self._next_check = 0.0  # monotonic time of the next check
        self._next_change: dt.datetime | None = None  # when a window starts or ends: record it in the store then
        self._refused: str | None = None  # the permission Asterisk refused, logged once until it works again
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self.rounds = 0
        """Rounds run so far (tests wait on it with :meth:`wait_rounds`)."""
        self.writes: list[Write] = []
        """The latest changes made in AstDB (up to 100), for tests and the logs."""
        link.on_connected(self._connected)

    @classmethod
    def over_ami(cls, settings: AmiSettings, store: MaintenanceStore, flows: Callable[[], Mapping[str, Flow]], *,
                 poll: float = POLL, interval: float = INTERVAL,
                 on_change: Callable[[], None] = lambda: None) -> AstDbMirror:  # fmt: skip
        """A mirror on an AMI session of its own (started and stopped with the mirror)."""
        from ivrkit.ami.session import AmiSession

        session = AmiSession(settings.host, settings.port, settings.username, settings.secret, name="mirror-ami")
        session.on_connected(lambda generation: events_off(session, generation))
        return cls(store, flows, session, poll=poll, interval=interval, start_link=session.start,
                   stop_link=session.stop, on_change=on_change)

    # -- lifetime -------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this AstDB mirror is already started; create another")
        self._thread = threading.Thread(target=self._run, name="astdb-mirror", daemon=True)
        self._thread.start()
        if self._start_link is not None:
            self._start_link()

    def wake(self) -> None:
        """The store changed: run a round now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread (AstDB keeps the flags: the gate goes on working); False when it did not end in time,
        then the store must stay open."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._stop_link is not None:
            self._stop_link()
        return thread is None or not thread.is_alive()

    def wait_rounds(self, count: int, timeout: float) -> bool:
        """Block until ``count`` rounds have run in all (or ``timeout`` passes); True when they have."""
        with self._done:
            return self._done.wait_for(lambda: self.rounds >= count, timeout)

    def _connected(self, generation: int) -> None:
        """A new AMI login: what AstDB holds is unknown (Asterisk may have restarted, or been edited)."""
        self._check_due = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a wake from now on asks for another round: this one may have read too early
            try:
                self._sync(check=False)
            except Exception:  # the mirror must outlive a bug in one round; the next round starts over
                self._check_due = True
                log.exception("AstDB mirror round failed; trying again in %g s", self.poll)
            finally:
                self._counted()
            self._wake.wait(self._pause())

    def _counted(self) -> None:
        with self._done:
            self.rounds += 1
            self._done.notify_all()

    def _pause(self) -> float:
        """Seconds until the next round: ``poll``, or sooner when a window starts or ends before that."""
        pause = self.poll
        if self._next_change is not None:
            until = (self._next_change - self.store.now()).total_seconds() + 0.01  # just past it
            pause = min(pause, max(until, 0.0))
        return pause

    # -- a round --------------------------------------------------------------------------------------------

    def sync(self, *, check: bool = False) -> list[Write]:
        """One round: read the store, and write to AstDB what differs (read AstDB back first when ``check``,
        after a login, or every ``interval``). Returns the writes made; a store or AMI failure is logged."""
        try:
            return self._sync(check)
        finally:
            self._counted()

    def _sync(self, check: bool) -> list[Write]:
        now = self.store.now()
        after_login = self._check_due
        checking = check or self._check_due or self.monotonic() >= self._next_check
        flows = self.flows()
        try:
            if checking or (self._next_change is not None and now >= self._next_change):
                self.store.start_due(now)  # audited once, whichever process gets there first
                self.store.expire(now)
            windows = self.store.windows(now)
        except (StoreError, sqlite3.Error) as error:
            log.warning("AstDB mirror: the maintenance store cannot be read (%s); AstDB keeps its flags", error)
            return []
        declared = [w for flow in flows.values() if flow.maintenance is not None for w in flow.maintenance.windows]
        self._next_change = next_change([*windows, *declared], now)
        keys = wanted(windows, flows, now)
        if keys != self._seen:
            self._seen = keys
            self.on_change()  # first: a call placed once AstDB has the change meets it on the server too
        if not self.link.connected:
            self._astdb = None
            return []
        try:
            if checking:
                self._check_due = False  # a login from now on asks for another check
                self._astdb = self._read()
                self._next_check = self.monotonic() + self.interval
            astdb = self._astdb
            writes = self._write(astdb, keys, flows, repair=checking) if astdb is not None else []
        except AmiConnectionLost as error:
            self._astdb = None  # the next login checks everything
            log.warning("AstDB mirror: AMI connection lost (%s); AstDB is checked when it is back", error)
            return []
        except AmiError as error:
            self._astdb = None
            self._next_check = self.monotonic() + self.interval  # not every second: the right is missing
            self._refusal(error)
            return []
        repaired = sum(write.repair for write in writes)
        if checking and (after_login or repaired):
            flags = ", ".join(f"{key}={value}" for key, value in sorted(keys.items())) or "none"
            log.info("AstDB mirror checked %s: %d repaired; flags: %s", MAINTENANCE_FAMILY, repaired, flags,
                     extra={"repaired": repaired, "flags": keys})  # fmt: skip
        if self._refused is not None and writes:
            log.info("AstDB mirror: Asterisk accepts its writes again")
            self._refused = None
        return writes

    def _read(self) -> dict[str, str]:
        """The family as AstDB holds it: ``DBGetTree`` answers each entry as ``/<family>/<key>``."""
        prefix = f"/{MAINTENANCE_FAMILY}/"
        answer = self.link.send_list("DBGetTree", Family=MAINTENANCE_FAMILY)
        return {event.get("Key", "")[len(prefix):]: event.get("Val", "") for event in answer.events
                if event.name == "DBGetTreeResponse" and event.get("Key", "").startswith(prefix)}  # fmt: skip

    def _write(self, astdb: dict[str, str], keys: Mapping[str, str], flows: Mapping[str, Flow], *,
               repair: bool) -> list[Write]:
        """Make ``astdb`` (what the family holds, updated here) equal to ``keys`` for every managed key."""
        managed = {GLOBAL_KEY, *flows, *keys, *self._owned}
        writes = []
        for key in sorted(managed):
            value, held = keys.get(key), astdb.get(key)
            if value == held:
                continue
            if value is None:
                self._delete(key)
                astdb.pop(key, None)
            else:
                self.link.send("DBPut", Family=MAINTENANCE_FAMILY, Key=key, Val=value)
                astdb[key] = value
                self._owned.add(key)
            write = Write(key, value, held, repair)
            writes.append(write)
            self.writes = [*self.writes[-99:], write]
            (log.warning if repair else log.info)(write.describe(), extra={"key": key, "value": value, "was": held})
        return writes

    def _delete(self, key: str) -> None:
        try:
            self.link.send("DBDel", Family=MAINTENANCE_FAMILY, Key=key)
        except AmiConnectionLost:
            raise
        except AmiError as error:
            if error.response_message() not in MISSING:
                raise

    def _refusal(self, error: AmiError) -> None:
        said = error.response_message()
        if said == self._refused:
            return
        self._refused = said
        if "permission denied" in said.lower():
            log.error("AstDB mirror: Asterisk refused DBGetTree, DBPut or DBDel (%s): give the AMI user "
                      "`write = system` in manager.conf; until then the compiled gate keeps the flags it has", said)
        else:
            log.error("AstDB mirror: an AstDB action failed (%s); trying again in %g s", said, self.interval)
