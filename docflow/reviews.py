"""Reviews (NOTES.md §8, third generation): records and versions in S3, and what the API and the run exchange.

A gate that fires opens one review per step (`rev_…`, derived from run and step so a retried activity opens
the same one) with a first version holding the block's output (author: the model). Reviewers add versions
(content-addressed `rvr_…`) and decide on one: the decision reaches the run as a Workflow Update (the API) or a
signal (an operator), both carrying a `DecisionRequest`; the run applies it and records it on the review.

Snapshot shapes (what a version holds): extract → its output object; classifier → `{"category": name}`;
split → `{"documents": [{"name", "pages": [1-based, sorted, unique]}]}`.

Version ids: `rvr_` + lowercase base32 (no padding) of the first 16 bytes of sha256 over the canonical JSON of
`{review_id, snapshot}`. NOTES.md hashes the snapshot alone; the review id is added so two reviews whose
outputs happen to be equal do not share a version id (`GET /reviews/versions/{id}` must name one version).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from docflow.ids import canonical_json, derived_id
from docflow.models import Model

REVIEW = "rev_"
REVIEW_VERSION = "rvr_"
REVIEWABLE_TYPES = frozenset({"extract", "classifier", "split"})

ReviewStatus = Literal["pending", "approved", "rejected", "cancelled"]
Verdict = Literal["approved", "rejected"]
ActorKind = Literal["model", "agent", "human"]
SubmissionStatus = Literal["accepted", "already_applied", "conflict"]
ResumeStatus = Literal["resumed", "pending", "failed", "skipped"]


class Actor(Model):
    """Who wrote a version or decided: a person (API key or given name), the model, or docflow itself."""

    kind: ActorKind
    id: str
    display_name: str


def model_actor(model: str | None) -> Actor:
    """The author of a review's first version: the block's model."""
    name = model or "model"
    return Actor(kind="model", id=name, display_name=name)


DEADLINE_ACTOR = Actor(kind="agent", id="docflow:review-deadline", display_name="review deadline")


class ReviewDecision(Model):
    """The one decision of a review."""

    verdict: Verdict
    version_id: str
    author: Actor
    created_at: datetime
    reason: str | None = None


class ReviewRecord(Model):
    """A review as stored: the SDK's `Review` plus what the API needs to check versions and find the run."""

    id: str
    project_id: str
    workflow_id: str
    workflow_version_id: str
    run_id: str
    block_id: str
    step_id: str
    parent_step_id: str | None = None
    iteration_key: str | None = None
    block_type: Literal["extract", "split", "classifier", "for_each"]
    triggered_by: dict[str, Any]
    created_at: datetime
    decision: ReviewDecision | None = None
    # Beyond the SDK's shape (clients ignore extra keys):
    status: ReviewStatus = "pending"
    closed_reason: str | None = None
    closed_at: datetime | None = None
    seed_version_id: str
    evaluation_artifact_id: str | None = None
    block_label: str = ""
    # What a version's snapshot is checked against (api): the extract's schema, the classifier's categories,
    # the split's sub-document names and the document's page count.
    output_schema: dict[str, Any] | None = None
    categories: list[str] | None = None
    subdocuments: list[str] | None = None
    page_count: int | None = None
    deadline_at: datetime | None = None
    # The workflow holding the review's gate, where decisions are sent: a loop batch's, or (None) the run's.
    gate_workflow_id: str | None = None

    @property
    def gate_workflow(self) -> str:
        """The Temporal workflow id a decision on this review is sent to."""
        return self.gate_workflow_id or self.run_id

    def public(self) -> dict[str, Any]:
        """The SDK's `Review`, with `status` (and when closed, why) and the gate's workflow as extras."""
        data = self.model_dump(
            mode="json",
            include={
                "id",
                "workflow_id",
                "workflow_version_id",
                "run_id",
                "block_id",
                "step_id",
                "parent_step_id",
                "iteration_key",
                "block_type",
                "triggered_by",
                "created_at",
                "decision",
                "status",
                "closed_reason",
                "deadline_at",
            },
        )
        data["gate_workflow_id"] = self.gate_workflow  # where an operator signals a decision
        return data


class ReviewVersionRecord(Model):
    """One immutable version of a review's snapshot."""

    id: str
    review_id: str
    project_id: str
    parent_id: str | None = None
    author: Actor
    snapshot: dict[str, Any]
    note: str | None = None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """The SDK's `ReviewVersion`."""
        return self.model_dump(mode="json", exclude={"project_id"})


class DecisionRequest(Model):
    """A decision on one review, as the Update `review_decision` and the signal `review-decision` carry it."""

    review_id: str = Field(min_length=1, max_length=100)
    verdict: Verdict
    version_id: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=10_000)
    author: Actor = Field(default_factory=lambda: Actor(kind="human", id="temporal", display_name="Temporal operator"))


class DecisionOutcome(Model):
    """What the run answers a decision Update with."""

    submission_status: SubmissionStatus = "accepted"
    resume_status: ResumeStatus = "resumed"
    resume_error: str | None = None


def review_id(run_id: str, step_id: str) -> str:
    """The review of a step (one per step; a retried activity opens the same one)."""
    return derived_id(REVIEW, run_id, step_id, length=24)


def version_id(review: str, snapshot: dict[str, Any]) -> str:
    """The content address of a snapshot within a review."""
    digest = hashlib.sha256(canonical_json({"review_id": review, "snapshot": snapshot})).digest()[:16]
    return REVIEW_VERSION + base64.b32encode(digest).decode().rstrip("=").lower()
