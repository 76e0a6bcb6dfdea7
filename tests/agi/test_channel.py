"""The engine's channel on the AGI wire: what each method sends, and what it refuses to send."""

from __future__ import annotations

import pytest

from ivrkit.agi.channel import AgiChannel, call_info
from ivrkit.agi.wire import parse_route, split_words
from ivrkit.engine import transitions
from ivrkit.engine.state import CallState
from tests.agi.peer import Peer, make


def channel(peers: list[Peer], replies: list[list[str]], **options: str) -> tuple[Peer, AgiChannel]:
    peer, connection = make(peers, replies)
    return peer, AgiChannel(connection, call_info(connection.env, parse_route("support")), **options)


def sent(peer: Peer) -> list[list[str]]:
    return [split_words(line.rstrip("\n")) for line in peer.received]


def test_call_info_from_the_environment(peer_factory: list[Peer]) -> None:
    _, connection = make(peer_factory, [])
    connection.env.update({"agi_arg_1": "vip", "agi_arg_2": "x,y", "agi_rdnis": "unknown", "agi_dnid": "unknown"})
    info = call_info(connection.env, parse_route("support?lang=de"))
    assert (info.uniqueid, info.caller_number, info.caller_name, info.dnid) == (
        "1763712000.1",
        "+4930123456",
        "Alice",
        "",
    )
    assert (info.args, info.params, info.language) == (("vip", "x,y"), {"lang": "de"}, "en")


def test_prompt_keys_and_timeouts(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=50 endpos=100"], ["200 result=0"], ["200 result=35"]])
    assert ch.play_prompt("main-menu", "de", "12x") == "2"
    assert ch.wait_for_key(2.5) is None
    assert ch.wait_for_key(1) == "#"
    assert sent(peer) == [
        ["STREAM", "FILE", "de/ivrkit/main-menu", "12"],
        ["WAIT", "FOR", "DIGIT", "2500"],
        ["WAIT", "FOR", "DIGIT", "1000"],
    ]


@pytest.mark.parametrize("prompt", ["../../etc/passwd", "a b", "x\nEXEC Dial", ""])
def test_prompt_names_that_could_escape_are_refused(peer_factory: list[Peer], prompt: str) -> None:
    peer, ch = channel(peer_factory, [])
    with pytest.raises(ValueError, match="cannot be played"):
        ch.play_prompt(prompt, "en", "")
    assert peer.received == []


def test_say(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=0"]] * 4, timezone="Europe/Berlin")
    ch.say("number", "42", "en", "")
    ch.say("digits", "0301", "en", "*")
    ch.say("datetime", "2026-12-24T14:00:00", "en", "")
    ch.say("time", "08:30", "de", "")
    words = sent(peer)
    assert words[0] == ["SAY", "NUMBER", "42", ""]
    assert words[1] == ["SAY", "DIGITS", "0301", "*"]
    assert words[2] == ["SAY", "DATETIME", "1798117200", "", "ABdY 'digits/at' IMp", "Europe/Berlin"]
    assert words[3][:2] == ["SAY", "DATETIME"] and words[3][4:] == ["HM", "Europe/Berlin"]
    with pytest.raises(ValueError, match="cannot say 'lots' as a number"):
        ch.say("number", "lots", "en", "")
    with pytest.raises(ValueError, match="as ISO text"):
        ch.say("date", "next tuesday", "en", "")


def test_say_dates_and_times_the_way_the_language_does(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=0"]] * 5, timezone="Europe/Berlin")
    ch.say("date", "2026-12-24", "de", "")
    ch.say("datetime", "2026-12-24T14:00:00", "de_AT", "")  # Austrian German: German rules
    ch.say("time", "14:00", "en", "")
    ch.say("time", "14:00", "fr", "")  # no rules of its own: Asterisk's, with a 24-hour clock
    ch.say("date", "2026-12-24", "fr", "")
    formats = [words[4] for words in sent(peer)]
    assert formats == ["AdBY", "AdBY 'digits/at' HM", "IMp", "HM", "ABdY"]
    assert sent(peer)[0][2] == "1798066800"  # 24 December 2026, 00:00 in Berlin


def test_set_language_writes_only_a_language_code(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=1"], ["200 result=1"]])
    assert ch.language == "en"  # agi_language
    ch.set_language("de")
    ch.set_language("de_AT")
    assert ch.language == "de_AT"
    for bad in ["de)", "de,x", "${SHELL(id)}", "de\nEXEC Dial", "", "german"]:
        with pytest.raises(ValueError, match="is not a language code"):
            ch.set_language(bad)
    assert sent(peer) == [["SET", "VARIABLE", "CHANNEL(language)", "de"],
                          ["SET", "VARIABLE", "CHANNEL(language)", "de_AT"]]


def test_variables_are_plain_names_only(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=1 (3)"], ["200 result=1 ()"]])
    assert ch.get_variable("QUEUE_WAITING") == "3"
    assert ch.get_variable("UNSET") is None
    for name in ["SHELL(rm -rf /)", "A}${SHELL(id)", "X Y", ""]:
        with pytest.raises(ValueError, match="not a channel variable name"):
            ch.get_variable(name)
        with pytest.raises(ValueError, match="not a channel variable name"):
            ch.set_variable(name, "1")
    assert sent(peer) == [["GET", "FULL", "VARIABLE", "${QUEUE_WAITING}"], ["GET", "FULL", "VARIABLE", "${UNSET}"]]


def test_set_variables_batches_plain_values(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=0"], ["200 result=1"]])
    ch.set_variables({"IVRKIT_TARGET": "sales", "IVRKIT_STATE": '{"f":"a,b"}', "IVRKIT_RESULT": "queue"})
    assert sent(peer) == [
        ["EXEC", "MSet", "IVRKIT_TARGET=sales,IVRKIT_RESULT=queue"],
        ["SET", "VARIABLE", "IVRKIT_STATE", '{"f":"a,b"}'],
    ]


def test_a_hand_off_sets_the_state_and_its_instructions_in_one_mset(peer_factory: list[Peer]) -> None:
    state = CallState("support", step="to_queue", vars={"who": 'Bob"\nEXEC Dial(PJSIP/666)', "n": 1}, sessions=1)
    encoded = state.to_channel()
    peer, ch = channel(peer_factory, [["200 result=0"]])
    ch.set_variables({"IVRKIT_STATE": encoded, "IVRKIT_TARGET": "support", "IVRKIT_RESULT": "queue"})
    assert sent(peer) == [["EXEC", "MSet", f"IVRKIT_STATE={encoded},IVRKIT_TARGET=support,IVRKIT_RESULT=queue"]]
    assert CallState.from_channel(encoded) == state


def test_values_too_long_for_one_mset_go_on_their_own_longest_first(peer_factory: list[Peer]) -> None:
    big, bigger = "a" * 3000, "b" * 4500
    peer, ch = channel(peer_factory, [["200 result=0"], ["200 result=1"]])
    ch.set_variables({"BIG": big, "BIGGER": bigger, "IVRKIT_RESULT": "queue"})
    assert sent(peer) == [["EXEC", "MSet", f"BIG={big},IVRKIT_RESULT=queue"], ["SET", "VARIABLE", "BIGGER", bigger]]


def test_set_variables_without_mset_falls_back(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=-2"], ["200 result=1"], ["200 result=1"]])
    ch.set_variables({"A": "1", "B": "2"})
    assert [w[:3] for w in sent(peer)] == [
        ["EXEC", "MSet", "A=1,B=2"],
        ["SET", "VARIABLE", "A"],
        ["SET", "VARIABLE", "B"],
    ]


def test_hangup_during_a_prompt_becomes_the_engines_hangup(peer_factory: list[Peer]) -> None:
    peer, ch = channel(peer_factory, [["200 result=-1 endpos=10"], ["HANGUP", "511 Command Not Permitted"]])
    with pytest.raises(transitions.CallerHungUp):
        ch.play_prompt("welcome", "en", "")
    assert [w[0] for w in sent(peer)] == ["STREAM", "CHANNEL"]


def test_missing_prompt_is_a_problem_not_a_hangup(peer_factory: list[Peer]) -> None:
    problems: list[tuple[str, str]] = []
    _, connection = make(peer_factory, [["200 result=-1 endpos=0"], ["200 result=6"]])
    ch = AgiChannel(
        connection, call_info(connection.env, parse_route("x")), problem=lambda k, m: problems.append((k, m))
    )
    assert ch.play_prompt("welcome", "en", "1") is None
    assert problems == [("command-failed", "prompt file 'en/ivrkit/welcome' did not play")]
