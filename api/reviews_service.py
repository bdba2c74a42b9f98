"""Reviews for the API: the queue, one review, its versions (list, get, create); decisions: `api.review_decisions`.

The queue is read in creation order from its markers (`keys.review_queue`; the default listing, pending, from
the pending markers alone); records are read concurrently a chunk at a time, filtered by the record (the
truth), and the scan stops once a page and one more are found. A cursor is a review id; its place in the queue
comes from its record, so paging on from a review decided since the last page still works. A review of a deleted run is
hidden like the run (404, left out of lists). Ids from the request reach an S3 key only once they have the
shape of our ids; anything else is simply not found.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.errors import ConflictError, InvalidError, NotFoundError, TooLargeError
from api.paging import PageQuery, paginate
from api.run_deletion import run_deleted
from api.run_views import page
from docflow.config import Settings
from docflow.ids import canonical_json
from docflow.review_snapshots import SnapshotError, check_snapshot
from docflow.reviews import Actor, ReviewRecord, ReviewVersionRecord, version_id
from storage.objects import NotFound, ObjectStore
from storage.reviews import ReviewStore, gather_chunked, marker_name, review_of_marker

DecisionStatus = Literal["pending", "approved", "rejected", "decided", "all"]
_REVIEW_ID = re.compile(r"rev_[A-Za-z0-9]{1,64}")
_VERSION_ID = re.compile(r"rvr_[A-Za-z0-9]{1,64}")
# Records read per round of a listing's scan.
SCAN_CHUNK = 32


class CreateReviewVersion(BaseModel):
    """A reviewer's corrected snapshot, saved as a new version of the review."""

    review_id: str = Field(min_length=1, max_length=100)
    parent_id: str = Field(min_length=1, max_length=100, description="The version this one corrects")
    snapshot: dict[str, Any] = Field(description="The whole snapshot, in the gated block's output shape")
    note: str | None = Field(default=None, max_length=10_000)


@dataclass(frozen=True)
class ReviewFilters:
    """What a queue listing keeps."""

    workflow_id: str | None = None
    run_id: str | None = None
    block_id: str | None = None
    step_id: str | None = None
    iteration_key: str | None = None
    decision_status: DecisionStatus = "pending"

    def keeps(self, record: ReviewRecord) -> bool:
        """Whether the record passes every filter."""
        fields = ("workflow_id", "run_id", "block_id", "step_id", "iteration_key")
        if any(getattr(self, f) is not None and getattr(self, f) != getattr(record, f) for f in fields):
            return False
        if self.decision_status == "all":
            return True
        if self.decision_status == "decided":
            return record.decision is not None
        return record.status == self.decision_status


class Reviews:
    """The review reads and version writes of the API."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.reviews = ReviewStore(store)

    # -- reviews ---------------------------------------------------------------------------------

    async def get(self, project_id: str, review_id: str, *, field: str = "review_id") -> ReviewRecord:
        """A review of the project; 404 (naming `field`) if absent, malformed, in another project or its run deleted."""
        record = await self.reviews.find(project_id, review_id) if _REVIEW_ID.fullmatch(review_id) else None
        if record is None or await run_deleted(self.store, project_id, record.run_id):
            raise NotFoundError(f"{field}: no review '{review_id}'", code="review_not_found", field=field)
        return record

    async def queue_page(
        self, project_id: str, filters: ReviewFilters, before: str | None, after: str | None, limit: int
    ) -> dict[str, Any]:
        """A page of the queue, oldest first, as the SDK's list envelope."""
        if before is not None and after is not None:
            raise InvalidError("give either 'before' or 'after', not both", code="invalid_cursor", field="before")
        names = await self.reviews.queue(project_id, pending_only=filters.decision_status == "pending")
        if after is not None:
            cursor = await self._cursor(project_id, after, "after")
            names = [n for n in names if n > cursor]
        elif before is not None:
            cursor = await self._cursor(project_id, before, "before")
            names = [n for n in names if n < cursor][::-1]
        found = await self._scan(project_id, [review_of_marker(n) for n in names], filters, limit + 1)
        if before is not None:
            # Scanned backwards from the cursor: the page is the `limit` nearest it, and the cursor follows it.
            items = found[:limit][::-1]
            return page([r.public() for r in items], "id", limit, bool(items))
        return page([r.public() for r in found[:limit]], "id", limit, len(found) > limit)

    async def _cursor(self, project_id: str, cursor: str, field: str) -> str:
        """The queue position of a cursor review (decided since the last page or not): its marker's name."""
        record = await self.reviews.find(project_id, cursor) if _REVIEW_ID.fullmatch(cursor) else None
        if record is None:
            raise InvalidError(
                f"{field}: '{cursor}' is not a review of this project; list again from the start",
                code="invalid_cursor",
                field=field,
            )
        return marker_name(record)

    async def _scan(self, project_id: str, ids: list[str], filters: ReviewFilters, wanted: int) -> list[ReviewRecord]:
        kept: list[ReviewRecord] = []
        deleted: dict[str, bool] = {}
        size = min(SCAN_CHUNK, max(wanted, 8))  # a small page reads little more than it shows
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            records = await gather_chunked(chunk, lambda rid: self.reviews.find(project_id, rid))
            matching = [r for r in records if r is not None and filters.keeps(r)]
            runs = sorted({r.run_id for r in matching} - deleted.keys())
            gone = await gather_chunked(runs, lambda run: run_deleted(self.store, project_id, run), SCAN_CHUNK)
            deleted.update(zip(runs, gone, strict=True))
            kept.extend(r for r in matching if not deleted[r.run_id])
            if len(kept) >= wanted:
                break
        return kept[:wanted]

    # -- versions --------------------------------------------------------------------------------

    async def versions(
        self, project_id: str, review_id: str, before: str | None, after: str | None, limit: int
    ) -> dict[str, Any]:
        """A page of a review's versions, oldest first."""
        await self.get(project_id, review_id)
        versions = await self.reviews.versions(project_id, review_id)
        query = PageQuery(before=before, after=after, limit=limit, order="asc")
        found = paginate(versions, query, ident=lambda v: v.id, sort_key=lambda v: v.created_at)
        return {
            "data": [v.public() for v in found.data],
            "list_metadata": found.list_metadata.model_dump(),
        }

    async def version(self, project_id: str, version: str, *, field: str = "version_id") -> ReviewVersionRecord:
        """One version, by id alone (through the version index); 404 naming `field` if unknown here."""
        review = await self.reviews.review_of_version(project_id, version) if _VERSION_ID.fullmatch(version) else None
        if review is not None and _REVIEW_ID.fullmatch(review):
            try:
                record = await self.get(project_id, review, field=field)
                return await self.reviews.get_version(project_id, record.id, version)
            except (NotFound, NotFoundError):
                pass
        raise NotFoundError(f"{field}: no review version '{version}'", code="version_not_found", field=field)

    async def version_of(self, project_id: str, record: ReviewRecord, version: str, field: str) -> ReviewVersionRecord:
        """A version of this review: 404 if unknown, 422 if it belongs to another review (both naming `field`)."""
        if _VERSION_ID.fullmatch(version):
            try:
                return await self.reviews.get_version(project_id, record.id, version)
            except NotFound:
                if await self.reviews.review_of_version(project_id, version) is not None:
                    raise InvalidError(
                        f"{field}: version '{version}' is not a version of review '{record.id}'",
                        code="version_of_another_review",
                        field=field,
                    ) from None
        raise NotFoundError(f"{field}: no review version '{version}'", code="version_not_found", field=field)

    async def create_version(
        self, project_id: str, body: CreateReviewVersion, author: Actor
    ) -> tuple[ReviewVersionRecord, bool]:
        """Store a corrected snapshot as a version (once per content): (the version, whether it is new)."""
        record = await self.get(project_id, body.review_id)
        ensure_open(record)
        await self.version_of(project_id, record, body.parent_id, "parent_id")
        # A snapshot is a user's document of up to several MiB: measured, checked against the block's schema and
        # hashed in a thread, so the event loop keeps serving other requests meanwhile.
        size = await asyncio.to_thread(lambda: len(canonical_json(body.snapshot)))
        if size > self.settings.review_snapshot_max_bytes:
            raise TooLargeError(
                f"snapshot: {size} bytes as JSON, over the limit of {self.settings.review_snapshot_max_bytes}",
                code="snapshot_too_large",
                field="snapshot",
            )
        try:
            await asyncio.to_thread(check_snapshot, record, body.snapshot)
        except SnapshotError as exc:
            raise InvalidError(str(exc), code="invalid_snapshot", field=exc.field, review_id=record.id) from exc
        vid = await asyncio.to_thread(version_id, record.id, body.snapshot)
        held = await self.reviews.version_ids(project_id, record.id)
        if vid not in held and len(held) >= self.settings.review_max_versions:
            raise ConflictError(
                f"review '{record.id}' holds {len(held)} versions, the most one review may hold; decide on one",
                code="too_many_versions",
                review_id=record.id,
            )
        version = ReviewVersionRecord(
            id=vid,
            review_id=record.id,
            project_id=project_id,
            parent_id=body.parent_id,
            author=author,
            snapshot=body.snapshot,
            note=body.note,
            created_at=datetime.now(UTC),
        )
        return await self.reviews.add_version(version)


def ensure_open(record: ReviewRecord) -> None:
    """409 unless the review still waits for a decision."""
    if record.status == "cancelled":
        raise ConflictError(
            f"review '{record.id}' was closed ({record.closed_reason or 'cancelled'}); it takes no more changes",
            code="review_cancelled",
            review_id=record.id,
        )
    if record.decision is not None:
        raise ConflictError(
            f"review '{record.id}' was already {record.decision.verdict}; it takes no more changes",
            code="review_decided",
            review_id=record.id,
        )
