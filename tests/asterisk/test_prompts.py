"""Built prompts on a real Asterisk 22: an mp3 recording and a placeholder built, deployed into the sandbox's sounds
folder by ``deploy_prompts``, played by a real ``ivrkit serve`` on a call, with nothing missing in Asterisk's log.

Asterisk logs each file it plays at verbose level 3 (``Playing 'en/<folder>/welcome.wav' (language 'en')``) and
a warning for a sound it cannot find: the log says which file a call heard. The prompts go to a folder of their
own (``--sounds``), so the session's other tests and their sounds are untouched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivrkit.prompts.deploy import DeployReport, SoundsDir, deploy_prompts
from ivrkit.prompts.synth import synth_prompts
from ivrkit.qa.asterisk.calls import Call, CallDriver, agi_test_dialplan
from ivrkit.qa.asterisk.sandbox import MARKER, PACKAGES, SOUNDS, AsteriskInstance, AsteriskRoot
from tests.prompts.audio import convert, speech
from tests.prompts.project import Project, messages, require_tools
from tests.server.process import ServeProcess

pytestmark = pytest.mark.asterisk

PLAYED = """
    flow: played
    language: en
    start: hello
    steps:
      hello:
        play: [welcome, menu]
        next: bye
      bye:
        hangup: {outcome: heard}
    """
UNDEPLOYED = """
    flow: undeployed
    language: en
    start: hello
    steps:
      hello:
        play: absent
        next: bye
      bye:
        hangup: {outcome: heard}
    """
CATALOG = 'welcome: "Welcome to the prompt test."\nmenu: "Press one."\nabsent: "Never built, never deployed."\n'
MISSING = ("does not exist", "not found", "Unable to open", "No such file")
PLAYING = re.compile(r"Playing '([^']+)\.\w+' .*\(language '(\w+)'\)")


@dataclass
class Deployed:
    project: Project
    sounds: SoundsDir
    report: DeployReport
    serve: ServeProcess

    @property
    def folder(self) -> str:
        """Where a call plays the prompts from: ``en/<subfolder>``."""
        return f"en/{self.sounds.subfolder}"


@pytest.fixture(scope="module")
def deployed(asterisk: AsteriskInstance, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    require_tools("ffmpeg", "espeak-ng")
    tmp = tmp_path_factory.mktemp("prompts")
    project = Project(tmp)
    project.flow("played", PLAYED)
    project.flow("undeployed", UNDEPLOYED)
    project.catalog("en", CATALOG)
    project.settings("build: {formats: [sln16]}\n")
    # the designer's recording: speech, 22.05 kHz, as an mp3 with a second of silence before it
    recording = speech(tmp / "take1.wav", "Welcome to the prompt test.")
    padded = tmp / "padded.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(recording), "-af", "adelay=1000", str(padded)], check=True)
    convert(padded, "mp3", project.prompts / "en" / "welcome.mp3")
    project.build()
    report = synth_prompts(project.prompts, project.load_settings(), only=["menu"])  # `absent` stays unbuilt
    assert report.ok
    sounds = SoundsDir(Path(SOUNDS.as_posix()), f"ivrkit-test-{secrets.token_hex(3)}", asterisk.root.path)
    try:
        deploy = deploy_prompts(project.prompts, sounds)
        serve = ServeProcess(project.flows, tmp, "--prompts", str(project.prompts), "--sounds", sounds.subfolder)
        try:
            serve.wait_log(lambda record: record["msg"].startswith("FastAGI server listening"))
            yield Deployed(project, sounds, deploy, serve)
        finally:
            serve.close()
    finally:
        shutil.rmtree(sounds.prompts("en"), ignore_errors=True)


def place(asterisk: AsteriskInstance, driver: CallDriver, deployed: Deployed, flow: str) -> Call:
    asterisk.reload_dialplan(agi_test_dialplan(deployed.serve.port, agi_path=flow))
    call = driver.place("ivr", script=[]).wait(60)
    assert call.test_report is not None and call.test_report.get("IVRKIT_OUTCOME") == "heard", call.describe()
    return call


def test_deploy_put_the_built_files_where_asterisk_looks(asterisk: AsteriskInstance, deployed: Deployed,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = asterisk.root.host_path(SOUNDS / deployed.folder)
    assert folder.parent == asterisk.root.host_path(SOUNDS / "en")  # through Debian's links, inside the root
    assert sorted(path.name for path in folder.iterdir()) == [
        ".ivrkit-deployed.json", "menu.sln16", "menu.wav", "welcome.sln16", "welcome.wav"
    ]
    for name in ("menu.wav", "welcome.sln16"):
        assert (folder / name).read_bytes() == (deployed.project.built / "en" / name).read_bytes()
    # the check agrees: everything built is deployed, Asterisk's English sounds are there; `absent` has no audio
    monkeypatch.chdir(deployed.project.root)
    found = messages(deployed.project.check(deployed.sounds))
    assert [m for m in found if "placeholder speech" not in m] == [
        "prompts/en/catalog.yaml:3:1: warning: prompt en/absent has no audio: no recording and no placeholder"
    ]


def test_a_call_plays_the_built_prompts(asterisk: AsteriskInstance, call_driver: CallDriver,
                                         deployed: Deployed) -> None:
    folder = asterisk.root.host_path(SOUNDS / deployed.folder)
    files = sorted(path for path in folder.iterdir() if path.suffix in (".wav", ".sln16"))
    for path in files:  # an access time before the change time: the next read records itself (relatime, strict)
        os.utime(path, (1, path.stat().st_mtime))
    call = place(asterisk, call_driver, deployed, "played")
    assert call.prompts_streamed == [f"{deployed.folder}/welcome", f"{deployed.folder}/menu"], call.describe()
    log = asterisk.log_lines(deployed.folder)
    # res_agi names the sound it was asked for, and the channel's format (not the file's)
    playing = [match.groups() for line in log if (match := PLAYING.search(line))]
    assert playing == [(f"{deployed.folder}/welcome", "en"), (f"{deployed.folder}/menu", "en")], log
    assert [line for line in log if any(text in line for text in MISSING) or "WARNING" in line] == []
    # which files Asterisk opened: only deploy put files in this folder, and their bytes are the build's
    read = sorted(path.stem for path in files if path.stat().st_atime > 1)
    if records_reads(deployed.project.root):  # (a file system mounted noatime cannot say)
        assert read == ["menu", "welcome"], [(p.name, p.stat().st_atime) for p in files]


def records_reads(folder: Path) -> bool:
    """Whether reading a file updates its access time on this file system (not mounted noatime)."""
    probe = folder / "atime-probe"
    probe.write_bytes(b"x")
    os.utime(probe, (1, probe.stat().st_mtime))
    probe.read_bytes()
    return probe.stat().st_atime > 1


def test_a_prompt_that_was_not_deployed_is_missing_in_the_log(asterisk: AsteriskInstance, call_driver: CallDriver,
                                                               deployed: Deployed) -> None:
    # the negative control: the log assertion above would catch a prompt Asterisk cannot find
    call = place(asterisk, call_driver, deployed, "undeployed")  # the server logs it and the flow goes on
    assert call.prompts_streamed == [], call.describe()
    missing = [line for line in asterisk.log_lines(f"{deployed.folder}/absent") if "WARNING" in line]
    assert missing and any(text in missing[0] for text in MISSING), asterisk.log_lines(deployed.folder)
    deployed.serve.wait_log(lambda record: record["msg"] == f"prompt file '{deployed.folder}/absent' did not play")


def test_the_root_has_every_package_the_tests_need(asterisk: AsteriskInstance, tmp_path: Path) -> None:
    assert AsteriskRoot().missing_packages() == [], "run `python3 tools/asterisk_sandbox.py build`"
    de = asterisk.root.host_path(SOUNDS / "de")
    assert any((de / "digits").glob("1-and.*")), "asterisk-prompt-de is not installed in the root"
    old = AsteriskRoot(tmp_path)  # a root built before asterisk-prompt-de was added
    (tmp_path / MARKER).write_text('{"packages": ["asterisk"]}\n')
    assert old.missing_packages() == [package for package in PACKAGES if package != "asterisk"]
