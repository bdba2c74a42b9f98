"""The leaf conditions of a test assertion: one pure check per kind (semantics in `docflow.assertions`).

A check returns a `Verdict` (passed / failed with a reason) or raises `Blocked` when the value cannot be
evaluated. Values are first copied by `canonical`, which drops `reasoning___*` keys and enforces the depth and
size bounds, so no check walks a hostile value without limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import SchemaError, ValidationError
from rapidfuzz.distance import Levenshtein

from docflow.assertion_models import (
    ArrayContainsCondition as ArrayContains,
)
from docflow.assertion_models import (
    AssertionFailure,
    AssertionOutcome,
    BetweenCondition,
    CompareOp,
    Condition,
    ContainsCondition,
    EndsWithCondition,
    EqualsCondition,
    ExistsCondition,
    JsonSchemaValidCondition,
    LengthCompareCondition,
    MatchesRegexCondition,
    NotContainsCondition,
    NotEqualsCondition,
    NotExistsCondition,
    NumberCompareCondition,
    ObjectContainsCondition,
    SimilarityGteCondition,
    SplitIouCondition,
    StartsWithCondition,
)
from docflow.jsonpath import MISSING
from docflow.patterns import PatternError, search
from docflow.schemas import SchemaProblem, check_schema, validate

MAX_VALUE_DEPTH = 64
MAX_VALUE_NODES = 100_000
MAX_SIMILARITY_CHARS = 10_000
MAX_SPLIT_PAGES = 100_000
# Levenshtein costs ~len(a)·len(b)/64 word steps: one evaluation (all items of a list together) may spend
# at most this many cells, ~0.1 s of rapidfuzz.
MAX_SIMILARITY_CELLS = 2_000_000_000
REASONING_PREFIX = "reasoning___"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, e: a > e,
    "gte": lambda a, e: a >= e,
    "lt": lambda a, e: a < e,
    "lte": lambda a, e: a <= e,
    "eq": lambda a, e: a == e,
    "neq": lambda a, e: a != e,
}
_OP_TEXT = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "neq": "≠"}


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
    """What one evaluation may still spend on Levenshtein (in len(a)·len(b) cells)."""

    def __init__(self) -> None:
        self.similarity_cells = MAX_SIMILARITY_CELLS


def failed(code: str, message: str, **details: Any) -> Verdict:
    return Verdict("failed", failure=AssertionFailure(code=code, message=message, details=details))


def _result(ok: bool, message: str) -> Verdict:
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


def _key(value: Any) -> str:
    # JSON text tells true from 1 and "1" from 1; integral floats were made ints, so 1 == 1.0.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    return _key(a) == _key(b)


def _subset(expected: Any, actual: Any) -> bool:
    """Whether `actual` holds `expected`: objects as key subsets (recursively), anything else equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _subset(v, actual[k]) for k, v in expected.items())
    return _same(expected, actual)


def _number(value: Any, kind: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise Blocked("type_error", f"{kind} needs a number, got {_type(value)}", {"actual_type": _type(value)})


def _string(value: Any, kind: str) -> str:
    if isinstance(value, str):
        return value
    raise Blocked("type_error", f"{kind} needs a string, got {_type(value)}", {"actual_type": _type(value)})


def _type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _compare(op: CompareOp, actual: float, expected: float, what: str) -> Verdict:
    return _result(_OPS[op](actual, expected), f"{what} {actual:g} is not {_OP_TEXT[op]} {expected:g}")


def check_leaf(condition: Condition, actual: Any, work: Work) -> Verdict:
    """Check every kind but the nested and judged ones (raises Blocked)."""
    if isinstance(condition, ExistsCondition | NotExistsCondition):
        present = actual is not MISSING and actual is not None
        wanted = present if isinstance(condition, ExistsCondition) else not present
        return _result(wanted, "the value is absent or null" if not present else "the value is present")
    value = canonical(public(actual), numbers=True)
    if isinstance(condition, EqualsCondition | NotEqualsCondition):
        same = _same(value, canonical(condition.expected, numbers=True))
        if isinstance(condition, EqualsCondition):
            return _result(same, "the value differs from the expected one")
        return _result(not same, "the value equals the expected one")
    if isinstance(condition, NotContainsCondition) and value is None:
        return Verdict("passed")
    if value is None and not isinstance(condition, JsonSchemaValidCondition):
        return failed("missing_value", f"{condition.kind} found no value at the target")
    if isinstance(condition, SimilarityGteCondition):
        return _similarity(condition, value, work)
    check = _CHECKS.get(type(condition))
    if check is None:  # nested and judged kinds are handled by docflow.assertions
        raise Blocked("execution_error", f"{condition.kind} is not a leaf condition")
    if isinstance(condition, JsonSchemaValidCondition) and actual is MISSING:
        # Without reasoning keys, as other kinds (extraction adds them beside the user's schema); null is null.
        return failed("missing_value", "json_schema_valid found no value at the target")
    return check(condition, value)


def _number_compare(c: NumberCompareCondition, value: Any) -> Verdict:
    return _compare(c.op, _number(value, c.kind), float(c.expected), "the value")


def _length_compare(c: LengthCompareCondition, value: Any) -> Verdict:
    if not isinstance(value, str | list | dict):
        raise Blocked("type_error", f"length_compare needs a string, array or object, got {_type(value)}")
    return _compare(c.op, float(len(value)), float(c.expected), "the length")


def _between(c: BetweenCondition, value: Any) -> Verdict:
    n = _number(value, c.kind)
    ok = c.lower <= n <= c.upper if c.inclusive else c.lower < n < c.upper
    bounds = f"[{c.lower:g}, {c.upper:g}]" if c.inclusive else f"({c.lower:g}, {c.upper:g})"
    return _result(ok, f"the value {n:g} is not in {bounds}")


def _contains(expected: Any, value: Any, kind: str) -> bool:
    if isinstance(value, str):
        return search_text(expected, kind) in value
    if isinstance(value, list):
        key = _key(canonical(expected, numbers=True))
        return any(_key(item) == key for item in value)
    if isinstance(value, dict):
        return search_text(expected, kind) in value
    raise Blocked("type_error", f"{kind} needs a string, array or object, got {_type(value)}")


def search_text(expected: Any, kind: str) -> str:
    if isinstance(expected, str):
        return expected
    raise Blocked(
        "type_error", f"{kind} on a string or object looks for a string, the expected value is {_type(expected)}"
    )


def _contains_check(c: ContainsCondition, value: Any) -> Verdict:
    return _result(_contains(c.expected, value, c.kind), "the value does not contain the expected one")


def _not_contains_check(c: NotContainsCondition, value: Any) -> Verdict:
    return _result(not _contains(c.expected, value, c.kind), "the value contains the expected one")


def _object_contains(c: ObjectContainsCondition, value: Any) -> Verdict:
    if not isinstance(value, dict):
        raise Blocked("type_error", f"object_contains needs an object, got {_type(value)}")
    return _result(_subset(canonical(c.expected, numbers=True), value), "the object lacks an expected key or value")


def _array_contains(c: ArrayContains, value: Any) -> Verdict:
    if not isinstance(value, list):
        raise Blocked("type_error", f"array_contains needs an array, got {_type(value)}")
    expected = canonical(c.expected, numbers=True)
    return _result(any(_subset(expected, item) for item in value), "no item contains the expected object")


def _starts_with(c: StartsWithCondition, value: Any) -> Verdict:
    return _result(_string(value, c.kind).startswith(c.expected), f"the value does not start with {c.expected!r}")


def _ends_with(c: EndsWithCondition, value: Any) -> Verdict:
    return _result(_string(value, c.kind).endswith(c.expected), f"the value does not end with {c.expected!r}")


def _matches_regex(c: MatchesRegexCondition, value: Any) -> Verdict:
    text = _string(value, c.kind)
    try:
        return _result(search(c.pattern, text), f"the value does not match {c.pattern!r}")
    except PatternError as exc:
        raise Blocked("invalid_regex", str(exc), {"pattern": c.pattern}) from exc


def _json_schema_valid(c: JsonSchemaValidCondition, value: Any) -> Verdict:
    try:
        check_schema(c.schema_)
        validate(value, c.schema_)
    except (SchemaProblem, SchemaError) as exc:
        raise Blocked("schema_invalid", f"the schema cannot be used: {exc}") from exc
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        return failed("condition_not_met", f"{where or 'the value'}: {exc.message}", path=where)
    return Verdict("passed")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _key(value)


def _similarity(c: SimilarityGteCondition, value: Any, work: Work) -> Verdict:
    if c.method == "embeddings":
        raise Blocked("not_supported", "similarity by embeddings is not supported by this provider; use levenshtein")
    actual, reference = _text(value), _text(canonical(c.reference, numbers=True))
    longest = max(len(actual), len(reference))
    if longest > MAX_SIMILARITY_CHARS:
        raise Blocked(
            "value_too_large",
            f"levenshtein similarity is computed on texts of at most {MAX_SIMILARITY_CHARS} characters",
            {"limit": MAX_SIMILARITY_CHARS, "length": longest},
        )
    work.similarity_cells -= max(len(actual), 1) * max(len(reference), 1)
    if work.similarity_cells < 0:
        raise Blocked(
            "value_too_large", "the similarity work of this assertion is over its budget (too many long items)"
        )
    score = Levenshtein.normalized_similarity(actual, reference)
    ok = score >= c.threshold
    failure = (
        None if ok else AssertionFailure(code="condition_not_met", message=f"similarity {score:.3f} < {c.threshold:g}")
    )
    return Verdict("passed" if ok else "failed", score, c.threshold, "levenshtein_similarity", failure)


def _pairs(value: Any, where: str) -> set[tuple[str, int]]:
    splits = value.get("splits", value.get("output")) if isinstance(value, dict) else value
    if not isinstance(splits, list):
        raise Blocked("type_error", f"split_iou_gte needs {where} as {{splits: [{{name, pages}}]}}")
    pairs: set[tuple[str, int]] = set()
    for split in splits:
        pages = split.get("pages") if isinstance(split, dict) else None
        name = split.get("name") if isinstance(split, dict) else None
        if not isinstance(name, str) or not isinstance(pages, list):
            raise Blocked("type_error", f"each split of {where} needs a name and a list of pages")
        for page in pages:
            if not isinstance(page, int) or isinstance(page, bool):
                raise Blocked("type_error", f"pages of {where} are integers, got {_type(page)}")
            pairs.add((name, page))
            if len(pairs) > MAX_SPLIT_PAGES:
                raise Blocked("value_too_large", f"splits over {MAX_SPLIT_PAGES} pages are not evaluated")
    return pairs


def _split_iou(c: SplitIouCondition, value: Any) -> Verdict:
    actual, expected = _pairs(value, "the value"), _pairs(c.expected, "expected")
    union = actual | expected
    score = len(actual & expected) / len(union) if union else 1.0
    ok = score >= c.threshold
    failure = (
        None if ok else AssertionFailure(code="condition_not_met", message=f"split IoU {score:.3f} < {c.threshold:g}")
    )
    return Verdict("passed" if ok else "failed", score, c.threshold, "split_iou", failure)


_CHECKS: dict[type, Callable[[Any, Any], Verdict]] = {
    NumberCompareCondition: _number_compare,
    LengthCompareCondition: _length_compare,
    BetweenCondition: _between,
    ContainsCondition: _contains_check,
    NotContainsCondition: _not_contains_check,
    ObjectContainsCondition: _object_contains,
    ArrayContains: _array_contains,
    StartsWithCondition: _starts_with,
    EndsWithCondition: _ends_with,
    MatchesRegexCondition: _matches_regex,
    JsonSchemaValidCondition: _json_schema_valid,
    SplitIouCondition: _split_iou,
}
