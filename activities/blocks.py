"""Block activities: one activity per block type, all sharing one execution path.

Each activity resolves its handle inputs (claim-checked JSON comes back from S3), runs the block's
executor, writes the artifact and the step record to S3, and returns small references.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deleted import refuse_if_deleted
from activities.errors import BlockError
from activities.executors import Executors
from activities.produced import Produced
from activities.review_gate import ReviewGate
from docflow import keys
from docflow.durations import parse_iso_duration
from docflow.ids import ARTIFACT_PREFIXES, derived_id
from docflow.loops import review_iteration
from docflow.reviews import ReviewRecord, ReviewVersionRecord, model_actor, review_id, version_id
from docflow.runs import (
    ArtifactRef,
    BlockOutcome,
    ErrorInfo,
    ExecuteBlockInput,
    HandleValue,
    OpenedReview,
    StepLifecycle,
    StepRecord,
)
from storage import handles
from storage.objects import ObjectStore, StorageUnavailable, storage_deadline
from storage.reviews import ReviewStore
from workflows.activity_names import BLOCK_ACTIVITIES

log = structlog.get_logger("docflow.block")
HEARTBEAT_EVERY_SECONDS = 1.0
# A local activity's store calls must give up this long before its own timeout, so a storage stall is
# reported as storage (and retried) rather than as an anonymous activity timeout.
STORAGE_DEADLINE_MARGIN_SECONDS = 0.75

Executor = Callable[[ExecuteBlockInput, dict[str, HandleValue]], Awaitable[Produced]]


class BlockActivities:
    """The activities that execute blocks, with their clients injected."""

    def __init__(self, store: ObjectStore, executors: Executors) -> None:
        self.store = store
        self.ex = executors

    @activity.defn(name=BLOCK_ACTIVITIES["start_document"])
    async def read_document_input(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """start_document: the run's input document."""
        return await self._run(inp, self.ex.start_document)

    @activity.defn(name=BLOCK_ACTIVITIES["start_json"])
    async def read_json_input(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """start_json: the run's JSON input, validated against the block's schema."""
        return await self._run(inp, self.ex.start_json)

    @activity.defn(name=BLOCK_ACTIVITIES["parse"])
    async def parse_document(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """parse: document → text per page."""
        return await self._run(inp, self.ex.parse)

    @activity.defn(name=BLOCK_ACTIVITIES["extract"])
    async def extract_data(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """extract: document or text + schema → data, through the model provider."""
        return await self._run(inp, self.ex.extract)

    @activity.defn(name=BLOCK_ACTIVITIES["classifier"])
    async def classify_document(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """classifier: document → one category, routed to its handle."""
        return await self._run(inp, self.ex.classifier)

    @activity.defn(name=BLOCK_ACTIVITIES["split"])
    async def split_document(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """split: document → page ranges per sub-document, each stored as its own PDF."""
        return await self._run(inp, self.ex.split)

    @activity.defn(name=BLOCK_ACTIVITIES["conditional"])
    async def evaluate_conditions(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """conditional: conditions on JSON → the active branch."""
        return await self._run(inp, self.ex.conditional)

    @activity.defn(name=BLOCK_ACTIVITIES["function"])
    async def run_function(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """function: a safe expression or mapping over JSON, or user Python in the sandbox."""
        return await self._run(inp, self.ex.function)

    @activity.defn(name=BLOCK_ACTIVITIES["merge_dicts"])
    async def merge_dicts(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """merge_dicts: merge JSON inputs, later ones winning."""
        return await self._run(inp, self.ex.merge_dicts)

    @activity.defn(name=BLOCK_ACTIVITIES["api_call"])
    async def call_api(self, inp: ExecuteBlockInput) -> BlockOutcome:
        """api_call: an HTTP request templated from the input, with retries and a trace."""
        return await self._run(inp, self.ex.api_call)

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker."""
        return [
            self.read_document_input,
            self.read_json_input,
            self.parse_document,
            self.extract_data,
            self.classify_document,
            self.split_document,
            self.evaluate_conditions,
            self.run_function,
            self.merge_dicts,
            self.call_api,
        ]

    async def _run(self, inp: ExecuteBlockInput, executor: Executor) -> BlockOutcome:
        run, block = inp.run, inp.block
        structlog.contextvars.bind_contextvars(run_id=run.run_id, block_id=block.id, step_id=inp.step_id)
        started = datetime.now(UTC)
        record = StepRecord(
            run_id=run.run_id,
            project_id=run.project_id,
            step_id=inp.step_id,
            block_id=block.id,
            block_type=block.type,
            block_label=block.label,
            started_at=started,
            retry_count=activity.info().attempt - 1,
            loop_containers=inp.loop_containers,
        )
        try:
            with _local_deadline():
                return await self._execute(inp, record, executor)
        except ApplicationError:
            raise  # already says whether it may be retried
        except StorageUnavailable as exc:
            # Infrastructure, not the user's block: retried with backoff until the run's retry budget is spent.
            waited, spent = _retry_budget(inp)
            log.warning("storage unavailable", error=str(exc), attempt=activity.info().attempt, waited_s=round(waited))
            message = f"{exc}; gave up after {waited:.0f} s of retries" if spent else str(exc)
            raise ApplicationError(message, type="StorageUnavailable", non_retryable=spent) from exc
        except Exception as exc:
            # Any other retryable failure (a lost pool process, a provider hiccup, a bug) obeys the same budget, so
            # a local block's generous retry policy never keeps a run going for long on an error that persists.
            waited, spent = _retry_budget(inp)
            if not spent:
                raise
            message = f"{type(exc).__name__}: {exc}; gave up after {waited:.0f} s of retries"
            raise ApplicationError(message, type=type(exc).__name__, non_retryable=True) from exc
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "block_id", "step_id")

    async def _execute(self, inp: ExecuteBlockInput, record: StepRecord, executor: Executor) -> BlockOutcome:
        """Resolve the inputs, execute, persist; a BlockError is recorded on the step and made non-retryable."""
        try:
            inputs = {h: await handles.load(self.store, v) for h, v in inp.inputs.items()}
            record.handle_inputs = inputs
            # Recorded before the block runs, so any step (one that fails, times out or is cancelled too) can be
            # rerun from the inputs it had.
            await self._refuse_if_deleted(inp)
            record.lifecycle = StepLifecycle(status="running")
            await self.store.put_json(keys.step(inp.run.project_id, inp.run.run_id, inp.step_id), record)
            log.info("block started", block_type=inp.block.type, attempt=activity.info().attempt)
            async with _heartbeats():
                produced = await executor(inp, inputs)
                gate = await self.ex.review_gate(inp, produced) if inp.review_gates else None
            return await self._complete(inp, record, produced, gate)
        except BlockError as exc:
            await self._fail(inp, record, exc)
            raise ApplicationError(str(exc), exc.details, type="BlockError", non_retryable=True) from exc

    async def _complete(
        self, inp: ExecuteBlockInput, record: StepRecord, produced: Produced, gate: ReviewGate | None
    ) -> BlockOutcome:
        run = inp.run
        await self._refuse_if_deleted(inp)
        artifact = self._artifact(inp, produced.artifact)
        evaluation = self._artifact(inp, _evaluation_record(gate)) if gate is not None else None
        fired = gate is not None and gate.evaluation.fired
        record.handle_outputs = produced.outputs
        record.routing_decisions = produced.routing
        record.artifact = artifact[0] if artifact else None
        record.review_evaluation = evaluation[0] if evaluation else None
        record.model = produced.model
        record.completed_at = datetime.now(UTC)
        record.lifecycle = StepLifecycle(status="awaiting_review" if fired else "completed")
        record.review_id = review_id(run.run_id, inp.step_id) if fired else None
        # The writes are independent (ids are derived, a retry rewrites the same keys): do them at once.
        handles = list(produced.outputs)
        written = await asyncio.gather(
            *(self._offload(inp, handle, produced.outputs[handle]) for handle in handles),
            self.store.put_json(keys.step(run.project_id, run.run_id, inp.step_id), record),
            *(self.store.put_json(made[1], made[2]) for made in (artifact, evaluation) if made is not None),
        )
        outputs = dict(zip(handles, written[: len(handles)], strict=True))
        opened = None
        if gate is not None and fired:
            opened = await self._open_review(inp, record, gate, evaluation[0].id if evaluation else None)
        log.info("block completed", routing=produced.routing, artifact=record.artifact and record.artifact.id)
        return BlockOutcome(
            outputs=outputs,
            routing_decisions=produced.routing,
            artifact=record.artifact,
            model=produced.model,
            started_at=record.started_at or record.completed_at,
            completed_at=record.completed_at,
            review=opened,
            review_evaluation=record.review_evaluation,
        )

    async def _open_review(
        self, inp: ExecuteBlockInput, record: StepRecord, gate: ReviewGate, evaluation_id: str | None
    ) -> OpenedReview:
        """Store the review and its first version (the model's output); the run then waits for its decision."""
        run, block = inp.run, inp.block
        rid = review_id(run.run_id, inp.step_id)
        now = datetime.now(UTC)
        seed = ReviewVersionRecord(
            id=version_id(rid, gate.snapshot),
            review_id=rid,
            project_id=run.project_id,
            author=model_actor(record.model),
            snapshot=gate.snapshot,
            created_at=now,
        )
        deadline = parse_iso_duration(gate.config.deadline) if gate.config.deadline else None
        on_deadline = gate.config.on_deadline
        parent_step_id, iteration_key = review_iteration(inp.step_id, block.id, inp.loop_containers)
        review = ReviewRecord(
            id=rid,
            project_id=run.project_id,
            workflow_id=run.workflow_id,
            workflow_version_id=run.version_id,
            run_id=run.run_id,
            block_id=block.id,
            step_id=inp.step_id,
            parent_step_id=parent_step_id,
            iteration_key=iteration_key,
            block_type=block.type,  # reviewable types only (checked on write)
            block_label=block.label,
            triggered_by=gate.config.predicate.model_dump(mode="json"),
            created_at=now,
            seed_version_id=seed.id,
            evaluation_artifact_id=evaluation_id,
            output_schema=gate.output_schema,
            categories=gate.categories,
            subdocuments=gate.subdocuments,
            page_count=gate.page_count,
            deadline_at=now + deadline if deadline else None,
            gate_workflow_id=inp.gate_workflow_id,
        )
        await ReviewStore(self.store).open_review(review, seed)
        log.info("review opened", review_id=rid, reason=gate.evaluation.reason)
        return OpenedReview(
            review_id=rid,
            seed_version_id=seed.id,
            deadline_seconds=deadline.total_seconds() if deadline else None,
            on_deadline=(on_deadline.action if on_deadline else "reject") if deadline else None,
            deadline_reason=on_deadline.reason if on_deadline else None,
        )

    async def _fail(self, inp: ExecuteBlockInput, record: StepRecord, exc: BlockError) -> None:
        run = inp.run
        await self._refuse_if_deleted(inp)
        log.warning("block failed", error=str(exc), code=exc.code)
        record.completed_at = datetime.now(UTC)
        record.lifecycle = StepLifecycle(status="error", message=str(exc), stage="execution", category="permanent")
        record.error = ErrorInfo(
            message=str(exc),
            block_id=inp.block.id,
            block_name=inp.block.label,
            error_code=exc.code,
            context=exc.details,
        )
        if exc.details.get("artifact"):
            record.artifact = await self._write_artifact(inp, exc.details.pop("artifact"))
        await self.store.put_json(keys.step(run.project_id, run.run_id, inp.step_id), record)

    async def _refuse_if_deleted(self, inp: ExecuteBlockInput) -> None:
        """Write nothing for a deleted run: a block its delete could not stop in time must not bring data back."""
        await refuse_if_deleted(self.store, inp.run.project_id, inp.run.run_id)

    async def _write_artifact(self, inp: ExecuteBlockInput, artifact: dict[str, Any] | None) -> ArtifactRef | None:
        made = self._artifact(inp, artifact)
        if made is None:
            return None
        ref, key, record = made
        await self.store.put_json(key, record)
        return ref

    def _artifact(
        self, inp: ExecuteBlockInput, artifact: dict[str, Any] | None
    ) -> tuple[ArtifactRef, str, dict[str, Any]] | None:
        """The artifact's reference, key and record."""
        if artifact is None:
            return None
        operation = str(artifact["operation"])
        # Derived from run and step, so a retried activity overwrites its artifact instead of adding one.
        artifact_id = derived_id(ARTIFACT_PREFIXES.get(operation, "art_"), inp.run.run_id, inp.step_id, length=24)
        record = {
            **artifact,
            "id": artifact_id,
            "run_id": inp.run.run_id,
            "project_id": inp.run.project_id,
            "step_id": inp.step_id,
            "block_id": inp.block.id,
            "created_at": datetime.now(UTC).isoformat(),
        }
        return ArtifactRef(operation=operation, id=artifact_id), keys.artifact(inp.run.project_id, artifact_id), record

    async def _offload(self, inp: ExecuteBlockInput, handle: str, value: HandleValue) -> HandleValue:
        key = keys.output(inp.run.project_id, inp.run.run_id, inp.step_id, handle)
        return await handles.offload(self.store, value, key, inp.inline_output_limit_bytes)


def _evaluation_record(gate: ReviewGate) -> dict[str, Any]:
    """The `review_trigger_evaluation` artifact: the predicate, whether it fired and why, each part's evaluation."""
    evaluation = gate.evaluation.model_dump(mode="json")
    return {
        "operation": "review_trigger_evaluation",
        "requires_human_review": gate.evaluation.fired,
        "predicate": gate.config.predicate.model_dump(mode="json"),
        "evaluation": evaluation,
        "evaluations": [evaluation],
        "reviewer_id": None,
        "review_decision": None,
        "review_notes": None,
        "reviewed_at": None,
    }


def _retry_budget(inp: ExecuteBlockInput) -> tuple[float, bool]:
    """Seconds since the block's first attempt was scheduled, and whether the run's retry budget is spent."""
    waited = (datetime.now(UTC) - activity.info().scheduled_time).total_seconds()
    return waited, waited >= inp.storage_retry_budget_seconds


@contextmanager
def _local_deadline() -> Iterator[None]:
    """In a local activity, store calls give up shortly before the activity's own timeout."""
    info = activity.info()
    if not info.is_local or info.start_to_close_timeout is None:
        yield
        return
    # Entered as the activity starts: its whole start-to-close timeout lies ahead.
    with storage_deadline(info.start_to_close_timeout.total_seconds() - STORAGE_DEADLINE_MARGIN_SECONDS):
        yield


@asynccontextmanager
async def _heartbeats() -> Any:
    """Heartbeat while the block runs, so cancellation and a dead worker are noticed quickly."""
    if activity.info().is_local:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
