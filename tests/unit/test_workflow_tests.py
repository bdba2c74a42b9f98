"""How a workflow test reads against the draft: schema subtrees, drift, validation issues (docflow.workflow_tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from docflow.assertion_models import AssertionSpec
from docflow.models import Block
from docflow.runs import HandleValue
from docflow.workflow_tests import (
    BlockTarget,
    CreateWorkflowTest,
    ManualSource,
    TestRecord,
    check_against_draft,
    schema_dep,
    schema_subtree,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "number": {"type": "string"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    },
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _extract(schema: dict[str, Any] = SCHEMA, block_type: str = "extract") -> Block:
    config = {"json_schema": schema, "inputs": [{"name": "text", "type": "json"}]} if block_type == "extract" else {}
    if block_type == "function":
        config = {"expression": "input"}
    return Block(id="ex", workflow_id="wf_1", type=block_type, config=config, updated_at=NOW)  # type: ignore[arg-type]


def _assertion(path: str | None, handle: str = "output-json-0") -> AssertionSpec:
    return AssertionSpec.model_validate(
        {"target": {"output_handle_id": handle, "path": path}, "condition": {"kind": "exists"}}
    )


def _record(block: Block, path: str | None = "number", inputs: dict[str, HandleValue] | None = None) -> TestRecord:
    assertion = _assertion(path)
    return TestRecord(
        id="wfnodetest_1",
        project_id="proj_1",
        workflow_id="wf_1",
        target=BlockTarget(block_id=block.id),
        source=ManualSource(),
        assertion=assertion,
        block_type=block.type,
        handle_inputs=inputs if inputs is not None else {"input-json-text": HandleValue(type="json", data={"t": 1})},
        assertion_schema_dep=schema_dep(block, assertion),
        created_at=NOW,
        updated_at=NOW,
    )


def _with(schema_changes: dict[str, Any]) -> dict[str, Any]:
    return {**SCHEMA, "properties": {**SCHEMA["properties"], **schema_changes}}


def test_schema_subtree_follows_properties_and_items_only() -> None:
    assert schema_subtree(SCHEMA, "number") == (True, {"type": "string"})
    assert schema_subtree(SCHEMA, "lines[0].sku") == (True, {"type": "string"})
    assert schema_subtree(SCHEMA, "lines[*].sku") == (True, {"type": "string"})
    assert schema_subtree(SCHEMA, None) == (True, SCHEMA)
    assert schema_subtree(SCHEMA, "vendor")[0] is False
    assert schema_subtree({"$ref": "#/defs/x"}, "number")[0] is False
    assert schema_subtree(SCHEMA, "number.deeper")[0] is False


def test_an_unchanged_draft_is_valid_with_no_drift() -> None:
    block = _extract()
    check = check_against_draft(_record(block), block)
    assert (check.validation_status, check.assertion_drift_status, check.schema_drift) == ("valid", "valid", "none")
    assert check.validation_issues == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (_with({"vendor": {"type": "string"}}), ("valid", "partial")),  # changed elsewhere only
        (_with({"number": {"type": "integer"}}), ("drifted", "drifted")),  # the subtree read changed
        ({"type": "object", "properties": {"lines": SCHEMA["properties"]["lines"]}}, ("broken", "drifted")),
    ],
)
def test_schema_changes_drift_as_documented(schema: dict[str, Any], expected: tuple[str, str]) -> None:
    record = _record(_extract())
    check = check_against_draft(record, _extract(schema))
    assert (check.assertion_drift_status, check.schema_drift) == expected
    assert check.validation_status == "valid"  # the test can still run; drift is reported apart


def test_a_root_assertion_depends_on_the_whole_schema() -> None:
    record = _record(_extract(), path=None)
    assert record.assertion_schema_dep is not None and record.assertion_schema_dep.depends_on_root
    check = check_against_draft(record, _extract(_with({"vendor": {"type": "string"}})))
    assert (check.assertion_drift_status, check.schema_drift) == ("drifted", "drifted")


def test_a_block_gone_from_the_draft_is_invalid_and_broken() -> None:
    check = check_against_draft(_record(_extract()), None)
    assert (check.validation_status, check.assertion_drift_status) == ("invalid", "broken")
    assert [(i.code, i.field) for i in check.validation_issues] == [("block_not_in_draft", "target.block_id")]


def test_handles_the_block_no_longer_has_are_issues() -> None:
    block = _extract()
    record = _record(block, inputs={"input-json-other": HandleValue(type="json", data=1)})
    record.assertion = _assertion(None, handle="output-json-gone")
    check = check_against_draft(record, block)
    assert check.validation_status == "invalid" and check.assertion_drift_status == "broken"
    assert {(i.code, i.field) for i in check.validation_issues} == {
        ("unknown_input_handle", "source.handle_inputs.input-json-other"),
        ("missing_input_handle", "source.handle_inputs.input-json-text"),
        ("unknown_output_handle", "assertion.target.output_handle_id"),
    }


def test_a_file_given_to_a_json_handle_is_an_issue() -> None:
    block = _extract()
    doc = {"id": "file_1", "filename": "a.pdf", "mime_type": "application/pdf"}
    record = _record(block, inputs={"input-json-text": HandleValue.model_validate({"type": "file", "document": doc})})
    codes = [i.code for i in check_against_draft(record, block).validation_issues]
    assert codes == ["input_kind_mismatch"]


def test_a_block_of_another_type_breaks_the_test_and_a_schemaless_block_has_unknown_drift() -> None:
    record = _record(_extract())
    check = check_against_draft(record, _extract(block_type="function"))
    assert check.assertion_drift_status == "broken" and check.validation_status == "invalid"
    assert "block_type_changed" in [i.code for i in check.validation_issues]
    function = _extract(block_type="function")
    plain = _record(function, inputs={"input-json-0": HandleValue(type="json", data=1)})
    assert plain.assertion_schema_dep is None
    assert check_against_draft(plain, function).schema_drift == "unknown"


def test_request_models_refuse_unknown_keys_and_bad_sources() -> None:
    body: dict[str, Any] = {
        "workflow_id": "wf_1",
        "target": {"type": "block", "block_id": "ex"},
        "source": {"type": "run_step", "run_id": "run_1"},
        "assertion": {"target": {"output_handle_id": "output-json-0"}, "condition": {"kind": "exists"}},
    }
    assert CreateWorkflowTest.model_validate(body).source.type == "run_step"
    with pytest.raises(ValidationError):
        CreateWorkflowTest.model_validate({**body, "source": {"type": "elsewhere"}})
    with pytest.raises(ValidationError):
        CreateWorkflowTest.model_validate({**body, "assertions": []})
