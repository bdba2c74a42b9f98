"""The isolated executor: user-controlled computation runs in a small pool of limited processes, never on the loop.

    executor = IsolatedExecutor(processes=4, memory_bytes=256 << 20, cpu_seconds=5)
    await executor.start()                       # pre-warmed: the processes are up before the first task
    result = await executor.run("function", {"config": ..., "data": ...}, timeout=4.0)

Tasks are named functions of `activities.isolated_tasks` (function, conditions, json_schema); payloads and
results are JSON. Each process is a fresh interpreter (`python -m activities.isolated_tasks`, the same
isolation as multiprocessing's spawn: nothing is inherited from the worker's threads or event loop), with
an address-space limit (RLIMIT_AS: its idle size plus `memory_bytes`) and a CPU-time limit per task
(RLIMIT_CPU: `cpu_seconds`, a backstop), and it is SIGKILLed when the worker dies. The caller's `timeout`
is wall-clock: when it passes, or the call is cancelled, the process is killed and a new one is started.

    IsolationError
     ├── TaskTimeout       the task ran past its wall-clock timeout: killed            (the user's: permanent)
     ├── ResourceLimit     it hit the memory or CPU-time limit (`resource`)             (the user's: permanent)
     ├── TaskError         the task itself failed: `code`, `message`, `details`        (the user's: permanent)
     └── WorkerLost        the process died or broke for another reason                 (infrastructure: retry)

The same executor is meant to run user Python later, inside a namespace sandbox added to the process start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import sys
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import structlog

log = structlog.get_logger("docflow.isolation")

_HEADER = struct.Struct(">I")
START_TIMEOUT_SECONDS = 30.0
RESPAWN_DELAY_SECONDS = 1.0


class IsolationError(Exception):
    """Base of the executor's errors."""


class TaskTimeout(IsolationError):
    """The task ran past its wall-clock timeout; its process was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds


class ResourceLimit(IsolationError):
    """The task hit a resource limit: `resource` is "memory" or "cpu"."""

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(message)
        self.resource = resource


class TaskError(IsolationError):
    """The task failed on its input; `code`, `message` and `details` say how."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class WorkerLost(IsolationError):
    """The process died or broke for a reason that is not the task's limits: infrastructure, worth a retry."""


@dataclass(eq=False)
class _Process:
    proc: asyncio.subprocess.Process
    watcher: asyncio.Task[None] | None = field(default=None)
    killed: bool = False

    @property
    def alive(self) -> bool:
        # Killed counts as dead at once: the exit is only seen when the child watcher reaps it.
        return self.proc.returncode is None and not self.killed

    def kill(self) -> None:
        if self.alive:
            self.killed = True
            self.proc.kill()


class IsolatedExecutor:
    """A pool of `processes` limited processes running named tasks; see the module docstring."""

    def __init__(self, *, processes: int, memory_bytes: int, cpu_seconds: int) -> None:
        self.processes = processes
        self.memory_bytes = memory_bytes
        self.cpu_seconds = cpu_seconds
        self._idle: asyncio.Queue[_Process] = asyncio.Queue()
        self._live: set[_Process] = set()
        self._respawns: set[asyncio.Task[None]] = set()
        self._closing = False
        self._full = asyncio.Event()  # set while every process is up and none is being replaced

    async def __aenter__(self) -> IsolatedExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live processes (for logs and tests)."""
        return [p.proc.pid for p in self._live if p.alive]

    async def start(self) -> None:
        """Start every process and wait until each is ready."""
        await asyncio.gather(*(self._spawn() for _ in range(self.processes)))
        log.info("isolated executor ready", processes=self.processes, pids=self.pids)

    async def wait_ready(self) -> None:
        """Wait until the pool is back to full strength (after kills)."""
        await self._full.wait()

    def _update(self) -> None:
        if len(self.pids) >= self.processes and not self._respawns:
            self._full.set()
        else:
            self._full.clear()

    async def close(self) -> None:
        """Kill every process and stop replacing them."""
        self._closing = True
        for task in self._respawns:
            task.cancel()
        for process in list(self._live):
            process.kill()
            if process.watcher is not None:
                process.watcher.cancel()
            await process.proc.wait()
        self._live.clear()

    async def run(self, task: str, payload: Any, *, timeout: float) -> Any:
        """Run `task` on `payload` in a pool process; its JSON result, or one of the IsolationError types."""
        body = json.dumps({"task": task, "payload": payload}, ensure_ascii=False, allow_nan=False).encode()
        process = await self._acquire()
        reusable = False
        try:
            # asyncio.timeout raises TimeoutError for its own deadline only; a cancellation stays one.
            async with asyncio.timeout(timeout):
                assert process.proc.stdin is not None and process.proc.stdout is not None
                process.proc.stdin.write(_HEADER.pack(len(body)) + body)
                await process.proc.stdin.drain()
                reply = await _read(process.proc.stdout)
        except TimeoutError as exc:
            raise TaskTimeout(timeout) from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise await self._death(process) from exc
        else:
            # A task's own error leaves its process sound; one that ran out of memory is replaced.
            reusable = "ok" in reply or reply["error"].get("kind") != "memory"
            if "ok" in reply:
                return reply["ok"]
            raise _error(reply["error"])
        finally:
            if reusable:
                self._idle.put_nowait(process)
            else:
                process.kill()  # its watcher starts a replacement
                self._update()

    async def _acquire(self) -> _Process:
        while True:
            process = await self._idle.get()
            if process.alive and process in self._live:
                return process

    async def _death(self, process: _Process) -> IsolationError:
        try:
            code = await asyncio.wait_for(process.proc.wait(), 2.0)
        except TimeoutError:
            return WorkerLost("the isolated process stopped answering")
        if code == -signal.SIGXCPU:
            return ResourceLimit("cpu", f"CPU time limit exceeded ({self.cpu_seconds} s)")
        return WorkerLost(f"the isolated process exited with {code}")

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "activities.isolated_tasks",
            str(self.memory_bytes),
            str(self.cpu_seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # Nothing of the worker's environment (its S3 and model keys): only where our code is.
            env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        try:
            assert proc.stdout is not None
            ready = await asyncio.wait_for(_read(proc.stdout), START_TIMEOUT_SECONDS)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            proc.kill()
            await proc.wait()
            raise WorkerLost(f"an isolated process did not start (exit {proc.returncode})") from exc
        if ready != {"ready": True}:
            proc.kill()
            raise WorkerLost(f"an isolated process answered {ready!r} at start")
        process = _Process(proc)
        process.watcher = asyncio.create_task(self._watch(process))
        self._live.add(process)
        self._idle.put_nowait(process)
        self._update()

    async def _watch(self, process: _Process) -> None:
        await process.proc.wait()
        self._live.discard(process)
        if not self._closing:
            task = asyncio.create_task(self._respawn())
            self._respawns.add(task)
            task.add_done_callback(self._respawned)
        self._update()

    def _respawned(self, task: asyncio.Task[None]) -> None:
        self._respawns.discard(task)
        self._update()

    async def _respawn(self) -> None:
        while not self._closing:
            try:
                await self._spawn()
                return
            except (OSError, WorkerLost) as exc:
                log.error("isolated process failed to start; retrying", error=str(exc))
                await asyncio.sleep(RESPAWN_DELAY_SECONDS)


async def _read(stream: asyncio.StreamReader) -> dict[str, Any]:
    (size,) = _HEADER.unpack(await stream.readexactly(_HEADER.size))
    message: dict[str, Any] = json.loads(await stream.readexactly(size))
    return message


def _error(error: dict[str, Any]) -> IsolationError:
    kind, message = error.get("kind"), str(error.get("message", ""))
    if kind == "memory":
        return ResourceLimit("memory", "memory limit exceeded")
    if kind == "task":
        return TaskError(str(error.get("code", "task_error")), message, error.get("details") or {})
    return TaskError("task_failed", message or "the task failed")
