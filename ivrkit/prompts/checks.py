"""Prompt checks: everything a caller would hear wrong (or not at all) that can be found before a call.

A prompt a flow plays can be missing from a language's catalog (the caller hears silence, or another
language), present but never played (dead weight a translator still pays for), built into a file Asterisk
cannot play or plays transcoded (wrong rate, channels or sample size), built from an older recording, still
the synthesized placeholder, or built but not deployed where Asterisk looks for it. Each problem is reported
at the place that fixes it: the flow's YAML for what a flow plays, the catalog entry for what a prompt is,
with a hint naming the command or edit that fixes it.

``ivrkit check`` and ``ivrkit prompts check`` run :func:`check_prompts`; a server (and ``ivrkit test``) runs only
:func:`check_missing`, through :func:`ivrkit.flow.checks.check_flows`.
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ivrkit.callbacks.settings import CallbackSettings
from ivrkit.flow.checks import Locator, default_callbacks
from ivrkit.flow.diagnostics import Diagnostics, Location, did_you_mean, relative_name
from ivrkit.flow.model import Flow
from ivrkit.flow.pbx import MAINTENANCE_MODES
from ivrkit.prompts.catalog import CATALOG_FILE, PromptCatalog, PromptEntry
from ivrkit.prompts.deploy import SoundsDir, same_file
from ivrkit.prompts.languages import missing_sounds, rules_for, stand_in
from ivrkit.prompts.manifest import MANIFEST_FILE, Manifest, ManifestEntry
from ivrkit.prompts.settings import PromptSettings

BUILD = "run `ivrkit prompts build`"
SYNTH = "run `ivrkit prompts synth`"
LISTED = 8  # prompts named in one message before "and N more"


@dataclass(frozen=True)
class PromptUse:
    """A prompt a flow plays, where the flow says so, and the languages it is played in."""

    prompt: str
    location: Location
    languages: tuple[str, ...]
    role: str = ""  # what it is, when not written in the flow: " of the callback call"
    instead: str = ""  # the other way to fix it, for the hint: "give the queue `callback: {prompts: ...}`"


def prompt_uses(flow: Flow) -> list[PromptUse]:
    """Every prompt ``flow`` plays on a call: those written in it (and the defaults its options play, which the
    loader records as references), and the default prompts of callback calls from queues without settings."""
    uses = [PromptUse(ref.name, ref.location, (ref.language,) if ref.language else flow.languages)
            for ref in flow.references if ref.kind == "prompt"]
    locate = Locator(flow)
    for _, step, path in default_callbacks(flow):
        where = locate.find(step, *path) or step.location
        uses += [PromptUse(prompt, where, flow.languages, " of the callback call",
                           "give the queue `callback: {prompts: {...}}` settings")
                 for role, prompt in CallbackSettings().prompts if role != "agent"]
    return uses


def played_prompts(flow: Flow) -> dict[str, set[str]]:
    """Every prompt that can be played for ``flow`` by language: its uses, the agent's callback prompt, and what
    the compiled dialplan plays itself (the fallback and maintenance announcements, in the channel's language:
    any of the flow's)."""
    played: dict[str, set[str]] = {language: set() for language in flow.languages}
    for use in prompt_uses(flow):
        for language in use.languages:
            played.setdefault(language, set()).add(use.prompt)
    callbacks = [queue.callback for queue in flow.queues.values() if queue.callback is not None]
    if default_callbacks(flow):
        callbacks.append(CallbackSettings())
    for settings in callbacks:
        for language in flow.languages:
            played[language].update(prompt for _, prompt in settings.prompts)
    dialplan = flow.dialplan
    for language in flow.languages:  # Playback in the dialplan speaks the channel's language: the caller's
        played[language].add(dialplan.fallback.prompt)
        played[language].update(dialplan.maintenance.prompt(mode) for mode in MAINTENANCE_MODES)
    return played


def catalog_file(catalog: PromptCatalog, language: str) -> str:
    """``prompts/<language>/catalog.yaml`` as messages name it."""
    return relative_name((catalog.directory or Path("prompts")) / language / CATALOG_FILE)


def entry_location(catalog: PromptCatalog, language: str, entry: PromptEntry) -> Location:
    if entry.location is not None:
        return entry.location
    if entry.source is not None:
        return Location(relative_name(entry.source), 1, 1)
    return Location(catalog_file(catalog, language), 1, 1)


# -- the flows against the catalog ---------------------------------------------------------------------------


def check_missing(flows: Mapping[str, Flow], catalog: PromptCatalog, diagnostics: Diagnostics,
                  languages: Collection[str] | None = None) -> None:
    """Prompts a flow plays that a language it speaks lacks: an error in the flow's own language (the caller
    hears nothing), a warning in its other languages (the caller hears the flow's language instead)."""
    for flow in flows.values():
        absent = [language for language in flow.languages[1:] if language not in catalog.languages
                  and (languages is None or language in languages)]
        for language in absent:
            where = Locator(flow).find(None, "languages") or flow.location
            diagnostics.warning(where, f"there is no '{language}' catalog: callers in '{language}' hear every prompt "
                                f"in '{flow.language}'", f"create {catalog_file(catalog, language)} with the text "
                                "of each prompt (`ivrkit prompts synth` makes placeholders from it)")
        for use in prompt_uses(flow):
            for language in use.languages:
                if language in absent or catalog.has(use.prompt, language) or (
                        languages is not None and language not in languages):
                    continue
                known = catalog.languages.get(language, {})
                add = f"add it to {catalog_file(catalog, language)}"
                if language == flow.language:
                    hint = did_you_mean(use.prompt, known) or (f"{add}, or {use.instead}" if use.instead else add)
                    diagnostics.error(use.location, f"prompt '{use.prompt}'{use.role} is not in the '{language}' "
                                      "catalog", hint)
                else:
                    hint = did_you_mean(use.prompt, known) or f"{add} (its text is enough for a placeholder)"
                    diagnostics.warning(use.location, f"prompt '{use.prompt}'{use.role} is not in the '{language}' "
                                        f"catalog: callers in '{language}' hear it in '{flow.language}'", hint)


def check_unused(flows: Mapping[str, Flow], catalog: PromptCatalog, diagnostics: Diagnostics,
                 languages: Collection[str] | None = None) -> None:
    """Prompts in a catalog that no flow plays in that language (run only when every flow is loaded)."""
    played = all_played(flows)
    for language, entries in sorted(catalog.languages.items()):
        if not entries or (languages is not None and language not in languages):
            continue
        if language not in played:
            spoken = sorted(played)
            diagnostics.warning(Location(catalog_file(catalog, language), 1, 1),
                                f"no flow speaks '{language}': its {plural(len(entries), 'prompt')} are never played",
                                f"add '{language}' to a flow's `languages:` (the flows speak "
                                f"{', '.join(spoken) or 'no language'}), or remove the folder")
            continue
        for prompt, entry in entries.items():
            if prompt not in played[language]:
                diagnostics.warning(entry_location(catalog, language, entry),
                                    f"prompt '{prompt}' is not played by any flow in '{language}'",
                                    "remove it from the catalog, or play it from a flow")


# -- the built audio -----------------------------------------------------------------------------------------


def check_built(catalog: PromptCatalog, manifest: Manifest, diagnostics: Diagnostics,
                settings: PromptSettings | None = None, languages: Collection[str] | None = None) -> None:
    """What ``ivrkit prompts build``/``synth`` made: each prompt built, from its current recording (or text) and
    settings, into files Asterisk plays without transcoding, in every format the settings ask for (``settings``
    None: they cannot be read, so what a build would make now is not judged).

    Nothing is checked while nothing was built here (a fresh clone: the built audio is not committed).
    """
    prompts_dir = catalog.directory
    if prompts_dir is None or not manifest.out_dir(prompts_dir).is_dir():
        return
    asked = settings.build.formats if settings is not None else ()
    for language, entries in sorted(catalog.languages.items()):
        if languages is not None and language not in languages:
            continue
        for prompt, entry in sorted(entries.items()):
            where = entry_location(catalog, language, entry)
            name = f"{language}/{prompt}"
            built = manifest.entry(language, prompt)
            if built is None:
                if entry.source is not None:
                    diagnostics.warning(where, f"prompt {name} is not built yet", BUILD)
                elif entry.text.strip():
                    diagnostics.warning(where, f"prompt {name} has no audio: no recording and no placeholder",
                                        f"record it as {relative_name(prompts_dir / language)}/{prompt}.wav (or mp3, "
                                        "ogg, flac, ...) and run `ivrkit prompts build`, or run `ivrkit prompts "
                                        "synth` for a placeholder")
                continue
            stale = stale_build(entry, built, language, settings) if settings is not None else None
            if stale:
                diagnostics.warning(where, f"prompt {name}: {stale[0]}", stale[1])
            for fmt in dict.fromkeys(("wav", *built.formats, *asked)):
                path = manifest.built_file(prompts_dir, language, prompt, fmt)
                if not path.is_file():
                    why = "" if fmt in built.formats else " (the settings ask for it)"
                    diagnostics.warning(where, f"prompt {name} has no built {fmt} file{why}: "
                                        f"{relative_name(path)} is missing", SYNTH if built.placeholder else BUILD)
                elif problem := format_problem(path, fmt):
                    diagnostics.error(where, f"the built {fmt} file of prompt {name} {problem}",
                                      SYNTH if built.placeholder else BUILD)


def stale_build(entry: PromptEntry, built: ManifestEntry, language: str,
                settings: PromptSettings) -> tuple[str, str] | None:
    """Why a built prompt is not what a build (or synth) would make now, and the command; None when it is."""
    # Here, not at the top: the server runs these checks' missing-prompt part and need not load pydub.
    from ivrkit.prompts.build import source_key
    from ivrkit.prompts.synth import ENGINE, engine_version, text_key

    if entry.source is not None:
        if built.placeholder:
            return "it has a recording now, but the placeholder is still what plays", BUILD
        try:
            key = source_key(entry.source, settings)
        except OSError:
            return None  # the catalog reports an unreadable recording
        if key != built.key:
            return "the recording (or the build settings) changed after it was built", BUILD
        return None
    if not built.placeholder:
        return f"it was built from {built.source}, which is gone", BUILD
    if shutil.which(ENGINE) is None:
        return None  # the engine's version is part of what a placeholder is made from
    if text_key(entry.text, settings.synth.voice(language), settings, engine_version()) != built.key:
        return ("its text, voice or speed (or the build settings, or espeak-ng) changed after the placeholder "
                "was made", SYNTH)
    return None


def format_problem(path: Path, fmt: str) -> str | None:
    """What is wrong with a built file for Asterisk, or None: 8 kHz mono 16-bit PCM wav, whole raw samples."""
    try:
        size = path.stat().st_size
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if size == 0:
        return "is empty"
    if fmt == "wav":
        try:
            with wave.open(str(path), "rb") as audio:
                rate, channels, width = audio.getframerate(), audio.getnchannels(), audio.getsampwidth()
        except (wave.Error, EOFError) as error:
            return f"is not a PCM wav file ({error})"
        wrong = [f"{what} instead of {wanted}" for what, wanted, ok in (
            (f"{rate} Hz", "8000 Hz", rate == 8000),
            (f"{channels} channels", "1 (mono)", channels == 1),
            (f"{width * 8}-bit samples", "16-bit", width == 2),
        ) if not ok]
        return f"has {', '.join(wrong)}: Asterisk would not play it as it is" if wrong else None
    if fmt in ("sln", "sln16") and size % 2:
        return f"has an odd size ({size} bytes): it is not whole 16-bit samples"
    if fmt == "gsm" and size % 33:
        return f"has a size ({size} bytes) that is not whole 33-byte GSM frames"
    return None


def check_placeholders(flows: Mapping[str, Flow], catalog: PromptCatalog, manifest: Manifest,
                       diagnostics: Diagnostics, languages: Collection[str] | None = None) -> None:
    """One warning per language listing the prompts the flows play that are still synthesized placeholders."""
    played = all_played(flows)
    for language, entries in sorted(catalog.languages.items()):
        if languages is not None and language not in languages:
            continue
        placeholders = [prompt for prompt, entry in sorted(entries.items())
                        if prompt in played.get(language, ()) and entry.source is None
                        and (built := manifest.entry(language, prompt)) is not None and built.placeholder]
        if not placeholders:
            continue
        first = entry_location(catalog, language, entries[placeholders[0]])
        folder = relative_name((catalog.directory or Path("prompts")) / language)
        diagnostics.warning(first, f"{plural(len(placeholders), 'prompt')} in '{language}' still "
                            f"{'play' if len(placeholders) > 1 else 'plays'} synthesized placeholder speech: "
                            f"{listing(placeholders)}", f"record them as {folder}/<id>.wav (or mp3, ogg, flac, ...) "
                            "and run `ivrkit prompts build`")


# -- the deployed audio --------------------------------------------------------------------------------------


def check_deployed(flows: Mapping[str, Flow], catalog: PromptCatalog, manifest: Manifest, sounds: SoundsDir,
                   diagnostics: Diagnostics, languages: Collection[str] | None = None) -> None:
    """The built files are where Asterisk plays them from, identical; Asterisk's own sounds for each language
    the flows speak (numbers, dates, queue announcements) are installed."""
    prompts_dir = catalog.directory
    if prompts_dir is None:
        return
    deploy = f"run `ivrkit prompts deploy --sounds-dir {sounds.path}`"
    for language in sorted(manifest.prompts):
        if languages is not None and language not in languages:
            continue
        folder = sounds.prompts(language)
        missing: list[str] = []
        for prompt, built in sorted(manifest.prompts[language].items()):
            entry = catalog.entry(prompt, language)
            where = (entry_location(catalog, language, entry) if entry is not None
                     else Location(relative_name(prompts_dir / MANIFEST_FILE), 1, 1))
            for fmt in built.formats:
                source = manifest.built_file(prompts_dir, language, prompt, fmt)
                target = folder / f"{prompt}.{fmt}"
                if not target.is_file():
                    missing.append(f"{prompt}.{fmt}")
                elif source.is_file() and not same_file(source, target):
                    diagnostics.warning(where, f"the deployed {relative_name(target)} differs from the build of prompt "
                                        f"{language}/{prompt}", deploy)
        if missing:
            where = Location(catalog_file(catalog, language), 1, 1)
            diagnostics.warning(where, f"{plural(len(missing), 'built file')} of '{language}' "
                                f"{'are' if len(missing) > 1 else 'is'} not deployed in {relative_name(folder)}: "
                                f"{listing(missing)}", deploy)
    reported: set[str] = set()
    for flow in flows.values():
        for language in flow.languages:
            if language in reported or (languages is not None and language not in languages):
                continue
            reported.add(language)
            check_asterisk_sounds(flow, language, sounds, diagnostics)


def check_asterisk_sounds(flow: Flow, language: str, sounds: SoundsDir, diagnostics: Diagnostics) -> None:
    """The sounds Asterisk says numbers, dates and times with in ``language`` (reported at the flow that first
    speaks it): the language's package, and the few files a package lacks that deploy links to stand-ins."""
    folder = sounds.language(language)
    missing = missing_sounds(folder, language)
    if not missing:
        return
    where = Locator(flow).find(None, "languages") or Locator(flow).find(None, "language") or flow.location
    linkable = [sound for sound in missing if stand_in(language, sound) is not None]
    absent = [sound for sound in missing if sound not in linkable]
    if absent:
        package = rules_for(language).package
        diagnostics.warning(where, f"{plural(len(absent), 'sound')} Asterisk says numbers, dates and times with in "
                            f"'{language}' {'are' if len(absent) > 1 else 'is'} not in {relative_name(folder)}: "
                            f"{listing(absent)}",
                            f"apt-get install {package}" if package else
                            f"install Asterisk's sounds for '{language}' into {relative_name(folder)}")
    elif linkable:
        links = ", ".join(f"{sound} → {stand_in(language, sound)}" for sound in linkable)
        diagnostics.warning(where, f"Asterisk's '{language}' sounds lack {listing(linkable)}, which numbers, dates "
                            f"and times need", f"`ivrkit prompts deploy` links them to the sounds that say the same "
                            f"({links})")


# -- all of them ---------------------------------------------------------------------------------------------


def check_prompts(
    flows: Mapping[str, Flow],
    catalog: PromptCatalog,
    manifest: Manifest,
    diagnostics: Diagnostics,
    *,
    sounds_dir: SoundsDir | None = None,
    settings: PromptSettings | None = None,
    languages: Collection[str] | None = None,
    unused: bool = True,
) -> None:
    """Every prompt check, into ``diagnostics`` (the catalog's own problems included).

    ``sounds_dir``: where the prompts are deployed, to check that too; ``settings``: the build settings (the
    formats they ask for, what a build would make now); ``languages``: only these; ``unused``: ``flows`` is every
    flow of the project (else prompts that only the others play would be reported as unused).
    """
    diagnostics.extend(catalog.diagnostics)
    check_missing(flows, catalog, diagnostics, languages)
    if unused and flows:
        check_unused(flows, catalog, diagnostics, languages)
    check_built(catalog, manifest, diagnostics, settings, languages)
    check_placeholders(flows, catalog, manifest, diagnostics, languages)
    if sounds_dir is not None:
        check_deployed(flows, catalog, manifest, sounds_dir, diagnostics, languages)


def all_played(flows: Mapping[str, Flow]) -> dict[str, set[str]]:
    """:func:`played_prompts` of all the flows together."""
    played: dict[str, set[str]] = {}
    for flow in flows.values():
        for language, prompts in played_prompts(flow).items():
            played.setdefault(language, set()).update(prompts)
    return played


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def listing(names: Iterable[str]) -> str:
    """Names for a message, at most :data:`LISTED` of them."""
    names = list(names)
    shown = ", ".join(names[:LISTED])
    return f"{shown} and {len(names) - LISTED} more" if len(names) > LISTED else shown
