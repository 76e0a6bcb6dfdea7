"""One AGI session, from the environment block to the closed socket: the path every live call takes.

Whatever happens (a flow error, a caller who hangs up, a peer that breaks the protocol, a bug) the session
ends here: it is logged with its cause, counted, and, when the channel can still hear us, the result
variable is set before the socket closes, because ``AGISTATUS=SUCCESS`` alone does not mean the flow
succeeded. Nothing escapes to the listener.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from dataclasses import dataclass
from typing import Protocol

from asterisk.agi import AGIError, AGIHangup

from ivrkit.agi.channel import AgiChannel, call_info
from ivrkit.agi.connection import AgiConnection, PeerClosed, ReplyTimeout
from ivrkit.agi.transport import Waiter
from ivrkit.agi.wire import ProtocolError, parse_route
from ivrkit.callbacks.answer import answer_callback
from ivrkit.engine import transitions
from ivrkit.engine.journal import Event, Journal
from ivrkit.engine.runner import OUTCOME_VARIABLE, RESULT_VARIABLE, SessionResult
from ivrkit.engine.state import CallState
from ivrkit.ops.logs import call_context
from ivrkit.ops.metrics import ServerMetrics
from ivrkit.server.library import FlowLibrary

log = logging.getLogger("ivrkit.session")

FAILURES = frozenset({"crash", "protocol", "timeout"})  # sessions that ended in error with no flow outcome


class CallWatcher(Protocol):
    """Told of every new call of a served flow (a session in mode start) and how its session ended: the
    circuit breaker (:mod:`ivrkit.maintenance.breaker`). Called on the session path: must only count."""

    def call_started(self, flow: str) -> None: ...

    def call_ended(self, flow: str, failed: bool) -> None: ...


@dataclass(frozen=True)
class SessionSettings:
    sounds: str = "ivrkit"  # prompts play from <sounds dir>/<language>/<sounds>/<prompt>
    audio_seconds: float = 600.0  # the longest a prompt or other audio command may take
    command_seconds: float = 30.0  # the longest any other command may take (plus its own wait for keys)
    environment_seconds: float = 10.0  # the longest a new connection may take to send its environment
    answer: bool = True  # answer the channel before the first prompt


class SessionHandler:
    """Runs sessions for a server: shared by every connection, holds nothing per call."""

    def __init__(
        self,
        library: FlowLibrary,
        metrics: ServerMetrics,
        settings: SessionSettings | None = None,
        watcher: CallWatcher | None = None,
    ):
        self.library = library
        self.metrics = metrics
        self.settings = settings or SessionSettings()
        self.watcher = watcher  # told of new calls and how they ended (the circuit breaker)

    def handle(self, sock: socket.socket, peer: str, waiter: Waiter | None = None) -> SessionResult | None:
        """Serve one connection to the end; ``waiter`` is the server's loop (none: block this thread).
        Returns the engine's result when a flow ran (tests read it)."""
        started = time.perf_counter()
        try:
            connection = AgiConnection(
                sock,
                audio_seconds=self.settings.audio_seconds,
                command_seconds=self.settings.command_seconds,
                environment_seconds=self.settings.environment_seconds,
                on_command=self.metrics.command,
                waiter=waiter,
            )
        except (ProtocolError, PeerClosed, ReplyTimeout, UnicodeError) as error:
            self._failed("environment", f"session from {peer} dropped before it started: {error}")
            return None  # the connection has closed the socket
        uniqueid = connection.env.get("agi_uniqueid", "")
        script = connection.env.get("agi_network_script", "")
        path = script.partition("?")[0].strip("/")
        flow_name = path.split("/")[0][:64]
        served = flow_name in self.library.engine.flows
        label = flow_name if served else "unknown"  # metric labels stay bounded
        # a new call: the path is the flow's name alone (/<flow>), not /<flow>/resume, /hangup or /callback
        watcher = self.watcher if served and "/" not in path else None
        journal = Journal(dt.datetime.now(dt.UTC))
        with call_context(uniqueid, flow_name, where=journal.where):
            self.metrics.session_started(label)
            if watcher is not None:
                watcher.call_started(label)
            outcome, failed = "error", True  # if _run itself raised
            try:
                ran = self._run(connection, script, peer, journal)
                if isinstance(ran, SessionResult):
                    outcome, failed = ran.outcome, ran.outcome == "error"
                    return ran
                outcome, failed = "refused", ran in FAILURES  # the metric's label: the session ran no flow's end
                return None
            finally:
                connection.close()
                self.metrics.session_ended(label, outcome, time.perf_counter() - started)
                if watcher is not None:
                    watcher.call_ended(label, failed)

    def _run(self, connection: AgiConnection, script: str, peer: str, journal: Journal) -> SessionResult | str:
        """The engine's result, or how the session ended without one (caller-hangup, timeout, protocol, crash,
        no-such-flow, bad-request)."""
        try:
            route = parse_route(script)
        except ValueError as error:
            self._failed("flow-not-found", str(error))
            self._set_result(connection, "error", "no-such-flow")
            return "no-such-flow"
        engine = self.library.engine
        if route.flow not in engine.flows:
            served = ", ".join(sorted(engine.flows)) or "none"
            self._failed("flow-not-found", f"no flow named '{route.flow}' (serving: {served})")
            self._set_result(connection, "error", "no-such-flow")
            return "no-such-flow"
        if route.mode == "resume" and not route.params.get("outcome"):
            self._failed("protocol", f"/{route.flow}/resume needs ?outcome=<the dialplan step's result>")
            self._set_result(connection, "error", "bad-request")
            return "bad-request"
        flow = engine.flows[route.flow]
        info = call_info(connection.env, route)
        channel = AgiChannel(
            connection, info, sounds=self.settings.sounds, timezone=flow.timezone, problem=self._failed
        )
        if log.isEnabledFor(logging.DEBUG):
            journal.listeners.append(_log_event)
        log.info(
            "session started",
            extra={"peer": peer, "mode": route.mode, "caller": info.caller_number, "channel": info.channel},
        )
        try:
            if route.mode == "hangup":
                result = engine.run_hangup(channel, route.flow, journal=journal)
            elif route.mode == "callback":  # an answered callback leg: the callback's own session, not the flow
                answered = answer_callback(
                    channel, flow, route.params.get("id", ""), route.params.get("amd", ""), engine.world,
                    journal=journal, prompt_language=engine.prompt_language,
                )  # fmt: skip
                result = SessionResult(answered.outcome, CallState(flow.name), journal)
            else:
                if self.settings.answer and route.mode == "start":
                    channel.answer()
                resume = route.params["outcome"] if route.mode == "resume" else None
                result = engine.run(channel, route.flow, resume_outcome=resume, journal=journal)
        except (AGIHangup, transitions.CallerHungUp) as error:
            # the caller went while the session was answering, or the peer closed mid-flow
            log.info("session ended: %s", error, extra={"outcome": "caller-hangup", "commands": connection.commands})
            return "caller-hangup"
        except ReplyTimeout as error:
            self._failed("timeout", f"{error}; the session is closed")
            return "timeout"
        except (ProtocolError, AGIError) as error:
            self._failed("protocol", f"{type(error).__name__}: {error}; the session is closed")
            self._set_result(connection, "error", "protocol")
            return "protocol"
        except Exception:
            self.metrics.error("crash")
            log.exception("session crashed; the dialplan sees IVRKIT_RESULT=error")
            self._set_result(connection, "error", "crash")
            return "crash"
        log.info(
            "session ended",
            extra={"outcome": result.outcome, "commands": connection.commands, "sessions": result.state.sessions},
        )
        return result

    def _failed(self, kind: str, message: str) -> None:
        self.metrics.error(kind)
        log.warning(message, extra={"kind": kind})

    def _set_result(self, connection: AgiConnection, result: str, outcome: str) -> None:
        """Tell the dialplan what happened, if the channel can still be told."""
        if connection.closed:
            return
        try:
            connection.run("SET VARIABLE", OUTCOME_VARIABLE, outcome)
            connection.run("SET VARIABLE", RESULT_VARIABLE, result)
        except (AGIError, ProtocolError, OSError) as error:
            log.debug("result variable not set: %s", error)


def _log_event(event: Event) -> None:
    log.debug(event.kind, extra={"event": event.kind, **{f"detail_{k}": v for k, v in event.detail.items()}})
