"""Maintenance mode end to end on a real Asterisk 22: ``ivrkit maintenance`` as an operator runs it, a real
``ivrkit serve --ami`` mirroring the store into AstDB, and the compiled gate.

- Switched on with the CLI, maintenance is heard on the next call from the server (its prompts, over AGI);
  with the server stopped, the gate plays the mode's announcement from the AstDB flag the mirror left; switched
  off, the flag goes and calls are served again. A stale flag from before the server started is repaired.
- A timed mode ends by itself: the key goes, the history says ``expired``, the next call is served.
- The rights: the server's AMI user needs ``write = system`` for the mirror (DBPut, DBDel); without it the
  server says so and AstDB is left alone.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ivrkit.ami.client import AmiClient, AmiError
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.qa.asterisk.calls import Call, CallDriver
from ivrkit.qa.asterisk.sandbox import QUEUES_CONF, AsteriskInstance
from tests.asterisk.conftest import wav
from tests.asterisk.test_compiled_dialplan import compile_for, install
from tests.server.process import ServeProcess

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]
FLOW = "shop"
FAMILY = "ivrkit-maintenance"
FLOW_YAML = f"""
flow: {FLOW}
language: en
timezone: UTC
start: hello
maintenance:
  planned: {{prompt: maintenance-planned, then: hangup}}
  closed: {{prompt: lines-closed, then: hangup}}
steps:
  hello:
    hangup: {{play: goodbye, outcome: served}}
"""
SERVED = ["en/ivrkit/goodbye"]  # what the server plays a caller when the shop is open
READ, WRITE = "call,agent", "originate,reporting,call,system"
"""The rights of `ivrkit serve --ami`'s user (/tmp/issue7/I-docs.md): the dispatcher's, and `system` for the
mirror's DBPut and DBDel."""
CLI = "import sys; from ivrkit.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskInstance) -> Iterator[Path]:
    flows = tmp_path_factory.mktemp("maintenance") / "flows"
    flows.mkdir()
    (flows / f"{FLOW}.yaml").write_text(textwrap.dedent(FLOW_YAML))
    for prompt in PromptCatalog.load(ROOT / "prompts").languages["en"]:
        asterisk.install_sound(f"ivrkit/{prompt}.wav", wav(0.15), language="en")
    yield flows
    asterisk.write_config("queues.conf", QUEUES_CONF)  # the session's other tests know only the default queue
    assert asterisk.ami is not None
    asterisk.ami.send("QueueReload")


@pytest.fixture
def ami_user(asterisk: AsteriskInstance) -> Iterator[Callable[[str, str, str], tuple[str, str]]]:
    """``ami_user(name, read, write)``: a manager.conf user with exactly these rights; (user, secret).
    manager.conf is restored after the test."""
    path = asterisk.config_path("manager.conf")
    original = path.read_text()
    added: list[str] = []

    def add(name: str, read: str, write: str) -> tuple[str, str]:
        added.append(f"\n[{name}]\nsecret = secret-{name}\ndeny = 0.0.0.0/0.0.0.0\n"
                     f"permit = 127.0.0.1/255.255.255.255\nread = {read}\nwrite = {write}\n")  # fmt: skip
        asterisk.write_config("manager.conf", original + "".join(added))
        asterisk.command("manager reload")
        return name, f"secret-{name}"

    yield add
    if added:
        asterisk.write_config("manager.conf", original)
        asterisk.command("manager reload")


@pytest.fixture
def astdb(ami: AmiClient) -> Iterator[Callable[[], dict[str, str]]]:
    """``astdb()``: the family as Asterisk holds it; it is emptied before and after the test."""

    def family() -> dict[str, str]:
        prefix = f"/{FAMILY}/"
        events = ami.send_list("DBGetTree", Family=FAMILY).events
        return {e["Key"][len(prefix):]: e["Val"] for e in events if e.name == "DBGetTreeResponse"}

    def empty() -> None:
        try:
            ami.send("DBDelTree", Family=FAMILY)
        except AmiError as error:  # Asterisk 22.10 calls an empty family an error
            assert error.response_message() == "Database entry not found"

    empty()
    yield family
    empty()


class Server:
    """``ivrkit serve --ami`` on ``data`` as ``user``, the dialplan compiled for its port; :meth:`start` again
    after :meth:`stop` on the same data directory."""

    def __init__(self, asterisk: AsteriskInstance, ami: AmiClient, flows: Path, tmp: Path, user: tuple[str, str]):
        self.asterisk, self.ami, self.flows, self.tmp = asterisk, ami, flows, tmp
        self.data = tmp / "data"
        (tmp / "ami-secret").write_text(user[1] + "\n")
        self.user = user[0]
        self.process: ServeProcess | None = None

    def start(self) -> ServeProcess:
        self.process = ServeProcess(
            self.flows, self.tmp, "--prompts", str(ROOT / "prompts"), "--data-dir", str(self.data),
            "--ami", f"{self.asterisk.ami_host}:{self.asterisk.ami_port}", "--ami-user", self.user,
            "--ami-secret-file", str(self.tmp / "ami-secret"),
        )  # fmt: skip
        report = install(self.asterisk, compile_for(self.flows, f"agi://127.0.0.1:{self.process.port}"), self.ami)
        assert report.ok, report.render()
        return self.process

    @property
    def serve(self) -> ServeProcess:
        assert self.process is not None
        return self.process

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: it drains and exits."""
        self.serve.process.terminate()
        assert self.serve.process.wait(15) == 0
        self.serve.close()

    def log(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        return self.serve.wait_log(match, timeout)

    def mirrored(self, key: str, value: str | None) -> dict[str, Any]:
        """The mirror's log record of writing ``value`` (None: deleting) at ``key``."""
        return self.log(lambda r: r.get("key") == key and "value" in r and r["value"] == value)

    def checked(self) -> dict[str, Any]:
        return self.log(lambda r: r.get("msg", "").startswith(f"AstDB mirror checked {FAMILY}"))

    def ivrkit(self, *args: str) -> Any:
        """``ivrkit maintenance <args> --json`` on the server's data directory, as an operator runs it."""
        command = [sys.executable, "-c", CLI, "maintenance", *args, "--data-dir", str(self.data), "--json"]
        if args[0] == "on":
            command += ["--flows", str(self.flows)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def server(
    asterisk: AsteriskInstance, ami: AmiClient, flows: Path, tmp_path: Path, astdb: Callable[[], dict[str, str]],
    ami_user: Callable[[str, str, str], tuple[str, str]],
) -> Iterator[Server]:  # fmt: skip
    server = Server(asterisk, ami, flows, tmp_path, ami_user("ivrkit-serve", READ, WRITE))
    try:
        yield server
    finally:
        if server.process is not None:
            server.process.close()


def served(call: Call) -> bool:
    """The server ran the flow and the shop was open: it said goodbye, and the dialplan played nothing."""
    return call.prompts_streamed == SERVED and not [app for app, _ in call.applications if app == "Playback"]


def test_maintenance_switched_on_by_the_cli_is_heard_and_outlives_the_server_until_switched_off(
    server: Server, ami: AmiClient, call_driver: CallDriver, astdb: Callable[[], dict[str, str]]
) -> None:
    ami.send("DBPut", Family=FAMILY, Key=FLOW, Val="emergency")  # left over, or set by hand
    ami.send("DBPut", Family=FAMILY, Key="global", Val="closed")
    ami.send("DBPut", Family=FAMILY, Key="elsewhere", Val="planned")  # another server's flow
    server.start()
    repaired = [server.mirrored(key, None) for key in ("global", FLOW)]  # read back at login, in key order
    assert [(r["level"], r["msg"]) for r in repaired] == [
        ("WARNING", f"AstDB {FAMILY}/global repaired: it held 'closed', the maintenance store says unset"),
        ("WARNING", f"AstDB {FAMILY}/{FLOW} repaired: it held 'emergency', the maintenance store says unset"),
    ]
    server.checked()
    assert astdb() == {"elsewhere": "planned"}
    assert not [r for r in server.serve.seen if "events stay on" in r.get("msg", "")]  # `Events` needs no right
    call = call_driver.place(f"ivrkit-{FLOW}").wait(30)
    assert served(call), call.describe()

    switched = server.ivrkit("on", "--mode", "planned", "--flow", FLOW, "--reason", "upgrade", "--by", "alice")
    assert switched["window"]["mode"] == "planned"
    server.mirrored(FLOW, "planned")
    assert astdb() == {FLOW: "planned", "elsewhere": "planned"}
    call = call_driver.place(f"ivrkit-{FLOW}").wait(30)
    assert call.prompts_streamed == ["en/ivrkit/maintenance-planned"], call.describe()  # the server's handling
    assert not [app for app, _ in call.applications if app == "Playback"]

    server.stop()  # the server is down: the gate's flag is all Asterisk has
    call = call_driver.place(f"ivrkit-{FLOW}").wait(30)
    apps = call.applications
    assert call.variables.get("AGISTATUS") == "FAILURE", call.describe()
    assert [data for app, data in apps if app == "Playback"] == ["en/ivrkit/maintenance-planned"], apps
    assert call.variables.get("PLAYBACKSTATUS") == "SUCCESS"
    assert apps[apps.index(("Playback", "en/ivrkit/maintenance-planned")) + 1] == ("Hangup", ""), apps
    assert astdb() == {FLOW: "planned", "elsewhere": "planned"}  # stopping leaves the flags

    server.start()
    server.checked()
    switched = server.ivrkit("off", "--flow", FLOW, "--by", "alice", "--reason", "upgrade done")
    assert [window["mode"] for window in switched["ended"]] == ["planned"]
    server.mirrored(FLOW, None)
    assert astdb() == {"elsewhere": "planned"}
    call = call_driver.place(f"ivrkit-{FLOW}").wait(30)
    assert served(call), call.describe()


def test_a_timed_mode_expires_by_itself(
    server: Server, call_driver: CallDriver, astdb: Callable[[], dict[str, str]]
) -> None:
    server.start()
    server.checked()
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)).isoformat(timespec="seconds")
    server.ivrkit("on", "--mode", "closed", "--flow", FLOW, "--until", until, "--reason", "meeting", "--by", "bob")
    server.mirrored(FLOW, "closed")
    assert astdb() == {FLOW: "closed"}
    deleted = server.mirrored(FLOW, None)  # at the window's end, with nobody calling
    assert deleted["msg"] == f"AstDB {FAMILY}/{FLOW} deleted (was 'closed')"
    assert astdb() == {}
    history = server.ivrkit("history", "--flow", FLOW)["entries"]
    assert [(e["action"], e["by"], e["source"]) for e in history] == [("expired", "system", "schedule"),
                                                                     ("on", "bob", "cli")]  # fmt: skip
    assert history[0]["at"] == until.replace("+00:00", "Z")  # recorded at the window's end
    call = call_driver.place(f"ivrkit-{FLOW}").wait(30)
    assert served(call), call.describe()


def test_without_write_system_the_server_says_what_to_grant_and_leaves_astdb_alone(
    asterisk: AsteriskInstance, ami: AmiClient, flows: Path, tmp_path: Path,
    astdb: Callable[[], dict[str, str]], ami_user: Callable[[str, str, str], tuple[str, str]],
) -> None:  # fmt: skip
    server = Server(asterisk, ami, flows, tmp_path, ami_user("ivrkit-nosystem", READ, "originate,reporting,call"))
    try:
        server.start()
        server.checked()  # DBGetTree takes `reporting`: only the writes are refused
        server.ivrkit("on", "--mode", "planned", "--flow", FLOW, "--reason", "upgrade", "--by", "alice")
        refused = server.log(lambda r: r.get("level") == "ERROR" and "AstDB mirror" in r.get("msg", ""))
        assert refused["msg"] == (
            "AstDB mirror: Asterisk refused DBGetTree, DBPut or DBDel (Permission denied): give the AMI user "
            "`write = system` in manager.conf; until then the compiled gate keeps the flags it has")
        assert astdb() == {}
    finally:
        if server.process is not None:
            server.process.close()
