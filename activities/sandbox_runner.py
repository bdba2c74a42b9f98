"""Inside the sandbox: runs one user `transform(input_data)` on one input, answers, exits. Standard library only.

Never imported by the worker: `activities.sandbox` hands this file's text to the sandbox's interpreter
(`python -I -S -B -X utf8 -c TEXT REQUEST_LIMIT`), so no project file is mounted in the sandbox.
The user's code runs in this process only after the request is read; a process serves one call and ends.

    out: b"ready\\n" once the interpreter is up (the sandbox is warm and waits)
    in:  one JSON object {"code", "input", "cpu_seconds", "print_bytes"}, then end of input
    out: one line, a JSON object {"output"} or {"error": {"type", "message", "traceback", "line"}},
         with "printed" (the lines the code printed) and "printed_truncated"

Replies go to a private copy of stdout; the code's own writes to fds 1 and 2 go to /dev/null. A reply the
code forges through that copy is only ever its own output, which it could return anyway.
"""

import __future__

import builtins
import io
import json
import linecache
import os
import resource
import sys
import traceback
from typing import Any

FILENAME = "<function>"


class _Capped(io.TextIOBase):
    """What `print` writes, kept up to `limit` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        text = str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        if len(text) > max(room, 0):
            self.truncated = True
        return len(text)

    def lines(self) -> list[str]:
        return "".join(self.parts).splitlines()


def _error(exc: BaseException) -> dict[str, Any]:
    """The exception as the user sees it: only frames of their code, with its line numbers and source lines."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == FILENAME]
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if frames:
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
    line = frames[-1].lineno if frames else getattr(exc, "lineno", None)
    message = str(exc) if not isinstance(exc, SyntaxError) else exc.msg
    return {"type": type(exc).__name__, "message": message, "traceback": text, "line": line}


def _call(request: dict[str, Any], capture: _Capped) -> Any:
    source = request["code"]
    # Tracebacks quote the user's lines; annotations stay unevaluated (Retab's `def transform(input_data: Input)`).
    linecache.cache[FILENAME] = (len(source), None, source.splitlines(True), FILENAME)
    flags = __future__.annotations.compiler_flag
    code = compile(source, FILENAME, "exec", flags=flags, dont_inherit=True)
    namespace = {"__name__": "__function__", "__builtins__": builtins}
    sys.stdout = sys.stderr = capture
    try:
        exec(code, namespace)
        transform = namespace.get("transform")
        if not callable(transform):
            raise NameError("the code defines no function 'transform(input_data)'")
        output = transform(request["input"])
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"transform returned data that is not JSON: {exc}") from None
    return output


def main(request_limit: int) -> None:
    reply = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    # Nothing else of bubblewrap's stays open to the user's code.
    os.closerange(3, reply.fileno())
    os.closerange(reply.fileno() + 1, 1 << 16)
    reply.write(b"ready\n")
    reply.flush()
    raw = os.fdopen(0, "rb").read(request_limit + 1)
    if len(raw) > request_limit:
        reply.write(json.dumps({"error": {"type": "RequestTooLarge", "message": "input too large"}}).encode() + b"\n")
        reply.flush()
        os._exit(0)
    request = json.loads(raw)
    # The CPU budget of this call on top of what start-up used (the wall-clock limit is the worker's).
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + int(request["cpu_seconds"])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    capture = _Capped(int(request["print_bytes"]))
    pid = os.getpid()
    try:
        answer = {"output": _call(request, capture)}
    except BaseException as exc:  # the user's code failed: the reply says how, the process ends either way
        answer = {"error": _error(exc)}
    if os.getpid() != pid:
        os._exit(0)  # a child the code forked never answers
    answer["printed"] = capture.lines()
    answer["printed_truncated"] = capture.truncated
    reply.write(json.dumps(answer, allow_nan=False).encode() + b"\n")  # one line: JSON escapes its newlines
    reply.flush()
    os._exit(0)  # threads the code started end here too


if __name__ == "__main__":
    main(int(sys.argv[1]))
