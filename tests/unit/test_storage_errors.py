"""Storage failures are typed and bounded: refused connections and silent servers become `StorageUnavailable`.

The "servers" here are loopback sockets: one port with nothing listening, one that accepts and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from devstack.stack import free_port
from docflow.config import Settings
from storage.objects import ObjectStore, StorageUnavailable, storage_deadline


def _store(port: int) -> ObjectStore:
    return ObjectStore(
        Settings(s3_endpoint=f"http://127.0.0.1:{port}", s3_connect_timeout_seconds=1, s3_read_timeout_seconds=30)
    )


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback server that accepts connections and never answers (a stalled S3)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(128)
        yield server.getsockname()[1]


async def test_a_refused_connection_is_storage_unavailable_naming_the_call() -> None:
    store = _store(free_port())
    with pytest.raises(StorageUnavailable, match=r"get runs/x\.json"):
        await store.get_bytes("runs/x.json")


async def test_a_stalled_server_fails_at_the_callers_deadline(silent_port: int) -> None:
    store = _store(silent_port)
    started = time.monotonic()
    with storage_deadline(0.5), pytest.raises(StorageUnavailable, match="did not answer in time"):
        await store.put_json("steps/a.json", {"a": 1})
    assert time.monotonic() - started < 3


async def test_a_stalled_store_does_not_starve_the_default_executor(silent_port: int) -> None:
    store = _store(silent_port)
    with storage_deadline(2.0):
        stuck = [asyncio.create_task(store.get_bytes(f"k{i}")) for i in range(40)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 1.0) == 42
        assert time.monotonic() - started < 1.5  # a starved executor waits out the stuck calls' 2 s deadline
        results = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(r, StorageUnavailable) for r in results)
