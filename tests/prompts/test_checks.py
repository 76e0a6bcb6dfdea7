"""Every prompt check on a real project: flows, catalogs, recordings made here, audio built by ffmpeg/espeak-ng.

Each test breaks one thing the way a designer or an admin would (a prompt left out of a language, a recording
changed after the build, a file converted by hand, a deploy forgotten) and asserts the exact report.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.cli.common import prompt_settings
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.flow.loader import load_directory
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.prompts.checks import check_prompts
from ivrkit.prompts.deploy import SoundsDir, deploy_prompts
from ivrkit.prompts.languages import rules_for, stand_in
from ivrkit.server.library import FlowLibrary
from tests.prompts.audio import convert, speech, tone, write_wav
from tests.prompts.project import Project, messages, require_tools

FLOW = """
    flow: line
    language: en
    languages: [en, de]
    start: hello
    steps:
      hello:
        play: [welcome, menu]
        next: bye
      bye:
        hangup: {play: goodbye}
    """
EN = 'welcome: "Welcome."\nmenu: "Press one."\ngoodbye: "Goodbye."\n'
DE = 'welcome: "Willkommen."\nmenu: "Drücken Sie die Eins."\ngoodbye: "Auf Wiederhören."\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)  # messages name files relative to the working directory
    project = Project(tmp_path)
    project.flow("line", FLOW)
    project.catalog("en", EN)
    project.catalog("de", DE)
    return project


def hints(diagnostics: Diagnostics) -> list[str | None]:
    return [d.hint for d in diagnostics]


# -- the flows against the catalogs ------------------------------------------------------------------------------


def test_a_complete_project_is_clean(project: Project) -> None:
    assert messages(project.check()) == []


def test_missing_in_the_flows_language_is_an_error_in_another_a_warning(project: Project) -> None:
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n')
    project.catalog("de", 'welcome: "Willkommen."\ngoodbye: "Auf Wiederhören."\n')
    diagnostics = project.check()
    assert messages(diagnostics) == [
        "flows/line.yaml:7:21: warning: prompt 'menu' is not in the 'de' catalog: callers in 'de' hear it in 'en'",
        "flows/line.yaml:10:20: error: prompt 'goodbye' is not in the 'en' catalog",
    ]
    assert hints(diagnostics) == ["add it to prompts/de/catalog.yaml (its text is enough for a placeholder)",
                                  "add it to prompts/en/catalog.yaml"]


def test_a_misspelt_prompt_gets_a_suggestion_in_every_language(project: Project) -> None:
    project.flow("line", FLOW.replace("menu]", "mneu]"))
    diagnostics = project.check()
    assert [m for m in messages(diagnostics) if "mneu" in m] == [
        "flows/line.yaml:7:21: error: prompt 'mneu' is not in the 'en' catalog",
        "flows/line.yaml:7:21: warning: prompt 'mneu' is not in the 'de' catalog: callers in 'de' hear it in 'en'",
    ]
    assert set(d.hint for d in diagnostics if "mneu" in d.message) == {"did you mean 'menu'?"}


def test_a_language_without_a_catalog_is_one_warning(project: Project) -> None:
    (project.prompts / "de" / "catalog.yaml").unlink()
    (project.prompts / "de").rmdir()
    diagnostics = project.check()
    assert messages(diagnostics) == [
        "flows/line.yaml:3:12: warning: there is no 'de' catalog: callers in 'de' hear every prompt in 'en'"
    ]
    assert hints(diagnostics) == [
        "create prompts/de/catalog.yaml with the text of each prompt (`ivrkit prompts synth` makes placeholders "
        "from it)"
    ]


def test_only_the_languages_asked_for(project: Project) -> None:
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n')
    project.catalog("de", 'welcome: "Willkommen."\ngoodbye: "Auf Wiederhören."\n')
    assert messages(project.check(languages=["de"])) == [
        "flows/line.yaml:7:21: warning: prompt 'menu' is not in the 'de' catalog: callers in 'de' hear it in 'en'",
    ]


def test_the_prompts_a_flow_plays_by_default_are_checked_in_each_language(project: Project) -> None:
    project.flow("line", """
        flow: line
        language: en
        languages: [en, de]
        start: hello
        steps:
          hello:
            callback: support
        """)
    found = messages(project.check())
    assert ("flows/line.yaml:7:15: error: prompt 'callback-intro' of the callback call is not in the 'en' catalog"
            in found)
    assert ("flows/line.yaml:7:15: warning: prompt 'callback-intro' of the callback call is not in the 'de' catalog: "
            "callers in 'de' hear it in 'en'" in found)


def test_a_language_menu_option_is_checked_only_in_its_own_language(project: Project) -> None:
    project.flow("line", """
        flow: line
        language: en
        languages: [en, de]
        start: choose
        steps:
          choose:
            language: {choices: {"1": en, "2": de}}
            next: hello
          hello:
            play: [welcome, menu]
            next: bye
          bye:
            hangup: {play: goodbye}
        """)
    project.catalog("en", EN + 'language-option: "For English, press"\n')
    assert [m for m in messages(project.check()) if "language-option" in m] == [
        "flows/line.yaml:7:40: warning: prompt 'language-option' is not in the 'de' catalog: callers in 'de' hear "
        "it in 'en'"
    ]
    project.catalog("de", DE + 'language-option: "Für Deutsch drücken Sie"\n')
    project.catalog("en", EN)
    assert [m for m in messages(project.check()) if "language-option" in m] == [
        "flows/line.yaml:7:31: error: prompt 'language-option' is not in the 'en' catalog"
    ]


def test_prompts_no_flow_plays_are_reported_where_the_catalog_names_them(project: Project) -> None:
    project.catalog("en", EN + 'dust: "Never played."\ntechnical-difficulties: "Sorry."\n')
    project.catalog("fr", 'welcome: "Bienvenue."\n')
    diagnostics = project.check()
    assert messages(diagnostics) == [
        "prompts/en/catalog.yaml:4:1: warning: prompt 'dust' is not played by any flow in 'en'",
        "prompts/fr/catalog.yaml:1:1: warning: no flow speaks 'fr': its 1 prompt are never played",
    ]  # technical-difficulties is the compiled dialplan's fallback prompt: played, by Asterisk itself
    assert hints(diagnostics) == ["remove it from the catalog, or play it from a flow",
                                  "add 'fr' to a flow's `languages:` (the flows speak de, en), or remove the folder"]
    assert "    dust: \"Never played.\"" in diagnostics.render()  # the catalog line is shown, like a flow's


# -- the built audio -----------------------------------------------------------------------------------------------


@pytest.fixture
def built(project: Project) -> Iterator[Project]:
    """welcome recorded as mp3, menu as a 44.1 kHz stereo wav, goodbye a placeholder; en built and synthesized,
    de only synthesized."""
    require_tools("ffmpeg", "espeak-ng")
    convert(tone(project.prompts / "en" / "welcome.wav", 0.8, -12), "mp3")
    tone(project.prompts / "en" / "menu.wav", 0.6, -9, rate=44100, channels=2)
    project.build()
    project.synth()
    yield project


def wav(project: Project, language: str, prompt: str, fmt: str = "wav") -> Path:
    return project.built / language / f"{prompt}.{fmt}"


def built_messages(project: Project) -> list[str]:
    """The messages about the built audio (the placeholders, reported for every built project, left out)."""
    return [m for m in messages(project.check()) if "placeholder speech" not in m]


def test_a_fresh_build_only_reports_its_placeholders(built: Project) -> None:
    diagnostics = built.check()
    assert messages(diagnostics) == [
        "prompts/de/catalog.yaml:3:1: warning: 3 prompts in 'de' still play synthesized placeholder speech: goodbye, "
        "menu, welcome",
        "prompts/en/catalog.yaml:3:1: warning: 1 prompt in 'en' still plays synthesized placeholder speech: goodbye",
    ]
    assert hints(diagnostics)[1] == ("record them as prompts/en/<id>.wav (or mp3, ogg, flac, ...) and run `ivrkit "
                                     "prompts build`")


def test_built_files_in_a_format_asterisk_does_not_play_are_errors(built: Project) -> None:
    tone(wav(built, "en", "welcome"), 0.5, rate=16000, channels=2)
    tone(wav(built, "en", "menu"), 0.5, sample_width=1)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=0.5:r=8000", "-c:a", "pcm_mulaw",
                    str(wav(built, "en", "goodbye"))], check=True)
    wav(built, "de", "menu").write_bytes(b"")
    assert built_messages(built) == [
        "prompts/de/catalog.yaml:2:1: error: the built wav file of prompt de/menu is empty",
        "prompts/en/catalog.yaml:1:1: error: the built wav file of prompt en/welcome has 16000 Hz instead of "
        "8000 Hz, 2 channels instead of 1 (mono): Asterisk would not play it as it is",
        "prompts/en/catalog.yaml:2:1: error: the built wav file of prompt en/menu has 8-bit samples instead of "
        "16-bit: Asterisk would not play it as it is",
        "prompts/en/catalog.yaml:3:1: error: the built wav file of prompt en/goodbye is not a PCM wav file (unknown "
        "format: 7)",
    ]


def test_raw_formats_must_hold_whole_samples_and_frames(project: Project) -> None:
    require_tools("ffmpeg")
    project.settings("build: {formats: [sln16, gsm, ulaw]}\n")
    tone(project.prompts / "en" / "welcome.wav", 0.5)
    project.build()
    assert [m for m in built_messages(project) if "en/welcome" in m] == []
    sln16 = wav(project, "en", "welcome", "sln16")
    sln16.write_bytes(sln16.read_bytes()[:-1])
    gsm = wav(project, "en", "welcome", "gsm")
    gsm.write_bytes(gsm.read_bytes() + b"\0" * 5)
    size = gsm.stat().st_size
    assert [m for m in built_messages(project) if "en/welcome" in m] == [
        f"prompts/en/catalog.yaml:1:1: error: the built sln16 file of prompt en/welcome has an odd size "
        f"({sln16.stat().st_size} bytes): it is not whole 16-bit samples",
        f"prompts/en/catalog.yaml:1:1: error: the built gsm file of prompt en/welcome has a size ({size} bytes) that "
        "is not whole 33-byte GSM frames",
    ]


def test_a_format_the_settings_ask_for_that_is_not_built(built: Project) -> None:
    built.settings("build: {formats: [sln16]}\n")
    found = built_messages(built)
    assert "prompts/en/catalog.yaml:1:1: warning: prompt en/welcome has no built sln16 file (the settings ask for " \
           "it): build/prompts/en/welcome.sln16 is missing" in found
    assert "prompts/en/catalog.yaml:1:1: warning: prompt en/welcome: the recording (or the build settings) changed " \
           "after it was built" in found
    built.build()
    built.synth()
    assert built_messages(built) == []


def test_out_of_date_builds_say_which_command_makes_them_current(built: Project) -> None:
    recordings = built.prompts / "en"
    os.utime(recordings / "welcome.mp3")  # touched, not changed: still current
    assert built_messages(built) == []
    convert(tone(recordings / "welcome.wav", 0.8, -20), "mp3")  # re-recorded
    (recordings / "menu.wav").unlink()  # the recording withdrawn: the text stays
    speech(recordings / "goodbye.wav", "Goodbye")  # the placeholder's recording arrived
    built.catalog("de", DE.replace("Willkommen.", "Herzlich willkommen."))
    tone(recordings / "new.wav", 0.4)
    built.catalog("en", EN + 'new: "New."\nquiet: "Not yet made."\n')
    diagnostics = built.check()
    assert [m for m in messages(diagnostics) if "placeholder speech" not in m and "not played" not in m] == [
        "prompts/de/catalog.yaml:1:1: warning: prompt de/welcome: its text, voice or speed (or the build settings, "
        "or espeak-ng) changed after the placeholder was made",
        "prompts/en/catalog.yaml:1:1: warning: prompt en/welcome: the recording (or the build settings) changed "
        "after it was built",
        "prompts/en/catalog.yaml:2:1: warning: prompt en/menu: it was built from en/menu.wav, which is gone",
        "prompts/en/catalog.yaml:3:1: warning: prompt en/goodbye: it has a recording now, but the placeholder is "
        "still what plays",
        "prompts/en/catalog.yaml:4:1: warning: prompt en/new is not built yet",
        "prompts/en/catalog.yaml:5:1: warning: prompt en/quiet has no audio: no recording and no placeholder",
    ]
    fixes = {d.message.split(":")[0]: d.hint for d in diagnostics}
    assert fixes["prompt de/welcome"] == "run `ivrkit prompts synth`"
    assert fixes["prompt en/welcome"] == fixes["prompt en/menu"] == "run `ivrkit prompts build`"
    built.build()
    built.synth()
    assert [m for m in built_messages(built) if "not played" not in m] == []


def test_a_built_file_that_went_missing(built: Project) -> None:
    wav(built, "en", "welcome").unlink()
    assert built_messages(built) == [
        "prompts/en/catalog.yaml:1:1: warning: prompt en/welcome has no built wav file: "
        "build/prompts/en/welcome.wav is missing"
    ]


def test_a_fresh_clone_without_the_built_audio_only_reports_placeholders(built: Project) -> None:
    # the manifest is committed, build/ is not: nothing to say about files that were never built here
    for path in sorted(built.built.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    built.built.rmdir()
    assert built_messages(built) == []
    assert len(messages(built.check())) == 2


# -- the deployed audio --------------------------------------------------------------------------------------------


def asterisk_sounds(sounds: Path, language: str, leave_out: tuple[str, ...] = ()) -> None:
    """The sounds Asterisk says numbers and dates with in ``language``, as its Debian package installs them."""
    for name in rules_for(language).sounds:
        if name not in leave_out:
            path = sounds / language / f"{name}.gsm"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\0" * 33)


def test_deployed_prompts_and_asterisks_own_sounds(built: Project) -> None:
    sounds = SoundsDir(Path("sounds"))  # as the designer types it, from the project folder
    found = [m for m in messages(built.check(sounds)) if "placeholder speech" not in m]
    assert found[:2] == [
        f"flows/line.yaml:3:12: warning: {len(needed)} sounds Asterisk says numbers, dates and times with in "
        f"'{language}' are not in sounds/{language}: {', '.join(needed[:8])} and {len(needed) - 8} more"
        for language in ("en", "de")
        if (needed := [name for name in rules_for(language).sounds if stand_in(language, name) is None])
    ]  # (a sound the package lacks anyway is reported once the package is there: see below)
    assert found[2:] == [
        "prompts/de/catalog.yaml:1:1: warning: 3 built files of 'de' are not deployed in sounds/de/ivrkit: "
        "goodbye.wav, menu.wav, welcome.wav",
        "prompts/en/catalog.yaml:1:1: warning: 3 built files of 'en' are not deployed in sounds/en/ivrkit: "
        "goodbye.wav, menu.wav, welcome.wav",
    ]
    diagnostics = built.check(sounds)
    assert [d.hint for d in diagnostics][:2] == ["apt-get install asterisk-core-sounds-en",
                                                 "apt-get install asterisk-prompt-de"]
    asterisk_sounds(sounds.path, "en")
    asterisk_sounds(sounds.path, "de", leave_out=("digits/1N",))
    (sounds.path / "de" / "digits" / "ein.gsm").write_bytes(b"\0" * 33)
    deploy_prompts(built.prompts, sounds)  # deploys, and links de/digits/1N to ein
    assert [m for m in messages(built.check(sounds)) if "placeholder speech" not in m] == []
    (sounds.path / "en" / "ivrkit" / "menu.wav").write_bytes(b"RIFF")
    (sounds.path / "de" / "digits" / "1N.gsm").unlink()
    diagnostics = built.check(sounds)
    assert [m for m in messages(diagnostics) if "placeholder speech" not in m] == [
        "flows/line.yaml:3:12: warning: Asterisk's 'de' sounds lack digits/1N, which numbers, dates and times need",
        "prompts/en/catalog.yaml:2:1: warning: the deployed sounds/en/ivrkit/menu.wav differs from the build of "
        "prompt en/menu",
    ]
    assert [d.hint for d in diagnostics if "placeholder" not in d.message] == [
        "`ivrkit prompts deploy` links them to the sounds that say the same (digits/1N → digits/ein)",
        "run `ivrkit prompts deploy --sounds-dir sounds`",
    ]


def test_the_catalogs_own_mistakes_are_part_of_the_check(project: Project) -> None:
    project.catalog("en", EN + "broken: {text: 'Hi.', file: nowhere.mp3}\n")
    write_wav(project.prompts / "en" / "stray.wav", [("tone", 0.2, -6.0, 440.0)])
    found = messages(project.check())
    assert "prompts/en/catalog.yaml:4:29: error: recording 'nowhere.mp3' of prompt 'broken' does not exist in " \
           "prompts/en" in found
    assert "prompts/en/stray.wav:1:1: warning: recording 'stray.wav' has no entry in catalog.yaml: the simulator " \
           "cannot show what it says" in found


def test_settings_that_cannot_be_read_do_not_make_every_build_look_stale(built: Project) -> None:
    built.settings("build: {formats: [sln16], loudness: loud}\n")
    result = load_directory(built.flows)
    catalog = PromptCatalog.load(built.prompts)
    settings = prompt_settings(built.prompts, result.diagnostics)
    check_prompts(result.flows, catalog, catalog.manifest, result.diagnostics, settings=settings)
    assert [m for m in messages(result.diagnostics) if "placeholder speech" not in m] == [
        "prompts/settings.yaml:1:1: error: the prompt settings cannot be used"
    ]


# -- the server's reload -------------------------------------------------------------------------------------------


def test_a_server_refuses_a_flow_whose_prompt_is_missing_in_its_own_language(project: Project) -> None:
    library = FlowLibrary(project.flows, project.prompts)
    assert library.reload().ok and list(library.flows) == ["line"]
    project.catalog("de", 'welcome: "Willkommen."\n')  # German callers hear English menus: served, not an error
    assert library.changed()
    assert library.reload().ok
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n')
    report = library.reload()
    assert report.kept == ["line"]  # the previous version keeps serving
    assert [error.splitlines()[0] for error in report.errors] == [
        "flows/line.yaml:10:20: error: prompt 'goodbye' is not in the 'en' catalog"
    ]
    project.catalog("en", EN + "broken: {text: 'Hi.', file: nowhere.mp3}\n")
    os.utime(project.prompts / "en", (1, 1))  # so that adding a file surely changes the folder's time below
    report = library.reload()
    assert report.loaded == ["line"] and [error.splitlines()[0] for error in report.errors] == [
        "prompts/en/catalog.yaml:4:29: error: recording 'nowhere.mp3' of prompt 'broken' does not exist in prompts/en"
    ]  # a mistake in the catalog is logged; the flows that do not play that prompt are served
    write_wav(project.prompts / "en" / "nowhere.mp3.wav", [("silence", 0.1, 0.0, 0.0)])
    assert library.changed()  # a recording added: its folder changed
