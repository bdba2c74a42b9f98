"""The API key file: private from its first byte, and no key lost when several processes add keys at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from api import auth
from api.auth import KeyRing, create_key


def test_the_key_file_is_created_private_never_chmoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With chmod after writing, the file exists world-readable (umask 022) until the chmod: forbid chmod.
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("the key file must be created with mode 0600, not chmod'ed afterwards")

    monkeypatch.setattr(Path, "chmod", no_chmod)
    monkeypatch.setattr(os, "chmod", no_chmod)
    old = os.umask(0o022)
    try:
        path = tmp_path / "conf" / "keys.json"
        key, project = create_key(path, name="a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.load(path).authenticate(key) is not None


def test_the_dev_key_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "dev-api-key"
    old = os.umask(0o022)
    try:
        auth.write_private(path, "secret\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "secret\n"


def _create_many(path: str, count: int) -> list[str]:
    return [create_key(Path(path), name=f"k{i}")[0] for i in range(count)]


def test_concurrent_key_creation_loses_no_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        batches = pool.starmap(_create_many, [(str(path), 40)] * 6)
    ring = KeyRing.load(path)
    created = [key for batch in batches for key in batch]
    assert len(created) == 240
    assert len(ring.entries) == 240
    assert all(ring.authenticate(key) is not None for key in created)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_keys_public_id_is_stable_distinct_and_reveals_nothing_of_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first, _ = create_key(path, name="same-name")
    second, _ = create_key(path, name="same-name")
    ring = KeyRing.load(path)
    a, b = ring.authenticate(first), ring.authenticate(second)
    assert a is not None and b is not None
    assert a.key_id.startswith("key:") and a.key_id != b.key_id
    assert ring.authenticate(first) == a  # stable across requests
    stored = auth.hash_key(first)
    assert stored[:8] not in a.key_id and first not in a.key_id
