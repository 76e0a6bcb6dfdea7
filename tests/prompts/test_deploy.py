"""Deploying built prompts into an Asterisk sounds folder: layout, permissions, atomic replacement, removing what
an earlier deploy put there and nothing else."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivrkit.prompts.deploy import DEPLOYED_LIST, DeployError, SoundsDir, deploy_prompts, host_path
from tests.prompts.audio import convert, tone
from tests.prompts.project import Project, require_tools


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Two recordings in en (one mp3), one in de, built with an extra sln16; an empty sounds folder beside."""
    require_tools("ffmpeg")
    project = Project(tmp_path)
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n')
    project.catalog("de", 'welcome: "Willkommen."\n')
    project.settings("build: {formats: [sln16]}\n")
    convert(tone(project.prompts / "en" / "welcome.wav", 0.5), "mp3")
    tone(project.prompts / "en" / "menu.wav", 0.3, frequency=660)
    tone(project.prompts / "de" / "welcome.wav", 0.4, frequency=550)
    project.build()
    (tmp_path / "sounds").mkdir()
    yield project


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def test_each_language_goes_to_its_folder_readable_by_asterisk(project: Project) -> None:
    sounds = project.root / "sounds"
    lines: list[str] = []
    old = os.umask(0o077)  # a root shell with a strict umask must still deploy files Asterisk's user can read
    try:
        report = deploy_prompts(project.prompts, sounds, progress=lines.append)
    finally:
        os.umask(old)
    assert files(sounds) == [
        "de/ivrkit/.ivrkit-deployed.json", "de/ivrkit/welcome.sln16", "de/ivrkit/welcome.wav",
        "en/ivrkit/.ivrkit-deployed.json", "en/ivrkit/menu.sln16", "en/ivrkit/menu.wav", "en/ivrkit/welcome.sln16",
        "en/ivrkit/welcome.wav",
    ]
    for name in files(sounds):
        if not name.endswith(DEPLOYED_LIST):
            assert (sounds / name).read_bytes() == (project.built / name.replace("/ivrkit", "")).read_bytes()
        assert mode(sounds / name) == 0o644, name
    for folder in ("de", "de/ivrkit", "en", "en/ivrkit"):
        assert mode(sounds / folder) == 0o755, folder
    assert lines == ["[1/3] de/welcome: copied wav, sln16", "[2/3] en/menu: copied wav, sln16",
                     "[3/3] en/welcome: copied wav, sln16"]
    assert report.summary() == "6 copied, 0 unchanged, 0 removed" and report.ok


def test_the_subfolder_is_the_one_ivrkit_serve_plays_from(project: Project) -> None:
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, SoundsDir(sounds, "shop/v2"), languages=["de"])
    assert files(sounds) == ["de/shop/v2/.ivrkit-deployed.json", "de/shop/v2/welcome.sln16", "de/shop/v2/welcome.wav"]
    for bad in ("../etc", "/abs", "a b", ""):
        with pytest.raises(DeployError, match="must be a relative folder name such as ivrkit"):
            SoundsDir(sounds, bad)


def test_a_second_deploy_copies_only_what_changed_and_replaces_it_atomically(project: Project) -> None:
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, sounds)
    target = sounds / "en" / "ivrkit" / "menu.wav"
    before = target.read_bytes()
    with target.open("rb") as playing:  # Asterisk streaming the old file while the new one arrives
        tone(project.prompts / "en" / "menu.wav", 0.7, frequency=880)
        project.build()
        report = deploy_prompts(project.prompts, sounds)
        assert playing.read() == before  # the old file was replaced, not rewritten under the reader
    assert target.read_bytes() == (project.built / "en" / "menu.wav").read_bytes() != before
    assert report.copied == ["en/ivrkit/menu.wav", "en/ivrkit/menu.sln16"]
    assert len(report.unchanged) == 4 and report.removed == []
    assert not [p for p in sounds.rglob("*.tmp")]


def test_prompts_gone_from_the_build_are_removed_and_other_files_never(project: Project) -> None:
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, sounds)
    folder = sounds / "en" / "ivrkit"
    (folder / "admin-recorded.wav").write_bytes(b"RIFF the admin's own")  # not ours: must survive
    (sounds / "en" / "beep.gsm").write_bytes(b"\0" * 33)  # Asterisk's own
    listed = json.loads((folder / DEPLOYED_LIST).read_text())
    listed["files"] += ["../beep.gsm", "/etc/passwd", "admin/../../beep.gsm"]  # a list edited by hand
    (folder / DEPLOYED_LIST).write_text(json.dumps(listed))
    project.catalog("en", 'welcome: "Welcome."\n')
    (project.prompts / "en" / "menu.wav").unlink()
    project.build()
    lines: list[str] = []
    report = deploy_prompts(project.prompts, sounds, progress=lines.append)
    assert report.removed == ["en/ivrkit/menu.sln16", "en/ivrkit/menu.wav"]
    assert files(folder) == [DEPLOYED_LIST, "admin-recorded.wav", "welcome.sln16", "welcome.wav"]
    assert (sounds / "en" / "beep.gsm").is_file()
    assert json.loads((folder / DEPLOYED_LIST).read_text()) == {"files": ["welcome.sln16", "welcome.wav"]}
    assert "removed en/ivrkit/menu.wav (no longer built)" in lines


def test_a_language_gone_from_the_build_is_removed_too(project: Project) -> None:
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, sounds)
    for path in (project.prompts / "de").iterdir():
        path.unlink()
    (project.prompts / "de").rmdir()
    project.build()
    assert deploy_prompts(project.prompts, sounds, languages=["en"]).removed == []  # one language: the others wait
    report = deploy_prompts(project.prompts, sounds)
    assert report.removed == ["de/ivrkit/welcome.sln16", "de/ivrkit/welcome.wav"]
    assert not (sounds / "de" / "ivrkit").exists() and (sounds / "de").is_dir()


def test_a_file_missing_from_the_build_keeps_its_deployed_version(project: Project) -> None:
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, sounds)
    (project.built / "en" / "menu.wav").unlink()
    lines: list[str] = []
    report = deploy_prompts(project.prompts, sounds, progress=lines.append)
    assert not report.ok and report.missing == ["en/ivrkit/menu.wav"]
    assert (sounds / "en" / "ivrkit" / "menu.wav").is_file() and report.removed == []
    assert "[2/3] en/menu: unchanged sln16; NOT BUILT wav (run `ivrkit prompts build`)" in lines


def test_prompt_ids_with_folders(project: Project) -> None:
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\nqueue/periodic: "Still there."\n')
    tone(project.prompts / "en" / "queue" / "periodic.wav", 0.3)
    project.build()
    sounds = project.root / "sounds"
    deploy_prompts(project.prompts, sounds)
    assert (sounds / "en" / "ivrkit" / "queue" / "periodic.wav").is_file()
    assert mode(sounds / "en" / "ivrkit" / "queue") == 0o755
    project.catalog("en", 'welcome: "Welcome."\nmenu: "Press one."\n')
    project.build()
    deploy_prompts(project.prompts, sounds)
    assert not (sounds / "en" / "ivrkit" / "queue").exists()


def test_nothing_built_is_refused(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.catalog("en", 'welcome: "Welcome."\n')
    (tmp_path / "sounds").mkdir()
    with pytest.raises(DeployError, match=r"nothing is built: .*manifest.json lists no built prompts .* run `ivrkit "
                       r"prompts build` \(recordings\) and `ivrkit prompts synth` \(placeholders\) first"):
        deploy_prompts(project.prompts, tmp_path / "sounds")
    assert list((tmp_path / "sounds").iterdir()) == []


def test_a_sounds_folder_that_is_not_there_is_refused(project: Project) -> None:
    with pytest.raises(DeployError, match=r"there is no sounds folder .*/soundz: give Asterisk's sounds folder "
                       r"\(astdatadir/sounds, /usr/share/asterisk/sounds on Debian\) with --sounds-dir"):
        deploy_prompts(project.prompts, project.root / "soundz")
    assert not (project.root / "soundz").exists()


def test_a_sounds_folder_inside_another_root_follows_its_links_there(project: Project) -> None:
    # Debian's layout: sounds/en -> /etc/alternatives/asterisk-prompt-en -> /usr/share/asterisk/sounds/en_US_f_Allison
    root = project.root / "chroot"
    sounds = root / "usr/share/asterisk/sounds"
    (sounds / "en_US_f_Allison").mkdir(parents=True)
    (root / "etc/alternatives").mkdir(parents=True)
    os.symlink("/usr/share/asterisk/sounds/en_US_f_Allison", root / "etc/alternatives/asterisk-prompt-en")
    os.symlink("/etc/alternatives/asterisk-prompt-en", sounds / "en")
    assert host_path(root, "/usr/share/asterisk/sounds/en") == sounds / "en_US_f_Allison"
    deploy_prompts(project.prompts, SoundsDir(Path("/usr/share/asterisk/sounds"), root=root), languages=["en"])
    assert files(sounds / "en_US_f_Allison") == [
        "ivrkit/.ivrkit-deployed.json", "ivrkit/menu.sln16", "ivrkit/menu.wav", "ivrkit/welcome.sln16",
        "ivrkit/welcome.wav",
    ]
    if not Path("/etc/alternatives/asterisk-prompt-en").exists():  # without --root it would land in the host's /etc
        with pytest.raises(DeployError, match=r"a part of it is not a folder .* give its root with --root"):
            deploy_prompts(project.prompts, sounds, languages=["en"])


def test_sounds_a_language_package_lacks_are_linked_to_stand_ins(project: Project) -> None:
    digits = project.root / "sounds" / "de" / "digits"
    digits.mkdir(parents=True)
    (digits / "ein.gsm").write_bytes(b"\0" * 33)  # asterisk-prompt-de has "ein", not the 1N Asterisk asks for
    report = deploy_prompts(project.prompts, project.root / "sounds")
    assert report.linked == ["de/digits/1N.gsm"]
    assert os.readlink(digits / "1N.gsm") == "ein.gsm"
    assert deploy_prompts(project.prompts, project.root / "sounds").linked == []  # there now: left alone
