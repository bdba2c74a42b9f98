"""Block configs are validated on write, and expose the handles Retab users know."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from docflow.blocks import handles_of, parse_config


@pytest.mark.parametrize(
    ("block_type", "config", "fragment"),
    [
        ("start_json", {"json_schema": {"type": "objectx"}}, "not a valid JSON schema"),
        ("extract", {"json_schema": {"type": "object", "properties": {"a": {"type": "strin"}}}}, "JSON schema"),
        ("extract", {"json_schema": {"type": "array"}}, "object schema"),
        (
            "extract",
            {"json_schema": {"type": "object", "properties": {}}, "n_consensus": 11},
            "less than or equal to 10",
        ),
        ("function", {"language": "python"}, "needs 'code'"),
        ("function", {"language": "python", "code": "def transform(x): return x", "expression": "1"}, "exactly one"),
        ("function", {"language": "javascript", "code": "function transform(x) {}"}, "python"),
        ("function", {"code": "def transform(x): return x", "table_refs": ["tbl_1"]}, "table_refs"),
        ("function", {"expression": "1", "mapping": {"a": "1"}}, "exactly one"),
        ("api_call", {"url": "ftp://example.com"}, "url"),
        (
            "conditional",
            {"conditions": [{"id": "else", "sub_conditions": [{"path": "a", "operator": "exists"}]}]},
            "else",
        ),
        ("parse", {"unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_configs_are_refused_naming_the_problem(block_type: str, config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config(block_type, config)
    assert fragment in str(info.value)


@pytest.mark.parametrize("block_type", ["edit", "nope"])
def test_unbuilt_and_unknown_types_are_refused(block_type: str) -> None:
    with pytest.raises(ValueError, match="not built yet|unknown block type"):
        parse_config(block_type, {})


def test_handles_follow_retabs_ids() -> None:
    extract = parse_config("extract", {"json_schema": {"type": "object", "properties": {}}})
    assert handles_of("extract", extract).inputs == ("input-file-document",)
    named = parse_config(
        "extract", {"json_schema": {"type": "object", "properties": {}}, "inputs": [{"name": "text", "type": "json"}]}
    )
    assert handles_of("extract", named).inputs == ("input-json-text",)
    cond = parse_config(
        "conditional", {"conditions": [{"id": "big", "sub_conditions": [{"path": "a", "operator": "exists"}]}]}
    )
    assert handles_of("conditional", cond).outputs == ("output-json-big", "output-json-else")
    assert handles_of("merge_dicts", parse_config("merge_dicts", {"inputs": ["a", "b", "c"]})).inputs == (
        "input-json-0",
        "input-json-1",
        "input-json-2",
    )
    assert handles_of("start_document", parse_config("start_document", {})).outputs == ("output-file-0",)
