"""A callback request and its life: the states it moves through and how one dial attempt can end.

::

    pending ──start_attempt──▶ dialing ──customer confirmed / agent-first: customer answered──▶ connected
       ▲                          │                                                            │
       └──── retry (busy, no-answer, failed, machine, unconfirmed, interrupted, no-agent) ◀────┘ (call ended)
                                  │                                                            ▼
                          attempts used up ──▶ failed                                       completed
    pending / dialing / connected ──cancel──▶ cancelled

Only ``pending``, ``dialing`` and ``connected`` are *active*: a number has at most one active callback per
queue. Every change is recorded with its time and reason (:class:`CallbackEvent`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    PENDING = "pending"  # waiting for an agent and the calling window
    DIALING = "dialing"  # an attempt is in flight: recorded before the Originate is sent
    CONNECTED = "connected"  # the customer confirmed (or answered, agent-first) and is with the queue or agent
    COMPLETED = "completed"  # the callback call took place
    FAILED = "failed"  # every attempt was used up
    CANCELLED = "cancelled"  # the caller or an operator cancelled it


ACTIVE = frozenset({State.PENDING, State.DIALING, State.CONNECTED})
IN_FLIGHT = frozenset({State.DIALING, State.CONNECTED})
FINAL = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED})


class Result(enum.StrEnum):
    """How one attempt ended."""

    ANSWERED = "answered"  # the customer was connected: the callback is completed
    BUSY = "busy"
    NO_ANSWER = "no-answer"  # rang out, or hung up before answering
    FAILED = "failed"  # could not be dialled (congestion, unavailable, no such number)
    MACHINE = "machine"  # answered by a machine (AMD)
    UNCONFIRMED = "unconfirmed"  # answered, but the confirmation key never came
    NO_AGENT = "no-agent"  # agent-first: no agent took the callback in time
    INTERRUPTED = "interrupted"  # the attempt left no trace in Asterisk (a crash or restart in between)


class Origin(enum.StrEnum):
    """Why the callback exists."""

    REQUEST = "request"  # the caller asked for it in the flow (callback step, `when: now`)
    OPT_IN = "opt-in"  # the caller opted in earlier, then hung up while waiting
    AUTOMATIC = "automatic"  # the caller hung up after waiting; the queue step registers callbacks itself


class Mode(enum.StrEnum):
    CUSTOMER_FIRST = "customer-first"  # dial the customer; once they confirm they join the queue at the front
    AGENT_FIRST = "agent-first"  # wait in the queue for an agent, then dial the customer


@dataclass(frozen=True)
class NewCallback:
    """What a flow registers."""

    number: str  # E.164, e.g. +4930123456
    queue: str
    flow: str
    origin: Origin
    joined_at: float  # Unix time the caller joined the queue (their place); the request time if never queued
    requested_at: float  # Unix time
    uniqueid: str = ""  # the call that asked
    reason: str | None = None  # a label from the step's reason menu
    language: str = ""  # the caller's language, for the callback call's prompts
    priority: int = 0  # higher first among callbacks of one queue (the flow's queue priority)


@dataclass(frozen=True)
class Callback:
    """A callback as stored."""

    id: str  # 32 hex digits
    number: str
    queue: str
    flow: str
    origin: Origin
    state: State
    joined_at: float
    requested_at: float
    updated_at: float
    uniqueid: str = ""
    reason: str | None = None
    language: str = ""
    priority: int = 0
    attempts: int = 0  # attempts started so far
    next_attempt_at: float = 0.0  # a pending callback is not dialled before this (Unix time)
    channel_id: str | None = None  # the preset uniqueid of the attempt in flight (Originate ChannelId)
    action_id: str | None = None  # the Originate's ActionID for that attempt
    last_result: Result | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


@dataclass(frozen=True)
class CallbackEvent:
    """One state change, for the audit trail (``ivrkit callbacks show``)."""

    callback_id: str
    at: float  # Unix time
    from_state: State | None  # None: created
    to_state: State
    reason: str  # why, in words: "requested by the caller", "busy (Originate reason 5)", "cancelled by ops"
    attempt: int = 0
