"""Reviews in S3: records, versions, the version index and the project's queue; used by the worker and the API.

Every write is idempotent, so a retried activity or request lands on what the first attempt wrote:

- `open_review` writes a pointer under the run's prefix (so deleting the run finds the review), the seed
  version, its index entry, the pending marker, the record, then the queue marker, each with
  `If-None-Match: *`. The queue marker goes last, so a review the queue lists always has its record and first
  version; a retry keeps the record as first written (and files its markers under that record's time, so it
  never makes a second one).
- `add_version` stores a content-addressed version once; the same snapshot again finds the stored one.
- `decide` and `close` change a pending record with `If-Match` (re-read and retried when another write won).
  A record already decided or closed is never overwritten: the stored record is returned as it is, and the
  caller compares its `decision` with the one it meant to write.

Besides the queue (every review, for good), a pending review has a second marker under
`keys.review_pending_prefix`, removed once it is decided or closed, so the default listing (pending) reads
only what still waits however long the project's history grows. The record stays the truth: a marker left
by an interrupted write is filtered out by the record's status, and removed by the next `decide`/`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from docflow import keys
from docflow.reviews import ReviewDecision, ReviewRecord, ReviewVersionRecord
from storage.objects import NotFound, ObjectStore, PreconditionFailed

K = TypeVar("K")
T = TypeVar("T")

# Records read at once when a listing reads many (one S3 request each).
READ_CONCURRENCY = 32
# Conditional updates of one record that lose to another writer before giving up (each re-reads it).
_WRITE_ATTEMPTS = 8


class ReviewConflict(Exception):
    """A review record kept changing under a conditional update; the caller retries later."""


def marker_name(record: ReviewRecord) -> str:
    """A review's name in the queues, `<compact created_at>_<review id>`: names sort as (time, id)."""
    return f"{keys.compact_time(record.created_at)}_{record.id}"


def review_of_marker(name: str) -> str:
    """The review id a queue marker's name holds."""
    return name.split("_", 1)[1]


class ReviewStore:
    """Review records and versions of every project, in one bucket."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # -- write -----------------------------------------------------------------------------------

    async def open_review(self, record: ReviewRecord, seed: ReviewVersionRecord) -> None:
        """Store a new review with its first version and queue it; a retry changes nothing already stored."""
        project = record.project_id
        # First the run's pointer: whatever of the review is written after it, deleting the run finds.
        await self._put_once(keys.run_review(project, record.run_id, record.id), {})
        await self._put_once(keys.review_version(project, record.id, seed.id), seed)
        await self._put_once(keys.review_version_index(project, seed.id), {"review_id": record.id})
        # The pending marker before the record: nothing can decide the review before its record exists, so a
        # decision always finds the marker to remove.
        await self._put_once(keys.review_pending(project, keys.compact_time(record.created_at), record.id), {})
        if not await self._put_once(keys.review(project, record.id), record):
            # A retry: the markers belong to the record as first written (and a decided one is not pending).
            stored = await self.get(project, record.id)
            if stored.created_at != record.created_at or stored.status != "pending":
                await self._unqueue_pending(record)
            if stored.status == "pending":
                await self._put_once(keys.review_pending(project, keys.compact_time(stored.created_at), stored.id), {})
            record = stored
        await self._put_once(keys.review_queue(project, keys.compact_time(record.created_at), record.id), {})

    async def add_version(self, version: ReviewVersionRecord) -> tuple[ReviewVersionRecord, bool]:
        """Store a version once: (the stored version, whether this call created it)."""
        key = keys.review_version(version.project_id, version.review_id, version.id)
        created = await self._put_once(key, version)
        # Also on a retry: the index may be what an interrupted first attempt did not write.
        index = keys.review_version_index(version.project_id, version.id)
        await self._put_once(index, {"review_id": version.review_id})
        if created:
            return version, True
        return await self.store.get_model(key, ReviewVersionRecord), False

    async def decide(self, project_id: str, review_id: str, decision: ReviewDecision) -> ReviewRecord:
        """Record the decision on a pending review (status = verdict); returns the stored record.

        A review already decided or cancelled is left as it is (never overwritten by a different decision):
        compare the returned record's `decision` with `decision` to know whether it holds this one. NotFound if
        there is no such review; ReviewConflict if other writers kept winning (retry).
        """

        def change(record: ReviewRecord) -> ReviewRecord:
            return record.model_copy(update={"decision": decision, "status": decision.verdict})

        return await self._update_pending(project_id, review_id, change)

    async def close(self, project_id: str, review_id: str, reason: str, at: datetime) -> ReviewRecord:
        """Close a pending review as cancelled (its run was cancelled); returns the stored record.

        A review already decided or closed is left as it is.
        """

        def change(record: ReviewRecord) -> ReviewRecord:
            return record.model_copy(update={"status": "cancelled", "closed_reason": reason, "closed_at": at})

        return await self._update_pending(project_id, review_id, change)

    async def _update_pending(
        self, project_id: str, review_id: str, change: Callable[[ReviewRecord], ReviewRecord]
    ) -> ReviewRecord:
        key = keys.review(project_id, review_id)
        for _ in range(_WRITE_ATTEMPTS):
            found = await self.store.get_json(key)
            record = ReviewRecord.model_validate(found.data)
            if record.status != "pending":
                await self._unqueue_pending(record)
                return record
            changed = change(record)
            try:
                await self.store.put_json(key, changed, if_match=found.etag)
            except PreconditionFailed:
                continue  # another write won: read it again (it may have decided the review)
            await self._unqueue_pending(changed)
            return changed
        raise ReviewConflict(f"review '{review_id}' kept changing; retry")

    async def _unqueue_pending(self, record: ReviewRecord) -> None:
        await self.store.delete(keys.review_pending(record.project_id, keys.compact_time(record.created_at), record.id))

    async def _put_once(self, key: str, value: object) -> bool:
        """Write if absent: True if this call wrote it, False if it was there already."""
        try:
            await self.store.put_json(key, value, if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    async def delete_run_reviews(self, project_id: str, run_id: str) -> None:
        """Delete every review of a run (records, versions, index entries, markers); its pointers last, by the
        caller, with the run's prefix, so an interrupted delete is finished by a retry."""
        listed = await self.store.list_keys(keys.run_reviews_prefix(project_id, run_id))
        for key in listed:
            await self._delete_review(project_id, key.rsplit("/", 1)[-1])

    async def _delete_review(self, project_id: str, review_id: str) -> None:
        record = await self.find(project_id, review_id)
        versions = await self.store.list_keys(keys.review_versions_prefix(project_id, review_id))
        indexed = [key.rsplit("/", 1)[-1].removesuffix(".json") for key in versions]
        await gather_chunked(indexed, lambda v: self.store.delete(keys.review_version_index(project_id, v)))
        if record is not None:
            at = keys.compact_time(record.created_at)
            await self.store.delete(keys.review_queue(project_id, at, review_id))
            await self.store.delete(keys.review_pending(project_id, at, review_id))
        # The record and versions last: they are how a retry finds the markers and index entries above.
        await self.store.delete_prefix(keys.review_versions_prefix(project_id, review_id))
        await self.store.delete(keys.review(project_id, review_id))

    # -- read ------------------------------------------------------------------------------------

    async def get(self, project_id: str, review_id: str) -> ReviewRecord:
        """A review record (NotFound if absent)."""
        return await self.store.get_model(keys.review(project_id, review_id), ReviewRecord)

    async def find(self, project_id: str, review_id: str) -> ReviewRecord | None:
        """A review record, or None if absent."""
        with contextlib.suppress(NotFound):
            return await self.get(project_id, review_id)
        return None

    async def get_version(self, project_id: str, review_id: str, version_id: str) -> ReviewVersionRecord:
        """One version of a review (NotFound if the review has no such version)."""
        return await self.store.get_model(keys.review_version(project_id, review_id, version_id), ReviewVersionRecord)

    async def review_of_version(self, project_id: str, version_id: str) -> str | None:
        """The review a version id belongs to, from the version index; None if unknown."""
        try:
            data = (await self.store.get_json(keys.review_version_index(project_id, version_id))).data
        except NotFound:
            return None
        review = data.get("review_id") if isinstance(data, dict) else None
        return review if isinstance(review, str) else None

    async def versions(self, project_id: str, review_id: str) -> list[ReviewVersionRecord]:
        """Every version of a review, oldest first (creation time, then id)."""
        listed = await self.store.list_keys(keys.review_versions_prefix(project_id, review_id))
        found = await gather_chunked(listed, self._find_version)
        versions = [v for v in found if v is not None]
        return sorted(versions, key=lambda v: (v.created_at, v.id))

    async def _find_version(self, key: str) -> ReviewVersionRecord | None:
        with contextlib.suppress(NotFound):
            return await self.store.get_model(key, ReviewVersionRecord)
        return None

    async def version_ids(self, project_id: str, review_id: str) -> set[str]:
        """The ids of a review's versions, from the listing alone."""
        prefix = keys.review_versions_prefix(project_id, review_id)
        return {key[len(prefix) :].removesuffix(".json") for key in await self.store.list_keys(prefix)}

    async def queue(self, project_id: str, *, pending_only: bool = False) -> list[str]:
        """Names of the queue's markers (`marker_name`), oldest first: every review, or only the pending ones."""
        prefix = keys.review_pending_prefix(project_id) if pending_only else keys.review_queue_prefix(project_id)
        return [key[len(prefix) :] for key in await self.store.list_keys(prefix)]


async def gather_chunked(
    items: Sequence[K], call: Callable[[K], Awaitable[T]], size: int = READ_CONCURRENCY
) -> list[T]:
    """`call` on every item, at most `size` at once; the results in the items' order."""
    results: list[T] = []
    for start in range(0, len(items), size):
        results.extend(await asyncio.gather(*(call(item) for item in items[start : start + size])))
    return results
