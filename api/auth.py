"""API keys: configured in a JSON file of sha256 hashes, each belonging to one project.

A key is sent as `Api-Key: <key>` or `Authorization: Bearer <key>`; the plaintext is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
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
    """Who is calling: the project the key belongs to."""

    project_id: str
    key_name: str


def hash_key(key: str) -> str:
    """sha256 hex of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


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
                return Principal(entry.project_id, entry.name)
        return None


def create_key(path: Path, project_id: str | None = None, name: str = "dev") -> tuple[str, str]:
    """Add a new key to the key file; returns (plaintext key, project id)."""
    entries = KeyRing.load(path).entries
    project = project_id or new_id(PROJECT)
    key = "sk_docflow_" + secrets.token_urlsafe(24)
    entries.append(KeyEntry(sha256=hash_key(key), project_id=project, name=name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([e.model_dump() for e in entries], indent=2))
    path.chmod(0o600)
    return key, project
