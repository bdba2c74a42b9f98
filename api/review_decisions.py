"""Approve and reject: a decision reaches the waiting run as the Workflow Update `review_decision`.

It is sent to the workflow holding the review's gate (`ReviewRecord.gate_workflow`): the run's, or a loop
batch's for a review inside a for_each run in batches.

The API checks what it can first (the review exists, the version is one of its own, it is not decided or
closed), then sends a `DecisionRequest`. The run's validator refuses a decision on a gate that is not open
before anything reaches history; once accepted, the run applies it (records it on the review, makes the
version the step's output or ends the step) and only then the Update returns. The answers:

- the same verdict on the same version of a review already decided → 200 `already_applied`, nothing changes;
  another decision, or a cancelled review → 409;
- refused by the run's validator → 409 `review_not_open` (unless the record now holds this very decision);
- the run closed or absent → 409 `run_not_running`, and the review is closed as cancelled: a run that ended
  without closing its reviews (terminated from the Temporal UI, say) never takes a decision, so the review
  leaves the queue instead of waiting there for ever (later decisions answer 409 `review_cancelled`);
- not accepted in `review_decision_timeout_seconds` (no worker, Temporal slow) → 503 `run_unavailable`, and the
  review stays open. Temporal keeps an admitted Update, so a worker that picks the run up later may still
  apply it; the Update id is derived from the decision, so a retry joins that Update instead of adding one,
  and once it is applied the retry answers `already_applied`;
- accepted but not finished within the timeout → 200 `accepted` with `resume_status: "pending"`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ConflictError, UnavailableError
from api.reviews_service import Reviews, ensure_open
from docflow.ids import fingerprint
from docflow.reviews import Actor, DecisionOutcome, DecisionRequest, ReviewRecord, Verdict
from docflow.temporal import REVIEW_DECISION_UPDATE

RUN_ENDED = "its run ended without a decision (terminated, or gone)"
_UNAVAILABLE = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}


class Decisions:
    """Approve / reject through the run."""

    def __init__(self, reviews: Reviews, temporal: Client, timeout_seconds: float) -> None:
        self.reviews = reviews
        self.temporal = temporal
        self.timeout = timeout_seconds

    async def decide(
        self,
        project_id: str,
        review_id: str,
        verdict: Verdict,
        version_id: str,
        reason: str | None,
        author: Actor,
    ) -> dict[str, Any]:
        """Deliver a decision to the review's run; the SDK's `SubmitDecisionResponse`."""
        record = await self.reviews.get(project_id, review_id)
        await self.reviews.version_of(project_id, record, version_id, "version_id")
        if _holds(record, verdict, version_id):
            return _answer(record, DecisionOutcome(submission_status="already_applied", resume_status="skipped"))
        ensure_open(record)
        request = DecisionRequest(
            review_id=record.id, verdict=verdict, version_id=version_id, reason=reason, author=author
        )
        try:
            outcome = await self._send(record, request)
        except WorkflowUpdateFailedError as exc:
            return await self._refused(project_id, record, request, exc)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                await self.reviews.reviews.close(project_id, record.id, RUN_ENDED, datetime.now(UTC))
                raise ConflictError(
                    f"the run of review '{record.id}' ('{record.run_id}') is not running; it takes no decision",
                    code="run_not_running",
                    review_id=record.id,
                    run_id=record.run_id,
                ) from exc
            if exc.status in _UNAVAILABLE:
                raise _unavailable(record) from exc
            raise
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise _unavailable(record) from exc
        return _answer(await self.reviews.get(project_id, record.id), outcome)

    async def _send(self, record: ReviewRecord, request: DecisionRequest) -> DecisionOutcome:
        """Start the Update and wait for it within the timeout: accepted-but-unfinished answers `pending`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # The workflow holding the gate: the run's, or for a review inside a loop batch, that batch's.
        handle = self.temporal.get_workflow_handle(record.gate_workflow)
        # The SDK re-sends an Update the server has only admitted, so its own deadline is bounded here too.
        async with asyncio.timeout(self.timeout):
            update = await handle.start_update(
                REVIEW_DECISION_UPDATE,
                request,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                id=_update_id(request),
                result_type=DecisionOutcome,
                rpc_timeout=timedelta(seconds=self.timeout),
            )
        remaining = deadline - loop.time()
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                outcome: DecisionOutcome = await update.result(rpc_timeout=timedelta(seconds=max(remaining, 0.001)))
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            return DecisionOutcome(submission_status="accepted", resume_status="pending")
        return outcome

    async def _refused(
        self, project_id: str, record: ReviewRecord, request: DecisionRequest, exc: WorkflowUpdateFailedError
    ) -> dict[str, Any]:
        """The run refused or failed the decision: already applied (a race with the same decision), else 409."""
        now = await self.reviews.get(project_id, record.id)
        if _holds(now, request.verdict, request.version_id):
            return _answer(now, DecisionOutcome(submission_status="already_applied", resume_status="skipped"))
        cause = exc.cause
        not_open = isinstance(cause, ApplicationError) and cause.type == "ReviewNotOpen"
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise ConflictError(
            f"the run refused the decision on review '{record.id}': {message}",
            code="review_not_open" if not_open else "decision_failed",
            review_id=record.id,
            run_id=record.run_id,
        ) from exc


def _holds(record: ReviewRecord, verdict: Verdict, version_id: str) -> bool:
    decision = record.decision
    return decision is not None and (decision.verdict, decision.version_id) == (verdict, version_id)


def _update_id(request: DecisionRequest) -> str:
    """One Update per decision: a retry of the same decision joins the Update Temporal already has."""
    digest = fingerprint(request.model_dump(mode="json", include={"verdict", "version_id", "reason"}))[:16]
    return f"review-decision:{request.review_id}:{digest}"


def _unavailable(record: ReviewRecord) -> UnavailableError:
    return UnavailableError(
        f"no worker took the decision on review '{record.id}' in time; the review stays open, retry later "
        "(Temporal keeps the request, so a worker that picks the run up may still apply it: a retry then "
        "answers already_applied)",
        code="run_unavailable",
        review_id=record.id,
        run_id=record.run_id,
    )


def _answer(record: ReviewRecord, outcome: DecisionOutcome) -> dict[str, Any]:
    return {
        "submission_status": outcome.submission_status,
        "review": record.public(),
        "resume_status": outcome.resume_status,
        "resume_error": outcome.resume_error,
    }
