"""The reviews API through the official SDK, on reviews seeded with the worker's own store helper.

Reviews are opened here with `ReviewStore.open_review` (what the block activity calls when a gate fires), so
these tests need no gated run; the end-to-end approve / reject on a waiting run is in the workflow's tests.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.review_store import ReviewStore, compact_time
from activities.storage import ObjectStore
from docflow import keys
from docflow.reviews import (
    Actor,
    ReviewDecision,
    ReviewRecord,
    ReviewVersionRecord,
    model_actor,
    review_id,
    version_id,
)
from tests.conftest import Stack

INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "total": {"type": "number"},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    "required": ["total"],
}


def seed(
    store: ObjectStore,
    project_id: str,
    *,
    workflow_id: str = "wf_reviews",
    run_id: str | None = None,
    block_type: str = "extract",
    snapshot: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    **extra: Any,
) -> tuple[ReviewRecord, ReviewVersionRecord]:
    """Open a review as the block activity does: record + first version + index + queue marker."""
    run = run_id or f"run_{secrets.token_hex(12)}"
    step = f"step_{secrets.token_hex(6)}"
    rid = review_id(run, step)
    at = created_at or datetime.now(UTC)
    data = snapshot if snapshot is not None else {"total": 10.5}
    first = ReviewVersionRecord(
        id=version_id(rid, data),
        review_id=rid,
        project_id=project_id,
        author=model_actor("test-model"),
        snapshot=data,
        created_at=at,
    )
    record = ReviewRecord(
        id=rid,
        project_id=project_id,
        workflow_id=workflow_id,
        workflow_version_id="ver_test",
        run_id=run,
        block_id=extra.pop("block_id", f"blk_{secrets.token_hex(4)}"),
        step_id=step,
        block_type=block_type,  # type: ignore[arg-type]
        triggered_by={"kind": "always"},
        created_at=at,
        seed_version_id=first.id,
        **({"output_schema": INVOICE_SCHEMA} if block_type == "extract" else {}),
        **extra,
    )
    asyncio.run(ReviewStore(store).open_review(record, first))
    return record, first


# -- the store helper ---------------------------------------------------------------------------------


def test_opening_a_review_again_changes_nothing_and_makes_no_second_marker(stack: Stack, store: ObjectStore) -> None:
    record, first = seed(store, stack.project_id, workflow_id="wf_store_retry")
    # A retried activity: the same review, a later clock.
    later = record.model_copy(update={"created_at": record.created_at + timedelta(seconds=5)})
    asyncio.run(ReviewStore(store).open_review(later, first.model_copy(update={"created_at": later.created_at})))
    markers = [k for k in asyncio.run(ReviewStore(store).queue(stack.project_id)) if k.endswith(record.id)]
    assert markers == [keys.review_queue(stack.project_id, compact_time(record.created_at), record.id)]
    stored = asyncio.run(ReviewStore(store).get(stack.project_id, record.id))
    assert stored.created_at == record.created_at
    versions = asyncio.run(ReviewStore(store).versions(stack.project_id, record.id))
    assert [v.id for v in versions] == [first.id]


def test_decide_is_idempotent_and_never_overwrites_another_decision(stack: Stack, store: ObjectStore) -> None:
    record, first = seed(store, stack.project_id)
    reviews = ReviewStore(store)
    person = Actor(kind="human", id="key:abc", display_name="Ana")
    approve = ReviewDecision(verdict="approved", version_id=first.id, author=person, created_at=datetime.now(UTC))
    decided = asyncio.run(reviews.decide(stack.project_id, record.id, approve))
    assert (decided.status, decided.decision) == ("approved", approve)
    assert asyncio.run(reviews.decide(stack.project_id, record.id, approve)).decision == approve
    reject = approve.model_copy(update={"verdict": "rejected", "reason": "no"})
    kept = asyncio.run(reviews.decide(stack.project_id, record.id, reject))
    assert (kept.status, kept.decision) == ("approved", approve)
    closed = asyncio.run(reviews.close(stack.project_id, record.id, "run cancelled", datetime.now(UTC)))
    assert closed.status == "approved"
    assert asyncio.run(reviews.get(stack.project_id, record.id)).decision == approve


def test_close_cancels_a_pending_review_once(stack: Stack, store: ObjectStore) -> None:
    record, first = seed(store, stack.project_id)
    reviews = ReviewStore(store)
    at = datetime.now(UTC)
    closed = asyncio.run(reviews.close(stack.project_id, record.id, "run cancelled", at))
    assert (closed.status, closed.closed_reason, closed.closed_at) == ("cancelled", "run cancelled", at)
    person = Actor(kind="human", id="key:abc", display_name="Ana")
    late = ReviewDecision(verdict="approved", version_id=first.id, author=person, created_at=datetime.now(UTC))
    assert asyncio.run(reviews.decide(stack.project_id, record.id, late)).status == "cancelled"
