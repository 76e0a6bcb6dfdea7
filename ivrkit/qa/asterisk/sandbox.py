"""Build a private Debian sid root with Asterisk 22 and run isolated Asterisk instances in it.

The root lives outside any clone (``$IVRKIT_ASTERISK_ROOT`` or ``/var/cache/ivrkit/asterisk-sid``) and is
reused between runs. It is built into a temporary directory next to the target and renamed into place only
when complete, with a marker file, so an interrupted build is never taken for a good one.

Each :class:`AsteriskInstance` writes its own configuration (a handful of modules, AMI on a free port of
127.0.0.1 with a random secret, a ``messages`` log) into a private directory inside the root and runs
``chroot <root> asterisk -f`` as a child process. The chroot shares the network, so FastAGI servers and AMI
clients on 127.0.0.1 work both ways. Running needs root (``chroot``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from ivrkit.ami.client import AmiClient, AmiConnectionLost, AmiError, Message
from ivrkit.prompts.deploy import host_path

DEFAULT_ROOT = Path("/var/cache/ivrkit/asterisk-sid")
ROOT_ENV = "IVRKIT_ASTERISK_ROOT"
SUITE = "sid"
PACKAGES = (
    "asterisk",  # pulls in asterisk-modules and asterisk-core-sounds-en (beep, digits...)
    "asterisk-prompt-de",  # German sounds: digits, dates and queue announcements of calls in German
)
"""What the root has installed; a root built before a package was added here gets it from ``build``."""
MARKER = ".ivrkit-root.json"
BUILD_COMMAND = "python3 tools/asterisk_sandbox.py build"
SOUNDS = PurePosixPath("/usr/share/asterisk/sounds")
RUNS = PurePosixPath("/var/lib/ivrkit/runs")  # private directories of instances, inside the root
STARTUP_TIMEOUT = 60.0
AMI_USER = "ivrkit"

MODULES = (
    # applications
    "app_amd", "app_dial", "app_echo", "app_exec", "app_playback", "app_playtones", "app_queue", "app_read",
    "app_senddtmf", "app_stack", "app_userevent", "app_verbose",
    # dialplan, AGI, CLI originate
    "pbx_config", "res_agi", "res_clioriginate", "res_speech",
    # functions
    "func_callerid", "func_channel", "func_db", "func_global", "func_hangupcause", "func_logic",
    "func_strings", "func_uri",
    # media
    "codec_alaw", "codec_gsm", "codec_ulaw", "format_gsm", "format_pcm", "format_sln", "format_wav",
    "res_timing_timerfd", "bridge_simple",
)  # fmt: skip
"""Modules loaded (``autoload=no``); each must load or the start fails. Local channels are built in."""

QUEUES_CONF = """\
[general]
persistentmembers = no

[ivrkit-test]
strategy = ringall
"""

LOGGER_CONF = """\
[general]
dateformat = %F %T.%3q

[logfiles]
messages => notice,warning,error,verbose(3)
"""

INDICATIONS_CONF = """\
[general]
country = us

[us]
description = United States
ringcadence = 2000,4000
dial = 350+440
busy = 480+620/500,0/500
ring = 440+480/2000,0/4000
congestion = 480+620/250,0/250
"""


QUIET_CONFIGS = {
    "acl.conf": "",
    "amd.conf": "[general]\n",  # app_amd declines to load without it (its defaults suit the tests)
    "ccss.conf": "[general]\n",
    "cdr.conf": "[general]\nenable = no\n",
    "cel.conf": "[general]\nenable = no\n",
    "features.conf": "[general]\n",
    "queuerules.conf": "",
    "stasis.conf": "[threadpool]\n",
    "udptl.conf": "[general]\n",
}
"""Files Asterisk's core reads at start; empty ones keep "Unable to load config file" errors out of the log."""


class AsteriskUnavailable(RuntimeError):
    """The Asterisk root cannot be used here; the message says how to make it usable."""


class AsteriskBuildError(RuntimeError):
    """Building the root failed; the message points at the build log."""


class AsteriskStartError(RuntimeError):
    """An instance did not come up; the message quotes its log."""


class DialplanError(RuntimeError):
    """Asterisk refused or complained about a dialplan."""


# -- the root --------------------------------------------------------------------------------------------


def default_root_path() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


class AsteriskRoot:
    """A Debian sid tree with Asterisk installed, usable with ``chroot``."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_root_path()

    def __repr__(self) -> str:
        return f"AsteriskRoot({str(self.path)!r})"

    @property
    def marker(self) -> Path:
        return self.path / MARKER

    def is_built(self) -> bool:
        return self.marker.is_file()

    def info(self) -> dict[str, object]:
        """What the marker recorded: Asterisk version, mirror, build time and seconds."""
        try:
            data = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def why_unavailable(self) -> str | None:
        """None when instances can run; otherwise what is missing and the exact command that fixes it."""
        if not sys.platform.startswith("linux"):
            return "the Asterisk sandbox needs Linux (it runs Asterisk with chroot in a Debian root)"
        is_root = os.geteuid() == 0
        if not self.is_built():
            env = "" if self.path == DEFAULT_ROOT else f"{ROOT_ENV}={self.path} "
            as_root = "" if is_root else " as root"
            hint = "" if shutil.which("debootstrap") else " (needs debootstrap: apt-get install debootstrap)"
            return (
                f"no Asterisk root at {self.path}: run `{env}{BUILD_COMMAND}`{as_root}{hint};"
                " it takes about a minute and 400 MB of disk"
            )
        if not is_root:
            return f"running Asterisk in {self.path} needs root (chroot): run the tests as root"
        if shutil.which("chroot") is None:
            return "chroot is not installed: apt-get install coreutils"
        return None

    def available(self) -> bool:
        return self.why_unavailable() is None

    # -- paths inside the root --

    def host_path(self, path: str | PurePosixPath) -> Path:
        """The host path of ``path`` inside the root, following symlinks as the chroot would.

        Debian links e.g. ``sounds/en`` to ``/etc/alternatives/asterisk-prompt-en``; an absolute target means
        the root's ``/etc``, not the host's.
        """
        return host_path(self.path, path)

    def modules_dir(self) -> PurePosixPath:
        """Where the root's Asterisk modules are, as a path inside the root."""
        found = sorted(self.path.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise AsteriskUnavailable(
                f"{self.path} has no Asterisk modules directory; rebuild it: remove {self.path} and run"
                f" `{BUILD_COMMAND}`"
            )
        return PurePosixPath("/", found[0].relative_to(self.path).as_posix())

    def install_sound(self, relative_path: str, data: bytes, language: str = "en") -> str:
        """Put a sound file at ``<sounds>/<language>/<relative_path>`` and return its name for Playback.

        ``relative_path`` is like ``ivrkit/welcome.wav`` (``.wav`` is added when there is no extension); the
        returned name (``ivrkit/welcome``) is what ``Playback``/``STREAM FILE`` take on a channel whose
        language is ``language``.
        """
        rel = PurePosixPath(relative_path)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"sound path {relative_path!r} must be relative, without '..' (e.g. 'ivrkit/hello.wav')")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", language):
            raise ValueError(f"language {language!r} must be a plain name such as 'en' or 'de'")
        if not rel.suffix:
            rel = rel.with_suffix(".wav")
        target = self.host_path(SOUNDS / language / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
        return rel.with_suffix("").as_posix()

    # -- building --

    def build(self, progress: Callable[[str], None] = lambda line: None, *, mirror: str | None = None) -> bool:
        """Build the root unless it is already built; True when a build ran (or a package was added).

        A root built before a package joined :data:`PACKAGES` gets it installed (:meth:`add_packages`). Otherwise it
        runs ``debootstrap --variant=minbase --include=asterisk sid`` into a temporary directory next to the
        target, checks that Asterisk runs, drops the downloaded packages, writes the marker and renames the
        directory into place.
        """
        if self.is_built():
            missing = self.missing_packages()
            if missing:
                self.add_packages(missing, progress)
                return True
            progress(f"already built: {self.path} ({self.info().get('asterisk_version', 'unknown version')})")
            return False
        if os.geteuid() != 0:
            raise AsteriskUnavailable(f"building the Asterisk root needs root: run `sudo {BUILD_COMMAND}`")
        if shutil.which("debootstrap") is None:
            raise AsteriskUnavailable("debootstrap is not installed: run `apt-get install debootstrap` as root")
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        with _locked(parent / f".{self.path.name}.lock"):
            if self.is_built():  # another process finished it while we waited for the lock
                progress(f"already built by another process: {self.path}")
                return False
            if self.path.exists():
                raise AsteriskBuildError(
                    f"{self.path} exists but is not a complete ivrkit Asterisk root (no {MARKER});"
                    f" remove it (rm -rf {self.path}) and run `{BUILD_COMMAND}` again"
                )
            for stale in parent.glob(f".{self.path.name}.building-*"):
                progress(f"removing an interrupted build: {stale}")
                remove_tree(stale)
            self._build_into(parent, progress, mirror if mirror is not None else find_debian_mirror())
        return True

    def missing_packages(self) -> list[str]:
        """The packages of :data:`PACKAGES` the marker does not list (a root built before they were added)."""
        listed = self.info().get("packages")
        have = set(listed) if isinstance(listed, list) else set()
        return [package for package in PACKAGES if package not in have]

    def add_packages(self, packages: Sequence[str], progress: Callable[[str], None] = lambda line: None) -> None:
        """Install ``packages`` into the built root with apt-get inside the chroot (those dpkg already has are
        only recorded) and add them to the marker, so the next ``build`` has nothing to do."""
        if os.geteuid() != 0:
            raise AsteriskUnavailable(
                f"the Asterisk root lacks {', '.join(packages)}: run `sudo {BUILD_COMMAND}` to install them"
            )
        with _locked(self.path.parent / f".{self.path.name}.lock"):
            info = self.info()  # again: another process may have added them while we waited for the lock
            recorded = info.get("packages")
            listed = [str(package) for package in recorded] if isinstance(recorded, list) else []
            wanted = [package for package in packages if package not in listed]
            if not wanted:
                progress(f"{', '.join(packages)} added by another process: {self.path}")
                return
            absent = [package for package in wanted if not _installed(self.path, package)]
            if absent:
                progress(f"installing {', '.join(absent)} into {self.path}")
                log_path = self.path.parent / f"{self.path.name}.build.log"
                with open(log_path, "a") as log:
                    for command in (["apt-get", "update", "-q"],
                                    ["apt-get", "install", "-y", "-q", "--no-install-recommends", *absent],
                                    ["apt-get", "clean"]):  # fmt: skip
                        log.write(f"chroot {self.path} {' '.join(command)}\n")
                        log.flush()
                        done = subprocess.run(
                            ["chroot", str(self.path), *command], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                            check=False,
                        )
                        if done.returncode != 0:
                            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
                            raise AsteriskBuildError(
                                f"`{' '.join(command)}` in {self.path} failed (exit status {done.returncode}); the "
                                f"full log is {log_path}. Last lines:\n{tail}Check the network, then run "
                                f"`{BUILD_COMMAND}` again."
                            )
                missing = [package for package in absent if not _installed(self.path, package)]
                if missing:
                    raise AsteriskBuildError(f"apt-get did not install {', '.join(missing)}; see {log_path}")
            else:
                progress(f"{', '.join(wanted)} already installed in {self.path}: recorded")
            info["packages"] = [*listed, *wanted]
            info["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            temporary = self.marker.with_name(f"{MARKER}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(info, indent=2) + "\n")
            os.replace(temporary, self.marker)
        progress(f"done: {self.path} has {', '.join(wanted)}")

    def _build_into(self, parent: Path, progress: Callable[[str], None], mirror: str | None) -> None:
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.building-", dir=parent))
        log_path = parent / f"{self.path.name}.build.log"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(work)]
        if mirror:
            command.append(mirror)
        progress(f"[   0 s] debootstrap {SUITE} into {work} from {mirror or 'the default mirror'}")
        try:
            with open(log_path, "w") as log:
                log.write(" ".join(command) + "\n")
                log.flush()
                phases = _Phases(progress, started)
                process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
                )
                assert process.stdout is not None
                for line in process.stdout:
                    log.write(line)
                    phases.feed(line.rstrip("\n"))
                code = process.wait()
            if code != 0:
                tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
                raise AsteriskBuildError(
                    f"debootstrap failed (exit status {code}); the full log is {log_path}. Last lines:\n{tail}"
                    "Check the network and the mirror (pass one with --mirror), then run the build again."
                )
            root = AsteriskRoot(work)
            if not (work / "usr/sbin/asterisk").is_file():
                raise AsteriskBuildError(f"debootstrap finished without {work}/usr/sbin/asterisk; see {log_path}")
            version = _asterisk_version(work)
            root.modules_dir()
            archives = work / "var/cache/apt/archives"
            for deb in archives.glob("*.deb"):
                deb.unlink()
            elapsed = time.monotonic() - started
            info = {
                "asterisk_version": version,
                "suite": SUITE,
                "packages": list(PACKAGES),
                "mirror": mirror or "debootstrap default",
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(elapsed, 1),
            }
            (work / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            work.chmod(0o755)  # mkdtemp made it private; the root is a normal system tree
            os.rename(work, self.path)
        except BaseException:
            progress(f"build failed; removing {work}")
            remove_tree(work)
            raise
        size = _disk_usage(self.path)
        progress(f"[{elapsed:4.0f} s] done: {version}, {size / 1e6:.0f} MB in {self.path}")


class _Phases:
    """Turns debootstrap's long output into one progress line per phase, with elapsed seconds."""

    def __init__(self, progress: Callable[[str], None], started: float) -> None:
        self.progress = progress
        self.started = started
        self.phase = ""

    def feed(self, line: str) -> None:
        if line.startswith(("W: ", "E: ")):
            self.progress(f"[{self._elapsed()}] {line}")
            return
        if not line.startswith("I: "):
            return
        phase = _phase_of(line[3:])
        if phase is None:
            return
        if phase != self.phase:
            self.progress(f"[{self._elapsed()}] {phase}")
            self.phase = phase

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:4.0f} s"


def _phase_of(message: str) -> str | None:
    message = message.strip()
    word = message.split(" ", 1)[0]
    if "Release" in message or (word in ("Retrieving", "Validating") and message.endswith("Packages")):
        return "reading the package lists"
    if word in ("Resolving", "Checking", "Found"):
        return "resolving dependencies"
    if word in ("Retrieving", "Validating"):
        return "downloading packages"
    if word in ("Chosen", "Extracting"):
        return "extracting packages"
    if word == "Installing":
        return "installing the core packages"
    if word in ("Unpacking", "Configuring"):
        return "unpacking and configuring packages"
    if message.startswith("Base system installed"):
        return "base system installed; checking Asterisk"
    return None


def _installed(root: Path, package: str) -> bool:
    """Whether dpkg in ``root`` has ``package`` installed."""
    result = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "install ok installed"


def _asterisk_version(root: Path) -> str:
    result = subprocess.run(
        ["chroot", str(root), "/usr/sbin/asterisk", "-V"], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise AsteriskBuildError(f"`chroot {root} asterisk -V` failed: {output}")
    return result.stdout.strip()


def find_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive this machine's apt uses (one-line or deb822 sources), or None for the default."""
    candidates: list[tuple[str, list[str]]] = []  # (uri, suites)
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                candidates.extend(_one_line_source(line))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            candidates.extend(_deb822_sources(path.read_text()))
    for uri, suites in candidates:
        if "security" in uri or "debian" not in uri:
            continue
        if any(re.fullmatch(r"[a-z]+", suite) for suite in suites):  # a plain suite, not -updates/-security
            return uri.rstrip("/")
    return None


def _one_line_source(line: str) -> list[tuple[str, list[str]]]:
    """``deb [options] uri suite components...`` → [(uri, [suite])]."""
    line = line.split("#", 1)[0].strip()
    if not line.startswith("deb "):
        return []
    line = re.sub(r"\[[^\]]*\]", " ", line[4:])
    fields = line.split()
    return [(fields[0], [fields[1]])] if len(fields) >= 2 else []


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw or raw[:1].isspace():
                continue
            key, _, value = raw.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        found.extend((uri, suites) for uri in fields.get("uris", "").split())
    return found


# -- mounts and cleanup ----------------------------------------------------------------------------------


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    base = os.path.realpath(path)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape") if "\\" in fields[4] else fields[4]
            if point == base or point.startswith(base.rstrip("/") + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """``rm -rf`` that first unmounts anything mounted inside, and refuses if something stays mounted."""
    if not path.exists():
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise AsteriskBuildError(
            f"cannot remove {path}: still mounted: {', '.join(map(str, left))}; unmount them (umount -l) and retry"
        )
    shutil.rmtree(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _disk_usage(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                stat = os.lstat(os.path.join(directory, name))
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_blocks * 512
    return total


# -- instances --------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: Asterisk gets SIGTERM if the test process dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class AsteriskInstance:
    """One Asterisk process in the root, with its own configuration, run, log, spool and db directories.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (stop always; it also removes the
    private directory unless ``keep_files``)::

        with AsteriskInstance(AsteriskRoot(), extensions="[ivr]\\nexten => s,1,Answer()\\n") as asterisk:
            ami = asterisk.ami_client()
    """

    def __init__(
        self,
        root: AsteriskRoot,
        extensions: str = "",
        *,
        modules: Sequence[str] = MODULES,
        extra_configs: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        keep_files: bool = False,
    ) -> None:
        self.root = root
        self.extensions = extensions
        self.modules = tuple(modules)
        self.extra_configs = dict(extra_configs or {})
        self.startup_timeout = startup_timeout
        self.keep_files = keep_files
        self.ami_host = "127.0.0.1"
        self.ami_port = 0
        self.ami_username = AMI_USER
        self.ami_secret = ""
        self.run_dir = PurePosixPath()  # the private directory, as seen inside the root
        self.process: subprocess.Popen[bytes] | None = None
        self.ami: AmiClient | None = None
        """The instance's own logged-in AMI connection (reloads, commands, stop)."""
        self.startup_seconds: float | None = None

    # -- paths --

    @property
    def private_dir(self) -> Path:
        """The private directory on the host (chosen by :meth:`start`)."""
        if not self.run_dir.parts:
            raise AsteriskStartError("the instance has no private directory yet: call start() first")
        return self.root.path / self.run_dir.relative_to("/")

    @property
    def log_path(self) -> Path:
        return self.private_dir / "log" / "messages"

    def config_path(self, name: str) -> Path:
        return self.private_dir / "etc" / name

    # -- lifecycle --

    def start(self) -> AsteriskInstance:
        """Write the configuration, start Asterisk and wait until AMI answers and it is fully booted."""
        problem = self.root.why_unavailable()
        if problem:
            raise AsteriskUnavailable(problem)
        if self.process is not None:
            raise AsteriskStartError("this instance is already started; create another AsteriskInstance")
        started = time.monotonic()
        self._clean_stale_runs()
        self.run_dir = RUNS / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.ami_port = free_port(self.ami_host)
        self.ami_secret = secrets.token_urlsafe(18)
        self._write_configs()
        conf = self.run_dir / "etc" / "asterisk.conf"
        try:
            with open(self.private_dir / "asterisk.out", "wb") as output:  # the child keeps its own copy
                self.process = subprocess.Popen(
                    ["chroot", str(self.root.path), "/usr/sbin/asterisk", "-f", "-n", "-C", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal is ours to handle, not Asterisk's
                    preexec_fn=_die_with_parent,
                )
            self.ami = self._connect_when_booted(started + self.startup_timeout)
            self._check_modules(self.ami)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _write_configs(self) -> None:
        for sub in ("etc", "run", "log", "spool", "db", "cache"):
            (self.private_dir / sub).mkdir(parents=True, exist_ok=True)
        d = self.run_dir
        asterisk_conf = f"""\
[directories]
astcachedir => {d}/cache
astetcdir => {d}/etc
astmoddir => {self.root.modules_dir()}
astvarlibdir => /var/lib/asterisk
astdbdir => {d}/db
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {d}/spool
astrundir => {d}/run
astlogdir => {d}/log
astsbindir => /usr/sbin

[options]
verbose = 3
documentation_language = en_US
hideconnect = yes
"""
        modules_conf = "[modules]\nautoload = no\n" + "".join(f"load = {name}.so\n" for name in self.modules)
        manager_conf = f"""\
[general]
enabled = yes
webenabled = no
port = {self.ami_port}
bindaddr = {self.ami_host}
displayconnects = no

[{self.ami_username}]
secret = {self.ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
writetimeout = 5000
"""
        files = {
            "asterisk.conf": asterisk_conf,
            "modules.conf": modules_conf,
            "manager.conf": manager_conf,
            "logger.conf": LOGGER_CONF,
            "queues.conf": QUEUES_CONF,
            **QUIET_CONFIGS,
            "indications.conf": INDICATIONS_CONF,
            "extensions.conf": self.extensions,
            **self.extra_configs,
        }
        for name, text in files.items():
            self._write_config(name, text)

    def _write_config(self, name: str, text: str) -> None:
        if "/" in name or name.startswith("."):
            raise ValueError(f"configuration file name {name!r} must be a plain file name like 'queues.conf'")
        path = self.config_path(name)
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)

    def _connect_when_booted(self, deadline: float) -> AmiClient:
        process = self.process
        assert process is not None
        while True:
            if process.poll() is not None:
                status = process.returncode
                raise AsteriskStartError(self._failure(f"Asterisk exited with status {status} while starting"))
            if time.monotonic() > deadline:
                raise AsteriskStartError(self._failure(f"AMI did not answer within {self.startup_timeout:g} s"))
            client = AmiClient(timeout=10.0)
            try:
                client.connect(self.ami_host, self.ami_port, timeout=2.0)
            except AmiConnectionLost:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(0.05)  # not up yet: wait a little, returning early if it exits
                continue
            try:
                mark = client.mark()
                client.login(self.ami_username, self.ami_secret)
                client.wait_for(
                    lambda e: e.name == "FullyBooted", max(0.1, deadline - time.monotonic()), since=mark
                )
            except AmiError as error:
                client.close()
                what = f"AMI answered but the instance did not boot: {error}"
                raise AsteriskStartError(self._failure(what)) from None
            return client

    def _check_modules(self, ami: AmiClient) -> None:
        missing = []
        for name in self.modules:
            try:
                ami.send("ModuleCheck", Module=name)
            except AmiError as error:
                missing.append(f"{name} ({error.response_message()})")
        if missing:
            raise AsteriskStartError(self._failure(f"modules did not load: {', '.join(missing)}"))

    def _failure(self, what: str) -> str:
        lines = [line for line in self.log_text().splitlines() if "WARNING" in line or "ERROR" in line][-15:]
        with contextlib.suppress(OSError):
            lines += (self.private_dir / "asterisk.out").read_text(errors="replace").splitlines()[-10:]
        detail = "\n  ".join(lines) or "(the log is empty)"
        return f"{what}. Log ({self.log_path}):\n  {detail}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Asterisk (``core stop now``, then SIGTERM, then SIGKILL) and remove the private directory."""
        process = self.process
        try:
            asked = False
            if self.ami is not None:
                if process is not None and process.poll() is None:
                    with contextlib.suppress(AmiError):
                        self.ami.send("Command", Command="core stop now", timeout=2.0)
                    asked = True
                self.ami.close(timeout=1.0)
                self.ami = None
            if process is not None:
                steps = [(None, timeout)] if asked else []
                for sig, wait in [*steps, (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)]:
                    if sig is not None and process.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            process.send_signal(sig)
                    try:
                        process.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        finally:
            if self.run_dir.parts and not self.keep_files and (process is None or process.poll() is not None):
                with contextlib.suppress(OSError):
                    shutil.rmtree(self.private_dir)

    def __enter__(self) -> AsteriskInstance:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _clean_stale_runs(self) -> None:
        """Remove private directories of runs whose test process is gone (killed before stop())."""
        runs = self.root.path / RUNS.relative_to("/")
        if not runs.is_dir():
            return
        for entry in runs.iterdir():
            pid_text = entry.name.split("-", 1)[0]
            if not pid_text.isdigit():
                continue
            try:
                os.kill(int(pid_text), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry)
            except PermissionError:
                continue

    # -- use --

    def ami_client(self, *, events: bool = True, timeout: float = 10.0) -> AmiClient:
        """A new AMI connection, logged in as the instance's user (close it when done)."""
        client = AmiClient(timeout=timeout)
        client.connect(self.ami_host, self.ami_port, timeout=timeout)
        try:
            client.login(self.ami_username, self.ami_secret, events=events)
        except AmiError:
            client.close()
            raise
        return client

    def _control(self) -> AmiClient:
        if self.ami is None:
            raise AsteriskStartError("the Asterisk instance is not running: call start() first")
        return self.ami

    def command(self, text: str) -> list[str]:
        """Run a CLI command over AMI and return its output lines (also when the command reports a failure)."""
        try:
            return self._control().send("Command", Command=text).get_all("Output")
        except AmiError as error:
            # a CLI command that fails (e.g. `dialplan show nosuch`) answers "Response: Error" with its output
            if error.response is not None and "Output" in error.response:
                return error.response.get_all("Output")
            raise

    def reload_dialplan(self, extensions: str) -> None:
        """Replace extensions.conf and reload it; :class:`DialplanError` when Asterisk rejects the file."""
        self.extensions = extensions
        self._write_config("extensions.conf", extensions)
        try:
            self._control().send("Reload", Module="pbx_config")
        except AmiError as error:
            raise DialplanError(
                f"Asterisk did not reload extensions.conf ({error.response_message()}); the previous dialplan stays"
                f" active. Look for the reason in {self.log_path}"
            ) from None

    def write_config(self, name: str, text: str, *, reload_module: str | None = None) -> None:
        """Write another configuration file (e.g. ``queues.conf``) and optionally reload a module."""
        self._write_config(name, text)
        if reload_module:
            self._control().send("Reload", Module=reload_module)

    def install_sound(self, relative_path: str, data: bytes, language: str = "en") -> str:
        """See :meth:`AsteriskRoot.install_sound` (sounds are shared by the root's instances)."""
        return self.root.install_sound(relative_path, data, language)

    def log_text(self) -> str:
        """The ``messages`` log so far (notice, warning, error, verbose up to 3)."""
        if not self.run_dir.parts:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_lines(self, containing: str | Iterable[str] = ()) -> list[str]:
        """Log lines containing any of the given strings (all lines when none given)."""
        needles = [containing] if isinstance(containing, str) else list(containing)
        lines = self.log_text().splitlines()
        return [line for line in lines if not needles or any(n in line for n in needles)]

    def core_show_channels(self) -> list[Message]:
        """Channels currently up (AMI ``CoreShowChannels``)."""
        return self._control().send_list("CoreShowChannels").events
