"""Real audio files for the prompt tests: tones, silence, clipping, other formats, espeak-ng speech.

Everything is generated on the spot (no audio is committed) and measured here with the ``wave`` module and
plain arithmetic, independently of the code under test. Levels are dBFS against a full-scale square wave,
as pydub measures them: a sine whose peak is at -6 dBFS has an RMS of about -9 dBFS.
"""

from __future__ import annotations

import array
import json
import math
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

Piece = tuple[str, float, float, float]  # ("tone" | "silence" | "clip", seconds, peak dBFS, frequency)
FULL_SCALE = {1: 128, 2: 32768, 3: 8388608, 4: 2147483648}
# Skip (fail under CI) without the tool, naming the package to install: fixtures in tests/prompts/conftest.py.
needs_ffmpeg = pytest.mark.usefixtures("ffmpeg_installed")
needs_espeak = pytest.mark.usefixtures("espeak_installed")


def tone_piece(seconds: float, level: float = -6.0, frequency: float = 440.0) -> Piece:
    return ("tone", seconds, level, frequency)


def silence_piece(seconds: float) -> Piece:
    return ("silence", seconds, -math.inf, 0.0)


def clip_piece(seconds: float, overdrive: float = 6.0, frequency: float = 440.0) -> Piece:
    """A sine driven ``overdrive`` dB past full scale and cut off there: flat tops of clipped samples."""
    return ("clip", seconds, overdrive, frequency)


def write_wav(path: Path, pieces: list[Piece], *, rate: int = 8000, channels: int = 1, sample_width: int = 2) -> Path:
    """A PCM wav of the pieces in order; every channel carries the same signal."""
    full = FULL_SCALE[sample_width]
    values: list[int] = []
    for kind, seconds, level, frequency in pieces:
        count = round(seconds * rate)
        if kind == "silence":
            values.extend([0] * count)
            continue
        amplitude = full * 10 ** (level / 20)
        for n in range(count):
            value = round(amplitude * math.sin(2 * math.pi * frequency * n / rate))
            values.append(max(-full, min(full - 1, value)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(sample_width)
        out.setframerate(rate)
        out.writeframes(_pack([v for v in values for _ in range(channels)], sample_width))
    return path


def tone(path: Path, seconds: float = 1.0, level: float = -6.0, frequency: float = 440.0, *, rate: int = 8000,
         channels: int = 1, sample_width: int = 2) -> Path:
    """A sine tone of ``seconds`` whose peak is at ``level`` dBFS."""
    return write_wav(path, [tone_piece(seconds, level, frequency)], rate=rate, channels=channels,
                     sample_width=sample_width)


def silence(path: Path, seconds: float = 1.0, *, rate: int = 8000, channels: int = 1) -> Path:
    return write_wav(path, [silence_piece(seconds)], rate=rate, channels=channels)


def padded(path: Path, seconds: float = 1.0, level: float = -6.0, *, before: float = 0.5, after: float = 0.5,
           rate: int = 8000, channels: int = 1) -> Path:
    """A tone with silence before and after it (what trimming removes)."""
    pieces = [silence_piece(before), tone_piece(seconds, level), silence_piece(after)]
    return write_wav(path, pieces, rate=rate, channels=channels)


def clipped(path: Path, seconds: float = 0.5, overdrive: float = 6.0, *, rate: int = 8000) -> Path:
    return write_wav(path, [clip_piece(seconds, overdrive)], rate=rate)


def convert(source: Path, fmt: str, target: Path | None = None) -> Path:
    """``source`` re-encoded by ffmpeg as mp3, ogg, flac, m4a, opus, ... (by the extension); the wav is removed
    unless ``target`` is given elsewhere."""
    target = target or source.with_suffix(f".{fmt}")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), str(target)], check=True)
    if target.parent == source.parent and target.stem == source.stem and source.suffix == ".wav":
        source.unlink()
    return target


def speech(path: Path, text: str, voice: str = "en-us", speed: int = 175) -> Path:
    """``text`` spoken by espeak-ng into a wav (22050 Hz mono)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), "--", text], check=True,
                   capture_output=True)
    return path


@dataclass(frozen=True)
class Measured:
    rate: int
    channels: int
    sample_width: int
    seconds: float
    loudness: float  # dBFS RMS of the 10 ms frames above ``threshold`` (the first channel)
    peak: float  # dBFS of the highest sample


def measure(path: Path, threshold: float = -45.0) -> Measured:
    """A PCM wav's format and levels, computed here without pydub."""
    with wave.open(str(path), "rb") as audio:
        rate, channels, width = audio.getframerate(), audio.getnchannels(), audio.getsampwidth()
        data = audio.readframes(audio.getnframes())
    samples = _unpack(data, width)[::channels]
    full = FULL_SCALE[width]
    size = rate // 100
    loud: list[float] = []
    for start in range(0, len(samples), size):
        frame = samples[start:start + size]
        power = sum(s * s for s in frame) / len(frame)
        if power > 0 and 10 * math.log10(power / full**2) >= threshold:
            loud.extend(s * s for s in frame)
    loudness = 10 * math.log10(sum(loud) / len(loud) / full**2) if loud else -math.inf
    highest = max((abs(s) for s in samples), default=0)
    peak = 20 * math.log10(highest / full) if highest else -math.inf
    return Measured(rate, channels, width, len(samples) / rate, loudness, peak)


def probe(path: Path) -> dict[str, object]:
    """ffprobe's view of the first audio stream (codec_name, sample_rate, channels, ...) and the format."""
    result = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                            check=True, capture_output=True, text=True)
    data = json.loads(result.stdout)
    return {**data["format"], **data["streams"][0]}


def _pack(values: list[int], width: int) -> bytes:
    if width == 1:
        return bytes((v + 128) & 0xFF for v in values)
    if width == 3:
        return b"".join((v & 0xFFFFFF).to_bytes(3, "little") for v in values)
    packed = array.array("h" if width == 2 else "i", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack(data: bytes, width: int) -> list[int]:
    if width == 1:
        return [b - 128 for b in data]
    if width == 3:
        return [int.from_bytes(data[i:i + 3], "little", signed=True) for i in range(0, len(data), 3)]
    values = array.array("h" if width == 2 else "i")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()
