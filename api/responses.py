"""The response models of runs, steps, artifacts, reviews, block executions and test runs: what the OpenAPI
schema documents and what each answer is checked against.

The shapes are the SDK's (`retab/types/workflows`: `WorkflowRun`, `WorkflowRunStep`, `StoredBlockExecution`,
`Review`, `ReviewVersion`, `SubmitDecisionResponse`, `WorkflowTestRun`, `WorkflowTestResult`) plus the fields we
answer beyond them, each documented here (`ignored_signals`, `routing_decisions`, `forced`, lifecycles' `kind`…).
Nested parts that have one definition already (file refs, artifact refs, actors, counts, assertion results) are
those models, not copies. Every list answers the one envelope `api.paging.Page`.

A view declares every key we answer (`extra="forbid"`): a key added to a builder and not here is a failed
response check (500) in the tests, never an undocumented field. Routes serve these with
`response_model_exclude_unset=True`, so a key the builder left out (a lifecycle's unused fields) stays out of
the answer instead of coming back as null: the wire format is the builders', the schema documents it.
Artifacts are the exception: their fields depend on the operation, so beyond the common ones they are open.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docflow.assertion_models import AssertionResult
from docflow.executions import ExecutionStatus
from docflow.models import FileRef
from docflow.reviews import Actor, ResumeStatus, ReviewDecision, ReviewStatus, SubmissionStatus
from docflow.runs import ArtifactRef, IgnoredSignal, RunStatus, StepStatus, TriggerType
from docflow.test_runs import Counts, TestRunStatus, Verdict


class View(BaseModel):
    """Base of the response models: every key answered is declared here."""

    model_config = ConfigDict(extra="forbid")


# -- lifecycles: `status` (the SDK's discriminator), mirrored as `kind`; the other fields per status ----------


class LifecycleDetail(View):
    """The fields a lifecycle carries besides its status; each present only where its status has it."""

    reason: str | None = Field(default=None, description="skipped / cancelled: why")
    message: str | None = Field(default=None, description="error: what failed, for people")
    stage: str | None = Field(default=None, description="error: the stage that failed (e.g. execution)")
    category: str | None = Field(default=None, description="error: transient | permanent | quota")
    details: dict[str, Any] | None = Field(default=None, description="error: the failing block and context")
    failing_step_id: str | None = Field(default=None, description="error (runs): the step that failed")
    waiting_for_block_ids: list[str] | None = Field(default=None, description="awaiting_review: gated blocks")


class RunLifecycleView(LifecycleDetail):
    """A run's lifecycle."""

    status: RunStatus
    kind: RunStatus = Field(description="The same as `status` (the name the get-run page reads)")


class StepLifecycleView(LifecycleDetail):
    """A step's lifecycle."""

    status: StepStatus
    kind: StepStatus = Field(description="The same as `status`")


class ExecutionLifecycleView(LifecycleDetail):
    """A block execution's lifecycle."""

    status: ExecutionStatus
    kind: ExecutionStatus = Field(description="The same as `status`")


class TestRunLifecycleView(LifecycleDetail):
    """A test run's (or one test result's) lifecycle."""

    __test__ = False  # not a pytest test class

    status: TestRunStatus
    kind: TestRunStatus = Field(description="The same as `status`")


# -- runs ---------------------------------------------------------------------------------------------------


class Trigger(View):
    """What started a run."""

    type: TriggerType


class RunWorkflowRef(View):
    """The workflow as the run saw it (the get-run page's nested `workflow`)."""

    workflow_id: str
    version_id: str
    name_at_run_time: str
    requested_version: str = Field(description="What the caller asked for: production, draft or a version id")


class RunTimingView(View):
    """A run's timing, with durations computed from it; human waiting (reviews) counted apart."""

    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    human_waiting_started_at: datetime | None = Field(description="When the run began waiting for a review")
    accumulated_human_waiting_ms: int = Field(description="Time spent waiting for reviews, in ms")
    duration_ms: int | None = Field(description="completed_at - started_at, in ms")
    active_duration_ms: int | None = Field(description="duration_ms without the time spent waiting for reviews")
    review_waiting_started_at: datetime | None = Field(description="The same as human_waiting_started_at")
    accumulated_review_waiting_ms: int = Field(description="The same as accumulated_human_waiting_ms")


class RunInputsView(View):
    """The run's inputs: documents and JSON, each by start block id."""

    documents: dict[str, FileRef]
    json_data: dict[str, Any]


class RunView(View):
    """A run (the SDK's `WorkflowRun`) with the get-run page's extras."""

    id: str
    workflow_id: str
    workflow_version_id: str
    project_id: str
    workflow: RunWorkflowRef
    trigger: Trigger
    lifecycle: RunLifecycleView
    timing: RunTimingView
    inputs: RunInputsView
    ignored_signals: list[IgnoredSignal] = Field(
        description="Beyond the SDK: review-decision signals the run recorded and did not apply, and why"
    )


class CancelRunView(View):
    """The answer to a cancel (the SDK's `CancelWorkflowResponse`)."""

    run: RunView
    cancellation_status: Literal["cancelled", "cancellation_requested", "cancellation_failed"]
    redis_available: bool = Field(description="Always false: cancellation goes through Temporal")


# -- steps --------------------------------------------------------------------------------------------------


class HandlePayload(View):
    """A value on a handle: a document by reference, or JSON data."""

    type: Literal["file", "json"]
    document: FileRef | None = Field(default=None, description="file handles: the document")
    data: Any = Field(default=None, description="json handles: the value")


class LoopContainerView(View):
    """One loop a step runs inside (the SDK's `ContainerContextData`), outermost first."""

    container_id: str
    iteration: int = Field(description="0-based")
    is_parallel: bool = False
    parallel_item_index: int | None = None


class StepView(View):
    """A step of a run (the SDK's `WorkflowRunStep`) with `routing_decisions` as an extra."""

    run_id: str
    block_id: str
    step_id: str = Field(description="The block id, with the iteration context inside loops")
    block_type: str
    block_label: str
    lifecycle: StepLifecycleView
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    model: str | None = Field(description="The model the block used, where it uses one")
    loop_containers: list[LoopContainerView] | None = Field(
        default_factory=list, description="The loops the step runs inside, outermost first; empty at top level"
    )
    handle_inputs: dict[str, HandlePayload]
    handle_outputs: dict[str, HandlePayload]
    artifact: ArtifactRef | None
    routing_decisions: list[str] | None = Field(description="Beyond the SDK: the output handles the step took")
    retry_count: int
    iterations: int | None = Field(
        default=None, description="Beyond the SDK, on a loop container's step: the iterations it ran"
    )
    failed_iterations: list[int] | None = Field(
        default=None,
        description="Beyond the SDK, on a loop container's step with on_iteration_error=continue: the indexes "
        "of the iterations that failed (their outputs are null)",
    )


# -- artifacts ----------------------------------------------------------------------------------------------

ArtifactOperation = Literal[
    "extraction",
    "split",
    "classification",
    "parse",
    "edit",
    "partition",
    "conditional_evaluation",
    "review_trigger_evaluation",
    "while_loop_termination",
    "api_call_invocation",
    "function_invocation",
]


class ArtifactView(BaseModel):
    """The record a step leaves. The common fields are below; the rest depend on `operation` (the SDK's
    `ExtractionWorkflowArtifact`, `ConditionalEvaluation`, `ApiCallInvocation`… name them)."""

    model_config = ConfigDict(extra="allow")

    operation: ArtifactOperation
    id: str
    run_id: str
    project_id: str
    step_id: str
    block_id: str
    created_at: datetime


# -- reviews ------------------------------------------------------------------------------------------------


class ReviewView(View):
    """A review (the SDK's `Review`) with `status`, `closed_reason`, `deadline_at`, `gate_workflow_id` as extras."""

    id: str
    workflow_id: str
    workflow_version_id: str
    run_id: str
    block_id: str
    step_id: str
    parent_step_id: str | None
    iteration_key: str | None
    block_type: Literal["extract", "split", "classifier", "for_each"]
    triggered_by: dict[str, Any] = Field(description="The review predicate that fired (NOTES.md §8)")
    created_at: datetime
    decision: ReviewDecision | None
    status: ReviewStatus
    closed_reason: str | None = Field(description="Why a review closed without a decision (cancelled)")
    deadline_at: datetime | None = Field(description="When the block's review deadline decides for it")
    gate_workflow_id: str = Field(
        description="The Temporal workflow holding the review's gate, where an operator signals a decision: the "
        "run's, or a loop batch's for a review inside a for_each run in batches"
    )


class ReviewVersionView(View):
    """One immutable version of a review's snapshot (the SDK's `ReviewVersion`)."""

    id: str = Field(description="Content address of the snapshot within its review")
    review_id: str
    parent_id: str | None = Field(description="Null on the first version (the block's output)")
    author: Actor
    snapshot: dict[str, Any]
    note: str | None
    created_at: datetime


class DecisionView(View):
    """The answer to approve / reject (the SDK's `SubmitDecisionResponse`)."""

    submission_status: SubmissionStatus
    review: ReviewView
    resume_status: ResumeStatus
    resume_error: str | None


# -- block executions ---------------------------------------------------------------------------------------


class ExecutionView(View):
    """A block execution (the SDK's `StoredBlockExecution`) with `n_consensus`, `forced` and `drifted_blocks`."""

    id: str
    workflow_id: str
    workflow_version_id: str = Field(description="The source run's version")
    source_run_id: str
    block_id: str
    block_type: str
    lifecycle: ExecutionLifecycleView
    handle_inputs: dict[str, HandlePayload]
    handle_outputs: dict[str, HandlePayload]
    artifact: ArtifactRef | None
    routing_decisions: list[str] | None
    duration_ms: float | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    handle_inputs_fingerprint: str
    block_config_fingerprint: str
    workflow_draft_fingerprint: str = Field(description="Of the block's upstream subgraph in the draft")
    execution_fingerprint: str = Field(description="Of the three others and n_consensus")
    block_config: dict[str, Any] = Field(description="The draft config the block ran with")
    source_step_id: str
    available_iterations: list[dict[str, Any]] | None = Field(
        default=None, description="For a block inside a loop given without step_id: the iterations to choose from"
    )
    n_consensus: int | None = Field(description="This execution's override, if any")
    forced: bool = Field(description="Run with check_eligibility=false although the upstream had drifted")
    drifted_blocks: list[str] = Field(description="The upstream blocks that differed from the source version")


# -- test runs and results ----------------------------------------------------------------------------------


class TestTiming(View):
    """A test run's (or result's) timing."""

    __test__ = False  # not a pytest test class

    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class TestTarget(View):
    """The block a test run is limited to."""

    __test__ = False  # not a pytest test class

    type: Literal["block"]
    block_id: str


class TestRunView(View):
    """A test run (the SDK's `WorkflowTestRun`) with `n_consensus` as an extra."""

    __test__ = False  # not a pytest test class

    id: str
    workflow_id: str
    workflow_version_id: str
    trigger: Trigger
    lifecycle: TestRunLifecycleView
    timing: TestTiming
    target: TestTarget | None
    test_id: str | None
    total_tests: int
    counts: Counts = Field(description="Live while the run runs: lifecycle buckets, and outcomes of completed tests")
    n_consensus: int | None = Field(description="This run's override, if any")


class VerdictSummary(View):
    """A judged result in numbers."""

    passed: bool
    assertions_passed: int
    assertions_failed: int
    blocked_assertions: int
    failed_assertion_ids: list[str]


class TestResultView(View):
    """One test's result in a test run (the SDK's `WorkflowTestResult`)."""

    __test__ = False  # not a pytest test class

    id: str
    workflow_test_run_id: str
    test_id: str
    lifecycle: TestRunLifecycleView
    timing: TestTiming
    verdict: Verdict | None
    workflow_id: str
    block_id: str
    block_type: str
    handle_inputs_fingerprint: str | None = Field(default=None, description="Absent when the test was blocked")
    block_config_fingerprint: str | None = Field(default=None, description="Absent when the test was blocked")
    workflow_draft_fingerprint: str | None = Field(default=None, description="Absent when the test was blocked")
    execution_fingerprint: str | None = Field(default=None, description="Absent when the test was blocked")
    artifact: ArtifactRef | None
    handle_inputs: dict[str, HandlePayload]
    handle_outputs: dict[str, HandlePayload] | None
    routing_decisions: list[str] | None
    warnings: list[str]
    assertion_result: AssertionResult | None
    verdict_summary: VerdictSummary | None
    execution_id: str | None = Field(description="The block execution the test ran, none when blocked")


# -- declarative specs (the SDK's `DeclarativeExportResponse`, `…ValidationResponse`, `…PlanResponse`,
# `…ApplyResponse`) --------------------------------------------------------------------------------------


class SpecExportView(View):
    """A workflow's draft as its YAML spec."""

    workflow_id: str
    yaml_definition: str


class SpecValidationView(View):
    """A valid spec's counts, and its warnings (what would stop publishing) in `diagnostics`."""

    workflow_id: str = Field(description="The spec's metadata.id, or empty")
    block_count: int
    edge_count: int
    is_valid: bool
    diagnostics: dict[str, Any] = Field(description="`errors` (always empty: an error is a 400) and `warnings`")


class SpecFieldChange(View):
    """One field a plan changes in a resource."""

    path: list[str | int]
    path_display: str
    action: Literal["create", "update", "delete"]
    before: Any = None
    after: Any = None


class SpecResourceDiff(View):
    """A resource's spec fields before and after (None: absent), and the fields that change."""

    before: Any = None
    after: Any = None
    field_changes: list[SpecFieldChange] = Field(default_factory=list)


class SpecResourceChange(View):
    """One workflow, block or edge a plan creates, updates, deletes or replaces (`actions` delete, create)."""

    address: str
    target: Literal["workflow", "block", "edge"]
    target_id: str
    name: str
    type: str = Field(description="`workflow`, `edge`, or the block's type")
    actions: list[Literal["create", "update", "delete"]]
    summary: str
    change: SpecResourceDiff


class SpecPlanSummary(View):
    """Counts of a plan's changes."""

    add: int
    change: int
    destroy: int
    replace: int
    noop: int
    total: int
    has_changes: bool


class SpecPlanView(View):
    """What applying a spec would change; `action` noop when the draft already matches."""

    workflow_id: str = Field(description="The target workflow; empty when the spec would create one")
    action: Literal["create", "update", "noop"]
    block_count: int
    edge_count: int
    diagnostics: dict[str, Any]
    format_version: str = "workflows-plan/v1"
    summary: SpecPlanSummary
    resource_changes: list[SpecResourceChange]
    rendered_plan: str


class SpecApplyView(SpecPlanView):
    """What applying a spec changed; `created` when it made a new workflow."""

    created: bool
