"""API keys: configured in a JSON file of sha256 hashes, each belonging to one project.

A key is sent as `Api-Key: <key>` or `Authorization: Bearer <key>`; the plaintext is never stored.
Key files are created with mode 0600 (never world-readable, not even between a write and a chmod), and the
key file is changed under an exclusive lock and replaced atomically, so concurrent `docflow keys create` calls
lose no key and a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from docflow.ids import PROJECT, new_id


class KeyEntry(BaseModel):
    """One configured key: its hash, its project, a name for logs."""

    sha256: str
    project_id: str
    name: str = "key"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the project the key belongs to, the key's name and its stable public id."""

    project_id: str
    key_name: str
    # `key:` + 16 hex of a hash of the key's hash: names the key in records (who decided a review) and
    # reveals nothing of the key or of its stored hash.
    key_id: str


def hash_key(key: str) -> str:
    """sha256 hex of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key_sha256: str) -> str:
    """A key's public id, from its stored hash."""
    return "key:" + hashlib.sha256(f"docflow-key-id\x1f{key_sha256}".encode()).hexdigest()[:16]


class KeyRing:
    """The configured keys, looked up by hash in constant time per entry."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self.entries = entries

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read the key file (absent → no keys, every request is refused)."""
        if not path.exists():
            return cls([])
        return cls(TypeAdapter(list[KeyEntry]).validate_json(path.read_bytes()))

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a key, or None."""
        digest = hash_key(key)
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                return Principal(entry.project_id, entry.name, key_id(entry.sha256))
        return None


def create_key(path: Path, project_id: str | None = None, name: str = "dev") -> tuple[str, str]:
    """Add a new key to the key file; returns (plaintext key, project id)."""
    project = project_id or new_id(PROJECT)
    key = "sk_docflow_" + secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = KeyRing.load(path).entries
        entries.append(KeyEntry(sha256=hash_key(key), project_id=project, name=name))
        write_private(path, json.dumps([e.model_dump() for e in entries], indent=2))
    return key, project


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only: created 0600 under a temporary name, then renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a sidecar file (the key file itself is replaced, so it cannot carry the lock)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
