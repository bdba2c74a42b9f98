"""Conditional evaluation: branch choice, operators, wildcard paths and the SDK shape of evaluations."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError
from retab.types.workflows.artifacts import ConditionalEvaluation, ConditionEvaluationResult

from docflow.blocks import ConditionalConfig
from docflow.conditions import compare, evaluate_conditional

INVOICE = {
    "invoice": {"total": 1440.0, "currency": "EUR", "number": "INV-2026-0042", "paid": False},
    "vendor": "Acme Supplies Ltd",
    "items": [{"sku": "A", "qty": 2, "price": "400.00"}, {"sku": "B", "qty": 1, "price": "400.00"}],
    "tags": ["urgent", "eu"],
    "notes": "",
    "empty_items": [],
    "maybe": None,
}


def config(*conditions: dict[str, Any], else_branch: bool = True) -> ConditionalConfig:
    return ConditionalConfig.model_validate({"conditions": list(conditions), "else_branch": else_branch})


def cond(cid: str, path: str, operator: str, expected: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "sub_conditions": [{"path": path, "operator": operator, "expected": expected}], **extra}


def test_first_matching_condition_wins_and_all_matches_are_listed() -> None:
    cfg = config(
        cond("small", "invoice.total", "lt", 100),
        cond("big", "invoice.total", "gte", 1000),
        cond("eur", "invoice.currency", "equals", "EUR"),
    )
    result = evaluate_conditional(cfg, INVOICE)
    assert result.selected_handles == ["output-json-big"]
    assert result.matched_branch_id == "big"
    assert result.matched_condition_ids == ["big", "eur"]
    assert [e["matched"] for e in result.evaluations] == [False, True, True]


def test_no_match_takes_the_else_branch_or_nothing() -> None:
    unmatched = cond("never", "invoice.total", "lt", 0)
    with_else = evaluate_conditional(config(unmatched), INVOICE)
    assert with_else.selected_handles == ["output-json-else"]
    assert with_else.matched_branch_id is None
    without_else = evaluate_conditional(config(unmatched, else_branch=False), INVOICE)
    assert without_else.selected_handles == []
    assert without_else.matched_condition_ids == []


@pytest.mark.parametrize(
    ("path", "operator", "expected", "matched"),
    [
        ("invoice.currency", "equals", "EUR", True),
        ("invoice.currency", "equals", "eur", False),
        ("invoice.total", "equals", "1440", True),
        ("invoice.paid", "equals", 0, False),
        ("invoice.paid", "equals", False, True),
        ("invoice.currency", "not_equals", "USD", True),
        ("invoice.total", "gt", 1000, True),
        ("invoice.total", "gt", 1440, False),
        ("invoice.total", "gte", 1440, True),
        ("items[0].price", "gt", 399.5, True),
        ("items[0].price", "lte", "400", True),
        ("invoice.number", "gt", 5, False),
        ("invoice.number", "lt", "INV-2027", True),
        ("vendor", "contains", "Supplies", True),
        ("tags", "contains", "urgent", True),
        ("invoice", "contains", "total", True),
        ("tags", "not_contains", "late", True),
        ("invoice.total", "contains", "14", False),
        ("vendor", "starts_with", "Acme", True),
        ("vendor", "ends_with", "Ltd", True),
        ("vendor", "ends_with", "Inc", False),
        ("invoice.number", "matches_regex", r"^INV-\d{4}-\d+$", True),
        ("vendor", "exists", None, True),
        ("maybe", "exists", None, False),
        ("nowhere.deep", "exists", None, False),
        ("nowhere.deep", "not_exists", None, True),
        ("notes", "is_empty", None, True),
        ("empty_items", "is_empty", None, True),
        ("nowhere", "is_empty", None, True),
        ("tags", "is_not_empty", None, True),
        ("invoice.paid", "is_false", None, True),
        ("invoice.paid", "is_true", None, False),
        ("invoice.currency", "in", ["EUR", "USD"], True),
        ("invoice.currency", "in", ["GBP"], False),
        ("invoice.currency", "not_in", ["GBP"], True),
        ("invoice.total", "in", "not a list", False),
    ],
)
def test_operator(path: str, operator: str, expected: Any, matched: bool) -> None:
    result = evaluate_conditional(config(cond("c", path, operator, expected)), INVOICE)
    assert result.evaluations[0]["matched"] is matched


def test_missing_path_reads_as_none_and_never_raises() -> None:
    result = evaluate_conditional(config(cond("c", "invoice.missing.x", "gt", 3)), INVOICE)
    evaluation = result.evaluations[0]
    assert evaluation["actual"] is None
    assert evaluation["matched"] is False


def test_path_prefixes_address_the_root() -> None:
    for path in ("$.invoice.total", "data.invoice.total", "invoice.total"):
        result = evaluate_conditional(config(cond("c", path, "equals", 1440)), INVOICE)
        assert result.evaluations[0]["actual"] == 1440.0, path


def test_a_data_key_wins_over_the_data_prefix() -> None:
    result = evaluate_conditional(config(cond("c", "data.kind", "equals", "x")), {"data": {"kind": "x"}})
    assert result.selected_handles == ["output-json-c"]


def test_wildcard_requires_every_item_and_records_each() -> None:
    all_positive = evaluate_conditional(config(cond("c", "items.*.qty", "gt", 0)), INVOICE)
    evaluation = all_positive.evaluations[0]
    assert evaluation["matched"] is True
    assert [(i["index"], i["actual"], i["matched"]) for i in evaluation["items"]] == [(0, 2, True), (1, 1, True)]
    one_fails = evaluate_conditional(config(cond("c", "items[*].qty", "gt", 1)), INVOICE)
    assert one_fails.evaluations[0]["matched"] is False
    assert [i["matched"] for i in one_fails.evaluations[0]["items"]] == [True, False]


def test_wildcard_over_an_empty_or_absent_list_does_not_match() -> None:
    for path in ("empty_items.*.qty", "absent.*.qty"):
        result = evaluate_conditional(config(cond("c", path, "not_exists")), INVOICE)
        assert result.evaluations[0]["matched"] is False, path
        assert result.evaluations[0]["items"] == []


def test_nested_wildcards_record_hierarchical_indices() -> None:
    data = {"pages": [{"lines": [{"n": 1}, {"n": 2}]}, {"lines": [{"n": 3}]}]}
    result = evaluate_conditional(config(cond("c", "pages.*.lines.*.n", "gte", 1)), data)
    items = result.evaluations[0]["items"]
    assert [i["indices"] for i in items] == [[0, 0], [0, 1], [1, 0]]
    assert result.evaluations[0]["matched"] is True


def test_logical_operators_combine_sub_conditions() -> None:
    subs = [
        {"path": "invoice.currency", "operator": "equals", "expected": "EUR"},
        {"path": "invoice.total", "operator": "lt", "expected": 100},
    ]
    both = {"id": "both", "sub_conditions": subs, "logical_operator": "and"}
    either = {"id": "either", "sub_conditions": subs, "logical_operator": "or", "name": "Either"}
    result = evaluate_conditional(config(both, either), INVOICE)
    assert result.matched_condition_ids == ["either"]
    compound = result.evaluations[1]
    assert compound["branch_name"] == "Either"
    assert compound["logical_operator"] == "or"
    assert [s["matched"] for s in compound["sub_evaluations"]] == [True, False]


def test_evaluations_validate_into_the_sdk_models() -> None:
    subs = [
        {"id": "cur", "path": "invoice.currency", "operator": "equals", "expected": "EUR"},
        {"path": "items.*.qty", "operator": "gt", "expected": 0},
    ]
    cfg = config({"id": "ok", "sub_conditions": subs}, cond("other", "vendor", "exists"))
    result = evaluate_conditional(cfg, INVOICE)
    for raw in result.evaluations:
        parsed = ConditionEvaluationResult.model_validate(raw)
        assert parsed.details.matched == raw["matched"]
    first = ConditionEvaluationResult.model_validate(result.evaluations[0])
    assert first.sub_evaluations is not None
    assert first.sub_evaluations[0].sub_condition_id == "cur"
    assert first.sub_evaluations[1].items is not None and len(first.sub_evaluations[1].items) == 2
    artifact = ConditionalEvaluation.model_validate(
        {"id": "art_1", "run_id": "run_1", "step_id": "cond", **result.model_dump()}
    )
    assert artifact.selected_handles == ["output-json-ok"]
    assert artifact.matched_condition_ids == ["ok", "other"]


def test_compare_never_raises_on_odd_types() -> None:
    odd_values: list[Any] = [None, 1, "x", [1], {"a": 1}, True, 1.5]
    for operator in ("gt", "contains", "starts_with", "matches_regex", "in", "is_true", "equals"):
        for actual in odd_values:
            for expected in odd_values:
                assert isinstance(compare(operator, actual, expected), bool)


def test_an_invalid_regex_is_refused_when_the_config_is_written() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        config(cond("c", "invoice.number", "matches_regex", "(unclosed"))


# -- linear-time regexes ----------------------------------------------------------------------------------

CATASTROPHIC = r"^(a+)+$"


@pytest.mark.parametrize("n", [29, 40])
def test_a_catastrophic_regex_evaluates_in_milliseconds(n: int) -> None:
    cfg = config(cond("c", "text", "matches_regex", CATASTROPHIC))
    start = time.perf_counter()
    result = evaluate_conditional(cfg, {"text": "a" * n + "!"})
    assert time.perf_counter() - start < 1.0  # backtracking would take minutes at n=29, ages at 40
    assert result.matched_branch_id is None
    assert evaluate_conditional(cfg, {"text": "a" * n}).matched_branch_id == "c"


@pytest.mark.parametrize("pattern", [r"(a)\1", r"foo(?=bar)", r"(?<!x)y", r"(?!a)b"])
def test_a_pattern_the_linear_engine_cannot_run_is_refused_on_expected(pattern: str) -> None:
    with pytest.raises(ValidationError) as raised:
        config(cond("c", "invoice.number", "matches_regex", pattern))
    error = raised.value.errors()[0]
    assert error["loc"] == ("conditions", 0, "sub_conditions", 0, "expected")
    assert "RE2" in error["msg"]
