"""One recording processed: any format in, 8 kHz mono 16-bit out; trimming, loudness, peaks and warnings.

The levels are measured here (tests/prompts/audio.py), not with the code under test.
"""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from ivrkit.prompts import audio
from ivrkit.prompts.settings import BuildSettings, TrimSettings, WarnSettings
from tests.prompts.audio import (
    Measured,
    clip_piece,
    clipped,
    convert,
    measure,
    needs_espeak,
    needs_ffmpeg,
    padded,
    probe,
    silence,
    silence_piece,
    speech,
    tone,
    tone_piece,
    write_wav,
)

pytestmark = needs_ffmpeg
DEFAULT = BuildSettings()


def built(source: Path, settings: BuildSettings = DEFAULT, formats: tuple[str, ...] = ()) -> audio.ProcessedAudio:
    return audio.process(audio.load(source), settings, formats or settings.all_formats)


def wav_of(result: audio.ProcessedAudio, tmp_path: Path) -> Measured:
    path = tmp_path / "built.wav"
    path.write_bytes(result.encode("wav"))
    return measure(path)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg", "flac", "m4a", "opus"])
def test_every_common_format_becomes_8khz_mono_16bit_at_the_target(tmp_path: Path, fmt: str) -> None:
    source = padded(tmp_path / "source.wav", 1.0, -10.0, before=0.4, after=0.4, rate=44100, channels=2)
    if fmt != "wav":
        source = convert(source, fmt)
    result = built(source)
    out = wav_of(result, tmp_path)
    assert (out.rate, out.channels, out.sample_width) == (8000, 1, 2)
    # Encoder padding (mp3, m4a) is silence too, so every format trims to the tone plus 150 ms each side.
    assert out.seconds == pytest.approx(1.3, abs=0.03) and result.duration == pytest.approx(out.seconds, abs=0.001)
    assert out.loudness == pytest.approx(-20.0, abs=0.5)
    assert result.loudness == pytest.approx(out.loudness, abs=0.1)
    assert result.source_loudness == pytest.approx(-13.0, abs=0.5)  # a -10 dBFS peak sine's RMS
    assert result.warnings == []


def test_sample_widths_and_rates_are_read(tmp_path: Path) -> None:
    for width, rate in ((1, 11025), (3, 48000), (4, 16000)):
        result = built(tone(tmp_path / f"w{width}.wav", 0.5, -10.0, rate=rate, sample_width=width))
        out = wav_of(result, tmp_path)
        assert (out.rate, out.seconds) == (8000, 0.5)
        assert out.loudness == pytest.approx(-20.0, abs=0.5), width


def test_each_output_format_has_the_expected_codec_rate_and_size(tmp_path: Path) -> None:
    result = built(tone(tmp_path / "source.wav", 1.0, -10.0, rate=22050),
                   BuildSettings(formats=("sln", "sln16", "ulaw", "alaw", "gsm", "g722")))
    assert result.duration == 1.0
    sizes = {"sln": 16000, "sln16": 32000, "ulaw": 8000, "alaw": 8000, "gsm": 1650, "g722": 8000}
    for fmt, size in sizes.items():
        path = tmp_path / f"built.{fmt}"
        path.write_bytes(result.encode(fmt))
        assert path.stat().st_size == size, fmt
        again = audio.load(path)  # the headerless formats read back at their rate, a second long
        assert len(again) == pytest.approx(1000, abs=25), fmt
        assert audio.mono(again, 8000).dBFS == pytest.approx(-20.0, abs=1.0), fmt
    wav = tmp_path / "built.wav"
    wav.write_bytes(result.encode("wav"))
    with wave.open(str(wav), "rb") as read:
        assert (read.getframerate(), read.getnchannels(), read.getsampwidth(), read.getnframes()) == (8000, 1, 2, 8000)
    info = probe(wav)
    assert (info["codec_name"], info["sample_rate"], info["channels"]) == ("pcm_s16le", "8000", 1)


def test_trimming_keeps_the_configured_silence(tmp_path: Path) -> None:
    source = padded(tmp_path / "source.wav", 0.8, -12.0, before=0.6, after=1.1)
    assert built(source).duration == pytest.approx(1.1, abs=0.011)
    keep_none = BuildSettings(trim=TrimSettings(keep=0.0))
    assert built(source, keep_none).duration == pytest.approx(0.8, abs=0.011)
    keep_more = BuildSettings(trim=TrimSettings(keep=0.8))  # more than there is before: all of it
    assert built(source, keep_more).duration == pytest.approx(0.6 + 0.8 + 0.8, abs=0.011)


def test_the_threshold_decides_what_is_silence(tmp_path: Path) -> None:
    pieces = [tone_piece(0.5, -50.0, 100.0), tone_piece(0.5, -10.0), tone_piece(0.5, -50.0, 100.0)]
    source = write_wav(tmp_path / "hum.wav", pieces)
    assert built(source).duration == pytest.approx(0.8, abs=0.011)  # a -53 dBFS hum is below -45
    low = BuildSettings(trim=TrimSettings(threshold=-60.0))
    assert built(source, low).duration == pytest.approx(1.5, abs=0.011)


@pytest.mark.parametrize("level", [-40.0, -25.0, -3.0])
def test_the_speech_is_brought_to_the_target(tmp_path: Path, level: float) -> None:
    source = padded(tmp_path / "source.wav", 1.0, level, before=0.3, after=0.3)
    for target in (-20.0, -16.0):
        result = built(source, BuildSettings(loudness=target, peak=-0.5))
        out = wav_of(result, tmp_path)
        assert out.loudness == pytest.approx(target, abs=0.5)
        assert out.peak == pytest.approx(target + 3.0, abs=0.5)  # a sine's peak is 3 dB above its RMS


def test_pauses_between_words_do_not_count_as_quiet(tmp_path: Path) -> None:
    pieces = [tone_piece(0.3, -10.0), silence_piece(0.9), tone_piece(0.3, -10.0)]
    out = wav_of(built(write_wav(tmp_path / "words.wav", pieces)), tmp_path)
    assert out.loudness == pytest.approx(-20.0, abs=0.5)


def test_the_peak_ceiling_limits_the_gain_and_says_so(tmp_path: Path) -> None:
    # Quiet speech with a click: reaching -20 would push the click to +2.5 dBFS.
    pieces = [tone_piece(1.0, -26.0), tone_piece(0.01, -4.0), tone_piece(1.0, -26.0)]
    result = built(write_wav(tmp_path / "source.wav", pieces), BuildSettings(peak=-1.0))
    out = wav_of(result, tmp_path)
    assert out.peak == pytest.approx(-1.0, abs=0.1)
    assert out.loudness < -22.0
    [warning] = result.warnings
    assert warning.startswith("peak: the gain was limited by a peak at -4.0 dBFS, so the prompt is at ")
    assert warning.endswith("instead of -20; a click or a loud syllable stands out: edit it down, or compress "
                            "the recording")


def test_without_a_target_the_level_is_kept(tmp_path: Path) -> None:
    result = built(padded(tmp_path / "source.wav", 1.0, -30.0), BuildSettings(loudness=None))
    out = wav_of(result, tmp_path)
    assert out.peak == pytest.approx(-30.0, abs=0.1)
    assert result.gain == 0.0 and result.warnings == []


def test_clipping_is_counted_in_the_source(tmp_path: Path) -> None:
    result = built(clipped(tmp_path / "source.wav", 0.5, overdrive=6.0))
    [warning] = result.warnings
    count = int(warning.split()[1])
    assert 1500 < count < 3000  # a sine 6 dB over full scale is flat for about two thirds of each cycle
    assert warning == (f"clipping: {count} samples at full scale in the source (at or above -0.1 dBFS): it "
                       "distorts; record it again with less input gain")
    assert built(tone(tmp_path / "fine.wav", 0.5, -0.5)).warnings == []
    assert built(write_wav(tmp_path / "stereo.wav", [clip_piece(0.2)], channels=2)).warnings[0].startswith(
        "clipping: ")


def test_long_internal_silences(tmp_path: Path) -> None:
    pieces = [silence_piece(0.5), tone_piece(0.4, -10.0), silence_piece(2.5), tone_piece(0.4, -10.0),
              silence_piece(0.3), tone_piece(0.4, -10.0)]
    source = write_wav(tmp_path / "pause.wav", pieces)
    assert built(source).warnings == [
        "silence: 2.5 s of silence at 0.55 s; cut it, or split the prompt in two"]
    assert built(source, BuildSettings(warn=WarnSettings(long_silence=3.0))).warnings == []
    assert built(source, BuildSettings(warn=WarnSettings(long_silence=0.3))).warnings == [
        "silence: 2.5 s of silence at 0.55 s; cut it, or split the prompt in two",
        "silence: 0.3 s of silence at 3.45 s; cut it, or split the prompt in two"]


def test_a_silent_recording_is_kept_and_reported(tmp_path: Path) -> None:
    result = built(silence(tmp_path / "silent.wav", 0.7))
    assert result.duration == 0.7 and result.gain == 0.0
    assert (result.loudness, result.peak, result.source_loudness) == (None, None, None)
    assert result.warnings == ["silent: nothing in the recording is louder than -45 dBFS; is it the right file?"]


def test_a_very_quiet_recording_is_raised_with_a_warning(tmp_path: Path) -> None:
    result = built(tone(tmp_path / "quiet.wav", 0.5, -42.0))
    assert wav_of(result, tmp_path).loudness == pytest.approx(-20.0, abs=0.5)
    assert result.warnings == ["quiet: the speech is at -45.0 dBFS, so it was raised 25.0 dB and its noise with "
                               "it; record it again closer to the microphone"]


@pytest.mark.parametrize(("name", "data"), [("noise.mp3", b"not audio at all " * 40), ("empty.ogg", b""),
                                            ("broken.wav", b"RIFF\x10\x00\x00\x00WAVEjunk")])
def test_an_unreadable_file_is_an_audio_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(audio.AudioError, match=r"^ffmpeg cannot read it: \S"):
        audio.load(path)


@needs_espeak
def test_speech_is_trimmed_and_normalised(tmp_path: Path) -> None:
    source = speech(tmp_path / "speech.wav", "Welcome to Example Telecom.")
    before = measure(source)
    result = built(source)
    out = wav_of(result, tmp_path)
    assert (out.rate, out.channels) == (8000, 1)
    assert 1.0 < out.seconds <= before.seconds
    assert out.loudness == pytest.approx(-20.0, abs=0.5)
    assert out.peak <= -1.0 + 0.01
