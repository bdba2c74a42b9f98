"""Workflow tests CRUD (NOTES.md §6; docflow.workflow_tests has the record and how it reads against the draft).

Create checks, each refusal naming its field: the workflow (404), the target block in the draft and testable
(422 `target.block_id`), the assertion's output handle among the block's outputs (422
`assertion.target.output_handle_id`; the assertion's own rules are docflow.assertion_models'), then the source:

- `manual`: every input handle the block has, given with its kind; a document by the id of a file of the
  project (422 `source.handle_inputs.<handle>…`). The file's stored record gives its name and type.
- `run_step`: a run of this project and this workflow (422 `source.run_id`), a step of the target block that
  started, so its inputs were recorded (422 `source.step_id`). The inputs are copied into the test then:
  JSON held in S3 by the run (`data_ref`) is read and kept inline, so deleting the run leaves the test whole.
  Documents stay references (files are not deleted with runs).

Records are written once (If-None-Match) and changed with If-Match on the ETag read: a concurrent change is
a 409, never a lost update. A marker per test under its workflow makes listing a prefix scan.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client

from api.drafts import DraftStore, safe_id
from api.errors import ConflictError, InvalidError, NotFoundError
from api.files_service import get_file, public_ref
from api.paging import Page, PageQuery, paginate
from api.runs_service import Runs
from docflow import keys
from docflow.assertion_models import AssertionSpec
from docflow.blocks import Handles, handles_of, parse_config
from docflow.config import Settings
from docflow.ids import new_id
from docflow.models import Block, Graph
from docflow.runs import HandleValue
from docflow.workflow_tests import (
    ASSERTION,
    TEST,
    TESTABLE_BLOCKS,
    BlockTarget,
    CreateWorkflowTest,
    FileHandleInput,
    JsonHandleInput,
    ManualSource,
    RunStepSource,
    TestRecord,
    UpdateWorkflowTest,
    check_against_draft,
    input_issues,
    output_issue,
    schema_dep,
)
from storage.objects import NotFound, ObjectStore, PreconditionFailed


class WorkflowTestView(BaseModel):
    """A workflow test as the SDK reads it (`WorkflowTest`); test-run summaries stay null until runs exist."""

    model_config = ConfigDict(extra="forbid")

    id: str
    workflow_id: str
    target: BlockTarget
    source: ManualSource | RunStepSource = Field(discriminator="type")
    name: str | None = None
    assertion: AssertionSpec
    assertion_schema_dep: dict[str, Any] | None = None
    assertion_drift_status: str
    schema_drift: str
    schema_drift_detail: str | None = None
    freshness: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    validation_status: str
    validation_issues: list[dict[str, Any]]
    latest_run_summary: dict[str, Any] | None = None
    latest_passing_run_summary: dict[str, Any] | None = None
    latest_failing_run_summary: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


def view(record: TestRecord, block: Block | None) -> WorkflowTestView:
    """The public test, its validation and drift read against `block` (the draft's, None when gone)."""
    check = check_against_draft(record, block)
    dep = record.assertion_schema_dep
    return WorkflowTestView(
        id=record.id,
        workflow_id=record.workflow_id,
        target=record.target,
        source=record.source,
        name=record.name,
        assertion=record.assertion,
        assertion_schema_dep=dep.model_dump(exclude={"schema_hash"}) if dep else None,
        assertion_drift_status=check.assertion_drift_status,
        schema_drift=check.schema_drift,
        schema_drift_detail=check.schema_drift_detail,
        validation_status=check.validation_status,
        validation_issues=[i.model_dump() for i in check.validation_issues],
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


class WorkflowTests:
    """The workflow-test operations of the API."""

    def __init__(self, store: ObjectStore, temporal: Client, settings: Settings) -> None:
        self.store = store
        self.runs = Runs(store, temporal, settings)
        self.drafts = DraftStore(store)

    async def create(self, project_id: str, body: CreateWorkflowTest) -> WorkflowTestView:
        """Check and store a new test; its public view."""
        graph = (await self.drafts.read(project_id, body.workflow_id)).graph
        block, handles = _testable_block(graph, body.target.block_id)
        _check_output(handles, body.assertion)
        inputs = await self._snapshot(project_id, body.workflow_id, block, handles, body.source)
        now = datetime.now(UTC)
        test_id = new_id(TEST)
        record = TestRecord(
            id=test_id,
            project_id=project_id,
            workflow_id=body.workflow_id,
            target=body.target,
            source=_stored_source(body.source, inputs),
            name=body.name,
            assertion=_with_id(body.assertion),
            block_type=block.type,
            handle_inputs=inputs,
            assertion_schema_dep=schema_dep(block, body.assertion),
            created_at=now,
            updated_at=now,
        )
        # The marker first: a marker without its record is skipped by list; a record is never unlisted.
        await self.store.put_json(keys.workflow_test_marker(project_id, record.workflow_id, record.id), {})
        await self.store.put_json(keys.workflow_test(project_id, record.id), record, if_none_match=True)
        return view(record, block)

    async def get(self, project_id: str, test_id: str) -> WorkflowTestView:
        """One test, read against the current draft (404 if unknown or of another project)."""
        record, _ = await self._read(project_id, test_id)
        return view(record, await self._draft_block(project_id, record))

    async def list(
        self, project_id: str, workflow_id: str, block_id: str | None, query: PageQuery
    ) -> Page[WorkflowTestView]:
        """A workflow's tests (of one block with `block_id`), paged by id cursors (unknown cursor: 422)."""
        graph = (await self.drafts.read(project_id, workflow_id)).graph
        markers = await self.store.list_keys(keys.workflow_tests_prefix(project_id, workflow_id))
        found = await asyncio.gather(*(self._maybe(project_id, m.rsplit("/", 1)[-1]) for m in markers))
        records = [r for r in found if r is not None and (block_id is None or r.target.block_id == block_id)]
        page = paginate(records, query, ident=lambda r: r.id, sort_key=lambda r: r.created_at)
        return Page(data=[view(r, graph.block(r.target.block_id)) for r in page.data], list_metadata=page.list_metadata)

    async def update(self, project_id: str, test_id: str, body: UpdateWorkflowTest) -> WorkflowTestView:
        """Change the name, assertion or source; a concurrent change in between is a 409."""
        record, etag = await self._read(project_id, test_id)
        block = await self._draft_block(project_id, record)
        changes: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if "name" in body.model_fields_set:
            changes["name"] = body.name
        if body.assertion is not None or body.source is not None:
            # Both are checked against the block as the draft has it now: it must still be there.
            if block is None:
                raise InvalidError(
                    f"target.block_id: block '{record.target.block_id}' is no longer in the draft of workflow"
                    f" '{record.workflow_id}': the test can only be renamed or deleted",
                    code="block_not_in_draft",
                    field="target.block_id",
                )
            block, handles = _testable_block(Graph(blocks=[block]), block.id)
            if body.assertion is not None:
                _check_output(handles, body.assertion)
                changes["assertion"] = _with_id(body.assertion)
                changes["assertion_schema_dep"] = schema_dep(block, body.assertion)
            if body.source is not None:
                inputs = await self._snapshot(project_id, record.workflow_id, block, handles, body.source)
                changes["source"] = _stored_source(body.source, inputs)
                changes["handle_inputs"] = inputs
                changes["block_type"] = block.type
        new = record.model_copy(update=changes)
        try:
            await self.store.put_json(keys.workflow_test(project_id, test_id), new, if_match=etag)
        except (PreconditionFailed, NotFound) as exc:
            raise ConflictError(
                f"test '{test_id}' changed or was deleted while this update was made: read it and try again",
                code="concurrent_change",
            ) from exc
        return view(new, block)

    async def delete(self, project_id: str, test_id: str) -> None:
        """Remove a test (404 if unknown): its record, then its listing marker."""
        record, _ = await self._read(project_id, test_id)
        await self.store.delete(keys.workflow_test(project_id, test_id))
        await self.store.delete(keys.workflow_test_marker(project_id, record.workflow_id, test_id))

    # -- reads -------------------------------------------------------------------------------------------

    async def _read(self, project_id: str, test_id: str) -> tuple[TestRecord, str]:
        if not test_id.startswith(TEST) or not safe_id(test_id):
            raise NotFoundError(f"no workflow test '{test_id}'", test_id=test_id)
        try:
            found = await self.store.get_json(keys.workflow_test(project_id, test_id))
        except NotFound as exc:
            raise NotFoundError(f"no workflow test '{test_id}'", test_id=test_id) from exc
        record = TestRecord.model_validate(found.data)
        if record.project_id != project_id:  # keys are per project; this only guards a misfiled record
            raise NotFoundError(f"no workflow test '{test_id}'", test_id=test_id)
        return record, found.etag

    async def _maybe(self, project_id: str, test_id: str) -> TestRecord | None:
        with contextlib.suppress(NotFoundError):
            return (await self._read(project_id, test_id))[0]
        return None

    async def _draft_block(self, project_id: str, record: TestRecord) -> Block | None:
        """The draft's block of the test's target; None when it or its workflow is gone."""
        try:
            graph = (await self.drafts.read(project_id, record.workflow_id)).graph
        except NotFoundError:
            return None
        return graph.block(record.target.block_id)

    # -- sources -----------------------------------------------------------------------------------------

    async def _snapshot(
        self, project_id: str, workflow_id: str, block: Block, handles: Handles, source: ManualSource | RunStepSource
    ) -> dict[str, HandleValue]:
        """The handle inputs the test replays, checked against the block's input handles."""
        if isinstance(source, ManualSource):
            inputs = {h: await self._manual(project_id, h, v) for h, v in source.handle_inputs.items()}
            field = "source.handle_inputs"
        else:
            inputs = await self._from_step(project_id, workflow_id, block.id, source)
            field = "source.step_id"
        for issue in input_issues(inputs, handles.inputs):
            where = issue.field if isinstance(source, ManualSource) else field
            raise InvalidError(f"{where}: {issue.message}", code=issue.code, field=where)
        return inputs

    async def _manual(self, project_id: str, handle: str, value: Any) -> HandleValue:
        if isinstance(value, FileHandleInput):
            stored = await get_file(
                self.store, project_id, value.document.id, field=f"source.handle_inputs.{handle}.document.id"
            )
            return HandleValue(type="file", document=public_ref(stored))
        return HandleValue(type="json", data=value.data)

    async def _from_step(
        self, project_id: str, workflow_id: str, block_id: str, source: RunStepSource
    ) -> dict[str, HandleValue]:
        try:
            state = await self.runs.state(project_id, source.run_id)
        except NotFoundError as exc:
            raise InvalidError(
                f"source.run_id: no run '{source.run_id}'", code="unknown_run", field="source.run_id"
            ) from exc
        if state.workflow_id != workflow_id:
            raise InvalidError(
                f"source.run_id: run '{source.run_id}' is a run of workflow '{state.workflow_id}', not '{workflow_id}'",
                code="run_of_other_workflow",
                field="source.run_id",
            )
        step_id = source.step_id or block_id
        step = next((s for s in state.steps if s.step_id == step_id), None)
        if step is None or step.block_id != block_id:
            raise InvalidError(
                f"source.step_id: run '{source.run_id}' has no step '{step_id}' of block '{block_id}'",
                code="unknown_step",
                field="source.step_id",
            )
        if step.lifecycle.status == "skipped":
            raise InvalidError(
                f"source.step_id: step '{step_id}' was skipped in run '{source.run_id}': it has no inputs to snapshot",
                code="step_skipped",
                field="source.step_id",
            )
        record = await self.runs.step_record(project_id, source.run_id, step_id)
        if record is None:
            raise InvalidError(
                f"source.step_id: step '{step_id}' of run '{source.run_id}' never started: it has no inputs",
                code="step_not_run",
                field="source.step_id",
            )
        return {h: await self._inline(v) for h, v in record.handle_inputs.items()}

    async def _inline(self, value: HandleValue) -> HandleValue:
        """A recorded input with its S3-held JSON read in, so the test does not depend on the run's records."""
        if value.data_ref is None:
            return value
        try:
            data = (await self.store.get_json(value.data_ref)).data
        except NotFound as exc:
            raise InvalidError(
                "source.step_id: the step's recorded inputs are gone", code="step_inputs_gone", field="source.step_id"
            ) from exc
        return value.model_copy(update={"data": data["data"], "data_ref": None})


def _testable_block(graph: Graph, block_id: str) -> tuple[Block, Handles]:
    block = graph.block(block_id)
    if block is None:
        raise InvalidError(
            f"target.block_id: block '{block_id}' is not in the workflow's draft",
            code="block_not_in_draft",
            field="target.block_id",
        )
    if block.type not in TESTABLE_BLOCKS:
        raise InvalidError(
            f"target.block_id: a {block.type} block cannot be tested (only {', '.join(sorted(TESTABLE_BLOCKS))})",
            code="block_not_testable",
            field="target.block_id",
        )
    try:
        return block, handles_of(block.type, parse_config(block.type, block.config))
    except ValueError as exc:
        raise InvalidError(
            f"target.block_id: block '{block_id}' has a config that does not validate: {str(exc)[:300]}",
            code="invalid_block_config",
            field="target.block_id",
        ) from exc


def _check_output(handles: Handles, assertion: AssertionSpec) -> None:
    issue = output_issue(handles.outputs, assertion.target.output_handle_id)
    if issue is not None:
        raise InvalidError(f"{issue.field}: {issue.message}", code=issue.code, field=issue.field)


def _with_id(assertion: AssertionSpec) -> AssertionSpec:
    """The assertion with an id (results name it), kept when the caller gave one."""
    return assertion if assertion.id else assertion.model_copy(update={"id": new_id(ASSERTION)})


def _stored_source(
    source: ManualSource | RunStepSource, inputs: dict[str, HandleValue]
) -> ManualSource | RunStepSource:
    """A manual source as stored: documents as the project's file records name them, not as the caller did."""
    if isinstance(source, RunStepSource):
        return source
    given: dict[str, JsonHandleInput | FileHandleInput] = {
        h: FileHandleInput(document=v.document) if v.document is not None else JsonHandleInput(data=v.data)
        for h, v in inputs.items()
    }
    return ManualSource(handle_inputs=given)
