"""What the run workflow and the review activities exchange when a gate's decision is applied or its review closed."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from docflow.models import Block, Model
from docflow.reviews import DecisionRequest
from docflow.runs import BlockOutcome, RunContext


class ApplyDecisionInput(Model):
    """Apply one accepted decision: the review records it, the step takes the approved version as its output."""

    run: RunContext
    block: Block
    step_id: str
    review_id: str
    decision: DecisionRequest
    decided_at: datetime
    # The block's outcome as the model left it: kept when the approved version is the model's own.
    outcome: BlockOutcome
    inline_output_limit_bytes: int = 128 * 1024


class AppliedDecision(Model):
    """The step's outcome after an approval (None after a rejection), or why the decision could not apply."""

    outcome: BlockOutcome | None = None
    refused: str | None = None


class CloseReviewsInput(Model):
    """Close open reviews without a decision (the run was cancelled or failed elsewhere)."""

    run: RunContext
    review_ids: list[str] = Field(default_factory=list)
    reason: str
    closed_at: datetime


class GateTime(Model):
    """When one gate's wait started or ended, on the batch's workflow clock."""

    review_id: str
    at: datetime


class GateReport(Model):
    """A loop batch's gates, told to its run (signal `loop-gates`): the run shows them and counts their wait.

    `waiting` is the batch's whole set of gates waiting for a decision (review id → block id), replacing the
    last one the run had from `source`; `opened` and `closed` are the waits that started and ended since.
    """

    source: str = Field(max_length=1000)
    waiting: dict[str, str] = Field(default_factory=dict)
    opened: list[GateTime] = Field(default_factory=list)
    closed: list[GateTime] = Field(default_factory=list)
