"""merge_dicts: later inputs win, deep vs shallow, refusal of non-objects, inputs left untouched."""

from __future__ import annotations

import copy

import pytest

from docflow.merge import MergeError, merge_dicts

FIRST = {"invoice": {"total": 1, "currency": "EUR"}, "tags": ["a"], "source": "ocr"}
SECOND = {"invoice": {"total": 2, "paid": True}, "tags": ["b"]}


def test_deep_merges_nested_objects_and_replaces_lists() -> None:
    merged = merge_dicts([FIRST, SECOND], "deep")
    assert merged == {
        "invoice": {"total": 2, "currency": "EUR", "paid": True},
        "tags": ["b"],
        "source": "ocr",
    }


def test_shallow_replaces_top_level_keys() -> None:
    merged = merge_dicts([FIRST, SECOND], "shallow")
    assert merged == {"invoice": {"total": 2, "paid": True}, "tags": ["b"], "source": "ocr"}


def test_later_null_is_a_value() -> None:
    assert merge_dicts([{"a": 1}, {"a": None}], "deep") == {"a": None}


def test_inputs_are_not_modified() -> None:
    first, second = copy.deepcopy(FIRST), copy.deepcopy(SECOND)
    merged = merge_dicts([first, second], "deep")
    merged["invoice"]["total"] = 99
    merged["tags"].append("c")
    assert first == FIRST
    assert second == SECOND


def test_non_object_input_names_its_index() -> None:
    with pytest.raises(MergeError) as info:
        merge_dicts([{"a": 1}, {"b": 2}, [1, 2]], "deep")
    assert info.value.index == 2
    assert "input-json-2" in str(info.value)


def test_empty_list_gives_an_empty_object() -> None:
    assert merge_dicts([], "deep") == {}
