"""The reviews API through the official SDK, on reviews seeded with the worker's own store helper.

Reviews are opened here with `ReviewStore.open_review` (what the block activity calls when a gate fires), so
these tests need no gated run; the end-to-end approve / reject on a waiting run is in the workflow's tests.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from retab import AsyncRetab, Retab
from retab.exceptions import ConflictError, NotFoundError
from temporalio.worker import Worker

from api.auth import create_key
from api.errors import ConflictError as ApiConflict
from api.errors import TooLargeError
from api.reviews_service import CreateReviewVersion, ReviewFilters, Reviews
from docflow import keys
from docflow.keys import compact_time
from docflow.reviews import (
    Actor,
    ReviewDecision,
    ReviewRecord,
    ReviewVersionRecord,
    model_actor,
    review_id,
    version_id,
)
from docflow.temporal import RUN_WORKFLOW, connect
from storage.objects import ObjectStore, Versioned
from storage.payloads import external_storage
from storage.reviews import ReviewStore
from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for
from tests.review_gate_double import ApplyDecision, GateInput, ReviewGateDouble

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
    assert markers == [f"{compact_time(record.created_at)}_{record.id}"]
    pending = [k for k in asyncio.run(ReviewStore(store).queue(stack.project_id, pending_only=True)) if record.id in k]
    assert pending == markers
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


# -- helpers for the API tests -------------------------------------------------------------------------


def fresh_project(stack: Stack, name: str) -> tuple[Retab, httpx.Client, str]:
    """A key of a project of its own (an empty queue), as the SDK and as raw HTTP."""
    key, project = create_key(stack.settings.keys_file, name=name)
    sdk = Retab(api_key=key, base_url=stack.api_url, max_retries=0)
    return sdk, httpx.Client(base_url=stack.api_url, headers={"Api-Key": key}, timeout=30), project


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    detail: dict[str, Any] = answer.json()["detail"]
    return detail


def ids(listing: Any) -> list[str]:
    return [r.id for r in listing.data]


# -- list --------------------------------------------------------------------------------------------


@pytest.fixture
def queue(stack: Stack, store: ObjectStore) -> tuple[Retab, httpx.Client, dict[str, ReviewRecord]]:
    """Six reviews in a project of their own, opened out of time order, in every status."""
    sdk, http, project = fresh_project(stack, "reviews-queue")
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    run_a, run_b = f"run_{secrets.token_hex(12)}", f"run_{secrets.token_hex(12)}"
    made = {
        "late": seed(store, project, workflow_id="wf_a", run_id=run_a, created_at=t0 + timedelta(hours=5)),
        "first": seed(store, project, workflow_id="wf_a", run_id=run_a, created_at=t0, iteration_key="0"),
        "second": seed(store, project, workflow_id="wf_b", run_id=run_b, created_at=t0 + timedelta(hours=1)),
        "approved": seed(store, project, workflow_id="wf_b", run_id=run_b, created_at=t0 + timedelta(hours=2)),
        "rejected": seed(store, project, workflow_id="wf_a", run_id=run_a, created_at=t0 + timedelta(hours=3)),
        "cancelled": seed(store, project, workflow_id="wf_b", run_id=run_b, created_at=t0 + timedelta(hours=4)),
    }
    reviews = ReviewStore(store)
    person = Actor(kind="human", id="key:x", display_name="Ana")
    for name, verdict in (("approved", "approved"), ("rejected", "rejected")):
        record, first = made[name]
        decision = ReviewDecision(verdict=verdict, version_id=first.id, author=person, created_at=t0, reason="r")  # type: ignore[arg-type]
        asyncio.run(reviews.decide(project, record.id, decision))
    asyncio.run(reviews.close(project, made["cancelled"][0].id, "run cancelled", t0))
    return sdk, http, {name: asyncio.run(reviews.get(project, r.id)) for name, (r, _) in made.items()}


def test_the_queue_lists_pending_reviews_oldest_first_by_default(queue: Any) -> None:
    sdk, _, made = queue
    listed = sdk.workflows.reviews.list()
    assert ids(listed) == [made[n].id for n in ("first", "second", "late")]
    assert listed.data[0].workflow_id == "wf_a" and listed.data[0].decision is None
    assert listed.data[0].triggered_by.kind == "always"


@pytest.mark.parametrize(
    ("status", "names"),
    [
        ("pending", ["first", "second", "late"]),
        ("approved", ["approved"]),
        ("rejected", ["rejected"]),
        ("decided", ["approved", "rejected"]),
        ("all", ["first", "second", "approved", "rejected", "cancelled", "late"]),
    ],
)
def test_decision_status_filters_the_queue(queue: Any, status: str, names: list[str]) -> None:
    sdk, _, made = queue
    assert ids(sdk.workflows.reviews.list(decision_status=status)) == [made[n].id for n in names]


def test_every_id_filter_narrows_the_queue(queue: Any) -> None:
    sdk, http, made = queue
    reviews = sdk.workflows.reviews
    assert ids(reviews.list(workflow_id="wf_b", decision_status="all")) == [
        made[n].id for n in ("second", "approved", "cancelled")
    ]
    assert ids(reviews.list(run_id=made["first"].run_id)) == [made["first"].id, made["late"].id]
    assert ids(reviews.list(block_id=made["second"].block_id)) == [made["second"].id]
    assert ids(reviews.list(step_id=made["late"].step_id)) == [made["late"].id]
    assert ids(reviews.list(iteration_key="0")) == [made["first"].id]
    assert ids(reviews.list(workflow_id="wf_none")) == []
    assert (
        problem(http.get("/v1/workflows/reviews", params={"decision_status": "open"}), 422)["details"]["field"]
        == "decision_status"
    )


def test_the_queue_pages_forwards_and_backwards(queue: Any) -> None:
    sdk, http, made = queue
    order = [made[n].id for n in ("first", "second", "approved", "rejected", "cancelled", "late")]
    first = sdk.workflows.reviews.list(decision_status="all", limit=2)
    assert ids(first) == order[:2] and first.list_metadata.after == order[1]
    second = sdk.workflows.reviews.list(decision_status="all", limit=2, after=first.list_metadata.after)
    assert ids(second) == order[2:4]
    last = sdk.workflows.reviews.list(decision_status="all", limit=2, after=order[3])
    assert ids(last) == order[4:] and last.list_metadata.after is None
    assert [r.id for r in sdk.workflows.reviews.list(decision_status="all", limit=2)] == order  # auto-paging
    back = sdk.workflows.reviews.list(decision_status="all", limit=2, before=order[4])
    assert ids(back) == order[2:4]
    assert ids(sdk.workflows.reviews.list(limit=1, after=made["first"].id)) == [made["second"].id]
    assert problem(http.get("/v1/workflows/reviews", params={"after": "rev_nope"}), 422)["details"]["field"] == "after"
    assert problem(http.get("/v1/workflows/reviews", params={"limit": 101}), 422)["details"]["field"] == "limit"


class ReadCountingStore(ObjectStore):
    """The real store, remembering which review records it read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.records_read: list[str] = []

    async def get_json(self, key: str) -> Versioned:
        if key.endswith("/review.json"):
            self.records_read.append(key)
        return await super().get_json(key)


def test_the_pending_queue_reads_only_reviews_still_pending(stack: Stack, store: ObjectStore) -> None:
    _, _, project = fresh_project(stack, "reviews-pending-reads")
    reviews = ReviewStore(store)
    person = Actor(kind="human", id="key:x", display_name="Ana")
    for _ in range(12):
        record, first = seed(store, project)
        decision = ReviewDecision(verdict="approved", version_id=first.id, author=person, created_at=datetime.now(UTC))
        asyncio.run(reviews.decide(project, record.id, decision))
    for _ in range(3):
        record, _ = seed(store, project)
        asyncio.run(reviews.close(project, record.id, "run cancelled", datetime.now(UTC)))
    waiting, _ = seed(store, project)
    counting = ReadCountingStore(stack.settings)
    page = asyncio.run(Reviews(counting, stack.settings).queue_page(project, ReviewFilters(), None, None, 50))
    assert [r["id"] for r in page["data"]] == [waiting.id]
    assert counting.records_read == [keys.review(project, waiting.id)]
    everything = asyncio.run(
        Reviews(store, stack.settings).queue_page(project, ReviewFilters(decision_status="all"), None, None, 50)
    )
    assert len(everything["data"]) == 16


def test_paging_on_from_a_review_decided_since_the_last_page(stack: Stack, store: ObjectStore) -> None:
    sdk, _, project = fresh_project(stack, "reviews-paging-decided")
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    made = [seed(store, project, created_at=t0 + timedelta(minutes=i)) for i in range(3)]
    first_page = sdk.workflows.reviews.list(limit=1)
    assert ids(first_page) == [made[0][0].id] and first_page.list_metadata.after == made[0][0].id
    person = Actor(kind="human", id="key:x", display_name="Ana")
    decision = ReviewDecision(verdict="rejected", version_id=made[0][1].id, author=person, created_at=t0, reason="x")
    asyncio.run(ReviewStore(store).decide(project, made[0][0].id, decision))
    assert ids(sdk.workflows.reviews.list(limit=5, after=made[0][0].id)) == [made[1][0].id, made[2][0].id]
    assert ids(sdk.workflows.reviews.list(limit=5, before=made[2][0].id)) == [made[1][0].id]


def test_a_retried_open_after_the_decision_does_not_make_it_pending_again(stack: Stack, store: ObjectStore) -> None:
    _, _, project = fresh_project(stack, "reviews-retry-after-decision")
    record, first = seed(store, project)
    reviews = ReviewStore(store)
    person = Actor(kind="human", id="key:x", display_name="Ana")
    decision = ReviewDecision(verdict="approved", version_id=first.id, author=person, created_at=datetime.now(UTC))
    asyncio.run(reviews.decide(project, record.id, decision))
    assert asyncio.run(reviews.queue(project, pending_only=True)) == []
    asyncio.run(reviews.open_review(record, first))  # the block activity retried after the decision
    assert asyncio.run(reviews.queue(project, pending_only=True)) == []
    assert len(asyncio.run(reviews.queue(project))) == 1
    assert asyncio.run(reviews.get(project, record.id)).decision == decision


# -- get ---------------------------------------------------------------------------------------------


def test_a_review_reads_as_the_sdks_review_and_is_not_found_from_another_project(
    client: Retab, other_client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    record, _ = seed(store, stack.project_id, iteration_key="3")
    got = client.workflows.reviews.get(record.id)
    assert (got.id, got.run_id, got.step_id, got.block_type, got.iteration_key) == (
        record.id,
        record.run_id,
        record.step_id,
        "extract",
        "3",
    )
    assert got.decision is None
    with pytest.raises(NotFoundError):
        other_client.workflows.reviews.get(record.id)
    other = httpx.get(f"{stack.api_url}/v1/workflows/reviews/{record.id}", headers={"Api-Key": stack.other_api_key})
    assert problem(other, 404)["code"] == "review_not_found"
    assert record.id not in ids(other_client.workflows.reviews.list(decision_status="all", limit=100))
    for bad in ("rev_nope", "rev_a.b", "rev_%2F..%2Freview"):
        assert http.get(f"/v1/workflows/reviews/{bad}").status_code == 404


# -- versions ----------------------------------------------------------------------------------------


def test_a_corrected_version_is_stored_once_with_its_author_and_listed_oldest_first(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    record, first = seed(store, stack.project_id)
    corrected = {"total": 11.0, "lines": [{"qty": 2}], "code": "EUR"}
    made = client.workflows.reviews.versions.create(
        review_id=record.id, parent_id=first.id, snapshot=corrected, note="fixed the total", reviewer="Ana Ruiz"
    )
    assert made.id == version_id(record.id, corrected)
    assert (made.parent_id, made.snapshot, made.note) == (first.id, corrected, "fixed the total")
    assert made.author.kind == "human" and made.author.display_name == "Ana Ruiz"
    assert made.author.id.startswith("key:") and stack.api_key not in made.author.id
    # The same snapshot again: the stored version, no second one.
    again = http.post(
        "/v1/workflows/reviews/versions", json={"review_id": record.id, "parent_id": made.id, "snapshot": corrected}
    )
    assert again.status_code == 200 and again.json()["id"] == made.id and again.json()["note"] == "fixed the total"
    listed = client.workflows.reviews.versions.list(review_id=record.id)
    assert [v.id for v in listed.data] == [first.id, made.id]
    assert listed.data[0].parent_id is None and listed.data[0].author.kind == "model"
    assert client.workflows.reviews.versions.get(made.id).snapshot == corrected
    unnamed = client.workflows.reviews.versions.create(review_id=record.id, parent_id=made.id, snapshot={"total": 1})
    assert unnamed.author.display_name == "tests" and unnamed.author.id == made.author.id
    paged = client.workflows.reviews.versions.list(review_id=record.id, limit=1, after=first.id)
    assert [v.id for v in paged.data] == [made.id] and paged.list_metadata.after == made.id


@pytest.mark.parametrize(
    ("snapshot", "field"),
    [
        ({"total": "eleven"}, "snapshot.total"),
        ({"total": 1, "lines": [{"qty": "two"}]}, "snapshot.lines.0.qty"),
        ({"lines": []}, "snapshot.total"),
        ({"total": 1, "code": "E"}, "snapshot.code"),
    ],
)
def test_an_invalid_snapshot_is_refused_naming_its_path(
    stack: Stack, store: ObjectStore, http: httpx.Client, snapshot: dict[str, Any], field: str
) -> None:
    record, first = seed(store, stack.project_id)
    answer = http.post(
        "/v1/workflows/reviews/versions", json={"review_id": record.id, "parent_id": first.id, "snapshot": snapshot}
    )
    detail = problem(answer, 422)
    assert (detail["code"], detail["details"]["field"]) == ("invalid_snapshot", field)
    assert len(asyncio.run(ReviewStore(store).versions(stack.project_id, record.id))) == 1


def test_classifier_and_split_snapshots_are_checked_against_the_block(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    classifier, c_first = seed(
        store,
        stack.project_id,
        block_type="classifier",
        snapshot={"category": "invoice"},
        categories=["invoice", "memo"],
    )
    client.workflows.reviews.versions.create(
        review_id=classifier.id, parent_id=c_first.id, snapshot={"category": "memo"}
    )
    body = {"review_id": classifier.id, "parent_id": c_first.id, "snapshot": {"category": "fraud"}}
    assert (
        problem(http.post("/v1/workflows/reviews/versions", json=body), 422)["details"]["field"] == "snapshot.category"
    )
    split, s_first = seed(
        store,
        stack.project_id,
        block_type="split",
        snapshot={"documents": [{"name": "invoice", "pages": [1, 2]}]},
        subdocuments=["invoice", "annex"],
        page_count=2,
    )
    good = {"documents": [{"name": "invoice", "pages": [1]}, {"name": "annex", "pages": [2]}]}
    client.workflows.reviews.versions.create(review_id=split.id, parent_id=s_first.id, snapshot=good)
    body = {
        "review_id": split.id,
        "parent_id": s_first.id,
        "snapshot": {"documents": [{"name": "annex", "pages": [3]}]},
    }
    field = problem(http.post("/v1/workflows/reviews/versions", json=body), 422)["details"]["field"]
    assert field == "snapshot.documents.0.pages.0"


def test_a_version_needs_a_parent_of_the_same_review(stack: Stack, store: ObjectStore, http: httpx.Client) -> None:
    record, first = seed(store, stack.project_id)
    other, other_first = seed(store, stack.project_id)
    body = {"review_id": record.id, "parent_id": other_first.id, "snapshot": {"total": 2}}
    detail = problem(http.post("/v1/workflows/reviews/versions", json=body), 422)
    assert (detail["code"], detail["details"]["field"]) == ("version_of_another_review", "parent_id")
    body["parent_id"] = "rvr_unknown"
    assert problem(http.post("/v1/workflows/reviews/versions", json=body), 404)["details"]["field"] == "parent_id"
    body.update(review_id="rev_unknown", parent_id=first.id)
    assert problem(http.post("/v1/workflows/reviews/versions", json=body), 404)["details"]["field"] == "review_id"
    assert problem(http.get("/v1/workflows/reviews/versions"), 422)["details"]["field"] == "review_id"
    assert http.get("/v1/workflows/reviews/versions/rvr_unknown").status_code == 404
    assert http.get("/v1/workflows/reviews/versions", params={"review_id": "rev_unknown"}).status_code == 404
    gone = httpx.get(
        f"{stack.api_url}/v1/workflows/reviews/versions/{first.id}", headers={"Api-Key": stack.other_api_key}
    )
    assert gone.status_code == 404


def test_a_decided_or_cancelled_review_takes_no_new_version(
    stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    decided, d_first = seed(store, stack.project_id)
    person = Actor(kind="human", id="key:x", display_name="Ana")
    decision = ReviewDecision(verdict="approved", version_id=d_first.id, author=person, created_at=datetime.now(UTC))
    asyncio.run(ReviewStore(store).decide(stack.project_id, decided.id, decision))
    body = {"review_id": decided.id, "parent_id": d_first.id, "snapshot": {"total": 3}}
    assert problem(http.post("/v1/workflows/reviews/versions", json=body), 409)["code"] == "review_decided"
    closed, c_first = seed(store, stack.project_id)
    asyncio.run(ReviewStore(store).close(stack.project_id, closed.id, "run cancelled", datetime.now(UTC)))
    body = {"review_id": closed.id, "parent_id": c_first.id, "snapshot": {"total": 3}}
    assert problem(http.post("/v1/workflows/reviews/versions", json=body), 409)["code"] == "review_cancelled"


def test_a_snapshot_over_the_size_limit_and_a_version_past_the_cap_are_refused(
    stack: Stack, store: ObjectStore
) -> None:
    record, first = seed(store, stack.project_id)
    settings = stack.settings.model_copy(update={"review_snapshot_max_bytes": 2048, "review_max_versions": 3})
    reviews = Reviews(store, settings)
    author = Actor(kind="human", id="key:x", display_name="Ana")

    def create(snapshot: dict[str, Any]) -> Any:
        body = CreateReviewVersion(review_id=record.id, parent_id=first.id, snapshot=snapshot)
        return asyncio.run(reviews.create_version(stack.project_id, body, author))

    with pytest.raises(TooLargeError) as too_large:
        create({"total": 1, "note": "x" * 3000})
    assert too_large.value.details["field"] == "snapshot"
    create({"total": 2})
    create({"total": 3})
    with pytest.raises(ApiConflict) as too_many:
        create({"total": 4})
    assert too_many.value.code == "too_many_versions"
    assert create({"total": 3})[1] is False  # a stored snapshot again is still found
    assert len(asyncio.run(ReviewStore(store).versions(stack.project_id, record.id))) == 3


# -- decisions ---------------------------------------------------------------------------------------


def test_a_decision_on_a_review_whose_run_does_not_exist_is_a_conflict_and_changes_nothing(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    record, first = seed(store, stack.project_id)
    answer = http.post(f"/v1/workflows/reviews/{record.id}/reject", json={"version_id": first.id, "reason": "wrong"})
    assert problem(answer, 409)["code"] == "run_not_running"
    # No run will ever decide it: the review is closed and leaves the queue; later decisions are refused.
    closed = http.get(f"/v1/workflows/reviews/{record.id}").json()
    assert closed["decision"] is None and closed["status"] == "cancelled", closed
    assert record.id not in [r.id for r in client.workflows.reviews.list(decision_status="pending", limit=100).data]
    with pytest.raises(ConflictError):
        client.workflows.reviews.approve(record.id, version_id=first.id)
    answer = http.post(f"/v1/workflows/reviews/{record.id}/approve", json={"version_id": first.id})
    assert problem(answer, 409)["code"] == "review_cancelled"


def test_decisions_are_checked_before_they_reach_the_run(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    record, first = seed(store, stack.project_id)
    _, other_first = seed(store, stack.project_id)
    with pytest.raises(NotFoundError):
        client.workflows.reviews.approve("rev_unknown", version_id=first.id)
    approve = f"/v1/workflows/reviews/{record.id}/approve"
    detail = problem(http.post(approve, json={"version_id": other_first.id}), 422)
    assert detail["details"]["field"] == "version_id"
    assert problem(http.post(approve, json={"version_id": "rvr_unknown"}), 404)["details"]["field"] == "version_id"
    reject = f"/v1/workflows/reviews/{record.id}/reject"
    assert problem(http.post(reject, json={"version_id": first.id}), 422)["details"]["field"] == "reason"
    assert (
        problem(http.post(reject, json={"version_id": first.id, "reason": "  "}), 422)["details"]["field"] == "reason"
    )


def test_a_second_decision_is_already_applied_when_the_same_and_a_conflict_otherwise(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    record, first = seed(store, stack.project_id)
    person = Actor(kind="human", id="key:x", display_name="Ana")
    decision = ReviewDecision(verdict="approved", version_id=first.id, author=person, created_at=datetime.now(UTC))
    asyncio.run(ReviewStore(store).decide(stack.project_id, record.id, decision))
    same = client.workflows.reviews.approve(record.id, version_id=first.id)
    assert same.submission_status == "already_applied"
    assert same.review.decision is not None and same.review.decision.author.display_name == "Ana"
    answer = http.post(f"/v1/workflows/reviews/{record.id}/reject", json={"version_id": first.id, "reason": "no"})
    assert problem(answer, 409)["code"] == "review_decided"
    closed, c_first = seed(store, stack.project_id)
    asyncio.run(ReviewStore(store).close(stack.project_id, closed.id, "run cancelled", datetime.now(UTC)))
    answer = http.post(f"/v1/workflows/reviews/{closed.id}/approve", json={"version_id": c_first.id})
    assert problem(answer, 409)["code"] == "review_cancelled"
    assert asyncio.run(ReviewStore(store).get(stack.project_id, record.id)).decision == decision


@pytest.mark.timeout(90)
def test_no_worker_taking_the_decision_answers_503_and_the_review_stays_open(
    stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    # A run no worker polls for (its own task queue): the Update is admitted and never accepted.
    run_id = f"run_{secrets.token_hex(12)}"

    async def start() -> None:
        temporal = await connect(stack.settings)
        await temporal.start_workflow(
            RUN_WORKFLOW,
            {},
            id=run_id,
            task_queue=f"no-worker-{secrets.token_hex(4)}",
            run_timeout=timedelta(minutes=5),
        )

    asyncio.run(start())
    record, first = seed(store, stack.project_id, run_id=run_id)
    try:
        started = time.monotonic()
        answer = http.post(f"/v1/workflows/reviews/{record.id}/approve", json={"version_id": first.id})
        waited = time.monotonic() - started
        assert problem(answer, 503)["code"] == "run_unavailable"
        assert (
            stack.settings.review_decision_timeout_seconds
            <= waited
            < stack.settings.review_decision_timeout_seconds + 10
        )
        stored = asyncio.run(ReviewStore(store).get(stack.project_id, record.id))
        assert (stored.status, stored.decision) == ("pending", None)
    finally:

        async def stop() -> None:
            await (await connect(stack.settings)).get_workflow_handle(run_id).terminate(reason="test over")

        asyncio.run(stop())


@pytest.mark.parametrize("depth", [100, 900])
def test_a_deeply_nested_snapshot_is_refused_naming_where(
    stack: Stack, store: ObjectStore, http: httpx.Client, depth: int
) -> None:
    record, first = seed(store, stack.project_id)
    nested = "[" * depth + "1" + "]" * depth
    body = f'{{"review_id": "{record.id}", "parent_id": "{first.id}", "snapshot": {{"a": {nested}}}}}'
    answer = http.post("/v1/workflows/reviews/versions", content=body, headers={"Content-Type": "application/json"})
    assert problem(answer, 422)["details"]["field"].startswith("snapshot.a.0.0.0")


# -- decisions reaching a waiting run (a stand-in speaking the run's Update contract) -------------------


@pytest.mark.timeout(120)
async def test_decisions_reach_the_waiting_run_and_are_answered_with_its_outcome(
    stack: Stack, store: ObjectStore
) -> None:
    run_id = f"run_{secrets.token_hex(12)}"
    approved, a_first = await asyncio.to_thread(seed, store, stack.project_id, run_id=run_id)
    rejected, r_first = await asyncio.to_thread(seed, store, stack.project_id, run_id=run_id)
    not_gated, n_first = await asyncio.to_thread(seed, store, stack.project_id, run_id=run_id)
    temporal = await connect(stack.settings, external_storage(store, stack.settings.payload_offload_bytes))
    queue_name = f"gate-double-{secrets.token_hex(4)}"
    worker = Worker(
        temporal,
        task_queue=queue_name,
        workflows=[ReviewGateDouble],
        activities=[ApplyDecision(ReviewStore(store)).apply],
    )
    sdk = AsyncRetab(api_key=stack.api_key, base_url=stack.api_url, max_retries=0)
    headers = {"Api-Key": stack.api_key}
    async with worker, httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as http:
        run = await temporal.start_workflow(
            ReviewGateDouble.run,
            GateInput(stack.project_id, [approved.id, rejected.id]),
            id=run_id,
            task_queue=queue_name,
        )
        corrected = await sdk.workflows.reviews.versions.create(
            review_id=approved.id, parent_id=a_first.id, snapshot={"total": 99}
        )
        done = await sdk.workflows.reviews.approve(approved.id, version_id=corrected.id, reviewer="Ana Ruiz")
        assert (done.submission_status, done.resume_status) == ("accepted", "resumed")
        decision = done.review.decision
        assert decision is not None and (decision.verdict, decision.version_id) == ("approved", corrected.id)
        assert decision.author.display_name == "Ana Ruiz" and decision.author.kind == "human"
        again = await sdk.workflows.reviews.approve(approved.id, version_id=corrected.id)
        assert again.submission_status == "already_applied"
        answer = await http.post(f"/v1/workflows/reviews/{approved.id}/approve", json={"version_id": a_first.id})
        assert problem(answer, 409)["code"] == "review_decided"

        # A review whose gate is not open in its run: the run's validator refuses it, nothing is recorded.
        answer = await http.post(f"/v1/workflows/reviews/{not_gated.id}/approve", json={"version_id": n_first.id})
        assert problem(answer, 409)["code"] == "review_not_open"
        assert (await ReviewStore(store).get(stack.project_id, not_gated.id)).decision is None

        rejection = await sdk.workflows.reviews.reject(rejected.id, version_id=r_first.id, reason="wrong vendor")
        assert rejection.review.decision is not None and rejection.review.decision.reason == "wrong vendor"
        assert await run.result() == {approved.id: "approved", rejected.id: "rejected"}
        listed = await sdk.workflows.reviews.list(run_id=run_id, decision_status="decided")
        assert [r.id for r in listed.data] == [approved.id, rejected.id]

        # The run has ended: a decision on its still-pending review is a conflict.
        answer = await http.post(f"/v1/workflows/reviews/{not_gated.id}/approve", json={"version_id": n_first.id})
        assert problem(answer, 409)["code"] == "run_not_running"


# -- deletion ----------------------------------------------------------------------------------------


def test_deleting_a_run_deletes_its_reviews_and_their_queue_entries(
    client: Retab, stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, block_ids = build(client, stack.project_id, blocks, edges)
    run = wait_for(
        client, client.workflows.runs.create(workflow_id=wf_id, json_inputs={block_ids["in"]: {}}, version="draft").id
    )
    record, first = seed(store, stack.project_id, workflow_id=wf_id, run_id=run.id)
    corrected = client.workflows.reviews.versions.create(review_id=record.id, parent_id=first.id, snapshot={"total": 1})
    kept, _ = seed(store, stack.project_id, workflow_id=wf_id)  # another run's review stays
    assert http.delete(f"/v1/workflows/runs/{run.id}").status_code == 204
    assert http.get(f"/v1/workflows/reviews/{record.id}").status_code == 404
    assert http.get(f"/v1/workflows/reviews/versions/{corrected.id}").status_code == 404
    p = stack.project_id
    at = compact_time(record.created_at)
    gone = [
        keys.review(p, record.id),
        keys.review_version(p, record.id, first.id),
        keys.review_version(p, record.id, corrected.id),
        keys.review_version_index(p, first.id),
        keys.review_version_index(p, corrected.id),
        keys.review_queue(p, at, record.id),
        keys.review_pending(p, at, record.id),
        keys.run_review(p, run.id, record.id),
    ]
    assert [k for k in gone if asyncio.run(store.exists(k))] == []
    assert client.workflows.reviews.get(kept.id).id == kept.id
