"""Workflow tests (NOTES.md §6): the stored record, its wire shapes, and its drift against the current draft.

A test pins one assertion on one block (`target.block_id`) and the handle inputs it replays: given
(`source.type == "manual"`) or snapshotted from a run's step when the test is created (`run_step`), so the
test keeps working after the run is deleted. Documents are kept by reference (`FileRef`); the file records
are checked to exist in the project when the test is written, and are not deleted with runs.

Only blocks whose output a test can judge are testable: `TESTABLE_BLOCKS` (NOTES.md §6).

How a test reads against the current draft (`check_against_draft`, pure, computed on every read):

- `validation_issues`: each `{code, message, field}`; `validation_status` is `invalid` when there is any
  (every issue we find means a test run could not run the test as written) and `valid` otherwise.
  Issues: the block is not in the draft, its type changed, its config no longer parses, a recorded input
  handle the block no longer has or of the other kind (file / json), an input handle the block has and the
  test does not give, the assertion's output handle is not among the block's outputs.
- `assertion_schema_dep`: for a block with a JSON output schema (extract: `json_schema` on
  `output-json-0`), the schema subtree the assertion's path reads, hashed (sha256 of canonical JSON) when
  the assertion is written. `depends_on_root` when the path is empty (the assertion reads the whole output).
- `schema_drift`: `unknown` when there is no dependency (no output schema, or a path the schema does not
  describe by `properties` / `items`); `none` when the whole output schema is unchanged; `partial` when the
  subtree the assertion reads is unchanged but the schema changed elsewhere; `drifted` when the subtree
  changed or is gone.
- `assertion_drift_status`: `broken` when the block or the output handle is gone, or the subtree the path
  reads no longer exists; `drifted` when that subtree changed; `valid` otherwise.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docflow.assertion_models import AssertionSpec
from docflow.blocks import handles_of, parse_config
from docflow.ids import WORKFLOW_TEST, canonical_json
from docflow.jsonpath import PathError, parse_path
from docflow.models import Block, FileRef
from docflow.runs import HandleValue

TEST = WORKFLOW_TEST
ASSERTION = "asrt_"  # an assertion given without an id gets one
TESTABLE_BLOCKS = frozenset({"extract", "function", "split", "classifier"})
MAX_NAME_CHARS = 500
MAX_HANDLE_INPUTS = 50

SchemaDrift = Literal["none", "partial", "drifted", "unknown"]
AssertionDrift = Literal["valid", "drifted", "broken"]


class _Wire(BaseModel):
    # Unknown keys are refused so a misspelt field is a 422 naming it, not silently dropped.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class JsonHandleInput(_Wire):
    type: Literal["json"] = "json"
    data: Any = None


class FileHandleInput(_Wire):
    type: Literal["file"] = "file"
    document: FileRef


HandleInput = Annotated[JsonHandleInput | FileHandleInput, Field(discriminator="type")]


class ManualSource(_Wire):
    """Handle inputs given by the caller, keyed by the block's input handle ids."""

    type: Literal["manual"] = "manual"
    handle_inputs: dict[str, HandleInput] = Field(default_factory=dict, max_length=MAX_HANDLE_INPUTS)


class RunStepSource(_Wire):
    """The inputs a run's step recorded (`step_id` defaults to the block id; needed inside a loop)."""

    type: Literal["run_step"] = "run_step"
    run_id: str = Field(min_length=1, max_length=100)
    step_id: str | None = Field(default=None, min_length=1, max_length=500)


Source = Annotated[ManualSource | RunStepSource, Field(discriminator="type")]


class BlockTarget(_Wire):
    type: Literal["block"] = "block"
    block_id: str = Field(min_length=1, max_length=200)


class CreateWorkflowTest(_Wire):
    """Body of `POST /v1/workflows/tests` (the SDK's `CreateWorkflowTestRequest`)."""

    workflow_id: str = Field(min_length=1, max_length=100)
    target: BlockTarget
    source: Source
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    assertion: AssertionSpec


class UpdateWorkflowTest(_Wire):
    """Body of `PATCH /v1/workflows/tests/{test_id}`: omitted fields are left unchanged."""

    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    assertion: AssertionSpec | None = None
    source: Source | None = None


class SchemaDep(BaseModel):
    """The SDK's `AssertionSchemaDep`: the output-schema subtree an assertion reads, by hash."""

    output_handle_id: str
    schema_path: str
    subtree_hash: str
    depends_on_root: bool = False
    # Stored, not on the wire: the hash of the whole output schema when the assertion was written (`partial`).
    schema_hash: str = ""


class ValidationIssue(BaseModel):
    code: str
    message: str
    field: str | None = None


class TestRecord(BaseModel):
    """A stored test (`projects/<p>/tests/<id>.json`): the wire fields plus the inputs it replays."""

    __test__ = False  # not a pytest class

    id: str
    project_id: str
    workflow_id: str
    target: BlockTarget
    source: ManualSource | RunStepSource = Field(discriminator="type")
    name: str | None = None
    assertion: AssertionSpec
    block_type: str
    handle_inputs: dict[str, HandleValue] = Field(default_factory=dict)
    assertion_schema_dep: SchemaDep | None = None
    created_at: datetime
    updated_at: datetime


class DraftCheck(BaseModel):
    """How a test reads against the current draft."""

    validation_status: Literal["valid", "invalid"]
    validation_issues: list[ValidationIssue]
    assertion_drift_status: AssertionDrift
    schema_drift: SchemaDrift
    schema_drift_detail: str | None = None


def sha256_of(value: Any) -> str:
    """sha256 of canonical JSON (docflow.ids.canonical_json)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def output_schema(block: Block) -> tuple[str, dict[str, Any]] | None:
    """The JSON schema a block declares for one of its outputs: `(handle id, schema)`, if any."""
    schema = block.config.get("json_schema") if block.type == "extract" else None
    return ("output-json-0", schema) if isinstance(schema, dict) else None


def schema_subtree(schema: dict[str, Any], path: str | None) -> tuple[bool, Any]:
    """The part of `schema` that describes the value at `path`: `(found, subtree)`.

    Keys go through `properties`, indices and wildcards through `items`; anything else (`$ref`, `anyOf`…)
    is not followed, so the subtree is not found.
    """
    try:
        segments = parse_path(path).segments if path else ()
    except PathError:
        return False, None
    node: Any = schema
    for segment in segments:
        if not isinstance(node, dict):
            return False, None
        if isinstance(segment, str):
            props = node.get("properties")
            if not isinstance(props, dict) or segment not in props:
                return False, None
            node = props[segment]
        else:
            if "items" not in node:
                return False, None
            node = node["items"]
    return True, node


def schema_dep(block: Block, assertion: AssertionSpec) -> SchemaDep | None:
    """The schema dependency of an assertion on a block, when the block's output schema describes it."""
    declared = output_schema(block)
    if declared is None or declared[0] != assertion.target.output_handle_id:
        return None
    handle, schema = declared
    found, subtree = schema_subtree(schema, assertion.target.path)
    if not found:
        return None
    return SchemaDep(
        output_handle_id=handle,
        schema_path=assertion.target.path or "",
        subtree_hash=sha256_of(subtree),
        depends_on_root=not assertion.target.path,
        schema_hash=sha256_of(schema),
    )


def input_issues(
    given: dict[str, HandleValue], expected: tuple[str, ...], field: str = "source.handle_inputs"
) -> list[ValidationIssue]:
    """The block's input handles against the inputs a test gives: unknown, of the wrong kind, or missing."""
    issues: list[ValidationIssue] = []
    for handle, value in given.items():
        if handle not in expected:
            message = f"the block has no input handle '{handle}' (it has: {', '.join(expected) or 'none'})"
            issues.append(ValidationIssue(code="unknown_input_handle", message=message, field=f"{field}.{handle}"))
        elif not handle.startswith(f"input-{value.type}-"):
            message = f"input handle '{handle}' takes {handle.split('-')[1]}, not {value.type}"
            issues.append(ValidationIssue(code="input_kind_mismatch", message=message, field=f"{field}.{handle}"))
    for handle in expected:
        if handle not in given:
            message = f"no input for the block's input handle '{handle}'"
            issues.append(ValidationIssue(code="missing_input_handle", message=message, field=f"{field}.{handle}"))
    return issues


def output_issue(outputs: tuple[str, ...], handle: str) -> ValidationIssue | None:
    """An issue when the assertion reads an output handle the block does not have."""
    if handle in outputs:
        return None
    message = f"the block has no output handle '{handle}' (it has: {', '.join(outputs) or 'none'})"
    return ValidationIssue(code="unknown_output_handle", message=message, field="assertion.target.output_handle_id")


def check_against_draft(test: TestRecord, block: Block | None) -> DraftCheck:
    """How `test` reads against `block`, the draft's block of its target (None when it is gone)."""
    if block is None:
        issue = ValidationIssue(
            code="block_not_in_draft",
            message=f"block '{test.target.block_id}' is not in the draft of workflow '{test.workflow_id}'",
            field="target.block_id",
        )
        return DraftCheck(
            validation_status="invalid",
            validation_issues=[issue],
            assertion_drift_status="broken",
            schema_drift="drifted" if test.assertion_schema_dep else "unknown",
            schema_drift_detail="the block is not in the draft",
        )
    issues: list[ValidationIssue] = []
    if block.type != test.block_type:
        message = f"block '{block.id}' is a {block.type} block now, not {test.block_type}"
        issues.append(ValidationIssue(code="block_type_changed", message=message, field="target.block_id"))
    output_gone = False
    try:
        handles = handles_of(block.type, parse_config(block.type, block.config))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        message = f"block '{block.id}' has a config that does not validate: {str(exc)[:300]}"
        issues.append(ValidationIssue(code="invalid_block_config", message=message, field="target.block_id"))
    else:
        issues.extend(input_issues(test.handle_inputs, handles.inputs))
        missing_output = output_issue(handles.outputs, test.assertion.target.output_handle_id)
        if missing_output is not None:
            issues.append(missing_output)
            output_gone = True
    assertion_drift, schema_drift, detail = _schema_drift(test.assertion_schema_dep, block)
    if output_gone or any(i.code == "block_type_changed" for i in issues):
        assertion_drift = "broken"
    return DraftCheck(
        validation_status="invalid" if issues else "valid",
        validation_issues=issues,
        assertion_drift_status=assertion_drift,
        schema_drift=schema_drift,
        schema_drift_detail=detail,
    )


def _schema_drift(dep: SchemaDep | None, block: Block) -> tuple[AssertionDrift, SchemaDrift, str | None]:
    if dep is None:
        return "valid", "unknown", None
    declared = output_schema(block)
    if declared is None or declared[0] != dep.output_handle_id:
        return "broken", "drifted", "the block no longer declares an output schema"
    _, schema = declared
    found, subtree = schema_subtree(schema, dep.schema_path)
    if not found:
        return "broken", "drifted", f"the output schema no longer describes path '{dep.schema_path}'"
    if sha256_of(subtree) != dep.subtree_hash:
        return "drifted", "drifted", f"the output schema changed at path '{dep.schema_path or '$'}'"
    if dep.schema_hash and sha256_of(schema) != dep.schema_hash:
        return "valid", "partial", "the output schema changed outside the path the assertion reads"
    return "valid", "none", None
