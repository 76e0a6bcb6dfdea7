"""The operator's SMS settings: one YAML file (``ivrkit serve --sms-config``, ``$IVRKIT_SMS_CONFIG``).

::

    gateway:
      webhook:
        url: https://sms.example.com/v1/messages
        headers: {Authorization: "Bearer {{ env.SMS_TOKEN }}"}
        timeout: 10s
    links: {ttl: 24h}
    retry: {max_attempts: 8, first_delay: 30s, max_delay: 1h, lease: 2m}

It is read with the flow language's located YAML and field types, so a mistake is reported as
``file:line:col: message`` with the source line and a hint, and the server does not start. Without a file
the console sink is used (development): the server says so when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean, relative_name
from ivrkit.flow.fields import INVALID, Duration, Field, Integer, Option, ParseContext, Record
from ivrkit.flow.source import Mapping, Node, Scalar, describe, read_source
from ivrkit.sms.gateway import Gateway
from ivrkit.sms.sinks import ConsoleSink, FileSink
from ivrkit.sms.webhook import WebhookGateway
from ivrkit.sms.worker import RetryPolicy

# The gateway kinds an SMS config can name. A provider: one Gateway subclass and one entry here.
GATEWAYS: dict[str, type[Gateway]] = {kind.kind: kind for kind in (WebhookGateway, FileSink, ConsoleSink)}
DEFAULT_LINK_TTL = 24 * 3600.0
MAX_LINK_TTL = 30 * 24 * 3600.0


class SmsConfigError(Exception):
    """The SMS config cannot be used; the message has every problem at its ``file:line:col``."""


@dataclass(frozen=True)
class SmsSettings:
    gateway: Gateway = field(default_factory=ConsoleSink)
    link_ttl: float = DEFAULT_LINK_TTL  # seconds a link in a text stays valid
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    source: str | None = None  # the config file; None: the development default (console)


class GatewayField(Field[tuple[str, dict[str, Any]]]):
    """``gateway: {webhook: {...}}`` (exactly one kind) or ``gateway: console`` for a kind without settings."""

    type_name = "gateway"

    def __init__(self) -> None:
        self.kinds: dict[str, Record[dict[str, Any]]] = {
            kind: Record(cls.options, what=f"{kind} gateway") for kind, cls in GATEWAYS.items()
        }

    def parse(self, node: Node, ctx: ParseContext) -> tuple[str, dict[str, Any]]:
        hint = f"one of: {', '.join(GATEWAYS)}, e.g. gateway: {{webhook: {{url: https://…}}}}"
        if isinstance(node, Scalar) and isinstance(node.value, str) and node.value in GATEWAYS:
            return self._kind(node.value, Mapping(node.location), ctx)
        if not isinstance(node, Mapping) or len(node.entries) != 1:
            shape = describe(node) if not isinstance(node, Mapping) else f"{len(node.entries)} gateways"
            return ctx.error(node, f"expected exactly one gateway, got {shape}", hint)
        [(kind, value)] = list(node.items())
        if kind not in GATEWAYS:
            return ctx.error(node.key_node(kind), f"unknown gateway '{kind}'", did_you_mean(kind, GATEWAYS) or hint)
        if isinstance(value, Scalar) and value.value is None:
            value = Mapping(value.location)
        with ctx.at(kind):
            return self._kind(kind, value, ctx)

    def _kind(self, kind: str, node: Node, ctx: ParseContext) -> tuple[str, dict[str, Any]]:
        settings: Any = self.kinds[kind].parse(node, ctx)
        return INVALID if settings is INVALID else (kind, settings)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object"}


_RETRY = RetryPolicy()
CONFIG_OPTIONS: dict[str, Option] = {
    "gateway": Option(GatewayField(), "Where texts go: webhook, file or console.", required=True),
    "links": Option(
        Record({"ttl": Option(Duration(maximum=MAX_LINK_TTL), "How long a link stays valid.", DEFAULT_LINK_TTL)},
               what="links"),
        "The signed links in texts.",
        {"ttl": DEFAULT_LINK_TTL},
    ),
    "retry": Option(
        Record(
            {
                "max_attempts": Option(Integer(1, 100), "Attempts before a message fails.", _RETRY.max_attempts),
                "first_delay": Option(Duration(), "Wait after the first failure; doubled each time.",
                                      _RETRY.first_delay),
                "max_delay": Option(Duration(), "The longest wait between attempts.", _RETRY.max_delay),
                "lease": Option(Duration(), "How long one attempt may take before another process may take the "
                                "message over after a crash; longer than the gateway timeout.", _RETRY.lease),
            },
            factory=RetryPolicy,
            what="retry policy",
        ),
        "How failed sends are retried.",
        _RETRY,
    ),
}


def parse_sms_settings(text: str, file: str, config_dir: Path) -> SmsSettings:
    """Settings from the config file's text; raises SmsConfigError with every problem found."""
    diagnostics = Diagnostics()
    root = read_source(file, text, diagnostics)
    if root is not None and not isinstance(root, Mapping):
        diagnostics.error(root.location, "an SMS config is a mapping", "start with 'gateway:'")
    values: Any = INVALID
    if isinstance(root, Mapping):
        values = Record(CONFIG_OPTIONS, what="SMS config").parse(root, ParseContext(diagnostics))
    if values is INVALID or diagnostics.errors:
        raise SmsConfigError(diagnostics.render())
    kind, options = values["gateway"]
    gateway = GATEWAYS[kind].from_settings(options, config_dir)
    retry: RetryPolicy = values["retry"]
    gateway.check(diagnostics)
    timeout = getattr(gateway, "timeout", None)
    if isinstance(timeout, float) and retry.lease <= timeout:
        assert isinstance(root, Mapping)
        diagnostics.error(_where(root, "retry", "lease"), f"the lease ({retry.lease:g} s) must be longer than the "
                          f"gateway timeout ({timeout:g} s)", "otherwise a slow send is taken over and sent twice")
    if diagnostics.errors:
        raise SmsConfigError(diagnostics.render())
    return SmsSettings(gateway, values["links"]["ttl"], retry, file)


def load_sms_settings(path: Path | None) -> SmsSettings:
    """The settings in ``path``; without a file the development default (console sink)."""
    if path is None:
        return SmsSettings()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise SmsConfigError(f"{path}: cannot read the SMS config ({reason}); check --sms-config") from None
    return parse_sms_settings(text, relative_name(path), path.parent)


def _where(root: Mapping, *path: str) -> Location:
    """The location of the deepest node along ``path`` that exists."""
    node: Node = root
    for key in path:
        inner = node.get(key) if isinstance(node, Mapping) else None
        if inner is None:
            break
        node = inner
    return node.location
