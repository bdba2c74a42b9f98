"""The Python sandbox with real bubblewrap: what user code can reach, and that every escape ends cleanly.

Each escape attempt ends in the user's own error, a killed sandbox or harmless output; the pool then serves
the next call as before. Network attempts happen inside the sandbox's empty network namespace only.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import stat
import struct
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from activities import sandbox_seccomp
from activities.errors import BlockError
from activities.python_function import run_python
from activities.sandbox import (
    Invocation,
    SandboxCrashed,
    SandboxOptions,
    SandboxPool,
    SandboxTimeout,
    SandboxTooLarge,
    SandboxUnavailable,
)
from docflow.blocks import FunctionConfig
from tests.sandboxes import require_bwrap

REPO = Path(__file__).resolve().parents[2]
ECHO = "def transform(input_data):\n    return input_data\n"


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    require_bwrap()
    async with SandboxPool(SandboxOptions(size=2)) as sandboxes:
        yield sandboxes


async def _run(pool: SandboxPool, body: str, data: Any = None, timeout: float = 5.0) -> Invocation:
    return await pool.run(f"def transform(input_data):\n{body}\n", data if data is not None else {}, timeout)


async def _still_healthy(pool: SandboxPool) -> None:
    call = await pool.run(ECHO, {"ok": True}, 5.0)
    assert call.output == {"ok": True} and call.error is None


async def test_transform_returns_its_output_with_prints_and_duration(pool: SandboxPool) -> None:
    code = (
        "import math\n"
        "def transform(input_data: Input) -> Output:\n"
        "    print('total is', input_data['total'])\n"
        "    print('done')\n"
        "    return {'total': input_data['total'] * 2, 'root': math.isqrt(16)}\n"
    )
    call = await pool.run(code, {"total": 21}, 5.0)
    assert call.output == {"total": 42, "root": 4}
    assert call.error is None
    assert call.printed == ["total is 21", "done"]
    assert 0 <= call.duration_ms < 5000


async def test_an_exception_reports_its_type_and_the_users_line(pool: SandboxPool) -> None:
    call = await pool.run("def transform(input_data):\n    x = 1\n    return x / 0\n", {}, 5.0)
    assert call.error is not None
    assert call.error["type"] == "ZeroDivisionError"
    assert call.error["line"] == 3
    assert 'File "<function>", line 3, in transform' in call.error["traceback"]
    assert "sandbox_runner" not in call.error["traceback"]  # only the user's frames


async def test_output_that_is_not_json_is_the_users_error(pool: SandboxPool) -> None:
    call = await _run(pool, "    return {1, 2}")
    assert call.error is not None and "not JSON" in call.error["message"]


async def test_reading_etc_passwd_finds_nothing(pool: SandboxPool) -> None:
    call = await _run(pool, "    return open('/etc/passwd').read()")
    assert call.error is not None and call.error["type"] == "FileNotFoundError"
    listing = await _run(pool, "    import os\n    return sorted(os.listdir('/'))")
    assert listing.output == ["dev", "lib", "lib64", "tmp", "usr"]
    await _still_healthy(pool)


async def test_the_projects_files_and_data_dir_are_not_there(pool: SandboxPool) -> None:
    assert (REPO / "pyproject.toml").exists()
    for path in (REPO / "pyproject.toml", REPO / "activities" / "sandbox.py", REPO / ".data", REPO / ".venv"):
        call = await _run(pool, f"    return open({str(path)!r}, 'rb').read(10).decode()")
        assert call.error is not None and call.error["type"] == "FileNotFoundError", call
    # Installed packages are hidden too: the interpreter's own site-packages is empty, no venv on the path.
    call = await _run(pool, "    import importlib.util\n    return importlib.util.find_spec('pydantic') is None")
    assert call.output is True
    await _still_healthy(pool)


async def test_the_workers_environment_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("DOCFLOW_S3_SECRET_KEY", "worker-secret-value")
    async with SandboxPool(SandboxOptions(size=1)) as fresh:
        call = await _run(
            fresh, "    import os\n    return {'env': dict(os.environ), 'proc': os.path.exists('/proc/1/environ')}"
        )
    assert call.output is not None
    assert "worker-secret-value" not in str(call.output)
    assert not any(name.startswith("DOCFLOW") for name in call.output["env"])
    assert call.output["proc"] is False


async def test_a_socket_to_a_local_service_never_connects(pool: SandboxPool) -> None:
    accepted: list[int] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(1), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        call = await _run(
            pool, f"    import socket\n    return socket.create_connection(('127.0.0.1', {port}), timeout=2).fileno()"
        )
    finally:
        server.close()
    assert call.error is not None and call.error["type"] in ("OSError", "ConnectionRefusedError"), call
    assert accepted == []
    await _still_healthy(pool)


# No outside address is named, let alone dialled (the network rule keeps tests on loopback): the sandbox's
# network namespace holds one interface, its own loopback, so no route can lead to any other address.
INTERFACES = "    import socket\n    return [name for _, name in socket.if_nameindex()]"


async def test_no_outside_address_is_reachable(pool: SandboxPool) -> None:
    """The sandbox's namespace has its own loopback and nothing else: no interface leads out of it."""
    call = await _run(pool, INTERFACES)
    assert call.error is None, call
    assert call.output == ["lo"]


async def test_a_fork_bomb_stops_at_the_process_limit(pool: SandboxPool) -> None:
    start = time.monotonic()
    try:
        call = await _run(pool, "    import os\n    while True:\n        os.fork()", timeout=2.0)
        assert call.error is not None and call.error["type"] == "BlockingIOError"
    except SandboxTimeout:
        pass  # also a clean end: killed with every process of its namespace
    assert time.monotonic() - start < 10
    await _still_healthy(pool)


async def test_allocating_8_gib_is_a_memory_error(pool: SandboxPool) -> None:
    call = await _run(pool, "    return len(bytearray(8 << 30))")
    assert call.error is not None and call.error["type"] == "MemoryError"
    await _still_healthy(pool)


async def test_an_infinite_loop_is_killed_at_its_timeout(pool: SandboxPool) -> None:
    start = time.monotonic()
    with pytest.raises(SandboxTimeout):
        await _run(pool, "    while True:\n        pass", timeout=1.0)
    assert 1.0 <= time.monotonic() - start < 4.0
    await _still_healthy(pool)


async def test_writing_10_gib_stops_at_the_size_caps(pool: SandboxPool) -> None:
    body = (
        "    import os\n"
        "    chunk = b'x' * (1 << 20)\n"
        "    written = 0\n"
        "    with open('/tmp/big', 'wb') as f:\n"
        "        while written < (10 << 30):\n"
        "            f.write(chunk)\n"
        "            written += len(chunk)\n"
        "    return written"
    )
    call = await _run(pool, body)
    assert call.error is not None and call.error["type"] == "OSError", call
    assert "No space left" in call.error["message"] or "too large" in call.error["message"]
    readonly = await _run(pool, "    open('/usr/evil', 'w')")
    assert readonly.error is not None and "Read-only file system" in readonly.error["message"]
    await _still_healthy(pool)


async def test_ctypes_is_withheld_and_a_crash_ends_only_its_sandbox(pool: SandboxPool) -> None:
    call = await _run(pool, "    import ctypes\n    return ctypes.string_at(0xFFFFFFFFFFFF0000, 8).hex()")
    assert call.error is not None and call.error["type"] == "ModuleNotFoundError"
    assert "_ctypes" in call.error["message"]
    with pytest.raises(SandboxCrashed) as crashed:
        await _run(pool, "    import faulthandler\n    faulthandler._sigsegv()")
    assert crashed.value.reason == "signal" and "SIGSEGV" in str(crashed.value)
    # No privilege inside: root is not mapped, no chroot, no device nodes.
    body = (
        "    import os\n"
        "    out = []\n"
        "    device = lambda: os.mknod('/tmp/d', 0o600 | 0o20000, os.makedev(1, 3))\n"
        "    for attempt in (lambda: os.setuid(0), lambda: os.chroot('/tmp'), device):\n"
        "        try:\n"
        "            attempt()\n"
        "            out.append('done')\n"
        "        except OSError as exc:\n"
        "            out.append(exc.errno)\n"
        "    return out"
    )
    call = await _run(pool, body)
    assert call.output == [errno.EINVAL, errno.EPERM, errno.EPERM], call
    await _still_healthy(pool)


async def test_state_left_by_one_call_is_not_seen_by_the_next(pool: SandboxPool) -> None:
    body = (
        "    import builtins, sys, os\n"
        "    open('/tmp/left', 'w').write('secret')\n"
        "    builtins.LEFT = 1\n"
        "    sys.modules['left'] = sys\n"
        "    return os.getpid()"
    )
    first = await _run(pool, body)
    assert first.error is None
    second = await _run(
        pool,
        "    import builtins, os, sys\n"
        "    return [os.path.exists('/tmp/left'), hasattr(builtins, 'LEFT'), 'left' in sys.modules]",
    )
    assert second.output == [False, False, False]


async def test_the_pool_keeps_sandboxes_warm_and_a_warm_call_is_fast(pool: SandboxPool) -> None:
    await _still_healthy(pool)
    await asyncio.wait_for(pool.wait_full(), 10)
    assert pool.warm == 2
    start = time.perf_counter()
    await _still_healthy(pool)
    assert time.perf_counter() - start < 1.0


async def test_too_large_an_input_is_refused_before_any_sandbox(pool: SandboxPool) -> None:
    with pytest.raises(SandboxTooLarge):
        await pool.run(ECHO, {"x": "y" * (9 << 20)}, 5.0)


async def test_without_bubblewrap_the_call_is_refused_with_how_to_enable() -> None:
    async with SandboxPool(SandboxOptions(size=1, bwrap="/nonexistent/bwrap")) as none:
        with pytest.raises(SandboxUnavailable) as refused:
            await none.run(ECHO, {}, 5.0)
    assert "apt-get install bubblewrap" in str(refused.value)
    assert "docs/sandbox.md" in str(refused.value)


async def test_where_namespaces_are_refused_the_call_fails_and_never_runs_unsandboxed() -> None:
    # A stand-in for bwrap on a machine whose container runtime forbids user namespaces: it says so and exits.
    # (In a directory the sandbox's own uid can reach, like bwrap's.)
    folder = Path(tempfile.mkdtemp(prefix="docflow-fake-bwrap-"))
    folder.chmod(0o755)
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    async with SandboxPool(SandboxOptions(size=1, bwrap=str(fake))) as refusing:
        with pytest.raises(SandboxUnavailable) as refused:
            await refusing.run(ECHO, {}, 5.0)
    assert "No permissions to create a new namespace" in str(refused.value)
    assert "user.max_user_namespaces" in str(refused.value)
    shutil.rmtree(folder)


async def test_a_function_block_without_a_sandbox_fails_with_sandbox_unavailable() -> None:
    config = FunctionConfig(language="python", code=ECHO)
    async with SandboxPool(SandboxOptions(size=1, bwrap="/nonexistent/bwrap")) as none:
        with pytest.raises(BlockError) as failed:
            await run_python(none, cast(Any, None), "fn", config, {"a": 1})
    assert failed.value.code == "sandbox_unavailable"
    assert "apt-get install bubblewrap" in str(failed.value)
    artifact = failed.value.details["artifact"]
    assert artifact["operation"] == "function_invocation" and artifact["inputs"] == {"input-json-0": {"a": 1}}
    assert artifact["error"]["type"] == "sandbox_unavailable"


async def test_a_reply_over_the_size_cap_and_endless_prints_are_cut(pool: SandboxPool) -> None:
    with pytest.raises(SandboxTooLarge):
        await _run(pool, "    return 'x' * (9 << 20)")
    call = await _run(pool, "    for i in range(100000):\n        print('line', i)\n    return 'done'")
    assert call.output == "done" and call.printed_truncated is True
    assert 0 < sum(len(line) for line in call.printed) <= 64 << 10
    await _still_healthy(pool)


async def test_system_calls_no_transform_needs_are_refused_by_the_seccomp_filter(pool: SandboxPool) -> None:
    if sandbox_seccomp.program() is None:
        pytest.skip("no seccomp table for this architecture")
    body = (
        "    import os, threading\n"
        "    try:\n"
        "        os.memfd_create('x')\n"
        "        made = 'made'\n"
        "    except OSError as exc:\n"
        "        made = exc.errno\n"
        "    worker = threading.Thread(target=lambda: None)\n"
        "    worker.start()\n"
        "    worker.join()\n"
        "    return made"
    )
    call = await _run(pool, body)
    assert call.output == errno.EPERM, call  # refused, while threads (clone) still work


def test_the_seccomp_program_checks_the_architecture_first() -> None:
    x86 = sandbox_seccomp.program("x86_64")
    arm = sandbox_seccomp.program("aarch64")
    assert x86 is not None and arm is not None
    assert len(x86) % 8 == 0 and len(arm) % 8 == 0
    first = struct.unpack("=HBBI", x86[:8])
    assert first == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert struct.unpack("=HBBI", x86[-8:]) == (0x06, 0, 0, 0x7FFF0000)  # the default: allow
    assert sandbox_seccomp.program("riscv64") is None
