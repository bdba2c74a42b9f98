"""The consensus merge over hand-built votes: agreement, ties, nesting, alignment, the 3 % edge, None votes."""

from __future__ import annotations

import copy
import random

import pytest

from docflow.agreement import string_similarity
from docflow.consensus import MAX_DEPTH, merge_categories, merge_splits, merge_votes

INVOICE = {
    "invoice_number": "INV-001",
    "total": 1250.0,
    "paid": False,
    "status": "open",
    "customer": {"name": "Acme Corp", "vat": "FR123"},
    "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
}
SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
        "status": {"type": "string", "enum": ["open", "Open", "closed"]},
        "customer": {"$ref": "#/$defs/Customer"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
    },
    "$defs": {
        "Customer": {"type": "object", "properties": {"name": {"type": "string"}, "vat": {"type": "string"}}},
        "Line": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
    },
}


def _vote(**changes: object) -> dict[str, object]:
    vote = copy.deepcopy(INVOICE)
    vote.update(changes)
    return vote


def test_unanimous_votes_give_the_vote_and_full_likelihood_everywhere() -> None:
    result = merge_votes([_vote() for _ in range(5)], SCHEMA)
    assert result.value == INVOICE
    assert result.likelihoods == {
        "invoice_number": 1.0,
        "total": 1.0,
        "paid": 1.0,
        "status": 1.0,
        "customer": {"name": 1.0, "vat": 1.0},
        "lines": [{"sku": 1.0, "qty": 1.0}, {"sku": 1.0, "qty": 1.0}],
    }


def test_disagreement_on_chosen_fields_lowers_only_those_likelihoods() -> None:
    votes = [_vote(), _vote(), _vote(total=999.0, paid=True), _vote(paid=True), _vote(total=1.0)]
    result = merge_votes(votes, SCHEMA)
    assert result.value["total"] == 1250.0
    assert result.likelihoods["total"] == pytest.approx(3 / 5)
    assert result.value["paid"] is False
    assert result.likelihoods["paid"] == pytest.approx(3 / 5)
    assert result.likelihoods["invoice_number"] == 1.0
    assert result.likelihoods["customer"] == {"name": 1.0, "vat": 1.0}


def test_numbers_cluster_within_three_percent_inclusive_and_take_the_mean() -> None:
    at_edge = merge_votes([{"x": 100}, {"x": 97}])
    assert at_edge.value == {"x": 98.5}
    assert at_edge.likelihoods == {"x": 1.0}
    # 0.97 vs 1.0 differ by 0.030000000000000027 in floats: still at the edge, not past it.
    assert merge_votes([{"x": 1.0}, {"x": 0.97}]).likelihoods == {"x": 1.0}


def test_numbers_just_past_the_edge_split_and_the_earliest_cluster_wins_the_tie() -> None:
    past = merge_votes([{"x": 100}, {"x": 96.9}])
    assert past.value == {"x": 100}
    assert past.likelihoods == {"x": 0.5}
    assert merge_votes([{"x": 96.9}, {"x": 100}]).value == {"x": 96.9}


def test_largest_number_cluster_wins_and_integer_schema_rounds_its_mean() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    result = merge_votes([{"n": 5}, {"n": 1000}, {"n": 1010}, {"n": 7}], schema)
    assert result.value == {"n": 1005}
    assert result.likelihoods == {"n": 0.5}


def test_numbers_beat_none_on_ties_but_not_when_outnumbered() -> None:
    assert merge_votes([{"x": None}, {"x": 5}]).value == {"x": 5}
    tied = merge_votes([{"x": None}, {}, {"x": 5.0}, {"x": 5.1}])
    assert tied.value["x"] == pytest.approx(5.05)
    assert tied.likelihoods == {"x": 0.5}
    outnumbered = merge_votes([{"x": None}, {}, {"x": 5}])
    assert outnumbered.value == {"x": None}
    assert outnumbered.likelihoods == {"x": pytest.approx(2 / 3)}


def test_none_votes_and_missing_fields_count_in_the_denominator() -> None:
    result = merge_votes([{"a": "x", "b": True}, {"a": "x"}, {"a": None, "b": True}], None)
    assert result.value == {"a": "x", "b": True}
    assert result.likelihoods == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}
    all_null = merge_votes([None, None, None])
    assert all_null.value is None
    assert all_null.likelihoods == 1.0


def test_booleans_by_majority_with_ties_to_the_earliest_vote_and_over_none() -> None:
    assert merge_votes([{"p": True}, {"p": False}]).value == {"p": True}
    assert merge_votes([{"p": False}, {"p": True}]).value == {"p": False}
    assert merge_votes([{"p": None}, {"p": False}]).value == {"p": False}
    result = merge_votes([{"p": False}, {"p": True}, {"p": True}])
    assert result.value == {"p": True}
    assert result.likelihoods == {"p": pytest.approx(2 / 3)}


def test_strings_with_formatting_differences_agree_and_the_medoid_spelling_wins() -> None:
    result = merge_votes([{"n": "inv 001"}, {"n": "INV-001"}, {"n": "INV-001"}, {"n": "INV-002"}])
    assert result.value == {"n": "INV-001"}
    assert result.likelihoods == {"n": 0.75}
    assert string_similarity("INV-001", "inv 001") == 1.0
    assert string_similarity("INV-001", "INV-002") == 0.0  # digits differ: never the same identifier
    assert string_similarity("Smith, John", "john smith") == 1.0  # sorted words / letters views
    assert string_similarity("12.5", "1.25") < 0.9  # same digits, but no letters to vouch for them


def test_string_clusters_tie_to_the_earliest_vote() -> None:
    result = merge_votes([{"c": "Paris"}, {"c": "London"}, {"c": "PARIS"}, {"c": "london"}])
    assert result.value == {"c": "Paris"}
    assert result.likelihoods == {"c": 0.5}


def test_enums_vote_exactly_not_by_similarity() -> None:
    votes = [{"status": "Open"}, {"status": "open"}, {"status": "open"}]
    result = merge_votes(votes, SCHEMA)
    assert result.value == {"status": "open"}
    assert result.likelihoods == {"status": pytest.approx(2 / 3)}
    # Without the enum these spellings are one cluster and the earliest medoid wins.
    assert merge_votes(votes).likelihoods == {"status": 1.0}


def test_nested_objects_merge_per_field_and_a_missing_object_counts_against_its_fields() -> None:
    votes = [
        _vote(customer={"name": "Acme Corp", "vat": "FR123"}),
        _vote(customer={"name": "ACME Corp.", "vat": "FR999"}),
        _vote(customer=None),
    ]
    result = merge_votes(votes, SCHEMA)
    assert result.value["customer"] == {"name": "Acme Corp", "vat": "FR123"}
    assert result.likelihoods["customer"] == {"name": pytest.approx(2 / 3), "vat": pytest.approx(1 / 3)}
    gone = merge_votes([_vote(customer=None), _vote(customer=None), _vote()], SCHEMA)
    assert gone.value["customer"] is None
    assert gone.likelihoods["customer"] == pytest.approx(2 / 3)


def test_arrays_of_objects_align_on_the_key_field_across_orders_and_a_missing_item() -> None:
    a, b, c = {"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}, {"sku": "C-3", "qty": 5}
    votes = [
        _vote(lines=[a, b, c]),
        _vote(lines=[c, {"sku": "a 1", "qty": 2}, b]),  # reordered, key spelled differently
        _vote(lines=[a, c]),  # B-2 missing
        _vote(lines=[b, a, c, {"sku": "Z-9", "qty": 1}]),  # an extra item only one vote has
    ]
    result = merge_votes(votes, SCHEMA)
    assert result.value["lines"] == [a, b, c]
    assert result.likelihoods["lines"] == [
        {"sku": 1.0, "qty": 1.0},
        {"sku": 0.75, "qty": 0.75},
        {"sku": 1.0, "qty": 1.0},
    ]


def test_key_field_is_chosen_by_uniqueness_and_coverage() -> None:
    # `kind` is present everywhere but not unique; `ref` is unique but missing from one vote entirely;
    # `code` is unique and present in every vote.
    votes = [
        {"rows": [{"kind": "x", "code": "K1", "v": 1}, {"kind": "x", "code": "K2", "ref": "r2", "v": 2}]},
        {"rows": [{"kind": "x", "code": "K2", "v": 2}, {"kind": "x", "code": "K1", "v": 1}]},
    ]
    result = merge_votes(votes)
    assert result.value == {
        "rows": [{"kind": "x", "code": "K1", "v": 1}, {"kind": "x", "code": "K2", "ref": "r2", "v": 2}]
    }
    assert result.likelihoods["rows"][1] == {"kind": 1.0, "code": 1.0, "ref": 0.5, "v": 1.0}


def test_arrays_of_scalars_merge_as_multisets() -> None:
    result = merge_votes([{"tags": ["a", "b"]}, {"tags": ["b", "A"]}, {"tags": ["a"]}, {"tags": ["a", "c"]}])
    assert result.value == {"tags": ["a", "b"]}
    assert result.likelihoods == {"tags": [1.0, 0.5]}
    numbers = merge_votes([{"xs": [1, 1, 2]}, {"xs": [2, 1, 1]}, {"xs": [1, 2]}])
    assert numbers.value == {"xs": [1, 1, 2]}
    assert numbers.likelihoods == {"xs": [1.0, pytest.approx(2 / 3), 1.0]}


def test_long_arrays_align_on_exact_keys_and_shuffled_orders() -> None:
    items = [{"id": f"row-{n}", "v": n} for n in range(300)]
    shuffled = copy.deepcopy(items)
    random.Random(6).shuffle(shuffled)
    result = merge_votes([{"items": items}, {"items": shuffled}, {"items": items}, {"items": items[:-1]}])
    assert result.value["items"] == items  # the median position keeps the majority's order
    assert result.likelihoods["items"][-1] == {"id": 0.75, "v": 0.75}
    assert all(leaf == {"id": 1.0, "v": 1.0} for leaf in result.likelihoods["items"][:-1])


def test_mistyped_values_count_as_disagreeing_votes() -> None:
    result = merge_votes([{"x": 10}, {"x": "10"}, {"x": 10.1}], {"properties": {"x": {"type": "number"}}})
    assert result.value["x"] == pytest.approx(10.05)
    assert result.likelihoods == {"x": pytest.approx(2 / 3)}


def test_nesting_past_the_depth_bound_merges_as_one_leaf() -> None:
    deep: object = "leaf"
    for _ in range(MAX_DEPTH + 20):
        deep = {"d": deep}
    result = merge_votes([deep, copy.deepcopy(deep), {"d": None}])
    node, likelihood = result.value, result.likelihoods
    for _ in range(MAX_DEPTH):
        node, likelihood = node["d"], likelihood["d"]
    assert isinstance(node, dict)
    assert likelihood == pytest.approx(2 / 3)


def test_vote_count_bounds() -> None:
    with pytest.raises(ValueError, match="1 to 10 votes"):
        merge_votes([])
    with pytest.raises(ValueError, match="1 to 10 votes"):
        merge_votes([{}] * 11)
    with pytest.raises(ValueError, match="1 to 10 votes"):
        merge_categories([])


def test_categories_majority_ties_and_margin() -> None:
    result = merge_categories(["invoice", "receipt", "invoice", None, "invoice"])
    assert result.category == "invoice"
    assert result.likelihood == 0.6
    assert result.margin == pytest.approx(0.4)
    assert result.choices == ["invoice", "receipt", "invoice", None, "invoice"]
    tie = merge_categories(["receipt", "invoice", "invoice", "receipt"])
    assert (tie.category, tie.likelihood, tie.margin) == ("receipt", 0.5, 0.0)
    assert merge_categories([None, "invoice"]).category == "invoice"
    nulls = merge_categories([None, None, "invoice"])
    assert nulls.category is None
    assert nulls.likelihood == pytest.approx(2 / 3)
    assert nulls.margin == pytest.approx(1 / 3)
    assert merge_categories(["invoice"]).margin == 1.0


def test_splits_pick_the_medoid_vote_with_exact_share_likelihoods() -> None:
    three = [
        {"name": "invoice", "pages": [1, 2]},
        {"name": "invoice", "pages": [3, 4]},
        {"name": "invoice", "pages": [5, 6]},
    ]
    votes = [
        [{"name": "invoice", "pages": [1, 2, 3, 4]}, {"name": "invoice", "pages": [5, 6]}],
        copy.deepcopy(three),
        [
            {"name": "invoice", "pages": [2, 1]},
            {"name": "invoice", "pages": [3, 4]},
            {"name": "invoice", "pages": [5, 6]},
        ],
        [
            {"name": "invoice", "pages": [1, 2]},
            {"name": "invoice", "pages": [3]},
            {"name": "invoice", "pages": [4, 5, 6]},
        ],
    ]
    result = merge_splits(votes)
    assert result.splits == three
    assert result.likelihoods == [
        {"name": "invoice", "pages": [1, 2], "likelihood": 0.75},
        {"name": "invoice", "pages": [3, 4], "likelihood": 0.5},
        {"name": "invoice", "pages": [5, 6], "likelihood": 0.75},
    ]
    assert result.choices == votes


def test_split_ties_go_to_overlap_then_the_earliest_vote() -> None:
    a = [{"name": "contract", "pages": [1, 2, 3]}]
    b = [{"name": "contract", "pages": [1, 2]}]
    c = [{"name": "contract", "pages": [1, 2, 3, 4]}]
    # No two votes agree exactly; b..c overlap: [1,2,3] is closest to both others.
    assert merge_splits([b, a, c]).splits == a
    assert merge_splits([b, c]).splits == b
    assert merge_splits([[], []]).splits == []


def test_malformed_split_votes_are_refused_naming_the_vote() -> None:
    with pytest.raises(ValueError, match="vote 1, split 0"):
        merge_splits([[{"name": "a", "pages": [1]}], [{"name": "a", "pages": [0]}]])


def test_objects_without_a_key_field_align_on_their_agreeing_fields() -> None:
    # No field is unique within a vote, so items pair up when most of their fields agree.
    first = [{"kind": "fee", "amount": 10, "note": "late"}, {"kind": "fee", "amount": 10, "note": "admin"}]
    second = [{"kind": "fee", "amount": 10.1, "note": "Admin"}, {"kind": "fee", "amount": 10, "note": "late"}]
    result = merge_votes([{"fees": first}, {"fees": second}])
    assert [item["note"] for item in result.value["fees"]] == ["late", "admin"]
    assert result.likelihoods["fees"] == [{"kind": 1.0, "amount": 1.0, "note": 1.0}] * 2


def test_optional_fields_in_anyof_keep_their_schema_rules() -> None:
    schema = {
        "properties": {
            "status": {"anyOf": [{"type": "string", "enum": ["Open", "open"]}, {"type": "null"}]},
            "count": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        }
    }
    result = merge_votes([{"status": "Open", "count": 1000}, {"status": "open", "count": 1001}, {}], schema)
    assert result.value == {"status": "Open", "count": 1000}  # integer mean 1000.5 rounds half to even
    assert result.likelihoods == {"status": pytest.approx(1 / 3), "count": pytest.approx(2 / 3)}


@pytest.mark.timeout(20)
def test_pathological_arrays_stay_bounded() -> None:
    # Ten votes of fifty items whose distinct keys are long strings: every item is compared with every
    # open row, so each comparison must stay short (this took ~36 s before alignment capped it).
    rng = random.Random(6)
    letters = "abcdefghijklmnopqrstuvwxyz "
    votes = [
        {"rows": [{"id": "".join(rng.choice(letters) for _ in range(2_000)), "v": 1} for _ in range(50)]}
        for _ in range(10)
    ]
    result = merge_votes(votes)
    assert result.value == {"rows": []}  # every row is one vote's alone


def test_a_null_array_by_majority_is_one_leaf_and_votes_are_left_untouched() -> None:
    votes = [{"tags": None}, {"tags": ["a"]}, {}]
    before = copy.deepcopy(votes)
    result = merge_votes(votes)
    assert result.value == {"tags": None}
    assert result.likelihoods == {"tags": pytest.approx(2 / 3)}
    mixed = merge_votes([{"m": {"a": 1}}, {"m": "text"}, {"m": "text"}])
    assert mixed.value == {"m": "text"}
    # Mixed kinds vote by exact value; the winning object's likelihood tree still mirrors it.
    shared = {"a": [1, 2]}
    kept = merge_votes([{"m": shared}, {"m": shared}, {"m": "text"}])
    assert kept.likelihoods == {"m": {"a": [pytest.approx(2 / 3), pytest.approx(2 / 3)]}}
    kept.value["m"]["a"].append(3)
    assert shared == {"a": [1, 2]}
    assert votes == before
