"""The values an assertion check works on, and what a check answers.

`canonical` copies a value without its `reasoning___*` keys (extraction adds them beside the user's fields;
NOTES.md §6 says `equals` ignores them, and every kind here does) and enforces the bounds: depth
`MAX_VALUE_DEPTH`, `MAX_VALUE_NODES` nodes, so no check walks a hostile value without limit. Equality is
strict JSON equality: JSON text tells `true` from `1` and `"1"` from `1`; integral floats become ints first,
so `1 == 1.0` as in JSON. A check answers a `Verdict` or raises `Blocked`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docflow.assertion_models import AssertionFailure, AssertionOutcome
from docflow.jsonpath import MISSING

MAX_VALUE_DEPTH = 64
MAX_VALUE_NODES = 100_000
# Levenshtein costs ~len(a)·len(b)/64 word steps: one evaluation (all items of a list together) may spend
# at most this many cells, ~0.1 s of rapidfuzz.
MAX_SIMILARITY_CELLS = 2_000_000_000
REASONING_PREFIX = "reasoning___"


class Blocked(Exception):
    """The assertion cannot be evaluated; `code` is the result's `failure.code`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def failure(self) -> AssertionFailure:
        return AssertionFailure(code=self.code, message=self.message, details=self.details)


@dataclass(frozen=True)
class Verdict:
    outcome: AssertionOutcome
    score: float | None = None
    threshold: float | None = None
    metric_kind: str | None = None
    failure: AssertionFailure | None = None


class Work:
    """One evaluation's state: what it may still spend on Levenshtein (len(a)·len(b) cells), and values
    derived once from the condition (canonical `expected`, a checked schema) that every list item reuses."""

    def __init__(self) -> None:
        self.similarity_cells = MAX_SIMILARITY_CELLS
        self._memo: dict[tuple[int, str], tuple[Any, Any]] = {}

    def memo(self, source: Any, tag: str, derive: Callable[[Any], Any]) -> Any:
        """`derive(source)`, computed once per evaluation (the source is kept, so its id stays its own)."""
        key = (id(source), tag)
        if key not in self._memo:
            self._memo[key] = (source, derive(source))
        return self._memo[key][1]


def failed(code: str, message: str, **details: Any) -> Verdict:
    return Verdict("failed", failure=AssertionFailure(code=code, message=message, details=details))


def result(ok: bool, message: str) -> Verdict:
    return Verdict("passed") if ok else failed("condition_not_met", message)


def public(value: Any) -> Any:
    """The value as shown in a result: an absent value reads as null."""
    return None if value is MISSING else value


def canonical(value: Any, numbers: bool = False) -> Any:
    """A copy without `reasoning___*` keys (integral floats as ints when `numbers`); raises Blocked past the bounds."""
    budget = [MAX_VALUE_NODES]
    return _copy(value, 0, budget, numbers)


def _copy(value: Any, depth: int, budget: list[int], numbers: bool) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise Blocked("value_too_large", f"values over {MAX_VALUE_NODES} nodes are not evaluated")
    if depth > MAX_VALUE_DEPTH:
        raise Blocked("execution_error", f"the value is nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(value, dict):
        return {
            str(k): _copy(v, depth + 1, budget, numbers)
            for k, v in value.items()
            if not str(k).startswith(REASONING_PREFIX)
        }
    if isinstance(value, list | tuple):
        return [_copy(v, depth + 1, budget, numbers) for v in value]
    if numbers and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def json_key(value: Any) -> str:
    """The canonical JSON text of a `canonical` value: equal texts are strictly equal values."""
    # JSON text tells true from 1 and "1" from 1; integral floats were made ints, so 1 == 1.0.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same(a: Any, b: Any) -> bool:
    """Strict JSON equality of two `canonical` values."""
    return json_key(a) == json_key(b)


def subset(expected: Any, actual: Any) -> bool:
    """Whether `actual` holds `expected`: objects as key subsets (recursively), anything else equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and subset(v, actual[k]) for k, v in expected.items())
    return same(expected, actual)


def type_name(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
