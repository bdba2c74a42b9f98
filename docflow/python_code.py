"""A function block's user Python (`language: python`, `code`): its write-time check and how it is run.

The code must parse and define a top-level `def transform(input_data)`: anything else is a 422 at write time
naming the line. Parsing is CPU on hostile input, so `code_issue` runs off the event loop (the API calls it in
a thread) on code already capped at MAX_CODE_CHARS by FunctionConfig; it never runs the code.

Python function blocks run as regular activities in the worker's sandbox (activities/sandbox.py), not as local
activities: their `timeout_seconds` (1-300) is longer than a local activity may take.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

MAX_CODE_CHARS = 100_000
DEFAULT_TIMEOUT_SECONDS = 60
# Beyond the code's own time limit: starting a sandbox if none is warm, storing the output and the step.
ACTIVITY_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class CodeIssue:
    """Why the code cannot run, and the line (1-based) where, when there is one."""

    message: str
    line: int | None


def is_python_function(block_type: str, config: dict[str, Any]) -> bool:
    """Whether a block is a function block with user Python (it runs in the sandbox)."""
    return block_type == "function" and (config.get("code") is not None or config.get("language") is not None)


def activity_seconds(config: dict[str, Any]) -> float:
    """The start-to-close time of a Python function block's activity."""
    timeout = config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    seconds = timeout if isinstance(timeout, int | float) and 0 < timeout <= 300 else DEFAULT_TIMEOUT_SECONDS
    return float(seconds) + ACTIVITY_MARGIN_SECONDS


def code_issue(code: str) -> CodeIssue | None:
    """Parse (never run) the code; the first reason it cannot serve as a function block, or None."""
    if len(code) > MAX_CODE_CHARS:
        return CodeIssue(f"the code has {len(code)} characters, over {MAX_CODE_CHARS}", None)
    try:
        tree = ast.parse(code, filename="<function>")
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        return CodeIssue(f"syntax error{where}: {exc.msg}", exc.lineno)
    except (RecursionError, MemoryError):
        return CodeIssue("the code nests too deeply to be parsed", None)
    except ValueError as exc:  # e.g. a NUL character
        return CodeIssue(f"the code cannot be parsed: {exc}", None)
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "transform"]
    if not defined:
        return CodeIssue("the code defines no top-level function 'transform(input_data)'", None)
    function = defined[-1]
    if isinstance(function, ast.AsyncFunctionDef):
        return CodeIssue("'transform' must be a plain function (def), not async def", function.lineno)
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_keywords = [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    if (not positional and args.vararg is None) or required > 1 or required_keywords:
        return CodeIssue("'transform' must take one argument, input_data", function.lineno)
    return None
