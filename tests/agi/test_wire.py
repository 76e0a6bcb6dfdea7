import doctest

import pytest

from ivrkit.agi import wire
from ivrkit.agi.wire import (
    ProtocolError,
    Reply,
    command_line,
    parse_any_reply,
    parse_reply,
    parse_route,
    quote,
    split_words,
)


def test_doctests() -> None:
    failures, tried = doctest.testmod(wire)
    assert tried > 10 and failures == 0


@pytest.mark.parametrize(
    "value",
    ["plain", "", "two words", 'quote " inside', "back\\slash", "tab\there", "${SHELL(id)}", "ünïcode", '"', "\\"],
)
def test_quote_reads_back_as_asterisk_tokenizes_it(value: str) -> None:
    line = command_line("SET VARIABLE", "X", value).decode()
    assert split_words(line.rstrip("\n")) == ["SET", "VARIABLE", "X", value.replace("\t", " ")]


@pytest.mark.parametrize("value", ["Bob\nEXEC Dial(PJSIP/666)", "a\r\nHANGUP", "x\rNOOP", "nul\x00here"])
def test_no_value_can_start_a_second_command(value: str) -> None:
    line = command_line("SET VARIABLE", "CALLERNAME", value)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert b"\r" not in line and b"\x00" not in line
    words = split_words(line.decode().rstrip("\n"))
    assert len(words) == 4  # SET VARIABLE name value: the payload stayed one argument


def test_quote_keeps_bare_words_bare() -> None:
    assert quote("en/ivrkit/welcome") == "en/ivrkit/welcome"
    assert quote("123#*") == "123#*"
    assert quote(5000) == "5000"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0 endpos=12345", Reply("0", None, 12345)),
        ("200 result=49 endpos=800", Reply("49", None, 800)),
        ("200 result=-1 endpos=0", Reply("-1", None, 0)),
        ("200 result=1 ()", Reply("1", "")),
        ("200 result=1 (a (b) c)", Reply("1", "a (b) c")),
        ("200 result=", Reply("")),
        ("200 result=123", Reply("123")),
        ("200 result= (timeout)", Reply("", None, None, True)),
    ],
)
def test_replies(line: str, expected: Reply) -> None:
    assert parse_reply(line) == (200, expected)


@pytest.mark.parametrize(
    "line",
    [
        "200 result=1", "200 result=0 endpos=0", "200 result=-1 endpos=-5", "200 result=1 (x) endpos=9",
        "200 result=1 (a) b) endpos=2", "200 result=1 ((x))", "200 result=1 (x)(y)", "200 result=1 (x) endpos=",
        "200 result=1 (x) endpos=3 (y)", "200 result=1  (x)", "200 result=1 (x) ", "200 result=12 (timeout)",
        "200 result=0 (timeout) endpos=8000", "200 result=1 (Bob\nEXEC Dial)", "200 result=(x)", "200 result=1 x",
        "200 result=\u0661 (x)", "200 result=1 (x) endpos=\u0663",
    ],
)  # fmt: skip
def test_the_shortcut_reads_every_line_as_the_general_parser_does(line: str) -> None:
    assert parse_reply(line) == parse_any_reply(line)


@pytest.mark.parametrize("line", ["", "HANG", "abc result=1", "2000 result=1", "200 resul=1", "200 result=1 (open"])
def test_garbage_is_a_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(line)


def test_error_codes_carry_no_reply() -> None:
    assert parse_reply("510 Invalid or unknown command") == (510, None)
    assert parse_reply("520-Invalid command syntax.  Proper usage follows:") == (520, None)


def test_reply_number() -> None:
    assert Reply("49").number == 49
    assert Reply("").number == 0
    with pytest.raises(ProtocolError):
        _ = Reply("abc").number


def test_routes() -> None:
    assert parse_route("support/hangup").mode == "hangup"
    callback = parse_route("support/callback?id=ab12&amd=MACHINE")
    assert (callback.mode, callback.params) == ("callback", {"id": "ab12", "amd": "MACHINE"})
    assert parse_route("support?lang=de&lang=en").params == {"lang": "en"}
    assert parse_route("support?name=a%0Ab").params == {"name": "a b"}
    with pytest.raises(ValueError, match="no flow name"):
        parse_route("")
    with pytest.raises(ValueError, match="no flow name"):
        parse_route("../etc/passwd")
    with pytest.raises(ValueError, match=r"unknown path 'support/other'.*/<flow>/callback"):
        parse_route("support/other")


def test_timeouts_match_the_command() -> None:
    assert wire.reply_timeout("STREAM FILE", 0, 600) == 600
    assert wire.reply_timeout("GET FULL VARIABLE", 0, 600) == wire.COMMAND_SECONDS
    assert wire.reply_timeout("WAIT FOR DIGIT", 5, 600, command_seconds=2) == 7
