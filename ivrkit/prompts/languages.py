"""Per-language rules for what the PBX says itself: numbers, digits, dates and times.

A flow's prompts are recordings; a spoken value (``{number: 21}``, ``{time: "14:00"}``) is said by Asterisk
from its own sound files, following the channel's language. This module holds, for each language:

- the ``SAY DATETIME`` formats for a date, a time and both (English says "two o'clock PM", German
  "vierzehn Uhr": each language's word order and clock);
- which Asterisk sounds those announcements need, the Debian package that has them, and *stand-ins* for the
  few files a package lacks although Asterisk asks for them (asterisk-prompt-de has no ``digits/1N``, the
  "ein" of "ein Uhr", "eintausend": :func:`install_stand_ins` links it to the package's ``digits/ein``);
- the words the simulator shows for a spoken value (numbers from num2words, month and weekday names), and
  how long saying them takes.

Adding a language is one :class:`LanguageRules` entry in :data:`RULES`. A language without an entry is said
with Asterisk's defaults (24-hour time) and shown in the simulator with num2words where it knows the
language, else as written.

It also knows how a call's language is chosen from the languages a flow speaks, and the order in which a
prompt is looked up: the call's language, its base language (``de_AT`` → ``de``), then the flow's own.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z]{2,4})?$")  # en, de, de_AT, pt-BR
NUMBER = re.compile(r"-?\d{1,15}")
DIGITS = re.compile(r"[0-9*#]{1,64}")
SYLLABLES_PER_SECOND = 4.0  # a calm IVR voice
_VOWELS = re.compile(r"[aeiouyäöüéèàáíóú]+", re.IGNORECASE)


# -- a call's language -----------------------------------------------------------------------------------


def base_language(code: str) -> str:
    """``de_AT`` → ``de``; a code without a region is its own base.

    >>> base_language("de_AT"), base_language("pt-BR"), base_language("en")
    ('de', 'pt', 'en')
    """
    return code.partition("_")[0].partition("-")[0]


def spoken_by(languages: Sequence[str], code: str) -> str | None:
    """The one of ``languages`` that serves ``code``: the same code, else its base language; None when none does.

    >>> spoken_by(["en", "de"], "de_AT"), spoken_by(["en", "de_AT"], "de_AT"), spoken_by(["en"], "fr")
    ('de', 'de_AT', None)
    """
    if not code:
        return None
    if code in languages:
        return code
    base = base_language(code)
    return base if base in languages else None


def call_language(channel_language: str, languages: Sequence[str], own: str) -> str:
    """The language a call starts in: the channel's when the flow speaks it (or its base), else the flow's own.

    >>> call_language("de", ["en", "de"], "en"), call_language("de_AT", ["en", "de"], "en")
    ('de', 'de_AT')
    >>> call_language("fr", ["en", "de"], "en"), call_language("", ["en", "de"], "en")
    ('en', 'en')
    """
    usable = LANGUAGE_CODE.fullmatch(channel_language) and spoken_by(languages, channel_language)
    return channel_language if usable else own


@functools.lru_cache(maxsize=256)  # asked for every prompt played; a server knows a handful of languages
def lookup_order(language: str, fallback: str) -> tuple[str, ...]:
    """Where a prompt is looked for, in order: the call's language, its base, the flow's own language.

    >>> lookup_order("de_AT", "en"), lookup_order("en", "en")
    (('de_AT', 'de', 'en'), ('en',))
    """
    return tuple(dict.fromkeys(code for code in (language, base_language(language), fallback) if code))


# -- the rules ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageRules:
    """How one language says numbers, dates and times: on Asterisk (formats, sounds) and in the simulator."""

    code: str
    date_format: str  # SAY DATETIME formats (Asterisk's say.c letters; 'file' plays a sound file)
    time_format: str
    datetime_format: str
    package: str = ""  # the Debian package with the language's Asterisk sounds
    sounds: tuple[str, ...] = ()  # the sounds (below <sounds>/<language>/) numbers and dates need
    stand_ins: Mapping[str, str] = field(default_factory=dict)  # a sound Asterisk asks for → one that says it
    # the simulator's words
    weekdays: tuple[str, ...] = ()  # Monday first
    months: tuple[str, ...] = ()
    date_words: str = "{weekday}, {day} {month} {year}"
    twelve_hour: bool = False
    oclock: str = ""
    at: str = ""
    am_pm: tuple[str, str] = ("AM", "PM")
    zero_minutes: str = ""  # 14:05 → "two oh five PM" in English
    hour_words: Mapping[int, str] = field(default_factory=dict)  # an hour said unlike the number (de: 1 → ein)
    star: str = "*"
    hash: str = "#"

    def date_time_format(self, kind: str) -> str:
        """The ``SAY DATETIME`` format for ``date``, ``time`` or ``datetime``."""
        return {"date": self.date_format, "time": self.time_format, "datetime": self.datetime_format}[kind]

    def words(self, kind: str, value: str) -> str:
        """What the caller hears for a spoken value, as text (the simulator's transcript)."""
        text = value.strip()
        if kind == "number":
            return self.number(int(checked_number(text)))
        if kind == "digits":
            return " ".join(self._digit(char) for char in checked_digits(text))
        if kind == "alpha":
            return " ".join(text.upper().replace(" ", ""))
        moment = parse_moment(kind, text)
        if kind == "date":
            return self._date(moment)
        if kind == "time":
            return self._time(moment)
        return f"{self._date(moment)} {self.at} {self._time(moment)}".replace("  ", " ")

    def number(self, number: int, to: str = "cardinal") -> str:
        from num2words import CONVERTER_CLASSES, num2words  # only the simulator shows words: not on the server

        language = self.code if self.code in CONVERTER_CLASSES else base_language(self.code)
        if language not in CONVERTER_CLASSES:
            return str(number)
        return str(num2words(number, lang=language, to=to))

    def _digit(self, char: str) -> str:
        return self.star if char == "*" else self.hash if char == "#" else self.number(int(char))

    def _date(self, moment: dt.datetime) -> str:
        if not self.months or not self.weekdays:
            return moment.date().isoformat()
        return self.date_words.format(weekday=self.weekdays[moment.weekday()], month=self.months[moment.month - 1],
                                      day=self.number(moment.day, "ordinal"), year=self.number(moment.year, "year"))

    def _time(self, moment: dt.datetime) -> str:
        if not self.oclock:
            return moment.strftime("%H:%M")
        hour, minute = moment.hour, moment.minute
        if self.twelve_hour:
            shown = hour % 12 or 12
            said = self.hour_words.get(shown) or self.number(shown)
            if minute == 0:
                minutes = self.oclock
            elif minute < 10 and self.zero_minutes:
                minutes = f"{self.zero_minutes} {self.number(minute)}"
            else:
                minutes = self.number(minute)
            return f"{said} {minutes} {self.am_pm[hour >= 12]}"
        said = self.hour_words.get(hour) or self.number(hour)
        return f"{said} {self.oclock}" + (f" {self.number(minute)}" if minute else "")


_DIGITS_0_20 = tuple(f"digits/{n}" for n in range(21))
_TENS = tuple(f"digits/{n}" for n in range(30, 100, 10))
_CALENDAR = (
    *(f"digits/day-{n}" for n in range(7)),
    *(f"digits/mon-{n}" for n in range(12)),
    *(f"digits/h-{n}" for n in (*range(1, 21), 30)),
)

RULES: dict[str, LanguageRules] = {
    "en": LanguageRules(
        "en",
        date_format="ABdY",  # Monday November twenty-third two thousand twenty-six
        time_format="IMp",  # two o'clock PM, two thirty PM
        datetime_format="ABdY 'digits/at' IMp",
        package="asterisk-core-sounds-en",
        sounds=(*_DIGITS_0_20, *_TENS, "digits/hundred", "digits/thousand", *_CALENDAR, "digits/oclock",
                "digits/oh", "digits/a-m", "digits/p-m", "digits/at", "digits/star", "digits/pound"),
        weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        months=("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"),
        date_words="{weekday}, {month} {day}, {year}",
        twelve_hour=True,
        oclock="o'clock",
        at="at",
        zero_minutes="oh",
        star="star",
        hash="hash",
    ),
    "de": LanguageRules(
        "de",
        date_format="AdBY",  # Montag dreiundzwanzigste November zweitausendsechsundzwanzig
        time_format="HM",  # vierzehn Uhr dreißig
        datetime_format="AdBY 'digits/at' HM",  # … um vierzehn Uhr
        package="asterisk-prompt-de",
        sounds=(*_DIGITS_0_20, *_TENS, *(f"digits/{n}-and" for n in range(1, 10)), "digits/1N", "digits/1F",
                "digits/hundred", "digits/thousand", "digits/million", "digits/millions", *_CALENDAR,
                "digits/oclock", "digits/at", "digits/star", "digits/pound"),
        stand_ins={"digits/1N": "digits/ein"},  # "ein" before hundert, tausend, Uhr: the package lacks digits/1N
        weekdays=("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
        months=("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
                "November", "Dezember"),
        date_words="{weekday}, {day} {month} {year}",
        oclock="Uhr",
        at="um",
        hour_words={1: "ein"},
        star="Stern",
        hash="Raute",
    ),
}


def rules_for(language: str) -> LanguageRules:
    """The rules of ``language`` (or of its base language); a language without rules gets Asterisk's defaults."""
    found = RULES.get(language) or RULES.get(base_language(language))
    if found is not None:
        return found
    return LanguageRules(language, date_format="ABdY", time_format="HM", datetime_format="ABdY HM")


def say_words(kind: str, value: str, language: str) -> str:
    """What a caller in ``language`` hears for a spoken value (raises ValueError for a value that cannot be said).

    >>> say_words("number", "21", "de"), say_words("time", "14:30", "en"), say_words("time", "01:00", "de")
    ('einundzwanzig', 'two thirty PM', 'ein Uhr')
    """
    return rules_for(language).words(kind, value)


def spoken_seconds(words: str) -> float:
    """How long saying ``words`` takes, from their syllables (German compounds are long single words).

    >>> spoken_seconds("einundzwanzig"), spoken_seconds("twenty-one")
    (1.2, 1.2)
    """
    syllables = sum(max(1, len(_VOWELS.findall(word))) for word in re.split(r"[\s-]+", words) if word)
    return round(max(1, syllables) / SYLLABLES_PER_SECOND + 0.2, 2)


# -- values the PBX can say ---------------------------------------------------------------------------------


def checked_number(text: str) -> str:
    if not NUMBER.fullmatch(text):
        raise ValueError(f"cannot say '{text}' as a number")
    return text


def checked_digits(text: str) -> str:
    if not DIGITS.fullmatch(text):
        raise ValueError(f"cannot say '{text}' as digits")
    return text


def parse_moment(kind: str, text: str, today: dt.date | None = None) -> dt.datetime:
    """A date, time or date-time written as ISO text (a time alone is on ``today``); naive unless it has an
    offset, for the caller to place in the flow's timezone."""
    try:
        if kind == "time" and len(text) <= 8:
            return dt.datetime.combine(today or dt.date(2000, 1, 1), dt.time.fromisoformat(text))
        return dt.datetime.fromisoformat(text)
    except ValueError as error:
        hint = "write it as ISO text, e.g. 2026-12-24 14:00"
        raise ValueError(f"cannot say '{text}' as a {kind}: {hint}") from error


# -- the Asterisk sounds a language needs ---------------------------------------------------------------------


def _present(folder: Path, name: str) -> bool:
    target = folder / name
    return target.parent.is_dir() and any(target.parent.glob(f"{target.name}.*"))


def missing_sounds(language_dir: Path, language: str) -> list[str]:
    """The sounds (``digits/1N``) that numbers and dates in ``language`` need and ``language_dir`` (the
    language's folder of Asterisk's sounds, e.g. ``/usr/share/asterisk/sounds/de``) has in no format."""
    return [name for name in rules_for(language).sounds if not _present(language_dir, name)]


def install_stand_ins(language_dir: Path, language: str) -> list[Path]:
    """Link each sound the language's package lacks to the one that says the same (``digits/1N.gsm`` →
    ``ein.gsm``), in every format the stand-in has; a sound present in any format is left alone. Returns the
    links made."""
    made = []
    for wanted, stand_in in rules_for(language).stand_ins.items():
        if _present(language_dir, wanted):
            continue
        source = language_dir / stand_in
        for existing in sorted(source.parent.glob(f"{source.name}.*")) if source.parent.is_dir() else []:
            link = (language_dir / wanted).with_suffix(existing.suffix)
            os.symlink(existing.name if link.parent == existing.parent else existing, link)
            made.append(link)
    return made


def stand_in(language: str, sound: str) -> str | None:
    """The sound a missing ``sound`` can be linked to, if the language has one (``digits/1N`` → ``digits/ein``)."""
    return rules_for(language).stand_ins.get(sound)
