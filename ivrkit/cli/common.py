"""Options and loading shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from ivrkit.flow.diagnostics import Diagnostics, Location, relative_name
from ivrkit.flow.loader import load_directory
from ivrkit.flow.model import Flow
from ivrkit.prompts.catalog import PromptCatalog
from ivrkit.store.database import StoreError

if TYPE_CHECKING:
    from ivrkit.callbacks.running import AmiSettings
    from ivrkit.prompts.settings import PromptSettings
    from ivrkit.store.database import Database


def add_project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flows",
        type=Path,
        default=Path(os.environ.get("IVRKIT_FLOWS", "flows")),
        help="directory of flow files (default: flows/, or $IVRKIT_FLOWS)",
    )
    add_prompts_option(parser)


def add_prompts_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prompts",
        type=Path,
        default=Path(os.environ.get("IVRKIT_PROMPTS", "prompts")),
        help="prompt catalog directory (default: prompts/, or $IVRKIT_PROMPTS)",
    )


def add_data_dir_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--data-dir`` (``$IVRKIT_DATA_DIR``, default ``.ivrkit``): where the server's store lives."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("IVRKIT_DATA_DIR", ".ivrkit")),
        help=f"{help} ($IVRKIT_DATA_DIR) (%(default)s)",
    )


def add_log_options(parser: argparse.ArgumentParser, debug: str = "") -> None:
    """``--log-format json|text`` and ``--log-level`` (``$IVRKIT_LOG_FORMAT``, ``$IVRKIT_LOG_LEVEL``)."""
    env = os.environ.get
    parser.add_argument(
        "--log-format", choices=("json", "text"), default=env("IVRKIT_LOG_FORMAT", "json"), help="(%(default)s)"
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=env("IVRKIT_LOG_LEVEL", "info"),
        help=f"{debug} (%(default)s)".strip(),
    )


def add_ami_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--ami HOST:PORT``, ``--ami-user``, ``--ami-secret-file`` (the secret may come from the environment)."""
    env = os.environ.get
    parser.add_argument(
        "--ami",
        default=env("IVRKIT_AMI", default),
        metavar="HOST:PORT",
        help="Asterisk's AMI, for the callback dispatcher ($IVRKIT_AMI) (%(default)s)",
    )
    parser.add_argument("--ami-user", default=env("IVRKIT_AMI_USER", "ivrkit"), help="AMI user (%(default)s)")
    parser.add_argument(
        "--ami-secret-file",
        type=Path,
        default=Path(value) if (value := env("IVRKIT_AMI_SECRET_FILE", "")) else None,
        help="file holding the AMI user's secret ($IVRKIT_AMI_SECRET_FILE); else $IVRKIT_AMI_SECRET",
    )


def ami_settings(args: argparse.Namespace) -> AmiSettings:
    """The AMI options as settings; ValueError says what is missing."""
    from ivrkit.callbacks.running import AmiSettings

    return AmiSettings.parse(args.ami, args.ami_user, args.ami_secret_file)


def open_server_store(data_dir: Path, prog: str) -> Database:
    """The server's store for a command that reads or changes it; never a new, empty one in a directory that is
    not the server's (a mistyped --data-dir would otherwise show nothing and change nothing, silently)."""
    from ivrkit.store.database import DATABASE_FILE, open_database

    if not (data_dir / DATABASE_FILE).is_file():
        raise SystemExit(
            f"{prog}: no store in {data_dir} (no {DATABASE_FILE} there): pass the server's data directory with "
            "--data-dir or $IVRKIT_DATA_DIR"
        )
    try:
        return open_database(data_dir)
    except StoreError as error:
        raise SystemExit(f"{prog}: {error}") from None
    except sqlite3.Error as error:
        raise SystemExit(f"{prog}: {data_dir / DATABASE_FILE}: cannot open the store ({error})") from None


def store_failed(data_dir: Path, error: Exception) -> str:
    """What to say when the store fails in the middle of a command."""
    from ivrkit.store.database import DATABASE_FILE

    return (
        f"the store in {data_dir} failed: {error}; try again, and if it persists check the file with "
        f"sqlite3 {data_dir / DATABASE_FILE} 'PRAGMA integrity_check'"
    )


def load_project(
    args: argparse.Namespace, *, prompts: bool = False
) -> tuple[dict[str, Flow], PromptCatalog, Diagnostics]:
    """Flows (checked) and the prompt catalog; the diagnostics say what is wrong, if anything.

    The flows' prompts are looked up in the catalog (when there is a prompts folder); with ``prompts``, every
    prompt check runs too (unused prompts, the built audio, placeholders), as ``ivrkit check`` shows them.
    """
    from ivrkit.flow.checks import check_flows

    result = load_directory(args.flows)
    catalog = PromptCatalog.load(args.prompts)
    if not args.prompts.is_dir():
        check_flows(result.flows, result.diagnostics, None, result.unloaded)
    elif not prompts:
        check_flows(result.flows, result.diagnostics, catalog, result.unloaded)
        result.diagnostics.extend(catalog.diagnostics)
    else:
        from ivrkit.prompts.checks import check_prompts

        check_flows(result.flows, result.diagnostics, None, result.unloaded)
        every_flow = not result.unloaded and not result.diagnostics.errors  # else "unused" may be played by them
        settings = prompt_settings(args.prompts, result.diagnostics)
        check_prompts(result.flows, catalog, catalog.manifest, result.diagnostics, settings=settings,
                      unused=every_flow)
    return result.flows, catalog, result.diagnostics


def prompt_settings(prompts_dir: Path, diagnostics: Diagnostics) -> PromptSettings | None:
    """``prompts/settings.yaml`` (defaults without it); None when it has mistakes, which are reported."""
    from ivrkit.prompts.settings import SETTINGS_FILE, PromptSettings, PromptSettingsError

    try:
        return PromptSettings.load(prompts_dir)
    except PromptSettingsError as error:
        diagnostics.error(Location(relative_name(prompts_dir / SETTINGS_FILE), 1, 1),
                          "the prompt settings cannot be used", str(error))
        return None
