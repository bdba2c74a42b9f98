"""Models of runs and steps: the workflow's inputs, its live state, and what activities exchange.

Lifecycles carry `status` (the SDK's discriminator) and mirror it as `kind` (what the get-run page reads).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_serializer

from docflow.models import Block, FileRef, Model

RunStatus = Literal["pending", "running", "awaiting_review", "completed", "error", "cancelled"]
StepStatus = Literal["pending", "queued", "running", "completed", "awaiting_review", "error", "skipped", "cancelled"]
TriggerType = Literal["manual", "api", "schedule", "webhook", "email", "custom", "restart"]


class HandleValue(Model):
    """A value on a handle. JSON over the inline limit lives in S3 and `data_ref` holds its key (claim check)."""

    type: Literal["file", "json"]
    document: FileRef | None = None
    data: Any = None
    data_ref: str | None = None

    def public(self) -> dict[str, Any]:
        """The SDK's handle payload: `{type: "file", document}` or `{type: "json", data}` (data loaded first)."""
        out: dict[str, Any] = {"type": self.type}
        if self.document is not None:
            out["document"] = self.document.model_dump(mode="json")
        if self.type == "json":
            out["data"] = self.data
        return out


class ArtifactRef(Model):
    """A step's artifact: `(operation, id)`."""

    operation: str
    id: str


class ErrorInfo(Model):
    """Why a step or run failed, with the block that failed."""

    message: str
    stage: str = "execution"
    category: Literal["transient", "permanent", "quota"] = "permanent"
    block_id: str | None = None
    block_name: str | None = None
    error_code: str | None = None
    context: dict[str, Any] | None = None


def elapsed_ms(start: datetime | None, end: datetime | None) -> int | None:
    """Whole milliseconds from start to end; None until both are known."""
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class Lifecycle(Model):
    """A tagged lifecycle; serialised with `status` and its mirror `kind`. Runs and steps narrow `status`."""

    status: str
    reason: str | None = None
    message: str | None = None
    stage: str | None = None
    category: str | None = None
    details: dict[str, Any] | None = None
    failing_step_id: str | None = None
    waiting_for_block_ids: list[str] | None = None

    @model_serializer(mode="wrap")
    def _public(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = {k: v for k, v in handler(self).items() if v is not None}
        data["kind"] = self.status
        return data


class StepLifecycle(Lifecycle):
    """A step's lifecycle: one of `StepStatus`."""

    status: StepStatus


class RunLifecycle(Lifecycle):
    """A run's lifecycle: one of `RunStatus`."""

    status: RunStatus


class LoopContainer(Model):
    """One loop a step runs inside (the SDK's `ContainerContextData`), outermost first on a step."""

    container_id: str
    iteration: int
    is_parallel: bool = False
    parallel_item_index: int | None = None


class StepState(Model):
    """What the workflow knows of one step; the step record in S3 adds the handle payloads."""

    step_id: str
    block_id: str
    block_type: str
    block_label: str = ""
    lifecycle: StepLifecycle = Field(default_factory=lambda: StepLifecycle(status="pending"))
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    model: str | None = None
    artifact: ArtifactRef | None = None
    routing_decisions: list[str] | None = None
    retry_count: int = 0
    # A reviewable block's `review_trigger_evaluation` (the step's `artifact` stays the block's own record).
    review_evaluation: ArtifactRef | None = None
    review_id: str | None = None
    # The loops this step runs inside; empty at the top level.
    loop_containers: list[LoopContainer] = Field(default_factory=list)
    # A container's step: how many iterations it ran, and (on_iteration_error=continue) those that failed.
    iterations: int | None = None
    failed_iterations: list[int] | None = None
    # A container whose iterations ran in batches (child workflows): the records of each batch's steps.
    step_pages: list[str] | None = None


class RunTiming(Model):
    """Run timing, with the get-run page's computed fields and their later names."""

    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    human_waiting_started_at: datetime | None = None
    accumulated_human_waiting_ms: int = 0

    @model_serializer(mode="wrap")
    def _public(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        duration = elapsed_ms(self.started_at, self.completed_at)
        data["duration_ms"] = duration
        data["active_duration_ms"] = None if duration is None else max(0, duration - self.accumulated_human_waiting_ms)
        data["review_waiting_started_at"] = data.get("human_waiting_started_at")
        data["accumulated_review_waiting_ms"] = self.accumulated_human_waiting_ms
        return data


class IgnoredSignal(Model):
    """A `review-decision` signal the run did not apply, and why."""

    received_at: datetime
    reason: str
    payload: Any = None


class RunInputRefs(Model):
    """The run's inputs as given at creation: documents by start block, JSON by start block."""

    documents: dict[str, FileRef] = Field(default_factory=dict)
    json_data: dict[str, Any] = Field(default_factory=dict)


class RunIdentity(Model):
    """What names a run: its id, project, workflow and pinned version, and what started it."""

    run_id: str
    project_id: str
    workflow_id: str
    version_id: str
    requested_version: str = "production"
    workflow_name: str = ""
    trigger: TriggerType = "api"


class RunWorkflowInput(RunIdentity):
    """The one input of `RunWorkflow`; fields are only ever added, with defaults."""

    created_at: datetime
    documents: dict[str, FileRef] = Field(default_factory=dict)
    json_inputs_key: str | None = None
    json_block_ids: list[str] = Field(default_factory=list)
    inline_output_limit_bytes: int = 128 * 1024
    max_concurrent_blocks: int = 16
    storage_retry_budget_seconds: float = 120.0
    # Whether the project has a webhook endpoint: the run sends review and run events only then.
    webhooks: bool = False
    # A for_each of more items runs them in batches of this many, each a child workflow (docs/loops.md).
    loop_batch_size: int = 100
    loop_max_items: int = 50_000
    loop_batches_per_history: int = 100


class RunState(RunIdentity):
    """The live state the run workflow answers queries with, and persists as its summary when it ends."""

    lifecycle: RunLifecycle = Field(default_factory=lambda: RunLifecycle(status="pending"))
    timing: RunTiming = Field(default_factory=RunTiming)
    inputs: RunInputRefs = Field(default_factory=RunInputRefs)
    steps: list[StepState] = Field(default_factory=list)
    # Review decisions sent as signals that could not be applied: recorded, then ignored (the newest 20).
    ignored_signals: list[IgnoredSignal] = Field(default_factory=list)

    @classmethod
    def initial(cls, inp: RunWorkflowInput, json_data: dict[str, Any] | None = None) -> RunState:
        """The state of a run that has not started yet."""
        return cls(
            **inp.model_dump(include=set(RunIdentity.model_fields)),
            timing=RunTiming(created_at=inp.created_at),
            inputs=RunInputRefs(documents=inp.documents, json_data=json_data or {}),
        )


class StepRecord(StepState):
    """A step record in S3: the state plus handle payloads, written by the activity that ran the block."""

    run_id: str
    project_id: str | None = None
    handle_inputs: dict[str, HandleValue] = Field(default_factory=dict)
    handle_outputs: dict[str, HandleValue] = Field(default_factory=dict)
    error: ErrorInfo | None = None


class RunContext(Model):
    """What an activity needs to know of the run it works for."""

    run_id: str
    project_id: str
    workflow_id: str
    version_id: str


class ExecuteBlockInput(Model):
    """Input of the block activity: one block, its step id and its handle inputs."""

    run: RunContext
    block: Block
    step_id: str
    inputs: dict[str, HandleValue] = Field(default_factory=dict)
    documents: dict[str, FileRef] = Field(default_factory=dict)
    json_inputs_key: str | None = None
    inline_output_limit_bytes: int = 128 * 1024
    # How long storage failures are retried, counted from the first attempt, before the step fails.
    storage_retry_budget_seconds: float = 120.0
    # False for a block execution (a rerun previews the block's output; it opens no review).
    review_gates: bool = True
    # The loops the step runs inside (outermost first); empty at the top level.
    loop_containers: list[LoopContainer] = Field(default_factory=list)
    # The workflow that holds the step's review gate when it is not the run's (a loop batch): decisions go there.
    gate_workflow_id: str | None = None


class OpenedReview(Model):
    """A review a block's gate opened: the run waits for its decision, or for the deadline's outcome."""

    review_id: str
    seed_version_id: str
    deadline_seconds: float | None = None
    on_deadline: Literal["approve", "reject"] | None = None
    deadline_reason: str | None = None


class BlockOutcome(Model):
    """What the block activity returns: small references, never document bytes."""

    outputs: dict[str, HandleValue] = Field(default_factory=dict)
    # Set when the block's review gate fired: `outputs` are the model's, held until the decision.
    review: OpenedReview | None = None
    review_evaluation: ArtifactRef | None = None
    routing_decisions: list[str] | None = None
    artifact: ArtifactRef | None = None
    model: str | None = None
    started_at: datetime
    completed_at: datetime


class LoadGraphInput(Model):
    """Input of the activity that loads a version's graph."""

    project_id: str
    workflow_id: str
    version_id: str


class PersistRunInput(Model):
    """Input of the activity that persists a run summary when the run ends."""

    state: RunState
