"""A stand-in for a run waiting at review gates, speaking the run's decision contract (`docflow.reviews`).

It lets the API's decision path be tested on a real Temporal server before the run workflow has gates: the
Update `review_decision` with a validator that refuses a review whose gate is not open
(`ApplicationError(type="ReviewNotOpen")`), and a handler that closes the gate, records the decision on the
review through `ReviewStore.decide` in an activity, and only then answers with a `DecisionOutcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from docflow.reviews import DecisionOutcome, DecisionRequest, ReviewDecision
    from docflow.temporal import REVIEW_DECISION_UPDATE
    from storage.reviews import ReviewStore


@dataclass
class GateInput:
    """The project and the reviews whose gates are open."""

    project_id: str
    review_ids: list[str]


@dataclass
class ApplyInput:
    """A decision to record on its review."""

    project_id: str
    request: DecisionRequest
    decided_at: str


class ApplyDecision:
    """The activity that records a decision on the review."""

    def __init__(self, reviews: ReviewStore) -> None:
        self.reviews = reviews

    @activity.defn(name="review_double_apply")
    async def apply(self, inp: ApplyInput) -> None:
        """Write the decision onto the review record."""
        req = inp.request
        decision = ReviewDecision(
            verdict=req.verdict,
            version_id=req.version_id,
            author=req.author,
            created_at=datetime.fromisoformat(inp.decided_at),
            reason=req.reason,
        )
        await self.reviews.decide(inp.project_id, req.review_id, decision)


@workflow.defn(name="ReviewGateDouble")
class ReviewGateDouble:
    """Waits until every open gate is decided; returns the verdicts by review id."""

    @workflow.init
    def __init__(self, inp: GateInput) -> None:
        self.project_id = inp.project_id
        self.open = set(inp.review_ids)
        self.verdicts: dict[str, str] = {}

    @workflow.run
    async def run(self, inp: GateInput) -> dict[str, str]:
        """Wait for the decisions."""
        await workflow.wait_condition(lambda: not self.open and workflow.all_handlers_finished())
        return self.verdicts

    @workflow.update(name=REVIEW_DECISION_UPDATE)
    async def decide(self, req: DecisionRequest) -> DecisionOutcome:
        """Close the gate first (a concurrent second decision is then refused), record, answer."""
        self.open.discard(req.review_id)
        inp = ApplyInput(self.project_id, req, workflow.now().isoformat())
        await workflow.execute_activity("review_double_apply", inp, start_to_close_timeout=timedelta(seconds=30))
        self.verdicts[req.review_id] = req.verdict
        return DecisionOutcome()

    @decide.validator
    def check(self, req: DecisionRequest) -> None:
        """Refuse a decision on a gate that is not open."""
        if req.review_id not in self.open:
            raise ApplicationError(f"review '{req.review_id}' is not open in this run", type="ReviewNotOpen")
