"""The operator's SMS config file: each gateway kind, defaults, and mistakes at their line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivrkit.sms.settings import SmsConfigError, SmsSettings, load_sms_settings, parse_sms_settings
from ivrkit.sms.sinks import ConsoleSink, FileSink
from ivrkit.sms.webhook import WebhookGateway
from ivrkit.sms.worker import RetryPolicy


def parse(text: str, config_dir: Path = Path("/etc/ivrkit")) -> SmsSettings:
    return parse_sms_settings(textwrap.dedent(text), "sms.yaml", config_dir)


def problems(text: str) -> str:
    with pytest.raises(SmsConfigError) as error:
        parse(text)
    return str(error.value)


def test_a_webhook_config_with_everything() -> None:
    settings = parse("""
        gateway:
          webhook:
            url: https://sms.example.com/v1/messages
            method: PUT
            headers: {X-Api-Key: abc}
            body: '{"number": {{ to | tojson }}}'
            timeout: 5s
        links: {ttl: 2h}
        retry: {max_attempts: 4, first_delay: 10s, max_delay: 10m, lease: 1m}
    """)
    gateway = settings.gateway
    assert isinstance(gateway, WebhookGateway)
    assert (gateway.url, gateway.method, gateway.timeout) == ("https://sms.example.com/v1/messages", "PUT", 5.0)
    assert settings.link_ttl == 7200
    assert settings.retry == RetryPolicy(max_attempts=4, first_delay=10, max_delay=600, lease=60)
    assert settings.source == "sms.yaml"


def test_the_sinks_and_the_defaults() -> None:
    settings = parse("gateway: {file: {path: out/sms.jsonl}}")
    assert settings.gateway == FileSink(Path("/etc/ivrkit/out/sms.jsonl"))
    assert (settings.link_ttl, settings.retry) == (86400, RetryPolicy())
    assert isinstance(parse("gateway: console").gateway, ConsoleSink)
    assert isinstance(parse("gateway: {console: }").gateway, ConsoleSink)
    default = load_sms_settings(None)
    assert isinstance(default.gateway, ConsoleSink) and default.source is None


def test_mistakes_point_at_the_line_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMS_TOKEN", raising=False)
    assert problems("""
        gateway:
          webhook:
            url: sms.example.com
            methd: POST
            headers: {Authorization: "Bearer {{ env.SMS_TOKEN }}"}
        retry: {max_attempts: 0}
    """).splitlines() == [
        "sms.yaml:4:10: error: 'sms.example.com' is not a valid http(s) URL",
        "        url: sms.example.com",
        "             ^",
        "sms.yaml:5:5: error: unknown option 'methd' in webhook gateway",
        "        methd: POST",
        "        ^",
        "    hint: did you mean 'method'?",
        "sms.yaml:7:23: error: 0 is too small: the minimum is 1",
        "    retry: {max_attempts: 0}",
        "                          ^",
    ]


def test_templates_are_tried_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMS_TOKEN", raising=False)
    assert problems("""
        gateway:
          webhook: {url: "https://sms.example.com/", headers: {Authorization: "Bearer {{ env.SMS_TOKEN }}"}}
    """).splitlines() == [
        "sms.yaml:3:71: error: template failed: 'dict object' has no attribute 'SMS_TOKEN'",
        '      webhook: {url: "https://sms.example.com/", headers: {Authorization: "Bearer {{ env.SMS_TOKEN }}"}}',
        " " * 74 + "^",
        "    hint: templates see to, text, key, attempt, id and env.NAME, an environment variable: is it set where "
        "ivrkit serve runs?",
    ]
    monkeypatch.setenv("SMS_TOKEN", "s3cret")
    parse("""
        gateway:
          webhook: {url: "https://sms.example.com/", headers: {Authorization: "Bearer {{ env.SMS_TOKEN }}"}}
    """)


@pytest.mark.parametrize(
    ("text", "first_line"),
    [
        ("gateway: {webhok: {url: 'https://x.example/'}}", "sms.yaml:1:11: error: unknown gateway 'webhok'"),
        ("gateway: {console: {}, file: {path: x}}",
         "sms.yaml:1:10: error: expected exactly one gateway, got 2 gateways"),
        ("links: {ttl: 1h}",
         "sms.yaml:1:1: error: SMS config needs 'gateway': Where texts go: webhook, file or console."),
        ("gateway: {webhook: {}}", "sms.yaml:1:20: error: webhook gateway needs 'url': Where the request goes."),
        ("gateway: {webhook: {url: 'http://x.example/', timeout: 30s}}\nretry: {lease: 20s}",
         "sms.yaml:2:16: error: the lease (20 s) must be longer than the gateway timeout (30 s)"),
        ("- gateway", "sms.yaml:1:1: error: an SMS config is a mapping"),
        ("gateway: {webhook: {url: 'http://x.example/', body: '{{ to }'}}",
         "sms.yaml:1:53: error: template syntax error: unexpected '}'"),
    ],
)
def test_each_mistake_is_reported(text: str, first_line: str) -> None:
    assert problems(text).splitlines()[0] == first_line


def test_an_unknown_gateway_gets_a_suggestion_or_the_list() -> None:
    assert problems("gateway: {webhok: {}}").endswith("hint: did you mean 'webhook'?")
    assert "hint: one of: webhook, file, console" in problems("gateway: {sms77: {}}")


def test_an_unreadable_file_says_which_option_to_check(tmp_path: Path) -> None:
    with pytest.raises(SmsConfigError, match=r"sms.yaml: cannot read the SMS config \(No such file or directory\); "
                                             r"check --sms-config"):
        load_sms_settings(tmp_path / "sms.yaml")
