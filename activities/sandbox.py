"""User Python in a bubblewrap sandbox: one throw-away process per call, from a small pool of warm ones.

    pool = SandboxPool(SandboxOptions(size=2))
    await pool.start()                                   # probes the runtime, warms `size` sandboxes
    call = await pool.run(code, {"a": 1}, timeout=5.0)   # -> Invocation(output | error, printed, duration_ms)

Each sandbox is `bwrap` (Debian `bubblewrap`) around the interpreter running `activities.sandbox_runner`:

- namespaces: `--unshare-all` (user, pid, net with no interface but a downed loopback, ipc, uts, cgroup),
  `--disable-userns` (no nested namespaces), `--new-session`, `--die-with-parent`, `--clearenv`;
- system calls: a seccomp filter answers EPERM to those no transform needs (activities.sandbox_seccomp);
- filesystem: an empty root holding, read-only, only the interpreter, its standard library (with any
  site-packages inside it hidden under an empty read-only tmpfs; without `ctypes` and CPython's test modules:
  WITHHELD_MODULES), its lib-dynload and the shared libraries they link (found with `ldd`); `/dev` minimal
  and read-only; `/tmp` a private tmpfs of `tmp_bytes`. No /etc, no /proc, no project files, no `.data/`,
  no venv;
- limits, set in the child before bwrap is exec'd (they bind everything inside): address space, CPU time,
  processes, open files, file size, no core dumps. Run as root, the worker gives every sandbox its own uid
  (`uid_base`…), so the process limit counts that sandbox's processes alone (root is exempt from it); run as
  another user, sandboxes share its uid and may add `processes` to what that uid runs when one starts;
- time: the call's wall-clock `timeout` kills bwrap's process group; bwrap's `--die-with-parent` and the pid
  namespace take every process inside down with it.

A sandbox is started ahead of use, waits for its one request, runs it and is discarded: nothing one call
leaves (files, modules, threads, children) is seen by the next. Where bwrap cannot create its namespaces
the call fails with SandboxUnavailable, saying how to enable them; nothing ever runs unsandboxed.

    SandboxError
     ├── SandboxUnavailable  bubblewrap missing or namespaces refused (the operator's to fix)   permanent
     ├── SandboxTimeout      the call ran past its timeout and was killed                        permanent
     ├── SandboxCrashed      the process died (a signal: CPU limit, segfault…) or broke protocol permanent
     └── SandboxTooLarge     the input or the reply is over `io_bytes`                           permanent
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from activities import sandbox_seccomp

log = structlog.get_logger("docflow.sandbox")

RUNNER = (Path(__file__).parent / "sandbox_runner.py").read_text()
FILTER = sandbox_seccomp.program()
START_TIMEOUT_SECONDS = 20.0
HOW_TO_ENABLE = (
    "user Python needs Linux namespaces through bubblewrap: install it (Debian: apt-get install bubblewrap) and let "
    "the worker create user namespaces (sysctl user.max_user_namespaces > 0; on Debian before 11 also "
    "kernel.unprivileged_userns_clone=1; in Docker run the worker with --security-opt seccomp=unconfined "
    "--security-opt apparmor=unconfined or a seccomp profile that allows clone/unshare of namespaces, in "
    "Kubernetes the equivalent securityContext); see docs/sandbox.md"
)
# Standard-library extension modules left out: raw memory and syscalls from Python (ctypes: SysV shared memory
# outside any rlimit, pointers into the interpreter), and CPython's test modules that poke at its internals.
WITHHELD_MODULES = {
    "_ctypes",
    "_ctypes_test",
    "_testcapi",
    "_testinternalcapi",
    "_testbuffer",
    "_testmultiphase",
    "_testsinglephase",
    "_testimportmultiple",
    "_testclinic",
    "_xxtestfuzz",
    "_xxsubinterpreters",
    "_xxinterpchannels",
    "xxlimited",
    "xxlimited_35",
    "xxsubtype",
}
_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({'stdlib': sysconfig.get_path('stdlib'), "
    "'platstdlib': sysconfig.get_path('platstdlib'), 'path': sys.path}))"
)


class SandboxError(Exception):
    """Base of the sandbox's errors."""


class SandboxUnavailable(SandboxError):
    """No sandbox can be made on this machine; the message says why and how to enable it."""


class SandboxTimeout(SandboxError):
    """The call ran past its timeout; the sandbox was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g} s (killed)")
        self.seconds = seconds


class SandboxCrashed(SandboxError):
    """The sandboxed process died without answering (`reason`: cpu_limit, signal, protocol)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SandboxTooLarge(SandboxError):
    """The input or the reply is over the size limit."""


@dataclass(frozen=True)
class SandboxOptions:
    """How many warm sandboxes, and the limits of each."""

    size: int = 2
    python: str = ""  # "" = the worker's own interpreter when the sandbox's user can read it, else /usr/bin/python3
    bwrap: str = "bwrap"
    memory_bytes: int = 1024 << 20  # address space (the interpreter itself maps ~30 MB)
    tmp_bytes: int = 16 << 20
    file_bytes: int = 16 << 20
    processes: int = 16
    open_files: int = 64
    cpu_seconds: int = 310  # the backstop over the longest timeout (300 s); each call lowers it to its own
    io_bytes: int = 8 << 20
    print_bytes: int = 64 << 10
    uid_base: int = 430000
    uid_count: int = 1000


@dataclass
class Invocation:
    """One call's outcome: `output` or `error` (what the user's code raised), its prints and its time."""

    output: Any = None
    error: dict[str, Any] | None = None
    printed: list[str] = field(default_factory=list)
    printed_truncated: bool = False
    duration_ms: int = 0


@dataclass(eq=False)
class _Sandbox:
    proc: asyncio.subprocess.Process
    uid: int | None

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # bwrap leads its own group; its pid namespace follows


@dataclass(frozen=True)
class Runtime:
    """The interpreter and the bwrap arguments that mount it (and nothing else) read-only."""

    python: str
    mounts: tuple[str, ...]


def _installed(path: Path) -> bool:
    return "site-packages" in path.parts or "dist-packages" in path.parts


def _readable_by_others(path: str) -> bool:
    """Whether a user with no relation to the file's owner can reach and read `path`."""
    current = Path(path)
    for parent in [current, *current.parents]:
        try:
            mode = os.stat(parent).st_mode
        except OSError:
            return False
        needed = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
        if not mode & needed:
            return False
    return True


def _shared_libraries(files: list[str]) -> dict[str, str]:
    """Every shared library the files link, as {path the loader opens: real file} (from `ldd`)."""
    found: dict[str, str] = {}
    if not files:
        return found
    result = subprocess.run(["ldd", *files], capture_output=True, text=True, timeout=60, check=False)
    for line in result.stdout.splitlines():
        parts = line.strip().split()
        path = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
        if path.startswith("/") and os.path.exists(path):
            found[path] = os.path.realpath(path)
    return found


def build_runtime(python: str, separate_user: bool) -> Runtime:
    """The mounts of a minimal read-only filesystem for `python` (or the default interpreter); blocks (a thread)."""
    candidates = [python] if python else [sys._base_executable, "/usr/bin/python3"]  # type: ignore[attr-defined]
    chosen = None
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if os.path.isfile(real) and (not separate_user or _readable_by_others(real)):
            chosen = real
            break
    if chosen is None:
        raise SandboxUnavailable(
            f"no Python interpreter the sandbox's user can read among {candidates}: set DOCFLOW_SANDBOX_PYTHON "
            "to one under world-readable directories (e.g. /usr/bin/python3)"
        )
    probe = subprocess.run([chosen, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    facts = json.loads(probe.stdout)
    dirs = sorted({facts["stdlib"], facts["platstdlib"], *(p for p in facts["path"] if p.endswith("lib-dynload"))})
    dirs = [d for d in dirs if os.path.isdir(d) and not any(d.startswith(o + "/") for o in dirs if o != d)]
    extensions = [str(p) for d in dirs for p in Path(d).rglob("*.so") if not _installed(p)]
    withheld = [e for e in extensions if Path(e).name.split(".")[0] in WITHHELD_MODULES]
    kept = [e for e in extensions if e not in withheld]
    libraries = _shared_libraries([chosen, *kept])
    mounts: list[str] = ["--ro-bind", chosen, chosen]
    for directory in dirs:
        mounts += ["--ro-bind", directory, directory]
        for hidden in ("site-packages", "dist-packages"):
            if os.path.isdir(os.path.join(directory, hidden)):
                # Installed packages (the venv's or the system's) stay out: an empty, read-only directory.
                inside = os.path.join(directory, hidden)
                mounts += ["--perms", "0555", "--size", "4096", "--tmpfs", inside, "--remount-ro", inside]
    for folder in sorted({os.path.dirname(w) for w in withheld}):
        # The folder again, as an empty tmpfs holding every entry but the withheld modules, read-only.
        mounts += ["--perms", "0555", "--size", "4096", "--tmpfs", folder]
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if path not in withheld:
                mounts += ["--ro-bind", path, path]
        mounts += ["--remount-ro", folder]
    for dest, source in sorted(libraries.items()):
        if not any(dest.startswith(d + "/") for d in dirs):
            mounts += ["--ro-bind", source, dest]
    unreadable = [m for m in mounts if m.startswith("/") and os.path.exists(m) and not _readable_by_others(m)]
    if separate_user and unreadable:
        raise SandboxUnavailable(f"the sandbox's user cannot read {unreadable[:3]}: set DOCFLOW_SANDBOX_PYTHON")
    return Runtime(python=chosen, mounts=tuple(mounts))


def _filter_pipe() -> int | None:
    """A pipe's read end holding the seccomp filter, for bwrap's `--seccomp FD` (None: no filter here)."""
    if FILTER is None:
        return None
    read, write = os.pipe()
    try:
        os.write(write, FILTER)  # ~1 KB: fits the pipe's buffer, so no reader is needed yet
    finally:
        os.close(write)
    return read


def _tasks_of_uid(uid: int) -> int:
    """Threads of every process whose real uid is `uid` (what RLIMIT_NPROC counts); reads /proc (a thread)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue  # it ended meanwhile
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            total += int(fields.get("Threads", "1"))
    return total


def _limits(options: SandboxOptions, processes: int) -> None:
    """Runs in the child between fork and exec (after the uid switch): the limits bwrap and its sandbox inherit."""
    resource.setrlimit(resource.RLIMIT_AS, (options.memory_bytes, options.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (options.cpu_seconds, options.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (options.open_files, options.open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (options.file_bytes, options.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class SandboxPool:
    """`size` warm sandboxes, each used for one call; see the module docstring."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.separate_user = os.geteuid() == 0
        self._runtime: Runtime | None = None
        self._starting = 0
        self._full = asyncio.Event()  # set while `size` sandboxes wait
        self._warm: asyncio.Queue[_Sandbox] = asyncio.Queue()
        self._uids = deque(range(options.uid_base, options.uid_base + options.uid_count))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._live: set[_Sandbox] = set()  # every sandbox started and not yet reaped
        self._closing = False

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Probe the runtime and warm the pool; a machine without namespaces is logged, and each call refused."""
        try:
            await self._ensure_runtime()
            first = await self._spawn()
        except SandboxUnavailable as exc:
            log.error("python sandbox unavailable: function blocks with code will fail", reason=str(exc))
            return
        self._put(first)
        for _ in range(self.options.size - 1):
            self._refill()
        log.info("python sandbox ready", python=self._runtime and self._runtime.python, warm=self.options.size)

    async def close(self) -> None:
        """Kill every sandbox, warm, starting or in use, and reap them."""
        self._closing = True
        for box in list(self._live):
            box.kill()  # a starting one then fails its start, a running call ends: their tasks finish at once
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for box in list(self._live):
            await self._discard(box)

    @property
    def warm(self) -> int:
        """Sandboxes started and waiting for a call."""
        return self._warm.qsize()

    async def run(self, code: str, data: Any, timeout: float) -> Invocation:
        """Run `transform(data)` from `code` in a fresh sandbox, killed after `timeout` seconds."""
        # Encoding (and decoding the reply) of up to io_bytes is CPU: in a thread, never on the loop.
        request = await asyncio.to_thread(self._request, code, data, timeout)
        return await self._call(await self._acquire(), request, timeout)

    async def cold_run(self, code: str, data: Any, timeout: float) -> Invocation:
        """Like `run`, but in a sandbox started for this call (a benchmark's baseline)."""
        request = await asyncio.to_thread(self._request, code, data, timeout)
        return await self._call(await self._spawn(), request, timeout)

    def _request(self, code: str, data: Any, timeout: float) -> bytes:
        request = json.dumps(
            {"code": code, "input": data, "cpu_seconds": int(timeout) + 1, "print_bytes": self.options.print_bytes},
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
        if len(request) > self.options.io_bytes:
            raise SandboxTooLarge(f"the input and code take {len(request)} bytes, over {self.options.io_bytes}")
        return request

    async def _call(self, box: _Sandbox, request: bytes, timeout: float) -> Invocation:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                reply = await self._exchange(box, request)
        except TimeoutError as exc:
            raise SandboxTimeout(timeout) from exc
        finally:
            task = asyncio.create_task(self._replace(box))  # a cancelled call still kills its sandbox
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Invocation(
            output=reply.get("output"),
            error=reply.get("error"),
            printed=[str(line) for line in reply.get("printed") or []],
            printed_truncated=bool(reply.get("printed_truncated")),
            duration_ms=int((time.perf_counter() - started) * 1000),
        )

    async def _exchange(self, box: _Sandbox, request: bytes) -> dict[str, Any]:
        proc = box.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(request)
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died at once: its exit status says why
        try:
            body = await proc.stdout.readuntil(b"\n")  # the reply is one line; the process is killed after
        except asyncio.LimitOverrunError as exc:
            raise SandboxTooLarge(f"the reply is over {self.options.io_bytes} bytes") from exc
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _death(await proc.wait(), self.options) from None
            raise SandboxCrashed("the sandbox's reply was cut short", "protocol") from None
        try:
            reply = await asyncio.to_thread(json.loads, body) if len(body) > 1 << 16 else json.loads(body)
        except ValueError as exc:
            raise SandboxCrashed("the sandbox answered something that is not JSON", "protocol") from exc
        if not isinstance(reply, dict):
            raise SandboxCrashed("the sandbox answered something that is not an object", "protocol")
        return reply

    async def wait_full(self) -> None:
        """Wait until `size` sandboxes are warm (tests and benchmarks)."""
        await self._full.wait()

    def _put(self, box: _Sandbox) -> None:
        self._warm.put_nowait(box)
        if self._warm.qsize() >= self.options.size:
            self._full.set()

    async def _acquire(self) -> _Sandbox:
        """A warm sandbox if one waits, else one started now."""
        if self._warm.empty():
            return await self._spawn()
        self._full.clear()
        return self._warm.get_nowait()

    async def _replace(self, box: _Sandbox) -> None:
        """Discard a used sandbox, then warm its replacement (after the call, so the two do not compete)."""
        await self._discard(box)
        self._refill()

    def _refill(self) -> None:
        if self._closing or self._warm.qsize() + self._starting >= self.options.size:
            return
        task = asyncio.create_task(self._warm_one())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_one(self) -> None:
        self._starting += 1
        try:
            box = await self._spawn()
        except SandboxError as exc:
            if not self._closing:
                log.warning("a warm sandbox failed to start", error=str(exc))
            return
        finally:
            self._starting -= 1
        if self._closing or self._warm.qsize() >= self.options.size:
            await self._discard(box)
        else:
            self._put(box)

    async def _ensure_runtime(self) -> Runtime:
        if self._runtime is None:
            if shutil.which(self.options.bwrap) is None:
                raise SandboxUnavailable(f"bubblewrap ('{self.options.bwrap}') is not installed: {HOW_TO_ENABLE}")
            try:
                self._runtime = await asyncio.to_thread(build_runtime, self.options.python, self.separate_user)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                raise SandboxUnavailable(f"the sandbox's Python runtime could not be read: {exc}") from exc
        return self._runtime

    async def _spawn(self) -> _Sandbox:
        runtime = await self._ensure_runtime()
        uid = self._uids.popleft() if self.separate_user and self._uids else None
        if self.separate_user and uid is None:
            raise SandboxCrashed("every sandbox uid is in use", "busy")
        filter_fd = _filter_pipe()
        argv = [
            self.options.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop",
            "ALL",
            *(["--seccomp", str(filter_fd)] if filter_fd is not None else []),
            *runtime.mounts,
            "--dev",
            "/dev",
            "--remount-ro",  # its tmpfs has no size cap: nothing may be written there (device nodes still work)
            "/dev",
            "--size",
            str(self.options.tmp_bytes),
            "--tmpfs",
            "/tmp",
            "--remount-ro",
            "/",
            "--chdir",
            "/tmp",
            runtime.python,
            "-I",
            "-S",
            "-B",
            "-X",
            "utf8",
            "-c",
            RUNNER,
            str(self.options.io_bytes),
        ]
        ids: dict[str, Any] = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
        processes = self.options.processes
        if uid is None:
            # Not root: the sandbox shares the worker's uid, whose every thread RLIMIT_NPROC counts; the sandbox
            # may add `processes` to what the uid runs now (concurrent sandboxes share that headroom).
            processes += await asyncio.to_thread(_tasks_of_uid, os.getuid())
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: _limits(self.options, processes),
                limit=self.options.io_bytes,
                pass_fds=(filter_fd,) if filter_fd is not None else (),
                **ids,
            )
        except OSError as exc:
            self._release(uid)
            raise SandboxUnavailable(f"bubblewrap could not be started ({exc}): {HOW_TO_ENABLE}") from exc
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        box = _Sandbox(proc, uid)
        self._live.add(box)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            await self._discard(box)
            raise SandboxCrashed(f"a sandbox did not start within {START_TIMEOUT_SECONDS:g} s", "start") from None
        except asyncio.CancelledError:
            box.kill()  # a cancelled call: no sandbox is left behind (the pool's close reaps it)
            raise
        if ready != b"ready\n":
            said = (await proc.stderr.read(4096)).decode(errors="replace").strip()
            await self._discard(box)
            raise SandboxUnavailable(f"the sandbox could not be created ({said or 'no message'}): {HOW_TO_ENABLE}")
        return box

    async def _discard(self, box: _Sandbox) -> None:
        box.kill()
        if box.proc.stdin is not None:
            box.proc.stdin.close()  # with stdout and stderr at EOF, the transport closes on the loop, not in GC
        await box.proc.wait()
        self._live.discard(box)
        self._release(box.uid)

    def _release(self, uid: int | None) -> None:
        if uid is not None:
            self._uids.append(uid)


def _death(status: int, options: SandboxOptions) -> SandboxCrashed:
    """Why a sandbox ended without answering: bwrap exits 128+N when its command is killed by signal N."""
    number = -status if status < 0 else status - 128 if status > 128 else 0
    if number == signal.SIGXCPU:
        return SandboxCrashed("stopped at the CPU-time limit", "cpu_limit")
    if number == signal.SIGXFSZ:
        return SandboxCrashed(f"stopped at the file-size limit ({options.file_bytes} bytes)", "file_limit")
    if number:
        return SandboxCrashed(f"the process was killed by {signal.Signals(number).name}", "signal")
    return SandboxCrashed(f"the process exited with status {status} without answering", "exit")
