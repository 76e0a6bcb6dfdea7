"""``ivrkit prompts build|synth|check|deploy``: from recordings and text to audio Asterisk plays, checked and installed.

``build`` converts the recordings in ``prompts/<language>/`` and ``synth`` renders placeholders for prompts that
only have text; both print a line per prompt as they go and a summary, and fail (exit status 1) when a prompt
could not be made. ``check`` prints prompt problems like ``ivrkit check`` (which runs the same checks).
``deploy`` copies the built files into Asterisk's sounds folder, where ``ivrkit serve`` plays them from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivrkit.cli.check import as_json, plural, report
from ivrkit.cli.common import add_project_options, add_prompts_option
from ivrkit.flow.diagnostics import Diagnostics
from ivrkit.prompts.catalog import CATALOG_FILE, PromptCatalog
from ivrkit.prompts.deploy import DEFAULT_SOUNDS, DeployError, SoundsDir
from ivrkit.prompts.settings import PromptSettings, PromptSettingsError

if TYPE_CHECKING:  # the build loads pydub: only for the commands that build (not for `ivrkit serve`)
    from ivrkit.prompts.build import BuildReport

PROG = "ivrkit prompts"


def register(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "prompts",
        help="build, synthesize, check and deploy the prompt audio",
        description="Prompts live in prompts/<language>/: catalog.yaml gives each prompt's text, a recording "
        "beside it (<id>.wav, .mp3, .ogg, .flac, .m4a, ...) its audio. build converts the recordings for "
        "Asterisk, synth makes placeholders from the text, check finds what is missing or wrong, deploy installs "
        "the built audio into Asterisk's sounds folder.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    languages = argparse.ArgumentParser(add_help=False)
    languages.add_argument("--language", action="append", metavar="LANG",
                           help="only this language (repeatable; default: all)")
    only = argparse.ArgumentParser(add_help=False)
    only.add_argument("--only", action="append", metavar="ID", help="only this prompt (repeatable; default: all)")
    sounds = argparse.ArgumentParser(add_help=False)
    sounds.add_argument("--sounds", default=os.environ.get("IVRKIT_SOUNDS") or "ivrkit",
                        help="the prompts' folder in each language's sounds folder, as for ivrkit serve "
                        "($IVRKIT_SOUNDS) (%(default)s)")
    sounds.add_argument("--root", type=Path, metavar="DIR",
                        help="the sounds folder is inside this root filesystem (a chroot or container image): its "
                        "links are followed inside it")

    build = actions.add_parser(
        "build", parents=[languages, only], help="convert the recordings into the formats Asterisk plays",
        description="Convert every recording to 8 kHz mono 16-bit wav (and the formats prompts/settings.yaml "
        "asks for): trim the silence at both ends, normalise the loudness, warn about clipping, long silences "
        "and recordings far louder or quieter than the rest. Only changed recordings are rebuilt. Writes "
        "prompts/manifest.json (commit it: the simulator takes each prompt's length from it).",
    )
    synth = actions.add_parser(
        "synth", parents=[languages, only], help="make placeholder audio from the text of unrecorded prompts",
        description="Speak the text of every prompt without a recording with espeak-ng and build it like a "
        "recording, marked as a placeholder, so a flow can be heard before the studio recordings exist.",
    )
    for sub in (build, synth):
        add_prompts_option(sub)
    check = actions.add_parser(
        "check", parents=[languages, sounds], help="find missing, unused, badly built and undeployed prompts",
        description="Check the prompts against the flows (missing in a language, never played), the built audio "
        "(format, rate, channels, out of date), placeholders still in use, and with --sounds-dir what is "
        "deployed (and whether Asterisk's own sounds for each language are installed). Exit status 1 on errors "
        "(and on warnings with --strict).",
    )
    add_project_options(check)
    check.add_argument("--sounds-dir", type=Path, metavar="DIR",
                       help=f"Asterisk's sounds folder to check the deployed prompts in (e.g. {DEFAULT_SOUNDS})")
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format (%(default)s)")
    deploy = actions.add_parser(
        "deploy", parents=[languages, sounds], help="install the built prompts into Asterisk's sounds folder",
        description="Copy the built prompts to <sounds-dir>/<language>/<sounds>/ (where ivrkit serve plays "
        "<language>/<sounds>/<prompt> from), atomically, readable by Asterisk; remove those an earlier deploy put "
        "there that are no longer built. Files put there by anything else are left alone.",
    )
    add_prompts_option(deploy)
    deploy.add_argument("--sounds-dir", type=Path, metavar="DIR", required=True,
                        help=f"Asterisk's sounds folder (astdatadir/sounds: {DEFAULT_SOUNDS} on Debian)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        return _check(args)
    if not args.prompts.is_dir():
        return _fail(f"no prompts folder at {args.prompts}: pass --prompts DIR (or set $IVRKIT_PROMPTS); it holds a "
                     f"folder per language (en, de, ...) with a {CATALOG_FILE}")
    if args.action == "deploy":
        return _deploy(args)
    try:
        settings = PromptSettings.load(args.prompts)
    except PromptSettingsError as error:
        return _fail(str(error))
    from ivrkit.prompts.build import PromptBuildError, build_prompts
    from ivrkit.prompts.synth import synth_prompts

    make = build_prompts if args.action == "build" else synth_prompts
    try:
        result = make(args.prompts, settings, languages=args.language, only=args.only, progress=_say)
    except PromptBuildError as error:
        return _fail(str(error))
    return _built(result, args)


def _say(line: str) -> None:
    print(line, flush=True)


def _built(result: BuildReport, args: argparse.Namespace) -> int:
    if result.diagnostics.items:
        print(result.diagnostics.render())
    for language, prompt, warning in result.warnings:
        print(f"warning: {language}/{prompt}: {warning}")
    if not result.results:
        recordings = args.action == "build"
        what = ("no prompt has a recording: put <id>.wav (or .mp3, .ogg, ...) beside the catalog, or make "
                "placeholders with `ivrkit prompts synth`" if recordings else
                "every prompt has a recording or no text: nothing to synthesize")
        print(f"nothing to {args.action}: {what}")
    print(result.summary())
    if result.failed:
        print(f"{plural(len(result.failed), 'prompt')} failed: fix {'them' if len(result.failed) > 1 else 'it'} "
              f"and run `ivrkit prompts {args.action}` again", file=sys.stderr)
    return 1 if result.failed or result.diagnostics.errors else 0


def _check(args: argparse.Namespace) -> int:
    from ivrkit.cli.common import prompt_settings
    from ivrkit.flow.loader import load_directory
    from ivrkit.prompts.checks import check_prompts

    if not args.prompts.is_dir():
        return _fail(f"no prompts folder at {args.prompts}: pass --prompts DIR (or set $IVRKIT_PROMPTS)")
    result = load_directory(args.flows)  # the flows' own mistakes are `ivrkit check`'s; what stops loading is here
    diagnostics: Diagnostics = result.diagnostics
    catalog = PromptCatalog.load(args.prompts)
    settings = prompt_settings(args.prompts, diagnostics)
    try:
        sounds = SoundsDir(args.sounds_dir, args.sounds, args.root) if args.sounds_dir else None
        if sounds is not None:
            sounds.check()
    except DeployError as error:
        return _fail(str(error))
    check_prompts(result.flows, catalog, catalog.manifest, diagnostics, sounds_dir=sounds, settings=settings,
                  languages=args.language, unused=not result.unloaded and not diagnostics.errors)
    if args.format == "json":
        print(json.dumps([as_json(diagnostic) for diagnostic in diagnostics], indent=2))
    else:
        count = sum(len(entries) for language, entries in catalog.languages.items()
                    if not args.language or language in args.language)
        print(report(diagnostics, count, "prompt"))
    failed = bool(diagnostics.errors) or (args.strict and bool(diagnostics.warnings))
    return 1 if failed else 0


def _deploy(args: argparse.Namespace) -> int:
    from ivrkit.prompts.deploy import deploy_prompts
    from ivrkit.prompts.manifest import Manifest

    try:
        sounds = SoundsDir(args.sounds_dir, args.sounds, args.root)
        result = deploy_prompts(args.prompts, sounds, languages=args.language, progress=_say)
    except DeployError as error:
        return _fail(str(error))
    placeholders = [f"{language}/{prompt}" for language, prompt, entry in Manifest.load(args.prompts).items()
                    if entry.placeholder and (not args.language or language in args.language)]
    print(f"deployed to {args.sounds_dir}: {result.summary()}")
    if placeholders:
        print(f"note: {plural(len(placeholders), 'prompt')} deployed {'are' if len(placeholders) > 1 else 'is a'} "
              f"placeholder{'s' if len(placeholders) > 1 else ''} (`ivrkit prompts check` lists them)")
    if result.missing:
        are = "are" if len(result.missing) > 1 else "is"
        return _fail(f"{plural(len(result.missing), 'file')} in the manifest {are} not built here: run `ivrkit "
                     "prompts build` and `ivrkit prompts synth`, then deploy again")
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1
