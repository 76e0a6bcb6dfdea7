"""What operators see of maintenance, the same through ``ivrkit maintenance`` and the admin API: reading a time
(``2026-12-01T14:00`` or ``+2h``), checking who and why, the JSON shape of windows and audit entries, and the
admin API's four routes as plain functions from a request to ``(status, JSON)`` (``ivrkit/ops/admin.py`` does
the HTTP and runs them on its store thread).

Times in JSON are UTC in ISO 8601 (``2026-11-23T10:00:00Z``) so they read the same wherever the tool runs. A
window's scope is ``"flow": "<name>"``, or ``"flow": null`` for a global window (every flow).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ivrkit.flow.fields import NAME_PATTERN
from ivrkit.maintenance.model import GLOBAL, AuditEntry, Maintenance, Mode, Source, Window
from ivrkit.ops.requests import DEFAULT_LIMIT, check_who, parse_limit
from ivrkit.store.maintenance import MaintenanceStore, WindowDeclared, WindowNotFound

CONFIRM_GLOBAL_EMERGENCY = "global-emergency"  # what the API's "confirm" must say for a global emergency
MODES = ", ".join(mode.value for mode in Mode)
_DURATION = re.compile(r"^\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
ON_EXAMPLE = '{"mode": "planned", "flow": "support", "until": "+2h", "reason": "database upgrade", "by": "alice"}'
OFF_EXAMPLE = '{"flow": "support", "by": "alice", "reason": "upgrade done"}'
_ON_FIELDS = ("mode", "flow", "from", "until", "reason", "by", "confirm")
_OFF_FIELDS = ("flow", "id", "mode", "by", "reason")
_HISTORY_QUERY = ("flow", "limit")
_CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time(value: str, base: dt.datetime, *, naive_is_local: bool) -> dt.datetime:
    """A point in time: ISO 8601, or a duration after ``base`` (``+2h``, ``+30m``, ``+1d``, ``+1h30m``).

    A time without an offset is in the host's time zone when ``naive_is_local`` (the command line), and an
    error otherwise (the API: the server's zone is not the client's). On the command line a time of day alone
    (``14:00``) is the next 14:00 after ``base``: today, or tomorrow once it has passed. ValueError says what
    to write.

    >>> base = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
    >>> parse_time("+1h30m", base, naive_is_local=False).isoformat()
    '2026-11-23T11:30:00+00:00'
    >>> parse_time("2026-12-01T14:00+01:00", base, naive_is_local=False).isoformat()
    '2026-12-01T14:00:00+01:00'
    >>> parse_time("2026-12-01T14:00Z", base, naive_is_local=False).isoformat()
    '2026-12-01T14:00:00+00:00'
    >>> parse_time("14:00", base, naive_is_local=False)
    Traceback (most recent call last):
    ...
    ValueError: time '14:00' is neither ISO 8601 (2026-12-01T14:00) nor a duration (+2h, +30m, +1d, +1h30m)
    >>> parse_time("2026-12-01T14:00", base, naive_is_local=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: time '2026-12-01T14:00' has no UTC offset; add one (2026-12-01T14:00Z, ...) or give a duration (+2h)
    """
    text = value.strip()
    if text.startswith("+"):
        match = _DURATION.match(text)
        if match is None or not any(match.groups()):
            raise ValueError(f"duration {value!r} is not understood; write +2h, +30m, +1d or +1h30m")
        days, hours, minutes = (int(group or 0) for group in match.groups())
        return base + dt.timedelta(days=days, hours=hours, minutes=minutes)
    clock_time = _CLOCK_TIME.match(text)
    if clock_time is not None and naive_is_local:
        local_base = base.astimezone()
        hour, minute = int(clock_time.group(1)), int(clock_time.group(2))
        moment = local_base.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None).astimezone()
        if moment <= base:
            day = local_base.date() + dt.timedelta(days=1)
            moment = dt.datetime.combine(day, dt.time(hour, minute)).astimezone()
        return moment
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        today = " nor a time of day (14:00)" if naive_is_local else ""
        raise ValueError(
            f"time {value!r} is neither ISO 8601 (2026-12-01T14:00){today} nor a duration (+2h, +30m, +1d, +1h30m)"
        ) from None
    if moment.tzinfo is None:
        if not naive_is_local:
            raise ValueError(
                f"time {value!r} has no UTC offset; add one ({text}Z, {text}+01:00) or give a duration (+2h)"
            )
        moment = moment.astimezone()  # the host's zone, as the operator at its console reads the clock
    return moment


def check_flow(flow: object) -> str:
    """A flow name as the flows declare it (``flow: support``); ValueError otherwise."""
    if not isinstance(flow, str) or not NAME_PATTERN.match(flow):
        raise ValueError(f"{flow!r} is not a flow name: letters, digits, '_' and '-', as in the flow's `flow:` key")
    return flow


def check_mode(mode: object) -> Mode:
    if mode is None:
        raise ValueError(f"say which mode: one of {MODES}")
    try:
        return Mode(mode if isinstance(mode, str) else "")
    except ValueError:
        raise ValueError(f"unknown mode {mode!r}; modes are {MODES}") from None


def catch_up(store: MaintenanceStore, now: dt.datetime) -> None:
    """Record scheduled starts and expiries that are due before showing or changing anything, so the history
    and status an operator sees are complete even when no server is running."""
    store.start_due(now)
    store.expire(now)


def needs_confirmation(scope: str, mode: Mode) -> bool:
    """A global emergency stops every flow at once: it is confirmed a second time."""
    return scope == GLOBAL and mode is Mode.EMERGENCY


def precedence_note(store: MaintenanceStore, window: Window, now: dt.datetime) -> str | None:
    """What callers of the window's flow hear instead, when another window takes precedence."""
    if window.scope == GLOBAL or window.starts_at > now:
        return None
    meets = store.in_force(window.scope, now)
    if meets is None or (meets.mode, meets.scope) == (window.mode, window.scope):
        return None
    return f"callers of {window.scope} hear {describe(meets)} first: it takes precedence"


def still_in_force_note(store: MaintenanceStore, scope: str, now: dt.datetime) -> str | None:
    """After a switch-off: what the scope's callers still meet (another mode, or a global window)."""
    if scope == GLOBAL:
        running = store.windows(now, include_future=False)
        flows = sorted({window.scope for window in running if window.scope != GLOBAL})
        return f"flows with their own maintenance still in force: {', '.join(flows)}" if flows else None
    meets = store.in_force(scope, now)
    return None if meets is None else f"callers of {scope} still meet {describe(meets)}"


@dataclass(frozen=True)
class Words:
    """How an interface spells the choices an operator has, for hints (the CLI's options, the API's fields)."""

    flow: str
    everywhere: str
    mode: str
    window_id: str
    status: str


CLI_WORDS = Words("--flow", "--global", "--mode", "--id", "`ivrkit maintenance status`")
API_WORDS = Words('"flow": "<name>"', '"flow": null', '"mode"', '"id"', "GET /v1/maintenance")


def nothing_to_end(store: MaintenanceStore, scope: str, mode: Mode | None, now: dt.datetime, words: Words) -> str:
    """Why a switch-off found nothing running, and what the operator may have meant. Windows declared in a flow
    file are never switched off: the file is their switch."""
    kind = f"{mode} maintenance" if mode else "maintenance"
    message = f"no global {kind} is in force" if scope == GLOBAL else f"{scope} is not in {kind}"
    found = store.windows(now)
    running = [window for window in found if window.starts_at <= now and window.source is not Source.SCHEDULE]
    declared = declared_in_force(found, scope, mode, now)
    hints = []
    if declared:
        modes = " and ".join(sorted({window.mode.value for window in declared}))
        files = sorted({window.by for window in declared})
        message = f"{scope}'s {modes} maintenance is declared in {', '.join(files)}"
        hints.append(f"take its window out of {'that file' if len(files) == 1 else 'those files'} to end it (a "
                     "running server stores the change when it reloads the file)")  # fmt: skip
    if scope != GLOBAL and any(window.scope == GLOBAL for window in running):
        hints.append(f"a global window is in force: switch it off with {words.everywhere}")
    if scope == GLOBAL and any(window.scope != GLOBAL for window in running):
        hints.append(f"flows have their own windows: switch those off with {words.flow}")
    if mode is not None and any(window.scope == scope for window in running):
        hints.append(f"another mode is in force: leave out {words.mode}")
    if any(window.scope == scope and window.starts_at > now and window.source is not Source.SCHEDULE
           for window in found):  # fmt: skip
        hints.append(f"scheduled windows stay until they start: cancel one with {words.window_id}")
    hints.append(f"{words.status} shows what is in force")
    return f"{message}: nothing to switch off; {'; '.join(hints)}"


def declared_in_force(windows: Iterable[Window], scope: str, mode: Mode | None, now: dt.datetime) -> list[Window]:
    """The scope's windows in force (of ``mode``, if given) that a flow file declares: no switch ends them."""
    return [window for window in windows if window.source is Source.SCHEDULE and window.scope == scope
            and mode in (None, window.mode) and window.covers(now)]  # fmt: skip


def describe(maintenance: Maintenance) -> str:
    """ "global emergency maintenance", "planned maintenance of support"."""
    if maintenance.scope == GLOBAL:
        return f"global {maintenance.mode} maintenance"
    return f"{maintenance.mode} maintenance of {maintenance.scope}"


def scope_name(scope: str) -> str:
    return "global" if scope == GLOBAL else scope


# -- JSON ---------------------------------------------------------------------------------------------


def iso(at: dt.datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def window_json(window: Window, now: dt.datetime) -> dict[str, Any]:
    """A window for operators; ``state`` is ``in-force``, ``scheduled`` or ``ended``."""
    over = window.ended_at is not None or (window.ends_at is not None and window.ends_at <= now)
    state = "ended" if over else "in-force" if window.starts_at <= now else "scheduled"
    return {
        "id": window.id,
        "flow": None if window.scope == GLOBAL else window.scope,
        "mode": window.mode.value,
        "state": state,
        "from": iso(window.starts_at),
        "until": iso(window.ends_at),
        "reason": window.reason,
        "by": window.by,
        "source": window.source.value,
        "ended_at": iso(window.ended_at),
    }


def status_json(windows: Sequence[Window], now: dt.datetime) -> dict[str, Any]:
    """Windows in force (in the order they apply) then scheduled ones."""
    return {"now": iso(now), "windows": [window_json(window, now) for window in windows], "count": len(windows)}


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "action": entry.action,
        "flow": None if entry.scope == GLOBAL else entry.scope,
        "mode": None if entry.mode is None else entry.mode.value,
        "until": iso(entry.until),
        "by": entry.by,
        "source": entry.source.value,
        "reason": entry.reason,
        "detail": entry.detail,
        "window": entry.window_id or None,
    }


def history_json(entries: Sequence[AuditEntry], limit: int) -> dict[str, Any]:
    """A page of the audit trail, newest first; ``truncated`` when there may be more than ``limit``."""
    return {
        "entries": [entry_json(entry) for entry in entries],
        "count": len(entries),
        "limit": limit,
        "truncated": len(entries) >= limit,
    }


# -- the admin API's routes -----------------------------------------------------------------------------

Answer = tuple[int, dict[str, Any]]


def status_route(store: MaintenanceStore, query: str) -> Answer:
    """``GET /v1/maintenance``: the windows in force and scheduled."""
    if query:
        return 400, {"error": "bad query", "hint": "GET /v1/maintenance takes no parameters"}
    now = store.now()
    catch_up(store, now)
    return 200, status_json(store.status(now), now)


def history_route(store: MaintenanceStore, query: str) -> Answer:
    """``GET /v1/maintenance/history?flow=&limit=``: the audit trail, newest first (``flow=*``: global rows)."""
    params = parse_qs(query, keep_blank_values=True)
    try:
        unknown = sorted(set(params) - set(_HISTORY_QUERY))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(_HISTORY_QUERY)}")
        flows, limits = params.get("flow", []), params.get("limit", [])
        if len(flows) > 1 or len(limits) > 1:
            raise ValueError("give one flow (flow=support, or flow=* for global changes) and one limit")
        flow = flows[0] if flows else ""
        scope = None if not flow else GLOBAL if flow == GLOBAL else check_flow(flow)
        limit = parse_limit(limits[0]) if limits else DEFAULT_LIMIT
    except ValueError as error:
        return 400, {"error": "bad query", "hint": str(error)}
    catch_up(store, store.now())
    return 200, history_json(store.history(scope, limit), limit)


def switch_on_route(
    store: MaintenanceStore, body: dict[str, Any], flow_names: Callable[[], Collection[str]] | None
) -> Answer:
    """``POST /v1/maintenance``: 201 with the window (and those it replaced); 409 for a global emergency
    without ``"confirm": "global-emergency"``; 400 saying what to send."""
    try:
        unknown = sorted(set(body) - set(_ON_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; send {ON_EXAMPLE}")
        mode = check_mode(body.get("mode"))
        scope = _scope(body, flow_names)
        by, reason = check_who(body.get("by"), body.get("reason", ""), reason_required=True)
        start_text, until_text = _time_text(body, "from"), _time_text(body, "until")
        if mode is Mode.CLOSED and until_text is None:
            raise ValueError('closed needs "until": callers hear when you reopen (e.g. "until": "+2h")')
        if needs_confirmation(scope, mode) and body.get("confirm") != CONFIRM_GLOBAL_EMERGENCY:
            hint = (
                "a global emergency stops every flow: send the same request again with "
                f'"confirm": "{CONFIRM_GLOBAL_EMERGENCY}"'
            )
            return 409, {"error": "confirmation required", "hint": hint}
        now = store.now()
        catch_up(store, now)
        start = None if start_text is None else parse_time(start_text, now, naive_is_local=False)
        until = None if until_text is None else parse_time(until_text, start or now, naive_is_local=False)
        window = store.switch_on(scope, mode, by=by, source=Source.API, reason=reason, starts_at=start, until=until)
    except ValueError as error:
        return 400, {"error": "bad request", "hint": str(error)}
    now = store.now()  # after the switch: a window that starts now has started
    answer: dict[str, Any] = {
        "window": window_json(window, now),
        "replaced": [window_json(old, now) for old in store.replaced(window.id)],
    }
    note = precedence_note(store, window, now)
    return 201, {**answer, "note": note} if note else answer


def switch_off_route(store: MaintenanceStore, body: dict[str, Any]) -> Answer:
    """``POST /v1/maintenance/off``: 200 with the windows ended; 409 when nothing was in force (the hint says
    what is) or only windows declared in a flow file, and for the ``id`` of such a window; 404 for an ``id``
    that is no running or scheduled window."""
    try:
        unknown = sorted(set(body) - set(_OFF_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; send {OFF_EXAMPLE}")
        by, reason = check_who(body.get("by"), body.get("reason", ""), reason_required=False)
        window_id = body.get("id")
        if window_id is not None and "flow" in body:
            raise ValueError('send "flow" (a flow, or null for the global windows) or "id" (one window), not both')
        if window_id is not None and (not isinstance(window_id, str) or not window_id):
            raise ValueError('"id" is a window id, as GET /v1/maintenance shows it')
        scope = None if window_id is not None else _scope(body, None)  # a removed flow's window can still end
        mode = None if body.get("mode") is None else check_mode(body["mode"])
    except ValueError as error:
        return 400, {"error": "bad request", "hint": str(error)}
    now = store.now()
    catch_up(store, now)
    if scope is None:
        try:
            ended = [store.cancel(str(window_id), by=by, source=Source.API, reason=reason)]
        except WindowNotFound:
            hint = (
                f"no running or scheduled maintenance window has the id {window_id!r}; GET /v1/maintenance shows "
                "them with their ids"
            )
            return 404, {"error": "no such window", "hint": hint}
        except WindowDeclared as error:
            return 409, {"error": "declared in a flow file", "hint": str(error)}
    else:
        ended = store.switch_off(scope, by=by, source=Source.API, reason=reason, mode=mode)
        if not ended:
            declared = declared_in_force(store.windows(now, include_future=False), scope, mode, now)
            refusal = "declared in a flow file" if declared else "not in maintenance"
            return 409, {"error": refusal, "hint": nothing_to_end(store, scope, mode, now, API_WORDS)}
    now = store.now()
    answer: dict[str, Any] = {"ended": [window_json(window, now) for window in ended], "count": len(ended)}
    note = still_in_force_note(store, ended[0].scope, now)
    return 200, {**answer, "note": note} if note else answer


def _scope(body: dict[str, Any], flow_names: Callable[[], Collection[str]] | None) -> str:
    """The body's ``flow``: GLOBAL for null, else a flow name (one of ``flow_names()`` when given); it must be
    there: a forgotten flow must not mean every flow."""
    if "flow" not in body:
        raise ValueError('say which flow: "flow": "support", or "flow": null for every flow')
    if body["flow"] is None:
        return GLOBAL
    flow = check_flow(body["flow"])
    if flow_names is not None:
        known = set(flow_names())
        if flow not in known:
            raise ValueError(f'no flow named {flow!r} here (flows: {", ".join(sorted(known)) or "none"}); check "flow"')
    return flow


def _time_text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise ValueError(f'"{field}" is a time as text: ISO 8601 with an offset ("2026-12-01T14:00+01:00") or "+2h"')
    return value
