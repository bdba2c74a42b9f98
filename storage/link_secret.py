"""The secret reviewer links are signed with (`docflow.review_links`): the API checks links, the worker signs the
link a review webhook carries, so both read it here.

`DOCFLOW_REVIEW_LINK_SECRET` wins. Without it, in development, a random secret is generated once and kept in
`<data_dir>/review-link-secret` (mode 0600, beside the dev API key), so the API and the worker of one embedded
stack agree and links survive a restart. It is created under a temporary name and linked into place, so when the
API and the worker start at once one of them writes it and the other reads the same secret. In production
without the setting there are no links: `LinksNotConfigured` says which setting to set.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from docflow.config import Settings

FILE_NAME = "review-link-secret"


class LinksNotConfigured(RuntimeError):
    """Production without `DOCFLOW_REVIEW_LINK_SECRET`: reviewer links are off."""


def review_link_secret(settings: Settings) -> bytes:
    """The signing secret: the setting, else (development) the generated one of the data directory."""
    if settings.review_link_secret is not None:
        return settings.review_link_secret.get_secret_value().encode()
    if settings.environment != "development":
        raise LinksNotConfigured("reviewer links need DOCFLOW_REVIEW_LINK_SECRET (32+ characters) outside development")
    return _generated(settings.data_dir / FILE_NAME).encode()


def _generated(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # Fails if another process placed its secret first: then that one is read.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
