"""How prompts are built and placeholders made: ``prompts/settings.yaml`` (optional; every setting has a default).

::

    build:
      out: ../build/prompts      # the built audio, relative to the prompts folder
      formats: [sln16]           # besides the 8 kHz wav: sln sln16 ulaw alaw gsm g722
      loudness: -20              # dBFS RMS of the speech; null: no normalisation
      peak: -1                   # dBFS the gain never pushes a peak above
      trim: {threshold: -45, keep: 150ms}
      warn: {long_silence: 2s, loudness_spread: 6, clipping: -0.1}
    synth:
      engine: espeak-ng
      voices: {en: en-us, de: de}
      speed: 150

It is read with the flow language's located YAML and field types, so a mistake is ``file:line:col: message``
with the source line and a hint (:class:`PromptSettingsError`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivrkit.flow.diagnostics import Diagnostics, relative_name
from ivrkit.flow.fields import INVALID, Duration, Field, Integer, ListOf, MapOf, Option, ParseContext, Record, Text
from ivrkit.flow.source import Mapping, Node, describe, read_source
from ivrkit.prompts.manifest import DEFAULT_OUT

SETTINGS_FILE = "settings.yaml"
# The formats a build can write besides the wav, as Asterisk names them by their file extension.
FORMATS = ("sln", "sln16", "ulaw", "alaw", "gsm", "g722")
FORMAT_NAMES = (*FORMATS, "wav")  # naming the wav, which is always built, does no harm
ENGINES = ("espeak-ng",)


class PromptSettingsError(Exception):
    """The settings file cannot be used; the message has every problem at its ``file:line:col``."""


@dataclass(frozen=True)
class TrimSettings:
    threshold: float = -45.0  # dBFS: quieter than this at either end is silence
    keep: float = 0.15  # seconds of that silence kept at each end, so the prompt does not start abruptly


@dataclass(frozen=True)
class WarnSettings:
    long_silence: float = 2.0  # seconds: a pause inside a prompt at least this long is reported
    loudness_spread: float = 6.0  # dB from the median of the language's recordings
    clipping: float = -0.1  # dBFS: source samples at or above this are counted as clipped


@dataclass(frozen=True)
class BuildSettings:
    out: str = DEFAULT_OUT
    formats: tuple[str, ...] = ()
    loudness: float | None = -20.0
    peak: float = -1.0
    trim: TrimSettings = field(default_factory=TrimSettings)
    warn: WarnSettings = field(default_factory=WarnSettings)

    @property
    def all_formats(self) -> tuple[str, ...]:
        """The wav and the extra formats, each once."""
        return ("wav", *dict.fromkeys(f for f in self.formats if f != "wav"))

    def key(self) -> str:
        """Everything about the settings that changes the built audio or its warnings, as stable text."""
        data = {k: v for k, v in asdict(self).items() if k != "out"}
        data["formats"] = list(self.all_formats)
        return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class SynthSettings:
    engine: str = "espeak-ng"
    voices: dict[str, str] = field(default_factory=dict)
    speed: int = 150  # words per minute

    def voice(self, language: str) -> str:
        """The voice for a language: the one configured, else the language code itself (espeak-ng knows most)."""
        return self.voices.get(language) or self.voices.get(language.split("_")[0].split("-")[0]) or (
            language.replace("_", "-").lower())


@dataclass(frozen=True)
class PromptSettings:
    build: BuildSettings = field(default_factory=BuildSettings)
    synth: SynthSettings = field(default_factory=SynthSettings)
    source: str | None = None  # the settings file; None: defaults

    @classmethod
    def load(cls, prompts_dir: Path) -> PromptSettings:
        """``<prompts_dir>/settings.yaml``, or the defaults when there is none."""
        path = prompts_dir / SETTINGS_FILE
        if not path.exists():
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise PromptSettingsError(f"{relative_name(path)}: cannot read the prompt settings ({reason})") from None
        return parse_prompt_settings(text, relative_name(path))

    def out_dir(self, prompts_dir: Path) -> Path:
        """Where the built audio goes."""
        return prompts_dir / self.build.out


class Decibels(Field[float | None]):
    """A level in dBFS (or dB), a number in a range; ``null`` where no level means 'off'."""

    def __init__(self, minimum: float, maximum: float, nullable: bool = False, what: str = "level in dBFS"):
        self.minimum, self.maximum, self.nullable = minimum, maximum, nullable
        self.type_name = what

    def parse(self, node: Node, ctx: ParseContext) -> float | None:
        value = self._scalar(node, ctx)
        if value is INVALID:
            return value
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = "write a number such as -20" + (", or null for none" if self.nullable else "")
            return ctx.error(node, f"expected a {self.type_name}, got {describe(node)}", hint)
        if not self.minimum <= value <= self.maximum:
            return ctx.error(node, f"{value} is out of range ({self.minimum:g} to {self.maximum:g})")
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        number = {"type": "number", "minimum": self.minimum, "maximum": self.maximum}
        return {"anyOf": [number, {"type": "null"}]} if self.nullable else number


class OutFolder(Text):
    def parse(self, node: Node, ctx: ParseContext) -> str:
        value = super().parse(node, ctx)
        if value is not INVALID and not value.strip():
            return ctx.error(node, "the out folder is empty", f"the default is {DEFAULT_OUT}")
        return value


_BUILD, _TRIM, _WARN, _SYNTH = BuildSettings(), TrimSettings(), WarnSettings(), SynthSettings()
TRIM_OPTIONS = {
    "threshold": Option(Decibels(-100, 0), "Quieter than this (dBFS) at either end is silence.", _TRIM.threshold),
    "keep": Option(Duration(maximum=5), "Silence kept at each end.", _TRIM.keep),
}
WARN_OPTIONS = {
    "long_silence": Option(Duration(maximum=60), "Warn about a pause inside a prompt this long.", _WARN.long_silence),
    "loudness_spread": Option(Decibels(0, 60, what="difference in dB"), "Warn about a recording this many dB "
                              "louder or quieter than the median of its language.", _WARN.loudness_spread),
    "clipping": Option(Decibels(-20, 0), "Source samples at or above this (dBFS) count as clipped.", _WARN.clipping),
}
BUILD_OPTIONS = {
    "out": Option(OutFolder(what="folder"), "The built audio folder, relative to the prompts folder.", _BUILD.out),
    "formats": Option(ListOf(Text(choices=FORMAT_NAMES, what="format")), "Formats besides the 8 kHz wav.", []),
    "loudness": Option(Decibels(-60, 0, nullable=True), "Speech loudness (RMS dBFS); null: no normalisation.",
                       _BUILD.loudness),
    "peak": Option(Decibels(-30, 0), "The gain never pushes a peak above this (dBFS).", _BUILD.peak),
    "trim": Option(Record(TRIM_OPTIONS, factory=TrimSettings, what="trim settings"),
                   "Leading and trailing silence.", _TRIM),
    "warn": Option(Record(WARN_OPTIONS, factory=WarnSettings, what="warning settings"), "When to warn.", _WARN),
}
SYNTH_OPTIONS = {
    "engine": Option(Text(choices=ENGINES, what="engine"), "The text-to-speech engine.", _SYNTH.engine),
    "voices": Option(MapOf(Text(what="language"), Text(what="voice"), what="mapping of languages to voices"),
                     "The voice per language (default: the language code).", {}),
    "speed": Option(Integer(80, 450), "Words per minute.", _SYNTH.speed),
}
SETTINGS_OPTIONS = {
    "build": Option(Record(BUILD_OPTIONS, what="build settings"), "How recordings are built.", {}),
    "synth": Option(Record(SYNTH_OPTIONS, what="synth settings"), "How placeholders are rendered.", {}),
}


def is_blank(text: str) -> bool:
    """True for a YAML file with nothing in it but comments (invalid YAML is not blank: it is reported)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader) is None
    except yaml.YAMLError:
        return False


def parse_prompt_settings(text: str, file: str = SETTINGS_FILE) -> PromptSettings:
    """Settings from the file's text; raises PromptSettingsError with every problem found."""
    diagnostics = Diagnostics()
    if is_blank(text):
        return PromptSettings(source=file)
    root = read_source(file, text, diagnostics)
    if root is not None and not isinstance(root, Mapping):
        diagnostics.error(root.location, f"the prompt settings are a mapping, got {describe(root)}",
                          "start with 'build:' or 'synth:'")
    values: Any = INVALID
    if isinstance(root, Mapping):
        values = Record(SETTINGS_OPTIONS, what="prompt settings").parse(root, ParseContext(diagnostics))
    if values is INVALID or diagnostics.errors:
        raise PromptSettingsError(diagnostics.render())
    build = dict(values["build"] or {})
    synth = dict(values["synth"] or {})
    for name, option in BUILD_OPTIONS.items():
        build.setdefault(name, option.default)
    for name, option in SYNTH_OPTIONS.items():
        synth.setdefault(name, option.default)
    build["formats"] = tuple(dict.fromkeys(build["formats"] or ()))
    return PromptSettings(BuildSettings(**build), SynthSettings(**synth), file)
