"""User JSON Schemas: patterns validated on RE2, and a pattern RE2 cannot run refused on write."""

from __future__ import annotations

import time
from typing import Any

import jsonschema
import pytest

from docflow.blocks import ExtractConfig, FunctionConfig, StartJsonConfig
from docflow.schemas import SchemaProblem, check_schema, validate

EVIL = r"^(a+)+$"
ATTACK = "a" * 40 + "!"


def _fast_failure(instance: Any, schema: dict[str, Any], limit: float = 0.05) -> jsonschema.ValidationError:
    start = time.perf_counter()
    with pytest.raises(jsonschema.ValidationError) as raised:
        validate(instance, schema)
    assert time.perf_counter() - start < limit
    return raised.value


def test_pattern_runs_in_linear_time() -> None:
    error = _fast_failure(
        {"code": ATTACK}, {"type": "object", "properties": {"code": {"type": "string", "pattern": EVIL}}}
    )
    assert list(error.absolute_path) == ["code"]
    validate({"code": "aaaa"}, {"properties": {"code": {"pattern": EVIL}}})


def test_pattern_properties_and_additional_properties_run_in_linear_time() -> None:
    schema = {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
    _fast_failure({ATTACK: 1}, schema)
    validate({"aaa": 1}, schema)
    _fast_failure({"aaa": "not an integer"}, schema)


def test_unevaluated_properties_with_pattern_properties_run_in_linear_time() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [{"patternProperties": {EVIL: {"type": "integer"}}}],
        "unevaluatedProperties": False,
    }
    _fast_failure({ATTACK: 1}, schema)
    validate({"aaa": 1}, schema)


def test_property_names_pattern_runs_in_linear_time() -> None:
    _fast_failure({ATTACK: 1}, {"propertyNames": {"pattern": EVIL}})


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"properties": {"code": {"type": "string", "pattern": r"(a)\1"}}}, "properties.code.pattern"),
        ({"patternProperties": {"(?=x)y": {}}}, "patternProperties.(?=x)y"),
        ({"prefixItems": [{"pattern": "(?<!a)b"}]}, "prefixItems.0.pattern"),
        ({"$defs": {"d": {"propertyNames": {"pattern": r"(?P<x>a)(?P=x)"}}}}, "$defs.d.propertyNames.pattern"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_naming_its_schema_path(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(SchemaProblem) as raised:
        check_schema(schema)
    assert raised.value.path == where
    assert where in str(raised.value)


def test_patterns_inside_data_keywords_are_not_patterns() -> None:
    check_schema({"const": {"pattern": r"(a)\1"}, "properties": {"pattern": {"type": "string"}}})


def test_block_configs_refuse_such_schemas() -> None:
    bad = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"(a)\1"}}}
    with pytest.raises(ValueError, match=r"properties\.code\.pattern"):
        StartJsonConfig.model_validate({"json_schema": bad})
    with pytest.raises(ValueError, match=r"properties\.code\.pattern"):
        ExtractConfig.model_validate({"json_schema": bad})
    with pytest.raises(ValueError, match=r"properties\.code\.pattern"):
        FunctionConfig.model_validate({"expression": "input", "output_schema": bad})


def test_unique_items_of_objects_is_checked_in_linear_time() -> None:
    # Pairwise comparison of 20,000 objects is 2e8 comparisons (tens of seconds); linear is a fraction of a
    # second. The bound leaves room for a loaded CI machine (0.5 s failed there once) and still tells them apart.
    items = [{"n": i} for i in range(20_000)]
    start = time.perf_counter()
    validate(items, {"uniqueItems": True})
    assert time.perf_counter() - start < 3.0
    _fast_failure([*items, {"n": 7}], {"uniqueItems": True}, limit=3.0)


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),
        ([1, True], True),
        ([0, False], True),
        ([{"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}], False),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),
        ([[1, 2], [2, 1]], True),
        (["1", 1], True),
        ([{"a": True}, {"a": 1}], True),
    ],
)
def test_unique_items_keeps_json_schema_equality(items: list[Any], unique: bool) -> None:
    if unique:
        validate(items, {"uniqueItems": True})
    else:
        with pytest.raises(jsonschema.ValidationError):
            validate(items, {"uniqueItems": True})


def test_a_value_nested_too_deeply_is_a_validation_error() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(jsonschema.ValidationError, match="nested too deeply"):
        validate(deep, {"$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"})
