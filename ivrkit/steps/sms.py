"""``sms``: text the caller a link to continue on the web, then confirm it; callers who cannot receive a text
(anonymous, not a mobile number) go to ``unavailable``.

The step only checks the number and asks the world to send (``World.send_text``). The live world signs the
link, renders the text and writes it to the durable outbox before the confirmation plays; a worker thread
sends it. The idempotency key is the call's unique id, the flow and the step, so a caller who comes back to
the step (the cancel key, a menu loop) is never texted twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivrkit.engine.transitions import Finish, GoTo, Transition
from ivrkit.engine.world import TextNotQueued, TextRequest
from ivrkit.flow.expressions import Template
from ivrkit.flow.fields import ListOf, Option, Record, StepRef, TemplateField, Text
from ivrkit.flow.segments import Segment, segments
from ivrkit.sms.numbers import DEFAULT_MOBILE, unreachable_reason
from ivrkit.steps.base import Step, next_option
from ivrkit.steps.collect import RegexField
from ivrkit.steps.queue import QUEUE_NAME, QUEUE_NAME_HINT

if TYPE_CHECKING:
    from ivrkit.engine.context import CallContext
    from ivrkit.flow.model import Flow

LINK = re.compile(r"^https?://[^\s/?#]+[^\s#]*$")
NOT_QUEUED = "not-queued"  # the world could not queue the text (the store failed)


def flow_mobile_patterns(flow: Flow) -> Sequence[re.Pattern[str]]:
    """The mobile-number patterns of a flow (its `sms: {mobile: ...}`), else the default ones."""
    return (flow.sms.mobile if flow.sms else None) or DEFAULT_MOBILE


@dataclass(frozen=True)
class SmsDefaults:
    """The flow-level ``sms:`` settings every sms step starts from."""

    mobile: list[re.Pattern[str]] | None = None


@dataclass(frozen=True)
class SmsSpec:
    text: Template
    unavailable: str
    link: str | None = None
    mobile: list[re.Pattern[str]] | None = None
    confirm: list[Segment] | None = None
    queue: str | None = None


MOBILE = ListOf(RegexField())
MOBILE_HELP = (
    "Patterns (Python regular expressions) a caller's number must match to be texted, e.g. "
    "`'^\\+491[5-7][0-9]{7,10}$'`; without any, numbers of 7 to 15 digits. Anonymous or withheld numbers never are."
)
SMS_OPTION = Option(
    Record({"mobile": Option(MOBILE, MOBILE_HELP)}, factory=SmsDefaults, what="sms settings"),
    "Defaults for the flow's `sms` steps.",
)


class Sms(Step):
    kind = "sms"
    summary = (
        "Texts the caller (`text`, a template in which `link` is a signed link to `link` that expires) and plays "
        "`confirm`. The text is queued, and sent even if the gateway is down for a while; a caller reaching the "
        "step again is not texted twice. Anonymous callers and numbers not matching `mobile` go to `unavailable`."
    )
    body = Record(
        {
            "text": Option(TemplateField(), "The message; `{{ link }}` is the signed link.", required=True),
            "link": Option(
                Text(LINK, what="http(s) URL", hint="write the full address, e.g. https://example.com/continue"),
                "The web page the link opens; a signed token with the call's context is appended (`?t=…`).",
            ),
            "mobile": Option(MOBILE, "This step's own `mobile` patterns, instead of the flow's `sms.mobile`."),
            "confirm": Option(segments(), "Played once the text is queued."),
            "unavailable": Option(StepRef(), "Where callers go who cannot receive a text.", required=True),
            "queue": Option(
                Text(QUEUE_NAME, what="queue name", hint=QUEUE_NAME_HINT),
                "The queue the caller leaves: its name and the caller's position go into the link.",
            ),
        },
        factory=SmsSpec,
        what="sms",
    )
    options = {"next": next_option("The step after the text is queued.")}
    example = """\
send_link:
  sms:
    text: "Continue with us on the web: {{ link }}"
    link: https://example.com/continue
    mobile: ['^\\+491[5-7][0-9]{7,10}$']
    confirm: text-sent
    unavailable: offer_callback
    queue: support
  next: goodbye
"""

    def run(self, call: CallContext) -> Transition:
        spec: SmsSpec = self.value
        number = call.channel.info.caller_number
        reason = unreachable_reason(number, spec.mobile or flow_mobile_patterns(call.flow))
        if reason is None:
            try:
                sent = call.world.send_text(self._request(call, number.strip()))
            except TextNotQueued as error:
                reason = NOT_QUEUED
                call.log("error", message=str(error))
        if reason is not None:
            call.log("text_unavailable", reason=reason)
            return GoTo(spec.unavailable)
        call.log("text_queued", to=sent.to, text=sent.text, link=sent.link, new=sent.new)
        if spec.confirm:
            call.play(spec.confirm)
        return GoTo(self.next) if self.next else Finish("end-of-flow")

    def _request(self, call: CallContext, number: str) -> TextRequest:
        spec: SmsSpec = self.value
        position = call.world.queue(spec.queue, call.channel).position if spec.queue else None
        context: dict[str, Any] = {"caller": number, "flow": call.flow.name, "queue": spec.queue,
                                   "position": position or None}  # fmt: skip

        def render(link: str) -> str:
            return spec.text.render_text({**call.scope(), "link": link})

        key = f"{call.channel.info.uniqueid}/{call.flow.name}/{self.name}"
        return TextRequest(number, key, render, spec.link, context, call.now())
