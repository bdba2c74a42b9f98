"""A function block's user Python: run in the sandbox, its outcome recorded in the `function_invocation` artifact.

`transform(input_data)` gets the data on the block's `input-json-0` handle as plain JSON (a dict for an object:
no pydantic model is built from the upstream schema) and returns JSON; with `output_schema` the output is
validated in the isolated executor (a violation is a step error naming the path). What the code printed, its
traceback (its own lines only) and the call's duration are kept in the artifact, also when it fails.
"""

from __future__ import annotations

from typing import Any

from activities.errors import BlockError
from activities.isolation import IsolatedExecutor, IsolationError, TaskError
from activities.sandbox import (
    Invocation,
    SandboxCrashed,
    SandboxPool,
    SandboxTimeout,
    SandboxTooLarge,
    SandboxUnavailable,
)
from docflow.blocks import FunctionConfig

# Checking the output against the user's schema, in the isolated executor.
SCHEMA_LIMIT_SECONDS = 10.0


async def run_python(
    sandbox: SandboxPool | None, isolated: IsolatedExecutor, block_id: str, cfg: FunctionConfig, data: Any
) -> tuple[Any, dict[str, Any]]:
    """The code's output and its artifact; a BlockError (carrying the artifact) when it cannot give one."""
    assert cfg.code is not None
    artifact: dict[str, Any] = {
        "operation": "function_invocation",
        "language": "python",
        "inputs": {"input-json-0": data},
        "output": None,
        "printed": [],
        "duration_ms": 0,
        "error": None,
    }
    call = await _call(sandbox, block_id, cfg, data, artifact)
    artifact.update(printed=call.printed, printed_truncated=call.printed_truncated, duration_ms=call.duration_ms)
    if call.error is not None:
        error = {**call.error, "block_id": block_id}
        artifact["error"] = error
        where = f" (line {error['line']})" if error.get("line") else ""
        code = "function_memory_limit" if error.get("type") == "MemoryError" else "function_error"
        message = f"transform raised {error.get('type')}: {error.get('message')}{where}"
        details = {"type": error.get("type"), "line": error.get("line"), "artifact": artifact}
        raise BlockError(message, code=code, details=details)
    artifact["output"] = call.output
    if cfg.output_schema is not None:
        await _check_output(isolated, block_id, cfg.output_schema, call.output, artifact)
    return call.output, artifact


async def _call(
    sandbox: SandboxPool | None, block_id: str, cfg: FunctionConfig, data: Any, artifact: dict[str, Any]
) -> Invocation:
    assert cfg.code is not None

    def failed(message: str, code: str, **details: Any) -> BlockError:
        artifact["error"] = {"type": code, "message": message, "block_id": block_id}
        return BlockError(message, code=code, details={**details, "artifact": artifact})

    if sandbox is None:
        raise failed("this worker runs no sandbox for user Python", "sandbox_unavailable")
    try:
        return await sandbox.run(cfg.code, data, float(cfg.timeout_seconds))
    except SandboxUnavailable as exc:
        raise failed(str(exc), "sandbox_unavailable") from exc
    except SandboxTimeout as exc:
        message = f"transform did not finish within {exc.seconds:g} s (timeout_seconds): killed"
        raise failed(message, "function_timeout") from exc
    except SandboxTooLarge as exc:
        raise failed(str(exc), "function_too_large") from exc
    except SandboxCrashed as exc:
        if exc.reason == "start":
            raise  # a sandbox that did not start in time: the machine's, retried by Temporal
        code = "function_cpu_limit" if exc.reason == "cpu_limit" else "function_crashed"
        raise failed(f"transform's process died: {exc}", code, reason=exc.reason) from exc


async def _check_output(
    isolated: IsolatedExecutor, block_id: str, schema: dict[str, Any], output: Any, artifact: dict[str, Any]
) -> None:
    try:
        await isolated.run("json_schema", {"schema": schema, "instance": output}, timeout=SCHEMA_LIMIT_SECONDS)
    except TaskError as exc:
        path = exc.details.get("path") or []
        where = ".".join(str(p) for p in path) or "(the whole output)"
        message = f"the output does not match output_schema at {where}: {exc.message}"
        artifact["error"] = {"type": "OutputSchemaMismatch", "message": message, "block_id": block_id, "path": path}
        raise BlockError(message, code="output_schema_mismatch", details={"path": path, "artifact": artifact}) from exc
    except IsolationError as exc:
        message = f"output_schema: the check of the output stopped ({exc})"
        raise BlockError(message, code="output_schema_check_failed", details={"artifact": artifact}) from exc
