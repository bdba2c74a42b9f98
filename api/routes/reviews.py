"""Reviews (NOTES.md §8): the queue, one review, its versions, approve and reject.

`/reviews/versions` is declared before `/reviews/{review_id}`, so "versions" is never read as a review id.
Who saves a version or decides is the API key (`key:…`), shown under the name the caller gives in the
`reviewer` query parameter (the SDK sends extra keyword arguments as query parameters), else the key's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import PrincipalDep
from api.errors import InvalidError
from api.paging import Page
from api.responses import DecisionView, ReviewVersionView, ReviewView
from api.review_decisions import Decisions
from api.reviews_service import CreateReviewVersion, DecisionStatus, ReviewFilters, Reviews
from docflow.reviews import Actor

router = APIRouter(tags=["reviews"])

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page")]
Cursor = Annotated[str | None, Query(max_length=100, description="An id of the list to page from")]
Reviewer = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="The reviewer's name, shown on what they save or decide"),
]


class ApproveReview(BaseModel):
    """Approve one version of a review: its snapshot becomes the step's output."""

    version_id: str = Field(min_length=1, max_length=100)


class RejectReview(BaseModel):
    """Reject one version of a review, with a reason: the step ends in error and its downstream does not run."""

    version_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=10_000, description="Required, non-empty")


def reviews_of(request: Request) -> Reviews:
    """The review service bound to the app's store."""
    return Reviews(request.app.state.store, request.app.state.settings)


def _author(principal: PrincipalDep, reviewer: str | None) -> Actor:
    name = reviewer.strip() if reviewer else ""
    return Actor(kind="human", id=principal.key_id, display_name=name or principal.key_name)


@router.get("/reviews", response_model=Page[ReviewView], response_model_exclude_unset=True)
async def list_reviews(
    request: Request,
    principal: PrincipalDep,
    workflow_id: str | None = None,
    run_id: str | None = None,
    block_id: str | None = None,
    step_id: str | None = None,
    iteration_key: str | None = None,
    decision_status: DecisionStatus = "pending",
    before: Cursor = None,
    after: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """The review queue, oldest first by `created_at`; `decision_status` pending (default) | approved | rejected |
    decided | all (cancelled reviews appear only under `all`)."""
    filters = ReviewFilters(workflow_id, run_id, block_id, step_id, iteration_key, decision_status)
    return await reviews_of(request).queue_page(principal.project_id, filters, before, after, limit)


@router.get("/reviews/versions", response_model=Page[ReviewVersionView], response_model_exclude_unset=True)
async def list_review_versions(
    request: Request,
    principal: PrincipalDep,
    review_id: Annotated[str, Query(max_length=100, description="The review whose versions to list")],
    before: Cursor = None,
    after: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """A review's versions, oldest first; the first (`parent_id` null) holds the block's output."""
    return await reviews_of(request).versions(principal.project_id, review_id, before, after, limit)


@router.post("/reviews/versions", status_code=201, response_model=ReviewVersionView, response_model_exclude_unset=True)
async def create_review_version(
    request: Request, response: Response, body: CreateReviewVersion, principal: PrincipalDep, reviewer: Reviewer = None
) -> dict[str, Any]:
    """Save a corrected snapshot as a new version (checked against the block's output shape: 422 naming the
    path). Versions are content-addressed: the same snapshot again returns the stored version (200)."""
    version, created = await reviews_of(request).create_version(
        principal.project_id, body, _author(principal, reviewer)
    )
    if not created:
        response.status_code = 200
    return version.public()


@router.get("/reviews/versions/{version_id}", response_model=ReviewVersionView, response_model_exclude_unset=True)
async def get_review_version(request: Request, version_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """One review version by its content-addressed id."""
    return (await reviews_of(request).version(principal.project_id, version_id)).public()


@router.get("/reviews/{review_id}", response_model=ReviewView, response_model_exclude_unset=True)
async def get_review(request: Request, review_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """One review and its decision (versions are listed separately)."""
    return (await reviews_of(request).get(principal.project_id, review_id)).public()


def decisions_of(request: Request) -> Decisions:
    """The decision service bound to the app's clients."""
    state = request.app.state
    return Decisions(reviews_of(request), state.temporal, state.settings.review_decision_timeout_seconds)


@router.post("/reviews/{review_id}/approve", response_model=DecisionView, response_model_exclude_unset=True)
async def approve_review(
    request: Request, review_id: str, body: ApproveReview, principal: PrincipalDep, reviewer: Reviewer = None
) -> dict[str, Any]:
    """Approve a version: the run resumes with its snapshot as the step's output. The same approval again
    answers `already_applied`; another decision on a decided review, 409; no worker in time, 503."""
    author = _author(principal, reviewer)
    decisions = decisions_of(request)
    return await decisions.decide(principal.project_id, review_id, "approved", body.version_id, None, author)


@router.post("/reviews/{review_id}/reject", response_model=DecisionView, response_model_exclude_unset=True)
async def reject_review(
    request: Request, review_id: str, body: RejectReview, principal: PrincipalDep, reviewer: Reviewer = None
) -> dict[str, Any]:
    """Reject a version with a reason: the step ends in error and the blocks after it do not run."""
    reason = body.reason.strip()
    if not reason:
        raise InvalidError("reason: a rejection needs a non-empty reason", code="invalid_request", field="reason")
    author = _author(principal, reviewer)
    return await decisions_of(request).decide(
        principal.project_id, review_id, "rejected", body.version_id, reason, author
    )
