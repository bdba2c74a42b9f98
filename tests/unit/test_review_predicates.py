"""Review gate predicates: every kind fires and does not, the nesting bounds, and which blocks can use which."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from docflow.review_applicability import check_applicable
from docflow.review_inputs import GateInput, min_leaf, null_required_fields
from docflow.review_predicates import Evaluation, ReviewPredicate, evaluate

ADAPTER: TypeAdapter[ReviewPredicate] = TypeAdapter(ReviewPredicate)

SCHEMA = {
    "type": "object",
    "required": ["total", "items"],
    "properties": {
        "total": {"type": ["number", "null"]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "vendor": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    },
    "$defs": {"item": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}},
}
LIKELIHOODS = {"total": 0.9, "items": [{"sku": 1.0, "qty": 0.4}, {"sku": 0.8, "qty": 1.0}], "note": None}


def predicate(raw: dict[str, Any]) -> ReviewPredicate:
    return ADAPTER.validate_python(raw)


def run(raw: dict[str, Any], **gate: Any) -> Evaluation:
    return evaluate(predicate(raw), GateInput(**{"block_type": "extract", **gate}))


def extract(**fields: Any) -> dict[str, Any]:
    return {"block_type": "extract", "data": {"total": 10, "items": []}, "json_schema": SCHEMA, **fields}


def test_always_fires() -> None:
    assert (run({"kind": "always"}).fired, run({"kind": "always"}).reason) == (True, "always")


def test_validation_failed() -> None:
    fired = run({"kind": "validation_failed"}, validation_errors=[{"path": "total", "message": "not a number"}])
    quiet = run({"kind": "validation_failed"})
    assert (fired.fired, fired.reason) == (True, "1 validation error(s)")
    assert (quiet.fired, quiet.reason) == (False, "no validation errors")


def test_any_required_field_null_walks_objects_and_arrays_of_objects() -> None:
    data: dict[str, Any] = {"total": None, "items": [{"sku": "a"}, {"sku": None}], "vendor": {}}
    fired = run({"kind": "any_required_field_null"}, **extract(data=data))
    assert fired.fired and fired.details["paths"] == ["total", "items[1].sku", "vendor.name"]
    assert fired.reason == "required field(s) null: total, items[1].sku, vendor.name"
    quiet = run({"kind": "any_required_field_null"}, **extract(data={"total": 1, "items": [{"sku": "a"}]}))
    assert (quiet.fired, quiet.reason) == (False, "no required field is null")


def test_required_walk_follows_nullable_any_of_branches() -> None:
    item = {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}
    schema = {
        "type": "object",
        "properties": {
            "vendor": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/item"}]},
            "rows": {"oneOf": [{"type": "array", "items": item}, {"type": "null"}]},
        },
        "$defs": {"item": item},
    }
    data = {"vendor": {"sku": None}, "rows": [{"sku": "a"}, {}]}
    assert null_required_fields(data, schema) == ["vendor.sku", "rows[1].sku"]
    assert null_required_fields({"vendor": None, "rows": None}, schema) == []


def test_required_walk_survives_a_ref_cycle() -> None:
    schema = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}
    assert null_required_fields({"x": None}, schema) == []


def test_confidence_lt_reads_the_lowest_leaf_through_lists() -> None:
    fired = run({"kind": "confidence_lt", "threshold": 0.5}, **extract(likelihoods=LIKELIHOODS))
    assert (fired.fired, fired.reason) == (True, "lowest likelihood (items[0].qty) 0.4 < 0.5")
    quiet = run({"kind": "confidence_lt", "threshold": 0.4}, **extract(likelihoods=LIKELIHOODS))
    assert (quiet.fired, quiet.reason) == (False, "lowest likelihood (items[0].qty) 0.4 >= 0.4")
    assert min_leaf([[0.7, [0.3]], {"a": True}]) == ("[0][1][0]", 0.3)


def test_confidence_lt_without_likelihoods_fails_closed_and_empty_tree_does_not_fire() -> None:
    missing = run({"kind": "confidence_lt", "threshold": 0.5}, **extract())
    assert (missing.fired, missing.reason) == (True, "no likelihood to compare: fails closed")
    empty = run({"kind": "confidence_lt", "threshold": 0.5}, **extract(likelihoods={}))
    assert (empty.fired, empty.reason) == (False, "no field to doubt: empty likelihood tree")


def test_confidence_lt_on_a_classifier_reads_its_likelihood() -> None:
    fired = run({"kind": "confidence_lt", "threshold": 0.8}, block_type="classifier", likelihood=0.6)
    assert (fired.fired, fired.reason) == (True, "likelihood 0.6 < 0.8")
    quiet = run({"kind": "confidence_lt", "threshold": 0.5}, block_type="classifier", likelihood=0.6)
    assert (quiet.fired, quiet.reason) == (False, "likelihood 0.6 >= 0.5")


def test_field_confidence_lt_reads_a_leaf_a_subtree_or_a_wildcard() -> None:
    gate = extract(likelihoods=LIKELIHOODS)
    leaf = run({"kind": "field_confidence_lt", "path": "total", "threshold": 0.95}, **gate)
    assert (leaf.fired, leaf.reason) == (True, "likelihood at total 0.9 < 0.95")
    subtree = run({"kind": "field_confidence_lt", "path": "data.items[1]", "threshold": 0.8}, **gate)
    assert (subtree.fired, subtree.reason) == (False, "likelihood at data.items[1] 0.8 >= 0.8")
    wildcard = run({"kind": "field_confidence_lt", "path": "items.*.qty", "threshold": 0.5}, **gate)
    assert (wildcard.fired, wildcard.reason) == (True, "likelihood at items.*.qty 0.4 < 0.5")
    absent = run({"kind": "field_confidence_lt", "path": "vendor.name", "threshold": 0.5}, **gate)
    assert (absent.fired, absent.reason) == (True, "no likelihood at vendor.name to compare: fails closed")


def test_category_in() -> None:
    raw = {"kind": "category_in", "categories": ["invoice", "receipt"]}
    fired = run(raw, block_type="classifier", category="invoice")
    assert (fired.fired, fired.reason) == (True, "category 'invoice' in ['invoice', 'receipt']")
    quiet = run(raw, block_type="classifier", category="contract")
    assert (quiet.fired, quiet.reason) == (False, "category 'contract' not in ['invoice', 'receipt']")


def test_top_margin_lt() -> None:
    fired = run({"kind": "top_margin_lt", "margin": 0.2}, block_type="classifier", top_margin=0.1)
    assert (fired.fired, fired.reason) == (True, "top margin 0.1 < 0.2")
    quiet = run({"kind": "top_margin_lt", "margin": 0.2}, block_type="classifier", top_margin=0.5)
    assert (quiet.fired, quiet.reason) == (False, "top margin 0.5 >= 0.2")
    unknown = run({"kind": "top_margin_lt", "margin": 0.2}, block_type="classifier")
    assert (unknown.fired, unknown.reason) == (True, "no top margin to compare: fails closed")


SPLITS = [
    {"name": "invoice", "pages": [1, 2], "likelihood": 0.9, "page_likelihoods": [0.7, 1.0]},
    {"name": "receipt", "pages": [3], "likelihood": 0.6},
]


def test_split_count_neq() -> None:
    fired = run({"kind": "split_count_neq", "expected": 3}, block_type="split", splits=SPLITS)
    assert (fired.fired, fired.reason) == (True, "2 split(s) != 3")
    quiet = run({"kind": "split_count_neq", "expected": 2}, block_type="split", splits=SPLITS)
    assert (quiet.fired, quiet.reason) == (False, "2 split(s) == 2")


def test_any_split_pages_lt() -> None:
    fired = run({"kind": "any_split_pages_lt", "min_pages": 2}, block_type="split", splits=SPLITS)
    assert (fired.fired, fired.reason) == (True, "split(s) [1] have fewer than 2 page(s)")
    quiet = run({"kind": "any_split_pages_lt", "min_pages": 1}, block_type="split", splits=SPLITS)
    assert (quiet.fired, quiet.reason) == (False, "every split has ≥ 1")


def test_boundary_confidence_lt_reads_first_pages_then_split_likelihoods() -> None:
    fired = run({"kind": "boundary_confidence_lt", "threshold": 0.65}, block_type="split", splits=SPLITS)
    assert (fired.fired, fired.reason) == (True, "boundary likelihood of split 1 0.6 < 0.65")
    quiet = run({"kind": "boundary_confidence_lt", "threshold": 0.6}, block_type="split", splits=SPLITS)
    assert (quiet.fired, quiet.reason) == (False, "boundary likelihood of split 1 0.6 >= 0.6")
    first_page = run({"kind": "boundary_confidence_lt", "threshold": 0.65}, block_type="split", splits=SPLITS[:1])
    assert (first_page.fired, first_page.details["value"]) == (False, 0.7)
    unknown = run({"kind": "boundary_confidence_lt", "threshold": 0.5}, block_type="split", splits=[{"name": "a"}])
    assert (unknown.fired, unknown.reason) == (True, "no boundary likelihood of split 0 to compare: fails closed")
    none = run({"kind": "boundary_confidence_lt", "threshold": 0.5}, block_type="split")
    assert (none.fired, none.reason) == (False, "no splits: no boundary")


def test_json_condition_over_data_and_likelihoods() -> None:
    raw = {
        "kind": "json_condition",
        "condition": {
            "logical_operator": "or",
            "sub_conditions": [
                {"path": "data.total", "operator": "gt", "expected": 1000},
                {"path": "likelihoods.items.*.sku", "operator": "gte", "expected": 0.8},
            ],
        },
    }
    fired = run(raw, **extract(likelihoods=LIKELIHOODS))
    assert (fired.fired, fired.reason) == (True, "condition matched")
    assert [s["matched"] for s in fired.details["sub_conditions"]] == [False, True]
    assert fired.details["sub_conditions"][1]["actual"] == [1.0, 0.8]
    quiet = run(raw, **extract(likelihoods={"items": [{"sku": 1.0}, {"sku": 0.5}]}))
    assert (quiet.fired, quiet.reason) == (False, "condition did not match")


def test_json_condition_paths_must_name_data_or_likelihoods() -> None:
    with pytest.raises(ValidationError, match=r"sub_conditions\[0\]\.path must start with"):
        predicate(
            {"kind": "json_condition", "condition": {"sub_conditions": [{"path": "total", "operator": "exists"}]}}
        )


def test_branch_in_matches_a_handle_or_its_key() -> None:
    raw = {"kind": "branch_in", "branches": ["invoice"]}
    fired = run(raw, block_type="classifier", routing=["output-file-invoice"])
    assert (fired.fired, fired.reason) == (True, "selected ['output-file-invoice']")
    quiet = run(raw, block_type="classifier", routing=["output-file-receipt"])
    assert (quiet.fired, quiet.reason) == (False, "none of ['invoice'] selected")
    other = run(raw, block_type="classifier", routing=["output-file-big-invoice"])
    assert (other.fired, other.reason) == (False, "none of ['invoice'] selected")
    exact = run(
        {"kind": "branch_in", "branches": ["output-json-else"]}, block_type="conditional", routing=["output-json-else"]
    )
    assert exact.fired


def test_any_of_reports_the_first_match_and_all_of_the_first_miss() -> None:
    gate = extract(likelihoods=LIKELIHOODS, validation_errors=["x"])
    parts = [{"kind": "confidence_lt", "threshold": 0.1}, {"kind": "validation_failed"}, {"kind": "always"}]
    any_of = run({"kind": "any_of", "predicates": parts}, **gate)
    assert (any_of.fired, any_of.reason) == (True, "predicates[1] (validation_failed) fired: 1 validation error(s)")
    assert [c.fired for c in any_of.children] == [False, True, True]
    all_of = run({"kind": "all_of", "predicates": parts}, **gate)
    assert all_of.fired is False
    assert all_of.reason == "predicates[0] (confidence_lt) did not fire: lowest likelihood (items[0].qty) 0.4 >= 0.1"
    nested = {"kind": "all_of", "predicates": [{"kind": "always"}, {"kind": "any_of", "predicates": parts[:2]}]}
    assert (run(nested, **gate).fired, run(nested, **gate).reason) == (True, "every part fired")
    assert run({"kind": "any_of", "predicates": parts[:1]}, **gate).reason == "no part fired"


def nest(depth: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"kind": "always"}
    for _ in range(depth):
        raw = {"kind": "any_of", "predicates": [raw]}
    return raw


def test_nesting_depth_is_bounded() -> None:
    assert run(nest(8)).fired
    with pytest.raises(
        ValidationError,
        match=r"predicates\[0\]\.predicates\[0\]\.predicates\[0\]\.predicates\[0\]\."
        r"predicates\[0\]\.predicates\[0\]\.predicates\[0\]\.predicates\[0\]: any_of/all_of nested deeper than 8",
    ):
        predicate(nest(9))
    with pytest.raises(ValidationError, match="any_of/all_of nested deeper than 8"):
        predicate(nest(5000))


def test_predicate_count_is_bounded() -> None:
    assert run({"kind": "all_of", "predicates": [{"kind": "always"}] * 63}).fired
    with pytest.raises(ValidationError, match="more than 64 predicates"):
        predicate({"kind": "all_of", "predicates": [{"kind": "always"}] * 64})


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "confidence_lt", "threshold": 1.5},
        {"kind": "top_margin_lt", "margin": -0.1},
        {"kind": "always", "extra": 1},
        {"kind": "unknown"},
        {"kind": "any_of", "predicates": []},
        {"kind": "field_confidence_lt", "path": "items[", "threshold": 0.5},
        {"kind": "category_in", "categories": []},
        {"kind": "json_condition", "condition": {"sub_conditions": [{"path": "data.a", "operator": "exists"}] * 65}},
    ],
)
def test_bad_predicates_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        predicate(raw)


@pytest.mark.parametrize(
    ("raw", "block_type", "n", "problems"),
    [
        ({"kind": "always"}, "parse", 1, []),
        ({"kind": "confidence_lt", "threshold": 0.5}, "extract", 3, []),
        ({"kind": "confidence_lt", "threshold": 0.5}, "classifier", 1, []),
        (
            {"kind": "confidence_lt", "threshold": 0.5},
            "extract",
            1,
            [
                "review.predicate.threshold: 'confidence_lt' needs likelihoods, "
                "which an extract has only with n_consensus > 1"
            ],
        ),
        (
            {"kind": "field_confidence_lt", "path": "total", "threshold": 0.5},
            "classifier",
            3,
            ["review.predicate.kind: 'field_confidence_lt' applies to extract blocks, not classifier"],
        ),
        (
            {"kind": "category_in", "categories": ["a"]},
            "extract",
            3,
            ["review.predicate.kind: 'category_in' applies to classifier blocks, not extract"],
        ),
        ({"kind": "top_margin_lt", "margin": 0.1}, "classifier", 1, []),
        (
            {"kind": "top_margin_lt", "margin": 0.1},
            "split",
            1,
            ["review.predicate.kind: 'top_margin_lt' applies to classifier blocks, not split"],
        ),
        ({"kind": "boundary_confidence_lt", "threshold": 0.5}, "split", 1, []),
        (
            {"kind": "split_count_neq", "expected": 2},
            "classifier",
            1,
            ["review.predicate.kind: 'split_count_neq' applies to split blocks, not classifier"],
        ),
        (
            {"kind": "any_split_pages_lt", "min_pages": 2},
            "extract",
            1,
            ["review.predicate.kind: 'any_split_pages_lt' applies to split blocks, not extract"],
        ),
        ({"kind": "branch_in", "branches": ["a"]}, "conditional", 1, []),
        (
            {"kind": "branch_in", "branches": ["a"]},
            "extract",
            1,
            ["review.predicate.kind: 'branch_in' applies to classifier, conditional, split blocks, not extract"],
        ),
        (
            {"kind": "validation_failed"},
            "split",
            1,
            ["review.predicate.kind: 'validation_failed' applies to extract blocks, not split"],
        ),
        (
            {"kind": "any_required_field_null"},
            "classifier",
            1,
            ["review.predicate.kind: 'any_required_field_null' applies to extract blocks, not classifier"],
        ),
    ],
)
def test_check_applicable(raw: dict[str, Any], block_type: str, n: int, problems: list[str]) -> None:
    assert check_applicable(predicate(raw), block_type, n) == problems


def test_check_applicable_walks_nested_groups_and_json_conditions() -> None:
    condition = {
        "sub_conditions": [
            {"path": "data.total", "operator": "exists"},
            {"path": "likelihoods.total", "operator": "lt", "expected": 0.5},
        ]
    }
    raw = {
        "kind": "any_of",
        "predicates": [
            {"kind": "always"},
            {"kind": "all_of", "predicates": [{"kind": "json_condition", "condition": condition}]},
            {"kind": "field_confidence_lt", "path": "total", "threshold": 0.5},
        ],
    }
    assert check_applicable(predicate(raw), "extract", 1) == [
        "review.predicate.predicates[1].predicates[0].condition.sub_conditions[1].path: "
        "likelihoods exist only on an extract with n_consensus > 1",
        "review.predicate.predicates[2].threshold: 'field_confidence_lt' needs likelihoods, "
        "which an extract has only with n_consensus > 1",
    ]
    assert check_applicable(predicate(raw), "extract", 2) == []
