"""The Asterisk root and instances: configuration, isolation, dialplan reloads, stopping, and the
instructions given when the sandbox cannot run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ivrkit.ami.client import AmiConnectionLost
from ivrkit.qa.asterisk.sandbox import (
    BUILD_COMMAND,
    MODULES,
    AsteriskInstance,
    AsteriskRoot,
    DialplanError,
    find_debian_mirror,
)
from tests.asterisk.conftest import require_root


@pytest.mark.asterisk
def test_the_root_holds_asterisk_22(asterisk: AsteriskInstance) -> None:
    assert str(asterisk.root.info()["asterisk_version"]).startswith("Asterisk 22.")
    assert asterisk.command("core show version")[0].startswith("Asterisk 22.")


@pytest.mark.asterisk
def test_every_module_loads_and_the_start_logs_no_problem(asterisk: AsteriskInstance) -> None:
    for name in ("res_agi", "app_queue", "func_uri", "res_clioriginate", "app_senddtmf", "pbx_config"):
        assert name in MODULES
        assert asterisk.ami is not None
        assert asterisk.ami.send("ModuleCheck", Module=name)["Response"] == "Success"
    log = asterisk.log_text()
    startup = log[: log.index("Asterisk Ready.")]
    assert [line for line in startup.splitlines() if "WARNING" in line or "ERROR" in line] == []


@pytest.mark.asterisk
def test_configuration_and_state_live_in_a_private_directory(asterisk: AsteriskInstance) -> None:
    private = asterisk.private_dir
    assert private.parent == asterisk.root.path / "var/lib/ivrkit/runs"
    assert (private / "etc/asterisk.conf").is_file()
    assert "autoload = no" in (private / "etc/modules.conf").read_text()
    assert (private / "run/asterisk.ctl").exists()
    assert asterisk.log_path == private / "log/messages" and asterisk.log_path.is_file()
    manager = (private / "etc/manager.conf").read_text()
    assert f"port = {asterisk.ami_port}" in manager and "bindaddr = 127.0.0.1" in manager
    assert asterisk.ami_secret in manager


@pytest.mark.asterisk
def test_reload_dialplan_replaces_it_and_a_broken_file_keeps_the_old_one(asterisk: AsteriskInstance) -> None:
    asterisk.reload_dialplan("[first]\nexten => s,1,NoOp(one)\n")
    assert any("first" in line for line in asterisk.command("dialplan show first"))

    asterisk.reload_dialplan("[second]\nexten => s,1,NoOp(two)\n")
    assert any("There is no existence of 'first' context" in line for line in asterisk.command("dialplan show first"))

    with pytest.raises(DialplanError, match=r"did not reload extensions.conf .*the previous dialplan stays active"):
        asterisk.reload_dialplan('#include "missing-file.conf"\n[third]\nexten => s,1,NoOp()\n')
    assert any("second" in line for line in asterisk.command("dialplan show second"))


@pytest.mark.asterisk
def test_sounds_go_under_the_language_directory_inside_the_root(asterisk: AsteriskInstance) -> None:
    name = asterisk.install_sound("ivrkit/test-install", b"RIFF....", language="en")
    assert name == "ivrkit/test-install"
    # Debian links sounds/en to /etc/alternatives/asterisk-prompt-en inside the root
    path = asterisk.root.host_path("/usr/share/asterisk/sounds/en/ivrkit/test-install.wav")
    assert path.read_bytes() == b"RIFF...."
    assert str(path).startswith(str(asterisk.root.path))
    with pytest.raises(ValueError, match="must be relative"):
        asterisk.install_sound("../escape.wav", b"")


@pytest.mark.asterisk
def test_a_second_instance_runs_beside_the_first(asterisk: AsteriskInstance) -> None:
    other = AsteriskInstance(asterisk.root, "[wait]\nexten => s,1,Wait(30)\n").start()
    try:
        assert other.ami_port != asterisk.ami_port and other.private_dir != asterisk.private_dir
        assert other.startup_seconds is not None and other.startup_seconds < 10
        assert other.command("core show version") == asterisk.command("core show version")
    finally:
        other.stop()
    assert not other.running and not other.private_dir.exists()
    assert asterisk.running


@pytest.mark.asterisk
def test_a_crash_fails_a_waiting_ami_sender_at_once(asterisk: AsteriskInstance) -> None:
    other = AsteriskInstance(asterisk.root, "[wait]\nexten => s,1,Wait(30)\n").start()
    client = other.ami_client()
    try:
        failures: list[BaseException] = []

        def blocked_sender() -> None:
            try:  # a synchronous Originate of a channel that never answers: no response for 30 s
                client.send("Originate", Channel="Local/s@wait/n", Application="Wait", Data="1", timeout=30)
            except BaseException as error:
                failures.append(error)

        assert other.ami is not None and other.process is not None
        mark = other.ami.mark()
        sender = threading.Thread(target=blocked_sender)
        sender.start()
        other.ami.wait_for(lambda e: e.name == "Newexten" and e.get("Application") == "Wait", 10, since=mark)
        started = time.monotonic()
        other.process.kill()
        sender.join(10)
        assert time.monotonic() - started < 2
        assert len(failures) == 1 and isinstance(failures[0], AmiConnectionLost), failures
        assert "got no response: Asterisk closed the AMI connection" in str(failures[0])
    finally:
        client.close()
        other.stop()
    assert not other.private_dir.exists()


def test_without_a_root_the_instruction_says_how_to_build_it(tmp_path: Path) -> None:
    problem = AsteriskRoot(tmp_path / "nothing").why_unavailable()
    assert problem is not None
    assert f"run `IVRKIT_ASTERISK_ROOT={tmp_path / 'nothing'} {BUILD_COMMAND}`" in problem


def test_the_root_location_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IVRKIT_ASTERISK_ROOT", str(tmp_path))
    assert AsteriskRoot().path == tmp_path
    monkeypatch.delenv("IVRKIT_ASTERISK_ROOT")
    assert AsteriskRoot().path == Path("/var/cache/ivrkit/asterisk-sid")


def test_unavailable_root_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IVRKIT_ASTERISK_ROOT", str(tmp_path / "none"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real Asterisk unavailable: no Asterisk root"):
        require_root()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Asterisk tests cannot run in CI"):
        require_root()


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "usr/share/sounds/real").mkdir(parents=True)
    os.symlink("/usr/share/sounds/real", tmp_path / "etc/alternatives/prompt-en")
    os.symlink("/etc/alternatives/prompt-en", tmp_path / "usr/share/sounds/en")
    root = AsteriskRoot(tmp_path)
    assert root.host_path("/usr/share/sounds/en/x/y.wav") == tmp_path / "usr/share/sounds/real/x/y.wav"
    assert root.host_path("/usr/share/sounds/../../../../etc") == tmp_path / "etc"


def test_the_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example.org/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert find_debian_mirror(apt) == "http://mirror.example.org/debian"
    one_line = "# deb http://x/debian sid main\ndeb [arch=amd64] http://one.example/debian sid main\n"
    (apt / "sources.list").write_text(one_line)
    assert find_debian_mirror(apt) == "http://one.example/debian"
    assert find_debian_mirror(tmp_path / "empty") is None
