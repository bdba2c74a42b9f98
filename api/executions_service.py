"""Block executions (NOTES.md §5): rerun one block of a past run with the current draft's config.

Create checks, in this order, each refusal naming its field: the run (404 `run_id`), the step (404 `step_id`;
a step that never ran or was skipped in the run: 409, it has no inputs to replay), the block in the draft
(404 `block_id`), `n_consensus` (3, 5 or 7, on extract / classifier / split only: 422), then eligibility:
the block's upstream subgraph in the draft must equal the source version's (docflow.fingerprints), else 409
naming the drifted blocks unless `check_eligibility` is false (then the execution records `forced`).

An identical execution (the same `execution_fingerprint`: inputs, draft config, upstream, n_consensus) that
completed before is returned as stored, with no new model call, unless `force=true`. Otherwise a
`BlockExecutionWorkflow` starts; the request waits for it up to `block_execution_wait_seconds` and answers
its record, finished or still running (list or get it later).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.definitions import Definitions
from api.errors import ConflictError, InvalidError, NotFoundError
from api.loop_steps import with_loop_steps
from api.runs_service import Runs
from docflow import keys
from docflow.config import Settings
from docflow.executions import BlockExecutionInput, ExecutionRecord, Fingerprints
from docflow.fingerprints import (
    block_config_fingerprint,
    drifted_blocks,
    execution_fingerprint,
    handle_inputs_fingerprint,
    upstream_fingerprint,
)
from docflow.graph import resolve_edge_handles
from docflow.ids import EXECUTION, new_id
from docflow.models import Block
from docflow.runs import HandleValue, RunState, StepRecord, StepState
from docflow.temporal import EXECUTION_STATE_QUERY, SA_PROJECT, SA_SOURCE_RUN, SA_WORKFLOW_ID
from storage import handles
from storage.objects import NotFound, ObjectStore, PreconditionFailed
from workflows.block_execution import BlockExecutionWorkflow

CONSENSUS_BLOCKS = frozenset({"extract", "classifier", "split"})
CONSENSUS_OVERRIDES = (3, 5, 7)
QUERY_TIMEOUT = timedelta(seconds=3)
T = TypeVar("T")


class CreateBlockExecution(BaseModel):
    """Body of `POST /v1/workflows/blocks/executions` (the SDK's `CreateBlockExecutionRequest`)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str = Field(min_length=1, max_length=100)
    block_id: str = Field(min_length=1, max_length=200)
    step_id: str | None = Field(default=None, min_length=1, max_length=500)
    n_consensus: int | None = None
    check_eligibility: bool = True


class Executions:
    """The block-execution operations of the API."""

    def __init__(self, store: ObjectStore, temporal: Client, settings: Settings) -> None:
        self.store = store
        self.temporal = temporal
        self.settings = settings
        self.runs = Runs(store, temporal, settings)
        self.definitions = Definitions(store)

    async def create(self, project_id: str, body: CreateBlockExecution, force: bool) -> dict[str, Any]:
        """Check, deduplicate, start and (up to the wait) run one block execution; its public record."""
        step_id = body.step_id or body.block_id
        # Two rounds of independent reads: the run with its step's record (used only once the run is found to be
        # this project's and the step one of its steps), then the draft and the source run's version.
        state, recorded = await asyncio.gather(
            self.runs.state(project_id, body.run_id), _settled(self.runs.step_record(project_id, body.run_id, step_id))
        )
        record = await self._source_step(project_id, state, step_id, recorded)
        draft_graph, source_version = await self.definitions.draft_and_version(
            project_id, state.workflow_id, state.version_id
        )
        draft = resolve_edge_handles(draft_graph)
        block = next((b for b in draft.blocks if b.id == body.block_id), None)
        if block is None:
            raise NotFoundError(
                f"block_id: block '{body.block_id}' is not in the draft of workflow '{state.workflow_id}'",
                code="block_not_in_draft",
                field="block_id",
            )
        block = _with_consensus(block, body.n_consensus)
        source = resolve_edge_handles(source_version.graph())
        drifted = drifted_blocks(source, draft, block.id)
        if drifted and body.check_eligibility:
            raise ConflictError(
                f"the blocks upstream of '{block.id}' changed since run '{state.run_id}': {', '.join(drifted)};"
                " rerun with check_eligibility=false to run anyway",
                code="upstream_drifted",
                field="check_eligibility",
                drifted_blocks=drifted,
            )
        inputs = record.handle_inputs
        prints = fingerprints_of(inputs, block, draft, body.n_consensus)
        if not force:
            stored = await self._stored(project_id, prints.execution_fingerprint)
            if stored is not None:
                return await self.public(stored)
        execution_id = new_id(EXECUTION)
        offloads = (by_reference(self.store, self.settings, project_id, execution_id, h, v) for h, v in inputs.items())
        inp = BlockExecutionInput(
            execution_id=execution_id,
            project_id=project_id,
            workflow_id=state.workflow_id,
            workflow_version_id=state.version_id,
            source_run_id=state.run_id,
            source_step_id=step_id,
            block=block,
            inputs=dict(zip(inputs, await asyncio.gather(*offloads), strict=True)),
            documents={k: v for k, v in state.inputs.documents.items() if k == block.id},
            json_inputs_key=keys.run_inputs(project_id, state.run_id) if block.type == "start_json" else None,
            created_at=datetime.now(UTC),
            fingerprints=prints,
            n_consensus=body.n_consensus,
            forced=bool(drifted),
            drifted_blocks=drifted,
            inline_output_limit_bytes=self.settings.inline_output_limit_bytes,
            storage_retry_budget_seconds=self.settings.storage_retry_budget_seconds,
        )
        # Listed by run: a marker per execution, written while it starts.
        marker = keys.run_execution(project_id, state.run_id, keys.compact_time(inp.created_at), execution_id)
        _, handle = await asyncio.gather(
            self.store.put_json(marker, {"block_id": block.id}),
            self.temporal.start_workflow(
                BlockExecutionWorkflow.run,
                inp,
                id=execution_id,
                task_queue=self.settings.task_queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_PROJECT, project_id),
                        SearchAttributePair(SA_WORKFLOW_ID, state.workflow_id),
                        SearchAttributePair(SA_SOURCE_RUN, state.run_id),
                    ]
                ),
                memo={"source_run_id": state.run_id, "project_id": project_id, "block_id": block.id},
                static_summary=f"rerun of {block.id} from {state.run_id}",
            ),
        )
        done = await self._wait(handle.result())
        record_now = done or await self.get(project_id, execution_id)
        if record_now.lifecycle.status != "completed":
            return await self.public(record_now)
        public: dict[str, Any]
        public, _ = await asyncio.gather(self.public(record_now), self._remember(project_id, prints, execution_id))
        return public

    async def _remember(self, project_id: str, prints: Fingerprints, execution_id: str) -> None:
        """The first completed execution of a fingerprint is the one an identical rerun returns."""
        with contextlib.suppress(PreconditionFailed):
            await self.store.put_json(
                keys.execution_by_fingerprint(project_id, prints.execution_fingerprint),
                {"execution_id": execution_id},
                if_none_match=True,
            )

    async def _source_step(
        self, project_id: str, state: RunState, step_id: str, record: StepRecord | None | Exception
    ) -> StepRecord:
        """The source step's record (read with the run; again if that read failed): 404 for a step the run does
        not have, 409 for one skipped or never started, 422 listing `available_iterations` for a block that ran
        once per loop iteration."""
        steps = await with_loop_steps(self.store, state)
        step = next((s for s in steps if s.step_id == step_id), None)
        iterations = [s for s in steps if s.block_id == step_id and s.loop_containers] if step is None else []
        if iterations:  # a block inside a loop ran once per iteration: which one to rerun is the caller's choice
            raise InvalidError(
                f"step_id: block '{step_id}' runs inside a loop ({len(iterations)} iterations in run "
                f"'{state.run_id}'); give step_id, one of available_iterations",
                code="step_id_required",
                field="step_id",
                available_iterations=available_iterations(iterations),
            )
        if step is None:
            raise NotFoundError(
                f"step_id: run '{state.run_id}' has no step '{step_id}'", code="unknown_step", field="step_id"
            )
        if step.lifecycle.status == "skipped":
            raise ConflictError(
                f"step_id: step '{step_id}' was skipped in run '{state.run_id}' ({step.lifecycle.reason}):"
                " it has no inputs to replay",
                code="step_skipped",
                field="step_id",
            )
        if isinstance(record, Exception):  # its error counts now that the step is known to be the run's
            record = await self.runs.step_record(project_id, state.run_id, step_id)
        if record is None:
            raise ConflictError(
                f"step '{step_id}' of run '{state.run_id}' never started: it has no inputs to replay",
                code="step_not_run",
                field="step_id",
            )
        return record

    async def _wait(self, result: Any) -> ExecutionRecord | None:
        try:
            async with asyncio.timeout(self.settings.block_execution_wait_seconds):
                done: ExecutionRecord = await result
                return done
        except (TimeoutError, WorkflowFailureError):
            return None  # still running, or failed: its record says which

    async def _stored(self, project_id: str, execution_fp: str) -> ExecutionRecord | None:
        try:
            found = (await self.store.get_json(keys.execution_by_fingerprint(project_id, execution_fp))).data
        except NotFound:
            return None
        with contextlib.suppress(NotFoundError):
            record = await self.get(project_id, str(found.get("execution_id")))
            if record.lifecycle.status == "completed":
                return record
        return None

    async def get(self, project_id: str, execution_id: str) -> ExecutionRecord:
        """An execution: its stored record once it has ended, else its live state (404 if unknown)."""
        if not execution_id.startswith(EXECUTION):
            raise NotFoundError(f"no block execution '{execution_id}'", execution_id=execution_id)
        with contextlib.suppress(NotFound):
            record = await self.store.get_model(keys.run_summary(project_id, execution_id), ExecutionRecord)
            if record.project_id == project_id:
                return record
        try:
            handle = self.temporal.get_workflow_handle(execution_id)
            desc = await handle.describe()
            memo = await desc.memo()
            if memo.get("project_id") != project_id:
                raise NotFoundError(f"no block execution '{execution_id}'", execution_id=execution_id)
            if desc.status == WorkflowExecutionStatus.RUNNING:
                live: ExecutionRecord = await handle.query(
                    EXECUTION_STATE_QUERY, result_type=ExecutionRecord, rpc_timeout=QUERY_TIMEOUT
                )
                return live
        except RPCError as exc:
            raise NotFoundError(f"no block execution '{execution_id}'", execution_id=execution_id) from exc
        # Closed but its record not (yet) readable: read it once more.
        try:
            return await self.store.get_model(keys.run_summary(project_id, execution_id), ExecutionRecord)
        except NotFound as exc:
            raise NotFoundError(f"no block execution '{execution_id}'", execution_id=execution_id) from exc

    async def list(
        self, project_id: str, run_id: str, block_id: str | None, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[ExecutionRecord], bool]:
        """Executions of a run (optionally of one block), newest or oldest first, paged after an execution id."""
        await self.runs.state(project_id, run_id)  # 404 for an unknown run or another project's
        markers = await self.store.list_keys(keys.run_executions_prefix(project_id, run_id))
        ids = [m.rsplit("/", 1)[-1].split("_", 1)[1] for m in sorted(markers)]  # `<time>_<execution id>`
        if newest_first:
            ids.reverse()
        if after is not None:
            if after not in ids:
                raise InvalidError(
                    f"after: no block execution '{after}' of this run", code="invalid_cursor", field="after"
                )
            ids = ids[ids.index(after) + 1 :]
        found: list[ExecutionRecord] = []
        for execution_id in ids:
            with contextlib.suppress(NotFoundError):
                record = await self.get(project_id, execution_id)
                if block_id is None or record.block_id == block_id:
                    found.append(record)
            if len(found) > limit:
                break
        return found[:limit], len(found) > limit

    async def public(self, record: ExecutionRecord) -> dict[str, Any]:
        """The SDK's `StoredBlockExecution`, payloads read from the execution's step record."""
        step = await self.runs.step_record(record.project_id, record.id, record.source_step_id)
        return {
            "id": record.id,
            "workflow_id": record.workflow_id,
            "workflow_version_id": record.workflow_version_id,
            "source_run_id": record.source_run_id,
            "block_id": record.block_id,
            "block_type": record.block_type,
            "lifecycle": record.lifecycle.model_dump(mode="json"),
            "handle_inputs": {k: v.public() for k, v in (step.handle_inputs if step else {}).items()},
            "handle_outputs": {k: v.public() for k, v in (step.handle_outputs if step else {}).items()},
            "artifact": record.artifact.model_dump(mode="json") if record.artifact else None,
            "routing_decisions": record.routing_decisions,
            "duration_ms": record.duration_ms(),
            "created_at": record.created_at.isoformat(),
            "started_at": record.started_at.isoformat() if record.started_at else None,
            "completed_at": record.completed_at.isoformat() if record.completed_at else None,
            **record.fingerprints.model_dump(),
            "block_config": record.block_config,
            "source_step_id": record.source_step_id,
            "available_iterations": None,
            "n_consensus": record.n_consensus,
            "forced": record.forced,
            "drifted_blocks": record.drifted_blocks,
        }


async def _settled(read: Awaitable[T]) -> T | Exception:
    """A read made ahead of the checks that make it needed: its error is returned, not raised before them."""
    try:
        return await read
    except Exception as exc:
        return exc


def available_iterations(steps: list[StepState], limit: int = 100) -> list[dict[str, Any]]:
    """The SDK's `available_iterations`: a loop step's iterations as `{step_id, iteration_index, label}`."""
    return [
        {
            "step_id": s.step_id,
            "iteration_index": s.loop_containers[-1].iteration,
            "label": " / ".join(f"{c.container_id} #{c.iteration}" for c in s.loop_containers),
        }
        for s in steps[:limit]
    ]


def _with_consensus(block: Block, n_consensus: int | None) -> Block:
    """The draft block, with this execution's n_consensus override (3, 5 or 7, consensus blocks only)."""
    if n_consensus is None:
        return block
    if block.type not in CONSENSUS_BLOCKS:
        raise InvalidError(
            f"n_consensus: a {block.type} block takes no n_consensus (only extract, classifier and split do)",
            code="invalid_n_consensus",
            field="n_consensus",
        )
    if n_consensus not in CONSENSUS_OVERRIDES:
        raise InvalidError(
            f"n_consensus: must be 3, 5 or 7, not {n_consensus}", code="invalid_n_consensus", field="n_consensus"
        )
    return block.model_copy(update={"config": {**block.config, "n_consensus": n_consensus}})


async def by_reference(
    store: ObjectStore, settings: Settings, project_id: str, execution_id: str, handle: str, value: HandleValue
) -> HandleValue:
    """A recorded input as the activity takes it: large JSON through S3 (documents are references already)."""
    key = keys.output(project_id, execution_id, "inputs", handle)
    return await handles.offload(store, value, key, settings.inline_output_limit_bytes)


def fingerprints_of(inputs: dict[str, HandleValue], block: Block, draft: Any, n_consensus: int | None) -> Fingerprints:
    """The four fingerprints of executing `block` (draft config, override applied) on `inputs`."""
    inputs_fp = handle_inputs_fingerprint(inputs)
    config_fp = block_config_fingerprint(block)
    upstream_fp = upstream_fingerprint(draft, block.id)
    effective = block.config.get("n_consensus") if block.type in CONSENSUS_BLOCKS else None
    return Fingerprints(
        handle_inputs_fingerprint=inputs_fp,
        block_config_fingerprint=config_fp,
        workflow_draft_fingerprint=upstream_fp,
        execution_fingerprint=execution_fingerprint(inputs_fp, config_fp, upstream_fp, effective or n_consensus),
    )
