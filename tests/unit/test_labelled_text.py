"""The offline provider's reader of labelled values: lists split in linear time."""

from __future__ import annotations

import time

from activities.labelled_text import extract_fields

LIST_SCHEMA = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}


def test_a_list_value_is_split_on_commas_and_semicolons() -> None:
    assert extract_fields(LIST_SCHEMA, "Tags: a, b ;c,, d") == {"tags": ["a", "b", "c", "d"]}


def test_a_list_of_spaces_is_split_in_linear_time() -> None:
    text = "Tags: x" + " " * 200_000 + "y"
    start = time.perf_counter()
    result = extract_fields(LIST_SCHEMA, text)
    assert time.perf_counter() - start < 2.0  # quadratic would be minutes on 200,000 spaces
    assert result == {"tags": ["x" + " " * 200_000 + "y"]}
