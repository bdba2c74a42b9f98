"""The workflow-test assertion evaluator: every condition kind passes, fails and (where it can) blocks."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError
from retab.types.workflows.tests import AssertionSpec as SdkAssertionSpec
from retab.types.workflows.tests.results import AssertionResult as SdkAssertionResult

from docflow.assertion_checks import MAX_SIMILARITY_CHARS, MAX_VALUE_DEPTH
from docflow.assertion_models import (
    AssertionSpec,
    JsonSchemaValidCondition,
    MatchesRegexCondition,
    OutputTarget,
)
from docflow.assertions import MAX_ITEMS, MAX_JUDGE_CALLS, JudgeRequest, JudgeVerdict, evaluate

HANDLE = "output-json-0"


def spec(condition: dict[str, Any], path: str | None = None) -> AssertionSpec:
    return AssertionSpec.model_validate(
        {"id": "as_1", "label": "check", "target": {"output_handle_id": HANDLE, "path": path}, "condition": condition}
    )


def run(condition: dict[str, Any], data: Any, path: str | None = None, judge: Any = None) -> Any:
    return evaluate(spec(condition, path), {HANDLE: {"type": "json", "data": data}}, judge=judge)


# (condition, data at the target, outcome, failure code or None)
CASES: list[tuple[dict[str, Any], Any, str, str | None]] = [
    ({"kind": "exists"}, "x", "passed", None),
    ({"kind": "exists"}, None, "failed", "condition_not_met"),
    ({"kind": "not_exists"}, None, "passed", None),
    ({"kind": "not_exists"}, 0, "failed", "condition_not_met"),
    ({"kind": "equals", "expected": {"a": [1, "x"]}}, {"a": [1.0, "x"]}, "passed", None),
    ({"kind": "equals", "expected": 1}, True, "failed", "condition_not_met"),
    ({"kind": "equals", "expected": 100}, "100", "failed", "condition_not_met"),
    ({"kind": "equals", "expected": [1, 2]}, [2, 1], "failed", "condition_not_met"),
    ({"kind": "not_equals", "expected": "a"}, "b", "passed", None),
    ({"kind": "not_equals", "expected": "a"}, "a", "failed", "condition_not_met"),
    ({"kind": "number_compare", "op": "gt", "expected": 3}, 5, "passed", None),
    ({"kind": "number_compare", "op": "lte", "expected": 3}, 3.0, "passed", None),
    ({"kind": "number_compare", "op": "neq", "expected": 3}, 3, "failed", "condition_not_met"),
    ({"kind": "number_compare", "op": "gte", "expected": 3}, "5", "blocked", "type_error"),
    ({"kind": "number_compare", "op": "eq", "expected": 1}, True, "blocked", "type_error"),
    ({"kind": "length_compare", "op": "eq", "expected": 3}, "abc", "passed", None),
    ({"kind": "length_compare", "op": "gte", "expected": 2}, [1, 2], "passed", None),
    ({"kind": "length_compare", "op": "lt", "expected": 2}, {"a": 1, "b": 2}, "failed", "condition_not_met"),
    ({"kind": "length_compare", "op": "eq", "expected": 1}, 5, "blocked", "type_error"),
    ({"kind": "between", "lower": 1, "upper": 3}, 3, "passed", None),
    ({"kind": "between", "lower": 1, "upper": 3, "inclusive": False}, 3, "failed", "condition_not_met"),
    ({"kind": "between", "lower": 1, "upper": 3}, "2", "blocked", "type_error"),
    ({"kind": "contains", "expected": "INV"}, "INV-001", "passed", None),
    ({"kind": "contains", "expected": {"sku": "A"}}, [{"sku": "A"}, {"sku": "B"}], "passed", None),
    ({"kind": "contains", "expected": "total"}, {"total": 1}, "passed", None),
    ({"kind": "contains", "expected": "x"}, "abc", "failed", "condition_not_met"),
    ({"kind": "contains", "expected": 1}, "a1", "blocked", "type_error"),
    ({"kind": "contains", "expected": "a"}, 12, "blocked", "type_error"),
    ({"kind": "not_contains", "expected": "ERROR"}, "all good", "passed", None),
    ({"kind": "not_contains", "expected": 2}, [1, 2], "failed", "condition_not_met"),
    ({"kind": "not_contains", "expected": "x"}, True, "blocked", "type_error"),
    ({"kind": "object_contains", "expected": {"a": 1, "b": {"c": 2}}}, {"a": 1, "b": {"c": 2, "d": 3}}, "passed", None),
    ({"kind": "object_contains", "expected": {"a": 2}}, {"a": 1}, "failed", "condition_not_met"),
    ({"kind": "object_contains", "expected": {"a": 1}}, [{"a": 1}], "blocked", "type_error"),
    ({"kind": "array_contains", "expected": {"sku": "A"}}, [{"sku": "B"}, {"sku": "A", "q": 1}], "passed", None),
    ({"kind": "array_contains", "expected": {"sku": "C"}}, [{"sku": "B"}], "failed", "condition_not_met"),
    ({"kind": "array_contains", "expected": {"sku": "A"}}, {"sku": "A"}, "blocked", "type_error"),
    ({"kind": "starts_with", "expected": "INV"}, "INV-1", "passed", None),
    ({"kind": "starts_with", "expected": "INV"}, "inv-1", "failed", "condition_not_met"),
    ({"kind": "starts_with", "expected": "1"}, 12, "blocked", "type_error"),
    ({"kind": "ends_with", "expected": ".pdf"}, "a.pdf", "passed", None),
    ({"kind": "ends_with", "expected": ".pdf"}, "a.png", "failed", "condition_not_met"),
    ({"kind": "ends_with", "expected": "x"}, ["x"], "blocked", "type_error"),
    ({"kind": "matches_regex", "pattern": r"^INV-\d{3}$"}, "INV-042", "passed", None),
    ({"kind": "matches_regex", "pattern": r"^INV-\d{3}$"}, "INV-42", "failed", "condition_not_met"),
    ({"kind": "matches_regex", "pattern": "a"}, 1, "blocked", "type_error"),
    ({"kind": "json_schema_valid", "schema": {"type": "object", "required": ["x"]}}, {"x": 1}, "passed", None),
    (
        {"kind": "json_schema_valid", "schema": {"type": "object", "required": ["x"]}},
        {"y": 1},
        "failed",
        "condition_not_met",
    ),
    ({"kind": "json_schema_valid", "schema": {"type": "null"}}, None, "passed", None),
    ({"kind": "similarity_gte", "reference": "Acme Corp", "threshold": 0.8}, "Acme Corp.", "passed", None),
    ({"kind": "similarity_gte", "reference": "Acme Corp", "threshold": 0.8}, "Globex", "failed", "condition_not_met"),
    (
        {"kind": "similarity_gte", "reference": "x", "threshold": 0.5, "method": "embeddings"},
        "x",
        "blocked",
        "not_supported",
    ),
    (
        {"kind": "split_iou_gte", "expected": {"splits": [{"name": "invoice", "pages": [1, 2]}]}},
        {"splits": [{"name": "invoice", "pages": [2, 1]}]},
        "passed",
        None,
    ),
    (
        {"kind": "split_iou_gte", "expected": {"splits": [{"name": "invoice", "pages": [1, 2]}]}, "threshold": 0.9},
        [{"name": "invoice", "pages": [1]}, {"name": "receipt", "pages": [2]}],
        "failed",
        "condition_not_met",
    ),
    (
        {"kind": "split_iou_gte", "expected": {"splits": []}},
        {"splits": [{"name": "a", "pages": ["1"]}]},
        "blocked",
        "type_error",
    ),
    ({"kind": "split_iou_gte", "expected": {"splits": []}}, "a", "blocked", "type_error"),
    (
        {"kind": "all_items_match", "condition": {"kind": "number_compare", "op": "gt", "expected": 0}},
        [1, 2],
        "passed",
        None,
    ),
    (
        {"kind": "all_items_match", "condition": {"kind": "number_compare", "op": "gt", "expected": 0}},
        [1, 0],
        "failed",
        "condition_not_met",
    ),
    ({"kind": "all_items_match", "condition": {"kind": "exists"}}, [], "failed", "condition_not_met"),
    (
        {"kind": "all_items_match", "condition": {"kind": "number_compare", "op": "gt", "expected": 0}},
        [1, "2"],
        "blocked",
        "type_error",
    ),
    ({"kind": "all_items_match", "condition": {"kind": "exists"}}, "abc", "blocked", "type_error"),
    ({"kind": "any_item_matches", "condition": {"kind": "equals", "expected": "b"}}, ["a", "b"], "passed", None),
    (
        {"kind": "any_item_matches", "condition": {"kind": "equals", "expected": "c"}},
        ["a", "b"],
        "failed",
        "condition_not_met",
    ),
    (
        {"kind": "any_item_matches", "condition": {"kind": "starts_with", "expected": "c"}},
        ["a", 1],
        "blocked",
        "type_error",
    ),
]


@pytest.mark.parametrize(
    ("condition", "data", "outcome", "code"), CASES, ids=lambda v: v if isinstance(v, str) else None
)
def test_condition_kinds(condition: dict[str, Any], data: Any, outcome: str, code: str | None) -> None:
    result = run(condition, data)
    assert (result.outcome, result.failure.code if result.failure else None) == (outcome, code), result
    assert result.condition_kind == condition["kind"]
    assert result.assertion_id == "as_1" and result.assertion_label == "check"
    assert result.actual_value == data


def test_every_kind_is_tested() -> None:
    kinds = {c["kind"] for c, *_ in CASES} | {"llm_judged_as", "llm_not_judged_as"}
    union = AssertionSpec.model_fields["condition"].annotation
    assert union is not None
    declared = {m.model_fields["kind"].default for m in union.__args__}
    assert kinds == declared and len(declared) == 21


def test_equals_ignores_reasoning_keys_at_any_depth() -> None:
    data = {"total": 10, "reasoning___total": "seen on p.2", "lines": [{"q": 1, "reasoning___q": "…"}]}
    assert run({"kind": "equals", "expected": {"total": 10, "lines": [{"q": 1}]}}, data).outcome == "passed"
    assert run({"kind": "not_equals", "expected": {"total": 10, "lines": [{"q": 1}]}}, data).outcome == "failed"
    assert run({"kind": "equals", "expected": {"total": 11, "lines": [{"q": 1}]}}, data).outcome == "failed"


def test_missing_handle_or_path() -> None:
    assert evaluate(spec({"kind": "exists"}), {}).outcome == "failed"
    assert evaluate(spec({"kind": "not_exists"}), {}).outcome == "passed"
    result = run({"kind": "number_compare", "op": "gt", "expected": 1}, {"a": 1}, path="b")
    assert (result.outcome, result.failure and result.failure.code, result.actual_value) == (
        "failed",
        "missing_value",
        None,
    )
    assert run({"kind": "not_contains", "expected": "x"}, {}, path="note").outcome == "passed"
    assert run({"kind": "json_schema_valid", "schema": {}}, {}, path="gone").failure.code == "missing_value"  # type: ignore[union-attr]


def test_paths_and_wildcards() -> None:
    data = {"items": [{"qty": 2, "sku": "A"}, {"qty": 5}], "meta": {"a b": "x"}}
    assert run({"kind": "equals", "expected": 5}, data, path="items[1].qty").outcome == "passed"
    assert run({"kind": "equals", "expected": "x"}, data, path="meta['a b']").outcome == "passed"
    result = run({"kind": "equals", "expected": [2, 5]}, data, path="items[*].qty")
    assert result.outcome == "passed" and result.actual_value == [2, 5]
    # A wildcard reads the values that exist: one item has no sku.
    assert run({"kind": "length_compare", "op": "eq", "expected": 1}, data, path="items.*.sku").outcome == "passed"
    every = {"kind": "all_items_match", "condition": {"kind": "number_compare", "op": "gte", "expected": 2}}
    assert run(every, data, path="items[*].qty").outcome == "passed"
    nested = {"kind": "all_items_match", "condition": {"kind": "object_contains", "expected": {"sku": "A"}}}
    result = run(nested, data, path="items")
    assert result.outcome == "failed" and result.score == 0.5 and result.failure.details["failed_items"] == [1]  # type: ignore[union-attr]


def test_file_handle_reads_the_document_and_unknown_payloads_block() -> None:
    document = {"id": "file_1", "filename": "a.pdf", "mime_type": "application/pdf"}
    a = spec({"kind": "ends_with", "expected": ".pdf"}, path="filename")
    assert evaluate(a, {HANDLE: {"type": "file", "document": document}}).outcome == "passed"
    result = evaluate(a, {HANDLE: {"filename": "a.pdf"}})
    assert result.outcome == "blocked" and result.failure and result.failure.code == "execution_error"


def test_similarity_reports_score_and_threshold() -> None:
    result = run({"kind": "similarity_gte", "reference": "kitten", "threshold": 0.5}, "sitting")
    assert result.metric_kind == "levenshtein_similarity" and result.threshold == 0.5
    assert result.score == pytest.approx(1 - 3 / 7) and result.outcome == "passed"
    # Non-strings compare as canonical JSON text.
    assert run({"kind": "similarity_gte", "reference": {"a": 1}, "threshold": 1}, {"a": 1.0}).score == 1.0


def test_embeddings_never_make_up_a_score() -> None:
    result = run({"kind": "similarity_gte", "reference": "x", "threshold": 0.1, "method": "embeddings"}, "x")
    assert result.outcome == "blocked" and result.score is None
    assert result.failure and "not supported by this provider" in result.failure.message


def test_huge_strings_are_refused_fast() -> None:
    condition = {"kind": "similarity_gte", "reference": "b" * 5_000, "threshold": 0.5}
    started = time.perf_counter()
    result = run(condition, "a" * 5_000_000)
    assert result.outcome == "blocked" and result.failure and result.failure.code == "value_too_large"
    assert result.failure.details == {"limit": MAX_SIMILARITY_CHARS, "length": 5_000_000}
    # Many maximal comparisons in one evaluation run out of budget instead of running for seconds.
    many = {
        "kind": "all_items_match",
        "condition": {"kind": "similarity_gte", "reference": "b" * MAX_SIMILARITY_CHARS, "threshold": 0.5},
    }
    result = run(many, ["a" * MAX_SIMILARITY_CHARS] * 200)
    assert result.failure and result.failure.details["blocked_reason"]["code"] == "value_too_large"
    assert time.perf_counter() - started < 2


def test_regex_runs_in_linear_time() -> None:
    started = time.perf_counter()
    result = run({"kind": "matches_regex", "pattern": "^(a+)+$"}, "a" * 100_000 + "!")
    assert result.outcome == "failed" and time.perf_counter() - started < 1


def test_stored_bad_regex_or_schema_blocks() -> None:
    # The models refuse these on write; a record stored before that rule still evaluates to blocked.
    target = OutputTarget(output_handle_id=HANDLE)
    bad_regex = AssertionSpec.model_construct(
        id="a", target=target, condition=MatchesRegexCondition.model_construct(pattern=r"(a)\1"), label=None
    )
    result = evaluate(bad_regex, {HANDLE: {"type": "json", "data": "aa"}})
    assert result.outcome == "blocked" and result.failure and result.failure.code == "invalid_regex"
    bad_schema = AssertionSpec.model_construct(
        id="a", target=target, condition=JsonSchemaValidCondition.model_construct(schema_={"type": 12}), label=None
    )
    result = evaluate(bad_schema, {HANDLE: {"type": "json", "data": 1}})
    assert result.outcome == "blocked" and result.failure and result.failure.code == "schema_invalid"


def test_deep_and_large_values_block() -> None:
    deep: Any = 1
    for _ in range(MAX_VALUE_DEPTH + 5):
        deep = [deep]
    result = run({"kind": "equals", "expected": 1}, deep)
    assert result.outcome == "blocked" and result.failure and result.failure.code == "execution_error"
    result = run({"kind": "any_item_matches", "condition": {"kind": "exists"}}, list(range(MAX_ITEMS + 1)))
    assert result.outcome == "blocked" and result.failure and result.failure.code == "value_too_large"
    result = run({"kind": "contains", "expected": 1}, [[0] * 200] * 1_000)
    assert result.outcome == "blocked" and result.failure and result.failure.code == "value_too_large"


def labeller(label: str, calls: list[JudgeRequest]) -> Any:
    def judge(request: JudgeRequest) -> JudgeVerdict:
        calls.append(request)
        return JudgeVerdict(label=label, reasoning="because")

    return judge


def test_llm_judged_as_uses_the_judges_label() -> None:
    calls: list[JudgeRequest] = []
    condition = {"kind": "llm_judged_as", "rubric": "Is the tone formal?", "expected_label": "formal"}
    data = {"text": "Dear Sir", "reasoning___text": "hidden"}
    assert run(condition, data, judge=labeller("Formal", calls)).outcome == "passed"
    assert calls == [JudgeRequest(rubric="Is the tone formal?", value={"text": "Dear Sir"}, expected_label="formal")]
    result = run(condition, data, judge=labeller("casual", calls))
    assert result.outcome == "failed" and result.failure and result.failure.details["label"] == "casual"
    negated = {**condition, "kind": "llm_not_judged_as"}
    assert run(negated, data, judge=labeller("casual", calls)).outcome == "passed"
    assert run(negated, data, judge=labeller("formal", calls)).outcome == "failed"
    # Without an expected label the judge is asked for "pass".
    assert run({"kind": "llm_judged_as", "rubric": "ok?"}, 1, judge=labeller("pass", calls)).outcome == "passed"


def test_llm_conditions_block_without_a_judge_or_when_it_fails() -> None:
    for kind in ("llm_judged_as", "llm_not_judged_as"):
        result = run({"kind": kind, "rubric": "polite?"}, "hi")
        assert result.outcome == "blocked" and result.failure and result.failure.code == "not_supported"
        assert "judge" in result.failure.message

    def broken(_: JudgeRequest) -> JudgeVerdict:
        raise TimeoutError("model timed out")

    result = run({"kind": "llm_judged_as", "rubric": "polite?"}, "hi", judge=broken)
    assert result.outcome == "blocked" and result.failure and "model timed out" in result.failure.message
    calls: list[JudgeRequest] = []
    each = {"kind": "all_items_match", "condition": {"kind": "llm_judged_as", "rubric": "ok?"}}
    result = run(each, ["x"] * (MAX_JUDGE_CALLS + 1), judge=labeller("pass", calls))
    assert result.outcome == "blocked" and len(calls) == MAX_JUDGE_CALLS


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"kind": "matches_regex", "pattern": r"(a)\1"}, "pattern"),
        ({"kind": "json_schema_valid", "schema": {"type": "nope"}}, "schema"),
        ({"kind": "between", "lower": 3, "upper": 1}, "between"),
        ({"kind": "similarity_gte", "reference": "a", "threshold": 1.5}, "threshold"),
        ({"kind": "split_iou_gte", "expected": {}, "threshold": -0.1}, "threshold"),
        ({"kind": "number_compare", "op": "approx", "expected": 1}, "op"),
        ({"kind": "equals", "expceted": 1}, "expceted"),
        ({"kind": "compare"}, "kind"),
    ],
)
def test_conditions_that_cannot_evaluate_are_refused_on_write(condition: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec(condition)
    assert field in str(info.value)


def test_bad_paths_and_deep_nesting_are_refused_on_write() -> None:
    with pytest.raises(ValidationError, match="path"):
        spec({"kind": "exists"}, path="items[")
    condition: dict[str, Any] = {"kind": "exists"}
    for _ in range(8):
        condition = {"kind": "all_items_match", "condition": condition}
    with pytest.raises(ValidationError, match="nested deeper"):
        spec(condition)


def test_wire_shapes_match_the_sdk() -> None:
    condition = {"kind": "json_schema_valid", "schema": {"type": "object"}}
    ours = spec({"kind": "any_item_matches", "condition": condition}, path="items")
    wire = ours.model_dump(mode="json")
    assert wire["condition"]["condition"]["schema"] == {"type": "object"}
    assert SdkAssertionSpec.model_validate(wire).model_dump(mode="json", by_alias=True, exclude_none=True) == {
        k: v for k, v in wire.items() if v is not None
    } | {"target": {"output_handle_id": HANDLE, "path": "items"}}
    result = run({"kind": "similarity_gte", "reference": "a", "threshold": 0.5}, "a")
    SdkAssertionResult.model_validate(result.model_dump(mode="json"))
    blocked = run({"kind": "contains", "expected": "a"}, 1)
    assert SdkAssertionResult.model_validate(blocked.model_dump(mode="json")).failure.code == "type_error"  # type: ignore[union-attr]
