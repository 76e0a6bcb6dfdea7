"""A queue's callback settings, written in the flow as ``queues.<queue>.callback``.

The flow's queue block is where an Asterisk admin and a designer already describe a queue; the dispatcher
reads these settings from the loaded flows each time it dials, so a reload changes them for the next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivrkit.callbacks.model import Mode

DEFAULT_PROMPTS = {
    # customer-first: said to the customer who answers the callback
    "intro": "callback-intro",  # "This is Example Telecom returning your call."
    "confirm": "callback-press-to-connect",  # "Press 1 to be connected to an agent."
    "connecting": "callback-connecting",  # "Thank you, connecting you now."
    "goodbye": "goodbye",
    # agent-first: said to the agent before the customer is dialled (then the number, digit by digit)
    "agent": "callback-agent-intro",  # "Callback to"
}


@dataclass(frozen=True)
class CallbackSettings:
    mode: Mode = Mode.CUSTOMER_FIRST
    priority: int = 10  # QUEUE_PRIO of the callback leg in the queue: higher than callers who just joined
    attempts: int = 3  # dial attempts before the callback is failed
    retry_after: tuple[float, ...] = (120.0, 600.0)  # seconds before attempt 2, 3, … (the last one repeats)
    ring_timeout: float = 30.0  # how long the customer's phone may ring
    agent_timeout: float = 600.0  # agent-first: the longest a callback waits in the queue for an agent
    hours: str | None = None  # a schedule of the flow: dial only while it is open (None: any time)
    caller_id: str | None = None  # the number the customer sees
    country: str | None = None  # ISO 3166 region for numbers without a country code (DE, GB…); None: E.164 only
    confirm_key: str = "1"  # customer-first: the key that connects the customer
    confirm_tries: int = 2  # how often the confirmation is asked before the attempt counts as unconfirmed
    confirm_seconds: float = 5.0  # the wait for the key after each ask
    detect_machine: bool = False  # customer-first: run AMD(); a machine ends the attempt with result `machine`
    prompts: tuple[tuple[str, str], ...] = tuple(DEFAULT_PROMPTS.items())  # (role, prompt id)

    def prompt(self, role: str) -> str:
        return dict(self.prompts).get(role, DEFAULT_PROMPTS[role])

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` attempts (1 → before the second; the last delay repeats)."""
        if not self.retry_after:
            return 0.0
        return self.retry_after[max(1, min(attempts, len(self.retry_after))) - 1]
