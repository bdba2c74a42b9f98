"""Reading a model's answer as the object a user schema asks for: parse, safe repairs, named failures."""

from __future__ import annotations

from typing import Any

import pytest

from docflow.structured_output import OutputProblem, check_answer, conform, parse_object, read_answer

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Line": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}, "amount": {"type": "number"}},
            "required": ["amount"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "number": {"type": "string"},
        "paid": {"type": "boolean"},
        "total": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "status": {"enum": ["open", "closed"]},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Sure, here you go:\n{"a": {"b": [1, 2]}}\nAnything else?', {"a": {"b": [1, 2]}}),
        ("{'a': 1, 'b': True,}", {"a": 1, "b": True}),
        ('{"a": 1, "b": "cut off', {"a": 1, "b": "cut off"}),
        ("no JSON here", None),
        ("[1, 2]", None),
    ],
)
def test_parse_takes_the_outermost_object_and_repairs_broken_json(content: str, expected: Any) -> None:
    assert parse_object(content) == expected


def test_safe_repairs_follow_the_schema() -> None:
    answer = {
        "number": 42,
        "paid": "TRUE",
        "total": "1,440.00",
        "status": "Open",
        "lines": [{"sku": "A", "qty": "3", "amount": "12.5", "colour": "red"}, {"qty": 2.0, "amount": 4}],
        "unknown": "dropped",
    }
    assert conform(answer, SCHEMA) == {
        "number": "42",
        "paid": True,
        "total": 1440.0,
        "status": "open",
        "lines": [{"sku": "A", "qty": 3, "amount": 12.5}, {"qty": 2.0, "amount": 4}],
    }


@pytest.mark.parametrize("text", ["1,440", "12 EUR", "NaN", "1e999", "twelve"])
def test_ambiguous_or_non_numeric_strings_are_not_coerced(text: str) -> None:
    assert conform({"total": text}, SCHEMA) == {"total": text}


def test_read_answer_names_the_json_path_of_what_stays_invalid() -> None:
    with pytest.raises(OutputProblem) as info:
        read_answer('{"lines": [{"amount": 1}, {"amount": "a lot"}]}', SCHEMA)
    assert info.value.path == "$.lines[1].amount"
    with pytest.raises(OutputProblem) as info:
        read_answer('{"code": "abcd"}', SCHEMA)  # a pattern (run on RE2) is not repaired
    assert info.value.path == "$.code"
    with pytest.raises(OutputProblem, match="no JSON object") as info:
        read_answer("I could not find it.", SCHEMA)
    assert info.value.path == "$"


def test_read_answer_returns_the_repaired_object() -> None:
    assert read_answer('```\n{"total": "7", "paid": "false", "x": 1,}\n```', SCHEMA) == {"total": 7, "paid": False}


def test_a_recursive_schema_is_walked_to_a_bounded_depth() -> None:
    node = {"type": "object", "properties": {"n": {"type": "number"}, "child": {"$ref": "#"}}}
    deep: dict[str, Any] = {"n": "1"}
    for _ in range(200):
        deep = {"n": "1", "child": deep}
    repaired = conform(deep, node)
    assert repaired["n"] == 1 and repaired["child"]["n"] == 1


def test_null_stands_for_a_value_the_document_does_not_give() -> None:
    # Null where a string, a number or an enum value goes, and a required key left out, are not errors.
    answer = '{"number": null, "status": null, "lines": [{"sku": null, "amount": null}, {"sku": "B"}]}'
    assert read_answer(answer, SCHEMA) == {
        "number": None,
        "status": None,
        "lines": [{"sku": None, "amount": None}, {"sku": "B", "amount": None}],
    }
    with pytest.raises(OutputProblem) as info:
        check_answer({"lines": [{"amount": None}, {"amount": "x"}]}, SCHEMA)
    assert info.value.path == "$.lines[1].amount"
