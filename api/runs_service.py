"""Runs: start (inputs checked before any workflow starts), read, list, cancel, delete.

Execution state lives in Temporal (one `RunWorkflow` per run, its id is the run id); listing goes through
Temporal visibility and our search attributes; closed runs are read from the summary the run persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api import idempotency
from api.definitions import Definitions
from api.drafts import safe_id
from api.errors import ConflictError, InvalidError, NotFoundError
from api.files_service import decode_data_url, get_file, public_ref, store_document
from api.run_deletion import delete_execution, delete_run_data, run_deleted, stop_run
from api.run_inputs import CreateRunRequest, DocumentIn
from api.run_queries import visibility_query
from api.run_views import public_step
from api.uploads import file_id_from_url
from docflow import keys, schemas
from docflow.blocks import StartDocumentConfig
from docflow.config import Settings
from docflow.ids import RUN, derived_id, new_id
from docflow.models import FileRef, VersionRecord
from docflow.runs import RunLifecycle, RunState, RunWorkflowInput, StepRecord, StepState
from docflow.temporal import SA_AWAITING_REVIEW, SA_PROJECT, SA_STATUS, SA_TRIGGER, SA_WORKFLOW_ID
from storage.objects import NotFound, ObjectStore, PreconditionFailed
from workflows.run import RunWorkflow

QUERY_TIMEOUT = timedelta(seconds=3)
_CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "error",
    WorkflowExecutionStatus.TIMED_OUT: "error",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
}


class Runs:
    """The run operations of the API."""

    def __init__(self, store: ObjectStore, temporal: Client, settings: Settings) -> None:
        self.store = store
        self.temporal = temporal
        self.settings = settings
        self.definitions = Definitions(store)

    # -- start -----------------------------------------------------------------------------------

    async def start(self, project_id: str, body: CreateRunRequest, idempotency_key: str | None) -> RunState:
        """Check the inputs against the version's start blocks, store them, start the run."""
        workflow = await self.definitions.get_workflow(project_id, body.workflow_id)
        version = await self.definitions.resolve_version(project_id, body.workflow_id, body.version or "production")
        doc_blocks, json_blocks = _start_blocks(version)
        documents = body.documents or {}
        json_inputs = body.json_inputs or {}
        _check_input_keys(documents, doc_blocks, "documents", "start_document", version.id)
        _check_input_keys(json_inputs, json_blocks, "json_inputs", "start_json", version.id)
        for block_id, schema in json_blocks.items():
            _check_json(block_id, schema, json_inputs[block_id])
        run_id = new_id(RUN)
        if idempotency_key:
            run_id = await self._claim(project_id, body, idempotency_key)
        refs = {k: await self._document(project_id, k, v) for k, v in documents.items()}
        _check_accepted_types(version, refs)
        inputs_key = keys.run_inputs(project_id, run_id) if json_inputs else None
        if inputs_key:
            # Written once: only a retry of the same request (its key's hash matched) finds them, and they are equal.
            with contextlib.suppress(PreconditionFailed):
                await self.store.put_json(inputs_key, json_inputs, if_none_match=True)
        now = datetime.now(UTC)
        inp = RunWorkflowInput(
            run_id=run_id,
            project_id=project_id,
            workflow_id=workflow.id,
            version_id=version.id,
            requested_version=body.version or "production",
            workflow_name=workflow.name,
            trigger="api",
            created_at=now,
            documents=refs,
            json_inputs_key=inputs_key,
            json_block_ids=sorted(json_blocks),
            inline_output_limit_bytes=self.settings.inline_output_limit_bytes,
            storage_retry_budget_seconds=self.settings.storage_retry_budget_seconds,
            max_concurrent_blocks=self.settings.max_concurrent_blocks,
            loop_batch_size=self.settings.loop_batch_size,
            loop_max_items=self.settings.loop_max_items,
            loop_batches_per_history=self.settings.loop_batches_per_history,
            # The API and the worker read the same settings: only a project with an endpoint sends events.
            webhooks=project_id in self.settings.webhooks,
        )
        initial = RunState.initial(inp, json_inputs)
        try:
            await self.temporal.start_workflow(
                RunWorkflow.run,
                inp,
                id=run_id,
                task_queue=self.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_PROJECT, project_id),
                        SearchAttributePair(SA_WORKFLOW_ID, workflow.id),
                        SearchAttributePair(SA_STATUS, "pending"),
                        SearchAttributePair(SA_TRIGGER, "api"),
                    ]
                ),
                memo={"run": initial.model_dump(mode="json", exclude={"inputs": {"json_data"}})},
                static_summary=f"{workflow.name} · {version.id}",
                static_details=f"workflow `{workflow.id}`, version `{version.id}` ({inp.requested_version})",
            )
        except WorkflowAlreadyStartedError:
            # A retried request: the run the first one started, with the inputs it stored.
            state = await self.state(project_id, run_id)
            state.inputs.json_data = await self.json_inputs(project_id, run_id)
            return state
        return initial

    async def _claim(self, project_id: str, body: CreateRunRequest, idempotency_key: str) -> str:
        """The run id the key derives, once the key is bound to this request (422 if bound to another)."""
        run_id = derived_id(RUN, project_id, idempotency_key, length=24)
        request = body.model_dump(mode="json", exclude={"documents"})
        request["documents"] = {
            k: {**d.model_dump(mode="json", exclude={"url"}), "url": d.url and idempotency.content_digest(d.url)}
            for k, d in (body.documents or {}).items()
        }
        await idempotency.claim(self.store, project_id, idempotency.RUNS, idempotency_key, request, {"run_id": run_id})
        if await self._deleted(project_id, run_id):
            raise ConflictError(
                f"{idempotency.HEADER}: the run this key started, '{run_id}', was deleted; send a new key",
                code="idempotent_run_deleted",
                field=idempotency.HEADER,
                run_id=run_id,
            )
        return run_id

    async def _document(self, project_id: str, block_id: str, doc: DocumentIn) -> FileRef:
        field = f"documents.{block_id}"
        stored_id = file_id_from_url(doc.url) if doc.url else None
        if stored_id is not None:
            return public_ref(await get_file(self.store, project_id, stored_id, field=f"{field}.url"))
        if doc.url is not None:
            mime, content = decode_data_url(doc.url, field, self.settings.max_upload_bytes)
            record = await store_document(
                self.store, project_id, doc.filename or "document", mime, content, self.settings.max_upload_bytes, field
            )
            return public_ref(record)
        if doc.id is None:
            raise InvalidError(
                f"{field}: give a data URL ('url') or a file id ('id')", code="invalid_document", field=field
            )
        record = await get_file(self.store, project_id, doc.id, field=f"{field}.id")
        return public_ref(record)

    # -- read ------------------------------------------------------------------------------------

    async def _describe(
        self, project_id: str, run_id: str, *, deleted_too: bool = False
    ) -> WorkflowExecutionDescription:
        if not run_id.startswith(RUN):
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        try:
            desc = await self.temporal.get_workflow_handle(run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError(f"no run '{run_id}'", run_id=run_id) from exc
            raise
        if desc.typed_search_attributes.get(SA_PROJECT) != project_id:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        if not deleted_too and await self._deleted(project_id, run_id):
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        return desc

    async def _deleted(self, project_id: str, run_id: str) -> bool:
        # Temporal deletes executions in the background: the tombstone hides the run meanwhile, and for good.
        return await run_deleted(self.store, project_id, run_id)

    async def state(self, project_id: str, run_id: str) -> RunState:
        """The run's state: live from the workflow while it runs, from its summary once closed."""
        if not run_id.startswith(RUN) or not safe_id(run_id):
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        # The execution, the tombstone and the summary (there once the run closed) at once: one round trip. What
        # is read is returned only once the execution says the run is this project's.
        desc, deleted, summary = await asyncio.gather(
            self._describe(project_id, run_id, deleted_too=True),
            self._deleted(project_id, run_id),
            self._summary(project_id, run_id),
        )
        if deleted:
            raise NotFoundError(f"no run '{run_id}'", run_id=run_id)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            try:
                live = await self.temporal.get_workflow_handle(run_id).query(
                    RunWorkflow.run_state, rpc_timeout=QUERY_TIMEOUT
                )
            except RPCError:
                live = None  # no worker has picked the run up yet
            if live is not None:
                return live
            return await _from_memo(desc, desc.typed_search_attributes.get(SA_STATUS) or "pending")
        if summary is None:  # read before the run closed (it is written before it closes): read it again
            summary = await self._summary(project_id, run_id)
        if summary is not None:
            return summary
        state = await _from_memo(desc, _CLOSED_STATUS.get(desc.status or WorkflowExecutionStatus.FAILED, "error"))
        state.timing.completed_at = desc.close_time
        if state.lifecycle.status == "error":  # closed without its summary (terminated, timed out): say so
            state.lifecycle.message = (
                f"the run ended without its summary (Temporal status: {desc.status.name if desc.status else 'unknown'})"
            )
        return state

    async def _summary(self, project_id: str, run_id: str) -> RunState | None:
        try:
            return await self.store.get_model(keys.run_summary(project_id, run_id), RunState)
        except NotFound:
            return None

    async def json_inputs(self, project_id: str, run_id: str) -> dict[str, Any]:
        """The run's JSON inputs, as given."""
        try:
            data: dict[str, Any] = (await self.store.get_json(keys.run_inputs(project_id, run_id))).data
        except NotFound:
            return {}
        return data

    async def step_record(self, project_id: str, run_id: str, step_id: str) -> StepRecord | None:
        """The step record an activity wrote, if any."""
        try:
            return await self.store.get_model(keys.step(project_id, run_id, step_id), StepRecord)
        except NotFound:
            return None

    async def public_steps(self, project_id: str, run_id: str, steps: list[StepState]) -> list[dict[str, Any]]:
        """Steps as the SDK reads them, their records read from S3 concurrently."""
        records = await asyncio.gather(*(self.step_record(project_id, run_id, s.step_id) for s in steps))
        return [public_step(run_id, step, record) for step, record in zip(steps, records, strict=True)]

    # -- list ------------------------------------------------------------------------------------

    async def list(
        self, project_id: str, filters: dict[str, Any], after: str | None, limit: int
    ) -> tuple[list[RunState], bool]:
        """Runs of the project, newest first: one visibility page (every filter is a clause), keyset on start time.

        A page may hold fewer than `limit` runs when some were deleted but not yet removed from visibility.
        """
        started_before = None
        if after:
            try:
                started_before = (await self._describe(project_id, after)).start_time
            except NotFoundError as exc:
                raise InvalidError(
                    f"after: no run '{after}' to page after", code="invalid_cursor", field="after"
                ) from exc
        query = visibility_query(project_id, filters, started_before)
        listed = [e async for e in self.temporal.list_workflows(query, limit=limit + 1, page_size=limit + 1)]
        states = [await _from_execution(e) for e in listed[:limit]]
        deleted, states = await asyncio.gather(
            asyncio.gather(*(self._deleted(project_id, s.run_id) for s in states)),
            asyncio.gather(*(self._with_error(project_id, s) for s in states)),
        )
        return [s for s, gone in zip(states, deleted, strict=True) if not gone], len(listed) > limit

    async def _with_error(self, project_id: str, state: RunState) -> RunState:
        """A failed run's error, which visibility does not hold (a failed run without its message is not a valid
        `WorkflowRun`): read from its summary, or a message saying where to find it when there is none."""
        if state.lifecycle.status != "error" or state.lifecycle.message:
            return state
        summary = await self._summary(project_id, state.run_id)
        if summary is not None and summary.lifecycle.status == "error" and summary.lifecycle.message:
            state.lifecycle = summary.lifecycle
        else:
            state.lifecycle.message = f"the run failed; GET /v1/workflows/runs/{state.run_id} for its error"
        return state

    # -- cancel, delete --------------------------------------------------------------------------

    async def cancel(self, project_id: str, run_id: str) -> tuple[RunState, str]:
        """Request cancellation; the status says whether it was requested, done already, or impossible."""
        desc = await self._describe(project_id, run_id)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            await self.temporal.get_workflow_handle(run_id).cancel()
            return await self.state(project_id, run_id), "cancellation_requested"
        state = await self.state(project_id, run_id)
        return state, "cancelled" if state.lifecycle.status == "cancelled" else "cancellation_failed"

    async def delete(self, project_id: str, run_id: str) -> None:
        """Tombstone, stop the run's activities, then delete its artifacts, records and execution (`api.run_deletion`).

        A delete interrupted part way is finished by a retry: the tombstoned run's execution is still there to find.
        """
        desc = await self._describe(project_id, run_id, deleted_too=True)
        with contextlib.suppress(PreconditionFailed):  # a retried delete keeps the first deletion time
            tombstone = {"deleted_at": datetime.now(UTC).isoformat()}
            await self.store.put_json(keys.deleted_run(project_id, run_id), tombstone, if_none_match=True)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            await stop_run(self.temporal.get_workflow_handle(run_id), self.settings.run_delete_wait_seconds)
        await delete_run_data(self.store, project_id, run_id)
        await delete_execution(self.temporal, run_id)


def _start_blocks(version: VersionRecord) -> tuple[set[str], dict[str, dict[str, Any] | None]]:
    docs = {b.id for b in version.blocks if b.type == "start_document"}
    jsons = {b.id: b.config.get("json_schema") for b in version.blocks if b.type == "start_json"}
    return docs, jsons


def _check_accepted_types(version: VersionRecord, refs: dict[str, FileRef]) -> None:
    """Each document's type is one its start block's `accepted_mime_types` allows."""
    for block in version.blocks:
        ref = refs.get(block.id)
        if ref is None or block.type != "start_document":
            continue
        config = StartDocumentConfig.model_validate(block.config)
        if not config.accepts(ref.mime_type):
            field = f"documents.{block.id}"
            raise InvalidError(
                f"{field}: {ref.mime_type!r} is not among the block's accepted_mime_types {config.accepted_mime_types}",
                code="unaccepted_mime_type",
                field=field,
                block_id=block.id,
                mime_type=ref.mime_type,
            )


def _check_input_keys(given: dict[str, Any], expected: Any, field: str, kind: str, version_id: str) -> None:
    for key in sorted(given):
        if key not in expected:
            raise InvalidError(
                f"{field}.{key}: '{key}' is not a {kind} block of version {version_id}",
                code="unknown_start_block",
                field=f"{field}.{key}",
                block_id=key,
            )
    for key in sorted(expected):
        if key not in given:
            raise InvalidError(
                f"{field}.{key}: missing input for {kind} block '{key}'",
                code="missing_start_input",
                field=f"{field}.{key}",
                block_id=key,
            )


def _check_json(block_id: str, schema: dict[str, Any] | None, value: Any) -> None:
    if not schema:
        return
    try:
        schemas.validate(value, schema)  # patterns on RE2: linear time inside the request handler
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        field = f"json_inputs.{block_id}" + (f".{path}" if path else "")
        raise InvalidError(f"{field}: {exc.message}", code="schema_mismatch", field=field, block_id=block_id) from exc
    except jsonschema.SchemaError as exc:
        raise InvalidError(
            f"block '{block_id}' has an invalid json_schema", code="invalid_schema", block_id=block_id
        ) from exc


async def _from_memo(desc: WorkflowExecution, status: str) -> RunState:
    memo = await desc.memo()
    state = RunState.model_validate(memo["run"])
    waiting = desc.typed_search_attributes.get(SA_AWAITING_REVIEW) if status == "awaiting_review" else None
    state.lifecycle = RunLifecycle.model_validate({"status": status, "waiting_for_block_ids": waiting or None})
    state.timing.started_at = state.timing.started_at or (desc.start_time if status != "pending" else None)
    return state


async def _from_execution(execution: WorkflowExecution) -> RunState:
    status = execution.typed_search_attributes.get(SA_STATUS) or "pending"
    state = await _from_memo(execution, status)
    state.timing.started_at = execution.start_time
    state.timing.completed_at = execution.close_time
    return state
