"""Secrets the server keeps in its data directory (the admin token, the link-signing key): created once, random,
readable by the owner only."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("ivrkit.secrets")

MIN_SECRET_LENGTH = 16


def load_or_create_secret(path: Path, what: str) -> str:
    """The secret in `path`; on first use a new random one, written readable by the owner only (0600).

    `what` names it in messages ("admin token"). Safe when several processes start at once: the file is
    created exclusively and written in one go, so a reader sees all of it or none.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the {what} file {path} holds no usable token (fewer than {MIN_SECRET_LENGTH} characters): "
                "delete it to have a new one created, or write a longer token into it"
            ) from None
        if path.stat().st_mode & 0o077:
            log.warning("%s file %s is readable by other users: run 'chmod 600 %s'", what, path, path)
        return secret
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return load_or_create_secret(path, what)
    secret = secrets.token_urlsafe(32)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (secret + "\n").encode("ascii"))
    finally:
        os.close(fd)
    return secret
