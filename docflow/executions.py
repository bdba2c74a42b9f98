"""Block executions (NOTES.md §5): one block rerun with the current draft's config on a past run's step inputs.

An execution (`wfsim_…`) is a `BlockExecutionWorkflow` of its own, linked to its source run by memo and by the
`DocflowSourceRun` search attribute (a finished run cannot be a parent, so it is not a child of it). Its records
(step record, large outputs, the execution record) live under `executions/<id>/` (docflow.keys). The record is
the SDK's `StoredBlockExecution`, with `forced` (run with `check_eligibility=false` although the upstream
subgraph had drifted) and `drifted_blocks` as extras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from docflow.models import Block, FileRef, Model
from docflow.runs import ArtifactRef, HandleValue, Lifecycle

ExecutionStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled", "skipped"]


class ExecutionLifecycle(Lifecycle):
    """A block execution's lifecycle: one of `ExecutionStatus`."""

    status: ExecutionStatus


class Fingerprints(Model):
    """What identifies an execution (docflow.fingerprints): the same four → the same result."""

    handle_inputs_fingerprint: str
    block_config_fingerprint: str
    workflow_draft_fingerprint: str
    execution_fingerprint: str


class BlockExecutionInput(Model):
    """The one input of `BlockExecutionWorkflow`: the block as the draft has it, the source step's inputs."""

    execution_id: str
    project_id: str
    workflow_id: str
    workflow_version_id: str
    source_run_id: str
    source_step_id: str
    block: Block
    inputs: dict[str, HandleValue] = Field(default_factory=dict)
    documents: dict[str, FileRef] = Field(default_factory=dict)
    json_inputs_key: str | None = None
    created_at: datetime
    fingerprints: Fingerprints
    n_consensus: int | None = None
    forced: bool = False
    drifted_blocks: list[str] = Field(default_factory=list)
    inline_output_limit_bytes: int = 128 * 1024
    storage_retry_budget_seconds: float = 120.0


class ExecutionRecord(Model):
    """An execution as stored and served; payloads are read from its step record."""

    id: str
    project_id: str
    workflow_id: str
    workflow_version_id: str
    source_run_id: str
    source_step_id: str
    block_id: str
    block_type: str
    block_config: dict[str, Any] = Field(default_factory=dict)
    lifecycle: ExecutionLifecycle = Field(default_factory=lambda: ExecutionLifecycle(status="queued"))
    artifact: ArtifactRef | None = None
    routing_decisions: list[str] | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    fingerprints: Fingerprints
    n_consensus: int | None = None
    forced: bool = False
    drifted_blocks: list[str] = Field(default_factory=list)

    @classmethod
    def initial(cls, inp: BlockExecutionInput) -> ExecutionRecord:
        """The record of an execution that has not started."""
        return cls(
            id=inp.execution_id,
            project_id=inp.project_id,
            workflow_id=inp.workflow_id,
            workflow_version_id=inp.workflow_version_id,
            source_run_id=inp.source_run_id,
            source_step_id=inp.source_step_id,
            block_id=inp.block.id,
            block_type=inp.block.type,
            block_config=inp.block.config,
            created_at=inp.created_at,
            fingerprints=inp.fingerprints,
            n_consensus=inp.n_consensus,
            forced=inp.forced,
            drifted_blocks=inp.drifted_blocks,
        )

    def duration_ms(self) -> float | None:
        """Start to end of the block, in milliseconds."""
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000


class PersistExecutionInput(Model):
    """Input of the activity that stores an execution's record when it ends."""

    record: ExecutionRecord
