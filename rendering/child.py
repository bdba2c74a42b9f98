"""Both sides of a renderer child: the parent starts it, the child limits itself and keeps its answer clean.

    proc = await start_child("api.page_previews", args, stderr=asyncio.subprocess.PIPE)   # in the parent
    out = answer_stream()                                  # in the child, before any library is loaded
    limit_child(memory_bytes=1 << 30, cpu_seconds=30)

The child is a fresh interpreter (`python -m MODULE`) with an empty environment but for PYTHONPATH: a
document's renderer never sees the parent's secrets. Its address space is limited to its idle size plus
`memory_bytes`, it writes no core dumps, and on request it has a CPU-time limit and dies with its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import sys
from typing import BinaryIO


async def start_child(
    module: str, args: list[str], *, stderr: int, start_new_session: bool = False
) -> asyncio.subprocess.Process:
    """`python -m module *args` with stdin and stdout piped, in an environment holding only PYTHONPATH."""
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", module, *args],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        start_new_session=start_new_session,
    )


def answer_stream() -> BinaryIO:
    """The child's stdout for its answer; file descriptor 1 goes to stderr, so a library's prints stay off it."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return out


def limit_child(memory_bytes: int, *, cpu_seconds: int | None = None, die_with_parent: bool = False) -> None:
    """Keep to `memory_bytes` over the idle address space, write no core; a CPU-time limit and dying with the
    parent (PR_SET_PDEATHSIG) on request."""
    if die_with_parent:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's kill still ends us
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(0)
    with open("/proc/self/status") as status:
        size = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")), 0)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = size + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    if cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
