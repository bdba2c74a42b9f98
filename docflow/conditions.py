"""Pure evaluation of a conditional block: which branch handle a JSON input activates.

Semantics (decisions where Retab leaves room, NOTES.md §1, §4):

- the first matching condition wins (if / elif / else); every condition is still evaluated, so the
  artifact shows why the others did not match;
- a missing path reads as `actual = None`; `exists` means present and not null;
- a wildcard path (`items.*.qty`, `items[*].qty`) applies the operator to every item, all must match,
  and an empty or absent list does not match;
- values of incompatible types do not match; nothing here raises on data (a bad regex or path
  simply does not match);
- `matches_regex` searches with RE2 (`docflow.patterns`): linear time, no backreferences or lookaround;
- `gt`/`gte`/`lt`/`lte` compare numbers, reading numeric strings as numbers, and otherwise compare two
  strings (so ISO dates order correctly); `equals` treats `"100"` and `100` as equal but never a bool
  and a number;
- `contains` looks for a substring, a list element or a dict key; `in` / `not_in` test membership of
  the actual value in the expected list (or substring of the expected string); `not_contains` on a
  missing value matches (nothing contains nothing);
- `is_empty` holds for null, a missing path, a blank string, an empty list or dict.

The evaluations are shaped like the SDK's `ConditionEvaluationResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from docflow.blocks import Condition, ConditionalConfig, Operator, SubCondition
from docflow.jsonpath import MISSING, PathError, is_wildcard_path, resolve_all
from docflow.patterns import PatternError, search

ELSE_HANDLE = "output-json-else"


class ConditionalResult(BaseModel):
    """The routing decision of a conditional block and the evaluations behind it."""

    selected_handles: list[str] = Field(default_factory=list)
    matched_branch_id: str | None = None
    matched_condition_ids: list[str] = Field(default_factory=list)
    evaluations: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class SubResult:
    """One sub-condition's outcome: the value(s) read, and per-item outcomes for wildcard paths."""

    actual: Any
    matched: bool
    items: list[dict[str, Any]] | None


def branch_handle(condition_id: str) -> str:
    """The output handle of a condition's branch."""
    return f"output-json-{condition_id}"


def evaluate_conditional(config: ConditionalConfig, data: Any) -> ConditionalResult:
    """Evaluate every condition over `data` and pick the first matching branch (else the else branch)."""
    evaluations: list[dict[str, Any]] = []
    matched_ids: list[str] = []
    for condition in config.conditions:
        evaluation = _evaluate_condition(condition, data)
        evaluations.append(evaluation)
        if evaluation["matched"]:
            matched_ids.append(condition.id)
    winner = matched_ids[0] if matched_ids else None
    fallback = [ELSE_HANDLE] if config.else_branch else []
    handles = [branch_handle(winner)] if winner is not None else fallback
    return ConditionalResult(
        selected_handles=handles,
        matched_branch_id=winner,
        matched_condition_ids=matched_ids,
        evaluations=evaluations,
    )


def evaluate_sub_condition(sub: SubCondition, data: Any) -> SubResult:
    """Evaluate one path/operator/expected triple; wildcard paths are evaluated per item with AND."""
    try:
        wildcard = is_wildcard_path(sub.path)
        matches = resolve_all(data, sub.path)
    except PathError:
        return SubResult(actual=None, matched=False, items=None)
    if not wildcard:
        value = matches[0].value
        matched = compare(sub.operator, value, sub.expected)
        return SubResult(actual=_public(value), matched=matched, items=None)
    items = [
        {
            "index": m.indices[-1] if m.indices else 0,
            "indices": list(m.indices),
            "actual": _public(m.value),
            "matched": compare(sub.operator, m.value, sub.expected),
        }
        for m in matches
    ]
    matched = bool(items) and all(item["matched"] for item in items)
    return SubResult(actual=[item["actual"] for item in items], matched=matched, items=items)


def _evaluate_condition(condition: Condition, data: Any) -> dict[str, Any]:
    subs = [evaluate_sub_condition(sub, data) for sub in condition.sub_conditions]
    combine = all if condition.logical_operator == "and" else any
    matched = combine(r.matched for r in subs)
    sub_evaluations = [
        {
            "sub_condition_id": sub.id or f"{condition.id}_{i}",
            "path": sub.path,
            "operator": sub.operator,
            "expected": sub.expected,
            "actual": r.actual,
            "matched": r.matched,
            "items": r.items,
        }
        for i, (sub, r) in enumerate(zip(condition.sub_conditions, subs, strict=True))
    ]
    # A single comparison is shown flat; a compound one shows its operator and its parts.
    head = sub_evaluations[0] if len(sub_evaluations) == 1 else None
    summary = {
        "path": head["path"] if head else "",
        "operator": head["operator"] if head else condition.logical_operator,
        "expected": head["expected"] if head else None,
        "actual": head["actual"] if head else None,
        "matched": matched,
        "items": head["items"] if head else None,
        "logical_operator": condition.logical_operator,
    }
    return {
        "condition_id": condition.id,
        **summary,
        "branch_name": condition.name or condition.id,
        "sub_evaluations": sub_evaluations,
        "details": {**summary, "sub_conditions": sub_evaluations},
    }


def _public(value: Any) -> Any:
    return None if value is MISSING else value


def compare(operator: Operator, actual: Any, expected: Any) -> bool:
    """Whether `actual` (MISSING for an absent path) satisfies the operator against `expected`."""
    if actual is MISSING and operator not in _MISSING_AWARE:
        actual = None
    try:
        return _OPERATORS[operator](actual, expected)
    except (TypeError, ValueError, PatternError, RecursionError):
        # Mismatched types or a bad pattern are a non-match, never a failed run.
        return False


def _exists(actual: Any, _expected: Any) -> bool:
    return actual is not MISSING and actual is not None


def _is_empty(actual: Any, _expected: Any) -> bool:
    if actual is MISSING or actual is None:
        return True
    if isinstance(actual, str):
        return actual.strip() == ""
    return isinstance(actual, list | dict) and len(actual) == 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equals(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None:
        return a == e
    return bool(actual == expected)


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        a, e = _number(actual), _number(expected)
        if a is not None and e is not None:
            return test(a, e)
        if isinstance(actual, str) and isinstance(expected, str):
            return test(actual, expected)
        return False

    return check


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_equals(item, expected) for item in actual)
    if isinstance(actual, dict):
        return isinstance(expected, str) and expected in actual
    return False


def _not_contains(actual: Any, expected: Any) -> bool:
    if actual is None:
        return True
    return isinstance(actual, str | list | dict) and not _contains(actual, expected)


def _in(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return any(_equals(actual, item) for item in expected)
    return isinstance(expected, str) and isinstance(actual, str) and actual in expected


def _not_in(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list) or (isinstance(expected, str) and isinstance(actual, str)):
        return not _in(actual, expected)
    return False


def _truth(flag: bool) -> Callable[[Any, Any], bool]:
    def check(actual: Any, _expected: Any) -> bool:
        if isinstance(actual, bool):
            return actual is flag
        return isinstance(actual, str) and actual.strip().lower() == str(flag).lower()

    return check


def _strings(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        return isinstance(actual, str) and isinstance(expected, str) and test(actual, expected)

    return check


_MISSING_AWARE = {"exists", "not_exists", "is_empty", "is_not_empty"}

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": _equals,
    "not_equals": lambda a, e: not _equals(a, e),
    "gt": _ordered(lambda a, e: a > e),
    "gte": _ordered(lambda a, e: a >= e),
    "lt": _ordered(lambda a, e: a < e),
    "lte": _ordered(lambda a, e: a <= e),
    "contains": _contains,
    "not_contains": _not_contains,
    "starts_with": _strings(str.startswith),
    "ends_with": _strings(str.endswith),
    "matches_regex": _strings(lambda a, pattern: search(pattern, a)),
    "exists": _exists,
    "not_exists": lambda a, e: not _exists(a, e),
    "is_empty": _is_empty,
    "is_not_empty": lambda a, e: not _is_empty(a, e),
    "is_true": _truth(True),
    "is_false": _truth(False),
    "in": _in,
    "not_in": _not_in,
}
