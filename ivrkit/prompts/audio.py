"""One recording made into what Asterisk plays without transcoding: pure processing with pydub and ffmpeg.

:func:`load` reads any format ffmpeg reads (and the headerless Asterisk formats by their extension).
:func:`process` mixes to mono, resamples with ffmpeg (8 kHz, and 16 kHz when a wideband format is wanted),
trims the silence at both ends, measures the speech and applies the gain that brings it to the loudness
target without pushing a peak over the ceiling, and says what a designer should know about the recording
(clipping, long pauses, a gain limited by a peak, silence). :meth:`ProcessedAudio.encode` gives the bytes of
one output format. Nothing here writes files: ``build.py`` decides where the bytes go.

Levels are in dBFS against a full-scale square wave (pydub's measure): a full-scale sine has an RMS of
-3 dBFS. The speech level is the RMS of the 10 ms frames above the silence threshold, so pauses between
words do not make a prompt look quieter than it sounds.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivrkit.prompts.settings import BuildSettings

with warnings.catch_warnings():
    # pydub imports audioop, deprecated since Python 3.11 (audioop-lts replaces it from 3.13 on), and warns
    # at import when ffmpeg is missing: we say that ourselves, with what to install (require_ffmpeg).
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.audio_segment import fix_wav_headers
    from pydub.exceptions import CouldntDecodeError

NARROW_RATE = 8000  # Asterisk's native rate: wav, sln, ulaw, alaw, gsm
WIDE_RATE = 16000  # sln16 and g722
WIDE_FORMATS = frozenset({"sln16", "g722"})
FRAME_SECONDS = 0.01  # the analysis frame
QUIET_GAIN = 20.0  # dB: more gain than this raises the noise with the speech, so it is worth a warning
# The headerless formats, read by their extension: ffmpeg's input format (None: 16-bit samples as they are)
# and the sample rate Asterisk uses for them.
RAW_SOURCES: dict[str, tuple[str | None, int]] = {
    ".sln": (None, NARROW_RATE),
    ".sln16": (None, WIDE_RATE),
    ".ulaw": ("mulaw", NARROW_RATE),
    ".alaw": ("alaw", NARROW_RATE),
    ".gsm": ("gsm", NARROW_RATE),
    ".g722": ("g722", WIDE_RATE),
}
# The outputs ffmpeg encodes: format -> (ffmpeg codec, ffmpeg muxer).
ENCODED = {
    "ulaw": ("pcm_mulaw", "mulaw"),
    "alaw": ("pcm_alaw", "alaw"),
    "gsm": ("libgsm", "gsm"),
    "g722": ("g722", "g722"),
}


class AudioError(Exception):
    """A recording cannot be read or converted; the message names the file and what went wrong."""


def require_ffmpeg() -> None:
    """Raise AudioError saying what to install when ffmpeg (and ffprobe, which pydub uses) is missing."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise AudioError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: "
                         "apt-get install ffmpeg")


def load(path: Path) -> Any:
    """The recording as a pydub AudioSegment at its own rate and channels (raises AudioError)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".wav":
            return _load_wav(path)
        if suffix in RAW_SOURCES:
            return _load_raw(path, *RAW_SOURCES[suffix])
        return AudioSegment.from_file(str(path))
    except CouldntDecodeError as error:
        raise AudioError(f"ffmpeg cannot read it: {_ffmpeg_reason(str(error), path)}") from None
    except (OSError, IndexError, KeyError, ValueError) as error:
        raise AudioError(f"cannot read it as audio ({error})") from None


def _load_wav(path: Path) -> Any:
    """A PCM wav is read by pydub itself; ffmpeg decodes the others (float, extensible, compressed in a wav)."""
    try:
        with wave.open(str(path), "rb"):
            pass
    except (wave.Error, EOFError):
        data = bytearray(_ffmpeg(["-i", str(path), "-vn", "-map", "0:a:0", "-c:a", "pcm_s16le", "-f", "wav",
                                  "pipe:1"], b"", reading=path))
        fix_wav_headers(data)
        return AudioSegment(data=bytes(data))
    with path.open("rb") as handle:  # pydub leaves a file it opened itself open
        return AudioSegment.from_file(handle, format="wav")


def _load_raw(path: Path, fmt: str | None, rate: int) -> Any:
    """A headerless Asterisk file: its rate is known by its extension (ffmpeg would guess 44.1 kHz)."""
    if fmt is None:
        data = path.read_bytes()
        return AudioSegment(data=data[:len(data) // 2 * 2], sample_width=2, frame_rate=rate, channels=1)
    given = [] if fmt == "g722" else ["-ar", str(rate)]  # the g722 demuxer knows its rate and takes none
    data = _ffmpeg(["-f", fmt, *given, "-i", str(path), "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"], b"",
                   reading=path)
    return AudioSegment(data=data, sample_width=2, frame_rate=rate, channels=1)


def _ffmpeg_reason(output: str, path: Path | None = None) -> str:
    """The line of ffmpeg's output that says what is wrong (its last non-empty one), without the file name."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Decoding failed", "Output from ffmpeg"))]
    reason = lines[-1] if lines else "unknown error"
    return reason.removeprefix(f"{path}: ") if path is not None else reason


def _ffmpeg(arguments: list[str], data: bytes, reading: Path | None = None) -> bytes:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *arguments]
    try:
        result = subprocess.run(command, input=data, capture_output=True, check=False)
    except FileNotFoundError:
        raise AudioError("ffmpeg is not installed: apt-get install ffmpeg") from None
    if result.returncode != 0:
        reason = _ffmpeg_reason(result.stderr.decode(errors="replace"), reading)
        if reading is not None:
            raise AudioError(f"ffmpeg cannot read it: {reason}")
        raise AudioError(f"ffmpeg failed ({' '.join(arguments)}): {reason}")
    return result.stdout


def mono(segment: Any, rate: int) -> Any:
    """The segment as 16-bit mono at ``rate``; ffmpeg resamples (pydub's resampler does not filter aliases)."""
    segment = segment.set_channels(1).set_sample_width(2)
    if segment.frame_rate == rate:
        return segment
    data = _ffmpeg(["-f", "s16le", "-ar", str(segment.frame_rate), "-ac", "1", "-i", "pipe:0",
                    "-ar", str(rate), "-f", "s16le", "pipe:1"], segment.raw_data)
    return AudioSegment(data=data, sample_width=2, frame_rate=rate, channels=1)


def dbfs(amplitude: float, full_scale: float = 32768.0) -> float:
    """An amplitude (RMS or peak) in dBFS; -inf for silence."""
    return 20 * math.log10(amplitude / full_scale) if amplitude > 0 else -math.inf


@dataclass(frozen=True)
class Levels:
    """The 10 ms frame levels of a 16-bit mono segment and what follows from them."""

    frames: list[float]  # RMS amplitude of each frame
    frame_samples: int
    threshold: float  # dBFS: below is silence

    @classmethod
    def of(cls, segment: Any, threshold: float) -> Levels:
        size = max(1, round(segment.frame_rate * FRAME_SECONDS))
        count = math.ceil(int(segment.frame_count()) / size)
        frames = [float(segment.get_sample_slice(i * size, (i + 1) * size).rms) for i in range(count)]
        return cls(frames, size, threshold)

    def loud(self, index: int) -> bool:
        return dbfs(self.frames[index]) >= self.threshold

    @property
    def speech(self) -> list[int]:
        return [i for i in range(len(self.frames)) if self.loud(i)]

    def speech_rms(self) -> float:
        """dBFS of the frames above the threshold (-inf when there are none)."""
        loud = [self.frames[i] for i in self.speech]
        return dbfs(math.sqrt(sum(level * level for level in loud) / len(loud))) if loud else -math.inf

    def pauses(self, longer_than: float) -> list[tuple[float, float]]:
        """(start, length) in seconds of the silent stretches between the first and last loud frame."""
        speech = self.speech
        found, start = [], None
        for index in range(speech[0], speech[-1] + 1) if speech else ():
            if not self.loud(index):
                start = index if start is None else start
                continue
            if start is not None and (index - start) * FRAME_SECONDS >= longer_than:
                found.append((start * FRAME_SECONDS, (index - start) * FRAME_SECONDS))
            start = None
        return found


def clipped_samples(segment: Any, level: float) -> int:
    """How many samples (of any channel) reach ``level`` dBFS: where the recording ran into full scale."""
    limit = segment.max_possible_amplitude * 10 ** (level / 20)
    if segment.max < limit:
        return 0
    return sum(1 for sample in segment.get_array_of_samples() if abs(sample) >= limit)


@dataclass
class ProcessedAudio:
    """The built prompt: 8 kHz (and 16 kHz) mono 16-bit audio and its measures."""

    narrow: Any  # pydub AudioSegment, 8 kHz mono 16-bit
    wide: Any | None  # the same at 16 kHz, when a wideband format was asked for
    duration: float  # seconds
    loudness: float | None  # dBFS RMS of the speech, built
    peak: float | None  # dBFS, built
    source_loudness: float | None  # dBFS RMS of the speech in the source
    gain: float  # dB applied
    warnings: list[str] = field(default_factory=list)

    def encode(self, fmt: str) -> bytes:
        """The bytes of the built audio in ``fmt``: wav, sln, sln16, ulaw, alaw, gsm or g722."""
        if fmt == "wav":
            buffer = io.BytesIO()
            self.narrow.export(buffer, format="wav")
            return buffer.getvalue()
        segment = self.wide if fmt in WIDE_FORMATS else self.narrow
        if segment is None:
            raise ValueError(f"{fmt} needs the 16 kHz audio: process it with that format")
        if fmt in ("sln", "sln16"):
            return bytes(segment.raw_data)
        if fmt not in ENCODED:
            raise ValueError(f"unknown prompt format '{fmt}'")
        codec, muxer = ENCODED[fmt]
        return _ffmpeg(["-f", "s16le", "-ar", str(segment.frame_rate), "-ac", "1", "-i", "pipe:0",
                        "-c:a", codec, "-f", muxer, "pipe:1"], segment.raw_data)


def process(source: Any, settings: BuildSettings, formats: tuple[str, ...] = ()) -> ProcessedAudio:
    """Trim, measure, normalise and resample one loaded recording (see the module docstring)."""
    warned: list[str] = []
    clipped = clipped_samples(source, settings.warn.clipping)
    if clipped:
        warned.append(f"clipping: {clipped} samples at full scale in the source (at or above "
                      f"{settings.warn.clipping:g} dBFS): it distorts; record it again with less input gain")
    narrow = mono(source, NARROW_RATE)
    wide = mono(source, WIDE_RATE) if WIDE_FORMATS & set(formats) else None
    levels = Levels.of(narrow, settings.trim.threshold)
    speech = levels.speech
    if not speech:
        warned.append(f"silent: nothing in the recording is louder than {settings.trim.threshold:g} dBFS; is it "
                      "the right file?")
        return _finish(narrow, wide, 0.0, None, settings.trim.threshold, warned)
    keep = settings.trim.keep
    start = max(0.0, speech[0] * FRAME_SECONDS - keep)
    end = min(narrow.frame_count() / NARROW_RATE, (speech[-1] + 1) * FRAME_SECONDS + keep)
    narrow, wide = _cut(narrow, start, end), (_cut(wide, start, end) if wide is not None else None)
    for at, length in levels.pauses(settings.warn.long_silence):
        warned.append(f"silence: {length:.1f} s of silence at {at - start:.2f} s; cut it, or split the prompt in two")
    source_loudness = levels.speech_rms()
    gain = 0.0
    if settings.loudness is not None:
        gain = settings.loudness - source_loudness
        peak = max(narrow.max, wide.max if wide is not None else 0)
        headroom = settings.peak - dbfs(peak)
        if gain > headroom:
            warned.append(f"peak: the gain was limited by a peak at {dbfs(peak):.1f} dBFS, so the prompt is at "
                          f"{source_loudness + headroom:.1f} dBFS instead of {settings.loudness:g}; a click or "
                          "a loud syllable stands out: edit it down, or compress the recording")
            gain = headroom
        elif gain > QUIET_GAIN:
            warned.append(f"quiet: the speech is at {source_loudness:.1f} dBFS, so it was raised {gain:.1f} dB and "
                          "its noise with it; record it again closer to the microphone")
    return _finish(narrow, wide, gain, source_loudness, settings.trim.threshold, warned)


def _cut(segment: Any, start: float, end: float) -> Any:
    rate = segment.frame_rate
    return segment.get_sample_slice(round(start * rate), round(end * rate))


def _finish(narrow: Any, wide: Any | None, gain: float, source_loudness: float | None, threshold: float,
            warned: list[str]) -> ProcessedAudio:
    """Apply the gain and measure what the caller will hear (the speech frames moved up with the gain)."""
    if gain:
        narrow = narrow.apply_gain(gain)
        wide = wide.apply_gain(gain) if wide is not None else None
    built = Levels.of(narrow, threshold + gain).speech_rms() if source_loudness is not None else narrow.dBFS
    return ProcessedAudio(
        narrow=narrow,
        wide=wide,
        duration=round(narrow.frame_count() / NARROW_RATE, 3),
        loudness=_level(built),
        peak=_level(dbfs(narrow.max)),
        source_loudness=_level(source_loudness),
        gain=round(gain, 2),
        warnings=warned,
    )


def _level(value: float | None) -> float | None:
    return round(value, 2) if value is not None and math.isfinite(value) else None
