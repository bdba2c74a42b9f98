"""The process side of the isolated executor: limits itself, then runs named tasks read from stdin.

Started by `activities.isolation` as `python -m activities.isolated_tasks MEMORY_BYTES CPU_SECONDS`, never
imported by the worker. Frames both ways are a 4-byte big-endian length and a JSON object:

    in:  {"task": "function", "payload": {...}}
    out: {"ready": true} once, then per task {"ok": result} or {"error": {"kind", "code", "message", "details"}}

`kind` is "task" (the user's computation failed: the message says why), "memory" (the address-space limit
was hit) or "internal" (anything else). The CPU limit ends the process with SIGXCPU instead.
A task's payload and result are JSON; a task is a plain function here, looked up by name in TASKS.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import jsonschema

from docflow.assertion_models import AssertionSpec
from docflow.assertions import JudgeVerdict, judge_requests, replay_judge
from docflow.assertions import evaluate as evaluate_assertion
from docflow.blocks import ConditionalConfig, FunctionConfig, parse_config
from docflow.conditions import evaluate_conditional
from docflow.consensus import merge_votes
from docflow.expressions import ExpressionError, run_function
from docflow.review_gate import gate_input
from docflow.review_models import review_of
from docflow.review_predicates import evaluate
from docflow.schemas import validate
from docflow.structured_output import OutputProblem, check_answer, read_answer

_HEADER = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1


class TaskFailure(Exception):
    """The user's computation failed; `code`, message and `details` reach the step's error."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


def function_task(payload: dict[str, Any]) -> Any:
    """A function block's expression or mapping over its input."""
    config = FunctionConfig.model_validate(payload["config"])
    try:
        return run_function(config, payload["data"])
    except ExpressionError as exc:
        raise TaskFailure("expression_error", f"{exc.field}: {exc}", {"field": exc.field}) from exc


def conditions_task(payload: dict[str, Any]) -> Any:
    """A conditional block's evaluation: selected handles and every condition's evaluation."""
    config = ConditionalConfig.model_validate(payload["config"])
    return evaluate_conditional(config, payload["data"]).model_dump(mode="json")


def json_schema_task(payload: dict[str, Any]) -> Any:
    """Validate an instance against a user schema (patterns on RE2); None when it matches."""
    try:
        validate(payload["instance"], payload["schema"])
    except jsonschema.ValidationError as exc:
        path = [str(p) for p in exc.absolute_path]
        raise TaskFailure("schema_mismatch", exc.message, {"path": path}) from exc
    except jsonschema.SchemaError as exc:
        raise TaskFailure("invalid_schema", exc.message) from exc
    return None


def model_output_task(payload: dict[str, Any]) -> Any:
    """A model's answer read as the object a user schema asks for (parsed, repaired, validated)."""
    try:
        return read_answer(payload["content"], payload["schema"])
    except OutputProblem as exc:
        raise TaskFailure("model_output_invalid", exc.message, {"path": exc.path}) from exc
    except jsonschema.SchemaError as exc:
        raise TaskFailure("invalid_schema", exc.message) from exc


def consensus_task(payload: dict[str, Any]) -> Any:
    """K extraction votes merged field by field, the merge checked against the schema (nulls allowed)."""
    schema = payload["schema"]
    merged = merge_votes(payload["votes"], schema)
    try:
        check_answer(merged.value, schema)
    except OutputProblem as exc:
        message = f"the merged votes break the schema at {exc.path}: {exc.message}"
        raise TaskFailure("consensus_invalid", message, {"path": exc.path}) from exc
    return {"value": merged.value, "likelihoods": merged.likelihoods}


def review_gate_task(payload: dict[str, Any]) -> Any:
    """A block's review predicate evaluated over what it produced (docflow.review_gate, review_predicates)."""
    block_type = payload["block_type"]
    config = parse_config(block_type, payload["config"])
    review = review_of(config)
    if review is None:
        raise TaskFailure("review_missing", f"a {block_type} block without config.review has no gate to evaluate")
    gate = gate_input(block_type, config, payload["artifact"], payload.get("routing"))
    return evaluate(review.predicate, gate).model_dump(mode="json")


def assertion_task(payload: dict[str, Any]) -> Any:
    """A workflow test's assertion over a block's outputs (docflow.assertions), with the judge's answers if any."""
    spec = AssertionSpec.model_validate(payload["assertion"])
    answers = payload.get("answers")
    judge = None if answers is None else replay_judge([JudgeVerdict.model_validate(a) for a in answers])
    return evaluate_assertion(spec, payload["outputs"], judge=judge).model_dump(mode="json")


def assertion_questions_task(payload: dict[str, Any]) -> Any:
    """The questions an llm-judged assertion puts to the judge model (none for other kinds)."""
    spec = AssertionSpec.model_validate(payload["assertion"])
    return [q.model_dump(mode="json") for q in judge_requests(spec, payload["outputs"])]


TASKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "assertion": assertion_task,
    "assertion_questions": assertion_questions_task,
    "function": function_task,
    "conditions": conditions_task,
    "json_schema": json_schema_task,
    "model_output": model_output_task,
    "consensus": consensus_task,
    "review_gate": review_gate_task,
}


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us when the worker dies, so a killed worker leaves no busy process behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the CPU limit still ends a runaway task, EOF on stdin an idle process
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(0)


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(headroom: int) -> None:
    # The limit is the idle size plus the headroom: libraries map hundreds of MB of address space before any task.
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = _address_space() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu(seconds: int) -> None:
    # RLIMIT_CPU counts the process's whole life, so each task gets its budget on top of what was used.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(usage.ru_utime + usage.ru_stime) + seconds
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _read(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    message: dict[str, Any] = json.loads(stream.read(size))
    return message


def _write(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message, ensure_ascii=False, allow_nan=False).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _answer(message: dict[str, Any]) -> dict[str, Any]:
    try:
        result = TASKS[message["task"]](message["payload"])
        # Encoded here, so a result too big for the limit is a memory error of the task, not of the worker.
        return {"ok": json.loads(json.dumps(result, allow_nan=False))}
    except TaskFailure as exc:
        return {"error": {"kind": "task", "code": exc.code, "message": str(exc), "details": exc.details}}
    except MemoryError:
        return {"error": {"kind": "memory", "code": "memory", "message": "memory limit exceeded", "details": {}}}
    except Exception as exc:  # a task's own bug: reported, and the process goes on
        return {"error": {"kind": "internal", "code": "internal", "message": f"{type(exc).__name__}: {exc}"}}


def main(argv: list[str]) -> None:
    """Serve tasks until stdin closes."""
    memory_bytes, cpu_seconds = int(argv[0]), int(argv[1])
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the worker decides when its pool stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames go to the real stdout; anything a library prints goes to stderr (the worker's log).
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = os.fdopen(0, "rb")
    _limit_memory(memory_bytes)
    _write(out, {"ready": True})
    while (message := _read(inp)) is not None:
        _limit_cpu(cpu_seconds)
        answer = _answer(message)
        try:
            _write(out, answer)
        except MemoryError:
            _write(out, {"error": {"kind": "memory", "code": "memory", "message": "memory limit exceeded"}})
        if "error" in answer and answer["error"]["kind"] == "memory":
            return  # a process that ran out of memory is replaced, not reused


if __name__ == "__main__":
    main(sys.argv[1:])
