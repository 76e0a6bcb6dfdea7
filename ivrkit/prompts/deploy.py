"""Deploy: put the built prompts where Asterisk plays them from, and nothing else.

Asterisk looks for a sound named ``en/ivrkit/welcome`` in ``<sounds>/en/ivrkit/welcome.<format>`` and picks the
format it transcodes least. So each language's built files go to ``<sounds>/<language>/<subfolder>/``, the
subfolder ``ivrkit serve --sounds`` names. Each file is written beside its target and renamed over it, so a
call never streams half a file; files are 0644 and folders 0755, so Asterisk's user can read what root wrote.

A list of what was deployed (``.ivrkit-deployed.json``) stays in each folder: a prompt removed from the build is
removed from the folder on the next deploy, and files put there by anyone else are never touched. The one
thing written outside that folder: a link for each sound a language's Asterisk package lacks although Asterisk
asks for it (:func:`ivrkit.prompts.languages.install_stand_ins`), made only where no such file exists.

The sounds folder may belong to another root filesystem (a chroot, a container image): with ``root``, its
symbolic links are followed inside that root, as Asterisk running there sees them (Debian links
``sounds/en`` to ``/etc/alternatives/...``, which on the host would be the host's ``/etc``).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ivrkit.prompts.languages import install_stand_ins
from ivrkit.prompts.manifest import MANIFEST_FILE, Manifest, ManifestError

DEPLOYED_LIST = ".ivrkit-deployed.json"
DEFAULT_SUBFOLDER = "ivrkit"
DEFAULT_SOUNDS = Path("/usr/share/asterisk/sounds")  # Debian's
SUBFOLDER = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
DEPLOYED_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
FILE_MODE, FOLDER_MODE = 0o644, 0o755

Progress = Callable[[str], None]


class DeployError(Exception):
    """Deploying cannot start or go on; the message says why and what to do."""


def host_path(root: Path, path: str | PurePosixPath) -> Path:
    """The host path of ``path`` inside ``root``, following symbolic links as a process chrooted there would
    (an absolute link target means the root's own ``/``)."""
    parts = [p for p in PurePosixPath("/", path).parts[1:] if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(f"too many symbolic links resolving {path} in {root}")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                resolved = []
            parts = [p for p in target.parts if p not in ("/", "", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


@dataclass(frozen=True)
class SoundsDir:
    """An Asterisk sounds folder (``path``, as Asterisk sees it), the prompts' subfolder in each language, and the
    root filesystem it is in (None: this machine's)."""

    path: Path = DEFAULT_SOUNDS
    subfolder: str = DEFAULT_SUBFOLDER
    root: Path | None = None

    def __post_init__(self) -> None:
        if not SUBFOLDER.fullmatch(self.subfolder):
            raise DeployError(f"the sounds subfolder {self.subfolder!r} must be a relative folder name such as "
                              "ivrkit (letters, digits, _, - and /), as `ivrkit serve --sounds` names it")

    def language(self, language: str) -> Path:
        """Where ``<sounds>/<language>`` is on this machine."""
        if self.root is None:
            return self.path / language
        return host_path(self.root, PurePosixPath("/", self.path.as_posix(), language))

    def prompts(self, language: str) -> Path:
        """Where the prompts of ``language`` go: ``<sounds>/<language>/<subfolder>``."""
        return self.language(language) / self.subfolder

    @property
    def top(self) -> Path:
        """Where the sounds folder itself is on this machine."""
        return self.path if self.root is None else host_path(self.root, PurePosixPath("/", self.path.as_posix()))

    def deployed_languages(self) -> list[str]:
        """The languages an earlier deploy put prompts in (their folder has its list)."""
        top = self.top
        names = sorted(path.name for path in top.iterdir()) if top.is_dir() else []  # links resolve in the root
        return [name for name in names if (self.prompts(name) / DEPLOYED_LIST).is_file()]

    def check(self) -> None:
        """DeployError unless the sounds folder exists (a typo would otherwise deploy where Asterisk never looks)."""
        top = self.top
        if not top.is_dir():
            where = f" inside {self.root}" if self.root is not None else ""
            raise DeployError(f"there is no sounds folder {self.path}{where}: give Asterisk's sounds folder "
                              f"(astdatadir/sounds, {DEFAULT_SOUNDS} on Debian) with --sounds-dir")


@dataclass
class DeployReport:
    """What a deploy did, file by file (paths relative to the sounds folder)."""

    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the manifest but not built: run build
    linked: list[str] = field(default_factory=list)  # Asterisk sounds a language's package lacks, linked

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        parts = [f"{len(self.copied)} copied", f"{len(self.unchanged)} unchanged", f"{len(self.removed)} removed"]
        if self.missing:
            parts.append(f"{len(self.missing)} not built")
        if self.linked:
            parts.append(f"{len(self.linked)} Asterisk {'sounds' if len(self.linked) > 1 else 'sound'} linked")
        return ", ".join(parts)


def deploy_prompts(
    prompts_dir: Path,
    sounds_dir: SoundsDir | Path,
    *,
    subfolder: str = DEFAULT_SUBFOLDER,
    languages: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> DeployReport:
    """Copy the built prompts into ``<sounds_dir>/<language>/<subfolder>/``; remove those it deployed before that
    are gone from the build. DeployError when nothing is built or the sounds folder is not there."""
    sounds = sounds_dir if isinstance(sounds_dir, SoundsDir) else SoundsDir(sounds_dir, subfolder)
    try:
        manifest = Manifest.load(prompts_dir)
    except ManifestError as error:
        raise DeployError(str(error)) from None
    out = manifest.out_dir(prompts_dir)
    chosen = [language for language in sorted(manifest.prompts) if languages is None or language in languages]
    if not chosen or not out.is_dir():
        what = f" in {', '.join(languages)}" if languages else ""
        raise DeployError(f"nothing is built{what}: {prompts_dir / MANIFEST_FILE} lists no built prompts or {out} "
                          "does not exist; run `ivrkit prompts build` (recordings) and `ivrkit prompts synth` "
                          "(placeholders) first")
    sounds.check()
    report = DeployReport()
    total = sum(len(manifest.prompts[language]) for language in chosen)
    done = 0
    if languages is None:  # a language gone from the build altogether: what deploy put there goes too
        for language in sorted(set(sounds.deployed_languages()) - set(chosen)):
            folder = sounds.prompts(language)
            _remove_stale(folder, _read_list(folder), [], f"{language}/{sounds.subfolder}", report, progress)
            (folder / DEPLOYED_LIST).unlink()
            _remove_empty_parents(folder, sounds.language(language))
    for language in chosen:
        folder = sounds.prompts(language)
        _make_folder(folder, sounds)
        before = _read_list(folder)
        deployed: list[str] = []
        for prompt, entry in sorted(manifest.prompts[language].items()):
            done += 1
            copied, kept, missing = [], [], []
            for fmt in entry.formats:
                name = f"{prompt}.{fmt}"
                source = manifest.built_file(prompts_dir, language, prompt, fmt)
                shown = f"{language}/{sounds.subfolder}/{name}"
                if not source.is_file():
                    missing.append(fmt)
                    report.missing.append(shown)
                    if name in before:
                        deployed.append(name)  # an older build stays until this one is built
                    continue
                target = folder / name
                deployed.append(name)
                if target.is_file() and same_file(source, target):
                    kept.append(fmt)
                    report.unchanged.append(shown)
                    _set_mode(target, FILE_MODE)
                else:
                    _copy(source, target, folder)
                    copied.append(fmt)
                    report.copied.append(shown)
            if progress is not None:
                said = [f"copied {', '.join(copied)}" if copied else "", f"unchanged {', '.join(kept)}" if kept else "",
                        f"NOT BUILT {', '.join(missing)} (run `ivrkit prompts build`)" if missing else ""]
                progress(f"[{done:{len(str(total))}}/{total}] {language}/{prompt}: {'; '.join(s for s in said if s)}")
        _remove_stale(folder, before, deployed, f"{language}/{sounds.subfolder}", report, progress)
        _write_list(folder, deployed)
        _link_stand_ins(sounds, language, report, progress)
    return report


def _remove_stale(folder: Path, before: list[str], deployed: list[str], shown: str, report: DeployReport,
                  progress: Progress | None) -> None:
    """Remove the files an earlier deploy listed that this one did not deploy (and folders they leave empty)."""
    for name in sorted(set(before) - set(deployed)):
        target = folder / name
        if target.is_file() or target.is_symlink():
            target.unlink()
            report.removed.append(f"{shown}/{name}")
            if progress is not None:
                progress(f"removed {shown}/{name} (no longer built)")
            _remove_empty_parents(target.parent, folder)


def _link_stand_ins(sounds: SoundsDir, language: str, report: DeployReport, progress: Progress | None) -> None:
    """The few sounds a language's Asterisk package lacks although Asterisk asks for them when it says numbers
    and times (asterisk-prompt-de has no ``digits/1N``), linked to the sound that says the same."""
    folder = sounds.language(language)
    try:
        links = install_stand_ins(folder, language)
    except OSError as error:
        raise DeployError(f"cannot link the sounds {language} lacks in {folder}: {error}") from None
    for link in links:
        shown = f"{language}/{link.relative_to(folder).as_posix()}"
        report.linked.append(shown)
        if progress is not None:
            progress(f"linked {shown} to {os.readlink(link)} (Asterisk asks for it; the '{language}' sounds lack it)")


def same_file(first: Path, second: Path) -> bool:
    """Same bytes (the size is compared first, so most changed files cost no reading)."""
    try:
        return filecmp.cmp(first, second, shallow=False)
    except OSError:
        return False


def _make_folder(folder: Path, sounds: SoundsDir) -> None:
    created = [path for path in (folder, *folder.parents) if not path.exists() and not path.is_symlink()]
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    except (FileExistsError, FileNotFoundError, NotADirectoryError):
        hint = "" if sounds.root is not None else (
            "; if the sounds folder is inside a chroot or container, give its root with --root so that links "
            "are followed inside it")
        raise DeployError(f"cannot create {folder}: a part of it is not a folder (a broken symbolic link?){hint}"
                          ) from None
    except PermissionError:
        raise DeployError(f"no permission to create {folder}: deploy as the user that owns the sounds folder "
                          "(often root: sudo)") from None
    for path in {folder, *created}:  # mkdir's mode is cut by the umask
        _set_mode(path, FOLDER_MODE)


def _copy(source: Path, target: Path, folder: Path) -> None:
    """Write ``target`` through a temporary file beside it and rename it into place (a call never streams half a
    file), mode 0644 whatever the umask."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    for parent in _parents_below(target.parent, folder):
        _set_mode(parent, FOLDER_MODE)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, open(source, "rb") as data:
            while chunk := data.read(1 << 16):
                out.write(chunk)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, target)
    except PermissionError:
        Path(temporary).unlink(missing_ok=True)
        raise DeployError(f"no permission to write {target}: deploy as the user that owns the sounds folder") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _set_mode(path: Path, mode: int) -> None:
    if path.stat().st_mode & 0o777 != mode:
        os.chmod(path, mode)


def _parents_below(path: Path, top: Path) -> list[Path]:
    """``path`` and its parents up to (not including) ``top``."""
    found = []
    while path != top and top in path.parents:
        found.append(path)
        path = path.parent
    return found


def _remove_empty_parents(path: Path, top: Path) -> None:
    for parent in _parents_below(path, top):
        try:
            parent.rmdir()
        except OSError:
            return


def _read_list(folder: Path) -> list[str]:
    """The files this deploy put in ``folder`` last time; names that could point outside it are ignored."""
    try:
        data = json.loads((folder / DEPLOYED_LIST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        raise DeployError(f"{folder / DEPLOYED_LIST} cannot be read ({error}): it lists the files deploy put "
                          "there; delete it (the old files then stay) and deploy again") from None
    names = data.get("files", []) if isinstance(data, dict) else []
    return [name for name in names if isinstance(name, str) and DEPLOYED_NAME.fullmatch(name)
            and ".." not in name.split("/")]


def _write_list(folder: Path, names: list[str]) -> None:
    text = json.dumps({"files": sorted(names)}, indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=f"{DEPLOYED_LIST}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, folder / DEPLOYED_LIST)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
