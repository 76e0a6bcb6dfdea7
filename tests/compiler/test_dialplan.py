"""What may reach a dialplan line: hostile names and values are refused or escaped, never written as they are."""

from __future__ import annotations

import doctest
import string

import pytest

from ivrkit.compiler import dialplan, reload
from ivrkit.compiler.dialplan import UnsafeValue, arg, comment, filter_set, key, name, parse_agi_url, sound
from ivrkit.flow.fields import NAME_PATTERN
from ivrkit.steps.queue import OUTCOME_NAME, QUEUE_NAME
from ivrkit.steps.transfer import DESTINATION


@pytest.mark.parametrize("module", [dialplan, reload])
def test_doctests(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0


HOSTILE_NAMES = [
    "sup,port",  # a comma starts the application's next argument
    "support;evil",  # a semicolon starts a comment
    "support\nexten => s,1,System(id)",  # a line break starts a new dialplan line
    "${SHELL(id)}",  # expanded when the line runs
    "$[1+1]",
    'sup"port',
    "support)",
    "-support",  # would read as a relative priority in Goto()
    "",
]


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_a_hostile_name_is_refused(value: str) -> None:
    with pytest.raises(UnsafeValue):
        name(value, "queue name")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("welcome${SHELL(id)}", "it contains ${, which Asterisk expands when the line runs"),
        ("$[${X}+1]", "it contains ${, which Asterisk expands when the line runs"),
        ("price $[1+1]", "it contains $[, which Asterisk expands when the line runs"),
        ("a\nb", "it contains a line break or another control character"),
        ("a\rb", "it contains a line break or another control character"),
        ("PJSIP/a&PJSIP/b", "'&' would make Dial() or Playback() take two targets"),
    ],
)
def test_an_argument_that_no_escape_makes_safe_is_refused(value: str, reason: str) -> None:
    with pytest.raises(UnsafeValue) as raised:
        arg(value)
    assert str(raised.value).endswith(reason)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("support", "support"),
        ("agi://127.0.0.1:4573/support/resume?outcome=", "agi://127.0.0.1:4573/support/resume?outcome="),
        ("a,b", "a\\,b"),
        ('say "hi"', 'say \\"hi\\"'),
        ("a;b", "a\\;b"),
        ("a\\b", "a\\\\b"),
        ("f(x)[y]", "f\\(x\\)\\[y\\]"),
        ("cost $5", "cost $5"),  # a dollar sign alone is not expanded
    ],
)
def test_argument_escaping(value: str, written: str) -> None:
    assert arg(value) == written


def test_comments_keep_to_one_line() -> None:
    assert comment("Main line\r\n[ivrkit-evil]\nexten => s,1,System(id)") == (
        "Main line  [ivrkit-evil] exten => s,1,System(id)"
    )


def printable() -> list[str]:
    return [char for char in string.printable if char not in string.whitespace or char == " "]


def test_the_queue_filter_keeps_exactly_what_a_queue_name_may_hold() -> None:
    allowed = {char for char in printable() if QUEUE_NAME.match(f"a{char}")}
    assert set(dialplan.QUEUE_CHARACTERS) == allowed


def test_the_destination_filter_keeps_exactly_what_a_destination_may_hold() -> None:
    probes = ("PJSIP/a{}", "P{}a", "{}1")
    allowed = {char for char in printable() if any(DESTINATION.match(probe.format(char)) for probe in probes)}
    assert set(dialplan.DESTINATION_CHARACTERS) == allowed
    assert not {"&", ",", "(", ")", "$", "{", "}", "|", ";", '"'} & allowed


def test_the_flow_filter_keeps_exactly_what_a_flow_name_may_hold() -> None:
    allowed = {char for char in printable() if NAME_PATTERN.match(f"a{char}")}
    assert set(dialplan.FLOW_CHARACTERS) == allowed


def test_the_outcome_filter_keeps_statuses_and_exit_key_outcomes_and_nothing_else() -> None:
    allowed = {char for char in printable() if OUTCOME_NAME.match(f"a{char}") or char.isupper()}
    assert set(dialplan.OUTCOME_CHARACTERS) == allowed
    assert not {"&", "?", "=", "/", "%", " "} & allowed  # nothing that would change the resume URL


@pytest.mark.parametrize("value", ["", "12", "a", ",", "1;", "\n", "${X}"])
def test_only_a_dtmf_key_becomes_an_exit_extension(value: str) -> None:
    with pytest.raises(UnsafeValue):
        key(value)


@pytest.mark.parametrize("value", ["", "/etc/passwd", "en/../x", "en//x", "a,b", "en/x y", "en/${X}", "a\nb"])
def test_a_sound_path_is_plain_names_between_slashes(value: str) -> None:
    with pytest.raises(UnsafeValue):
        sound(value)


def test_filter_sets_put_the_dash_first_and_refuse_what_filter_would_misread() -> None:
    assert filter_set("-0123456789") == "-0-9"
    assert filter_set("ab-") == "-ab"
    for bad in (",", "\\", ")", "$", "\n", "é"):
        with pytest.raises(UnsafeValue):
            filter_set(f"ab{bad}")


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("agi://127.0.0.1:4573", "agi://127.0.0.1:4573"),
        ("AGI://ivr.example.com", "agi://ivr.example.com"),
        ("hagi://ivr.example.com", "hagi://ivr.example.com"),
        ("agi://[::1]:4573", "agi://[::1]:4573"),
    ],
)
def test_agi_urls(text: str, base: str) -> None:
    assert parse_agi_url(text).base == base


@pytest.mark.parametrize(
    "text",
    ["http://127.0.0.1", "agi://", "agi://host/path", "agi://host:0", "agi://host:70000", "agi://ho,st",
     "agi://host?x=1", "agi://host\n", "127.0.0.1:4573"],
)  # fmt: skip
def test_bad_agi_urls_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"FastAGI address|out of range"):
        parse_agi_url(text)
