"""The leaf conditions of a test assertion: one pure check per kind (semantics in `docflow.assertions`).

A check takes the condition, the value (already a bounded `canonical` copy) and the evaluation's `Work`, and
returns a `Verdict` or raises `Blocked`. What a check derives from the condition alone (the canonical
`expected`, a checked schema, expected split pages) is computed once per evaluation through `Work.memo`, so
`all_items_match` over many items repeats none of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jsonschema import SchemaError, ValidationError
from rapidfuzz.distance import Levenshtein

from docflow.assertion_models import (
    MAX_NUMBER,
    ArrayContainsCondition,
    AssertionFailure,
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
from docflow.assertion_values import (
    Blocked,
    Verdict,
    Work,
    canonical,
    failed,
    json_key,
    public,
    result,
    same,
    subset,
    type_name,
)
from docflow.jsonpath import MISSING
from docflow.patterns import PatternError, search
from docflow.schemas import SchemaProblem, check_schema, validate

MAX_SIMILARITY_CHARS = 10_000
MAX_SPLIT_PAGES = 100_000

_OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, e: a > e,
    "gte": lambda a, e: a >= e,
    "lt": lambda a, e: a < e,
    "lte": lambda a, e: a <= e,
    "eq": lambda a, e: a == e,
    "neq": lambda a, e: a != e,
}
_OP_TEXT = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "neq": "≠"}


def check_leaf(condition: Condition, actual: Any, work: Work) -> Verdict:
    """Check every kind but the nested and judged ones (raises Blocked)."""
    if isinstance(condition, ExistsCondition | NotExistsCondition):
        present = actual is not MISSING and actual is not None
        wanted = present if isinstance(condition, ExistsCondition) else not present
        return result(wanted, "the value is present" if present else "the value is absent or null")
    value = canonical(public(actual), numbers=True)
    if isinstance(condition, EqualsCondition | NotEqualsCondition):
        equal = same(value, _expected(condition.expected, work))
        if isinstance(condition, EqualsCondition):
            return result(equal, "the value differs from the expected one")
        return result(not equal, "the value equals the expected one")
    if isinstance(condition, NotContainsCondition) and value is None:
        return Verdict("passed")  # nothing contains nothing
    # json_schema_valid sees null as null (a schema may allow it); only an absent value is missing there.
    if actual is MISSING or (value is None and not isinstance(condition, JsonSchemaValidCondition)):
        return failed("missing_value", f"{condition.kind} found no value at the target")
    check = _CHECKS.get(type(condition))
    if check is None:  # nested and judged kinds are evaluated by docflow.assertions
        raise Blocked("execution_error", f"{condition.kind} is not a leaf condition")
    return check(condition, value, work)


def _expected(value: Any, work: Work) -> Any:
    return work.memo(value, "canonical", lambda v: canonical(v, numbers=True))


def _number(value: Any, kind: str) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
        raise Blocked("type_error", f"{kind}: the value is beyond ±{MAX_NUMBER:.3g}, too large to compare")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise Blocked("type_error", f"{kind} needs a number, got {type_name(value)}", {"actual_type": type_name(value)})


def _string(value: Any, kind: str) -> str:
    if isinstance(value, str):
        return value
    raise Blocked("type_error", f"{kind} needs a string, got {type_name(value)}", {"actual_type": type_name(value)})


def _compare(op: CompareOp, actual: float, expected: float, what: str) -> Verdict:
    # Lengths come as ints and stay exact; `:g` only shapes the message.
    return result(_OPS[op](actual, expected), f"{what} {actual:g} is not {_OP_TEXT[op]} {expected:g}")


def _number_compare(c: NumberCompareCondition, value: Any, _: Work) -> Verdict:
    return _compare(c.op, _number(value, c.kind), float(c.expected), "the value")


def _length_compare(c: LengthCompareCondition, value: Any, _: Work) -> Verdict:
    if not isinstance(value, str | list | dict):
        raise Blocked("type_error", f"length_compare needs a string, array or object, got {type_name(value)}")
    return _compare(c.op, len(value), c.expected, "the length")


def _between(c: BetweenCondition, value: Any, _: Work) -> Verdict:
    n = _number(value, c.kind)
    ok = c.lower <= n <= c.upper if c.inclusive else c.lower < n < c.upper
    bounds = f"[{c.lower:g}, {c.upper:g}]" if c.inclusive else f"({c.lower:g}, {c.upper:g})"
    return result(ok, f"the value {n:g} is not in {bounds}")


def _contains(c: ContainsCondition | NotContainsCondition, value: Any, work: Work) -> bool:
    """A substring of a string, a key of an object, an item of a list (strict equality)."""
    if isinstance(value, list):
        key = work.memo(c.expected, "key", lambda v: json_key(canonical(v, numbers=True)))
        return any(json_key(item) == key for item in value)
    if not isinstance(value, str | dict):
        raise Blocked("type_error", f"{c.kind} needs a string, array or object, got {type_name(value)}")
    if not isinstance(c.expected, str):
        raise Blocked("type_error", f"{c.kind} in a string or object looks for a string, not {type_name(c.expected)}")
    return c.expected in value


def _contains_check(c: ContainsCondition, value: Any, work: Work) -> Verdict:
    return result(_contains(c, value, work), "the value does not contain the expected one")


def _not_contains_check(c: NotContainsCondition, value: Any, work: Work) -> Verdict:
    return result(not _contains(c, value, work), "the value contains the expected one")


def _object_contains(c: ObjectContainsCondition, value: Any, work: Work) -> Verdict:
    if not isinstance(value, dict):
        raise Blocked("type_error", f"object_contains needs an object, got {type_name(value)}")
    return result(subset(_expected(c.expected, work), value), "the object lacks an expected key or value")


def _array_contains(c: ArrayContainsCondition, value: Any, work: Work) -> Verdict:
    if not isinstance(value, list):
        raise Blocked("type_error", f"array_contains needs an array, got {type_name(value)}")
    expected = _expected(c.expected, work)
    return result(any(subset(expected, item) for item in value), "no item contains the expected object")


def _starts_with(c: StartsWithCondition, value: Any, _: Work) -> Verdict:
    return result(_string(value, c.kind).startswith(c.expected), f"the value does not start with {c.expected!r}")


def _ends_with(c: EndsWithCondition, value: Any, _: Work) -> Verdict:
    return result(_string(value, c.kind).endswith(c.expected), f"the value does not end with {c.expected!r}")


def _matches_regex(c: MatchesRegexCondition, value: Any, _: Work) -> Verdict:
    text = _string(value, c.kind)
    try:
        return result(search(c.pattern, text), f"the value does not match {c.pattern!r}")
    except PatternError as exc:
        raise Blocked("invalid_regex", str(exc), {"pattern": c.pattern}) from exc


def _json_schema_valid(c: JsonSchemaValidCondition, value: Any, work: Work) -> Verdict:
    try:
        work.memo(c.schema_, "schema", check_schema)  # a record stored before schemas were checked on write
        validate(value, c.schema_)
    except (SchemaProblem, SchemaError) as exc:
        raise Blocked("schema_invalid", f"the schema cannot be used: {exc}") from exc
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        return failed("condition_not_met", f"{where or 'the value'}: {exc.message}", path=where)
    return Verdict("passed")


def _scored(score: float, threshold: float, metric: str) -> Verdict:
    if score >= threshold:
        return Verdict("passed", score, threshold, metric)
    failure = AssertionFailure(code="condition_not_met", message=f"{metric} {score:.3f} < {threshold:g}")
    return Verdict("failed", score, threshold, metric, failure)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json_key(value)


def _similarity(c: SimilarityGteCondition, value: Any, work: Work) -> Verdict:
    if c.method == "embeddings":
        raise Blocked("not_supported", "similarity by embeddings is not supported by this provider; use levenshtein")
    actual = _text(value)
    reference = work.memo(c.reference, "text", lambda v: _text(canonical(v, numbers=True)))
    longest = max(len(actual), len(reference))
    if longest > MAX_SIMILARITY_CHARS:
        raise Blocked(
            "value_too_large",
            f"levenshtein similarity is computed on texts of at most {MAX_SIMILARITY_CHARS} characters",
            {"limit": MAX_SIMILARITY_CHARS, "length": longest},
        )
    work.similarity_cells -= max(len(actual), 1) * max(len(reference), 1)
    if work.similarity_cells < 0:
        raise Blocked("value_too_large", "the similarity work of this assertion is over its budget (many long items)")
    return _scored(Levenshtein.normalized_similarity(actual, reference), c.threshold, "levenshtein_similarity")


def _pairs(value: Any, where: str) -> set[tuple[str, int]]:
    """The (split name, page) pairs of `{splits: [...]}`, an artifact's `{output: [...]}` or a bare list."""
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
                raise Blocked("type_error", f"pages of {where} are integers, got {type_name(page)}")
            pairs.add((name, page))
        if len(pairs) > MAX_SPLIT_PAGES:
            raise Blocked("value_too_large", f"splits over {MAX_SPLIT_PAGES} pages are not evaluated")
    return pairs


def _split_iou(c: SplitIouCondition, value: Any, work: Work) -> Verdict:
    expected: set[tuple[str, int]] = work.memo(c.expected, "pairs", lambda v: _pairs(v, "expected"))
    actual = _pairs(value, "the value")
    union = actual | expected
    return _scored(len(actual & expected) / len(union) if union else 1.0, c.threshold, "split_iou")


_CHECKS: dict[type, Callable[[Any, Any, Work], Verdict]] = {
    NumberCompareCondition: _number_compare,
    LengthCompareCondition: _length_compare,
    BetweenCondition: _between,
    ContainsCondition: _contains_check,
    NotContainsCondition: _not_contains_check,
    ObjectContainsCondition: _object_contains,
    ArrayContainsCondition: _array_contains,
    StartsWithCondition: _starts_with,
    EndsWithCondition: _ends_with,
    MatchesRegexCondition: _matches_regex,
    JsonSchemaValidCondition: _json_schema_valid,
    SimilarityGteCondition: _similarity,
    SplitIouCondition: _split_iou,
}
