"""``ivrkit prompts build|synth|check|deploy`` and ``ivrkit check`` as a designer runs them, in a real process, on a
project with a recording made here."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.prompts.audio import convert, speech, tone
from tests.prompts.project import Project, require_tools

FLOW = """
    flow: line
    language: en
    start: hello
    steps:
      hello:
        play: [welcome, menu]
        next: bye
      bye:
        hangup: {play: goodbye}
    """
CATALOG = 'welcome: "Welcome to the test line."\nmenu: "Press one."\ngoodbye: "Goodbye."\n'
DIALPLAN = ('technical-difficulties: "Sorry."\nmaintenance-planned: "Planned."\nmaintenance-emergency: "Sorry."\n'
            'maintenance-closed: "Closed."\n')  # what the compiled dialplan plays itself: `ivrkit check` wants them


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.flow("line", FLOW)
    project.catalog("en", CATALOG + DIALPLAN)
    return project


def test_build_synth_check_deploy(project: Project) -> None:
    require_tools("ffmpeg", "espeak-ng")
    convert(speech(project.prompts / "en" / "welcome.wav", "Welcome to the test line."), "mp3")

    status, out, err = project.ivrkit("prompts", "build")
    assert status == 0, err
    assert re.fullmatch(r"\[1/1\] en/welcome: built \d\.\d\d s\n1 built, 0 unchanged, 0 failed\n", out), out
    status, out, _ = project.ivrkit("prompts", "build")
    assert re.fullmatch(r"\[1/1\] en/welcome: unchanged \d\.\d\d s\n0 built, 1 unchanged, 0 failed\n", out), out

    status, out, err = project.ivrkit("prompts", "synth")
    assert status == 0, err
    made = r"\[1/6\] en/menu: placeholder \d\.\d\d s\n\[2/6\] en/goodbye: placeholder \d\.\d\d s\n"
    made += r"(\[[3-6]/6\] en/[a-z-]+: placeholder \d\.\d\d s\n){4}6 built, 0 unchanged, 0 failed\n"
    assert re.fullmatch(made, out), out

    placeholders = ("prompts/en/catalog.yaml:3:1: warning: 6 prompts in 'en' still play synthesized placeholder "
                    "speech: goodbye, maintenance-closed, maintenance-emergency, maintenance-planned, menu, "
                    "technical-difficulties")
    status, out, _ = project.ivrkit("prompts", "check")
    assert status == 0 and out.splitlines()[0] == placeholders
    assert out.splitlines()[-1] == "0 errors, 1 warning in 7 prompts"
    assert project.ivrkit("prompts", "check", "--strict")[0] == 1
    status, out, _ = project.ivrkit("prompts", "check", "--format", "json")
    assert [(item["file"], item["line"], item["severity"]) for item in json.loads(out)] == [
        ("prompts/en/catalog.yaml", 3, "warning")
    ]
    status, out, _ = project.ivrkit("check")  # the same checks, folded into the flows' check
    assert status == 0 and placeholders in out.splitlines() and out.splitlines()[-1] == "0 errors, 1 warning in 1 flow"

    (project.root / "sounds").mkdir()
    status, out, err = project.ivrkit("prompts", "deploy", "--sounds-dir", "sounds")
    assert status == 0, err
    assert out.splitlines() == [
        "[1/7] en/goodbye: copied wav", "[2/7] en/maintenance-closed: copied wav",
        "[3/7] en/maintenance-emergency: copied wav", "[4/7] en/maintenance-planned: copied wav",
        "[5/7] en/menu: copied wav", "[6/7] en/technical-difficulties: copied wav", "[7/7] en/welcome: copied wav",
        "deployed to sounds: 7 copied, 0 unchanged, 0 removed",
        "note: 6 prompts deployed are placeholders (`ivrkit prompts check` lists them)",
    ]
    status, out, _ = project.ivrkit("prompts", "check", "--sounds-dir", "sounds")
    assert [line for line in out.splitlines() if "deployed" in line] == []
    assert "not in sounds/en: digits/0" in out  # Asterisk's own English sounds: not in this bare folder


def test_a_recording_ffmpeg_cannot_read_fails_alone(project: Project) -> None:
    require_tools("ffmpeg")
    tone(project.prompts / "en" / "welcome.wav", 0.5)
    (project.prompts / "en" / "menu.mp3").write_bytes(b"ID3 this is no mp3 at all" * 20)
    status, out, err = project.ivrkit("prompts", "build")
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("[1/2] en/welcome: built") or lines[1].startswith("[2/2] en/welcome: built")
    failed = next(line for line in lines if "en/menu" in line)
    assert re.fullmatch(r"\[[12]/2\] en/menu: FAILED: en/menu\.mp3: .*ffmpeg cannot read it: .+", failed), failed
    assert lines[-1] == "1 built, 0 unchanged, 1 failed"
    assert err == "1 prompt failed: fix it and run `ivrkit prompts build` again\n"


def test_a_missing_prompt_fails_the_check(project: Project) -> None:
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n' + DIALPLAN)
    status, out, _ = project.ivrkit("prompts", "check")
    assert status == 1
    assert out.splitlines()[0] == "flows/line.yaml:9:20: error: prompt 'goodbye' is not in the 'en' catalog"
    assert out.splitlines()[-1] == "1 error, 0 warnings in 6 prompts"


def test_unused_prompts_are_only_reported_when_every_flow_loads(project: Project) -> None:
    project.catalog("en", CATALOG + DIALPLAN + 'dust: "Never played."\n')
    status, out, _ = project.ivrkit("check")
    assert (status, out.splitlines()[0]) == (
        0, "prompts/en/catalog.yaml:8:1: warning: prompt 'dust' is not played by any flow in 'en'")
    project.flow("other", "flow: other\nstart: a\nsteps:\n  a:\n    paly: dust\n")  # it may be the one playing it
    status, out, _ = project.ivrkit("check")
    assert status == 1 and "not played" not in out


def test_nothing_to_build(project: Project) -> None:
    require_tools("ffmpeg")
    status, out, _ = project.ivrkit("prompts", "build")
    assert (status, out.splitlines()) == (0, [
        "nothing to build: no prompt has a recording: put <id>.wav (or .mp3, .ogg, ...) beside the catalog, or "
        "make placeholders with `ivrkit prompts synth`",
        "0 built, 0 unchanged, 0 failed",
    ])


def test_what_to_do_when_something_is_not_there(project: Project) -> None:
    status, _, err = project.ivrkit("prompts", "build", "--prompts", "voice")
    assert (status, err) == (1, "ivrkit prompts: no prompts folder at voice: pass --prompts DIR (or set "
                                "$IVRKIT_PROMPTS); it holds a folder per language (en, de, ...) with a catalog.yaml\n")
    (project.root / "sounds").mkdir()
    status, _, err = project.ivrkit("prompts", "deploy", "--sounds-dir", "sounds")
    assert status == 1 and err.startswith("ivrkit prompts: nothing is built: ")
    assert err.endswith("run `ivrkit prompts build` (recordings) and `ivrkit prompts synth` (placeholders) first\n")
    status, _, err = project.ivrkit("prompts", "deploy")
    assert status == 2 and "the following arguments are required: --sounds-dir" in err

    bare = {**os.environ, "PATH": str(project.root / "no-tools")}  # neither ffmpeg nor espeak-ng on the PATH
    status, _, err = project.ivrkit("prompts", "build", env=bare)
    assert status == 1 and err.endswith("ivrkit prompts: ffmpeg and ffprobe are not installed: apt-get install "
                                        "ffmpeg\n")
    status, _, err = project.ivrkit("prompts", "synth", env=bare)
    assert status == 1 and err.endswith("ivrkit prompts: espeak-ng is not installed: apt-get install espeak-ng\n")


def test_a_mistake_in_the_settings_is_shown_where_it_is(project: Project) -> None:
    project.settings("build:\n  formats: [mp4]\n")
    status, _, err = project.ivrkit("prompts", "build")
    assert status == 1
    assert err.startswith("ivrkit prompts: prompts/settings.yaml:2:13: error: ")
    status, out, _ = project.ivrkit("check")
    assert status == 1 and out.startswith("prompts/settings.yaml:1:1: error: the prompt settings cannot be used")
