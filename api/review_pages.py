"""What the review pages show, read through the API's own services (`Reviews`, `Runs`, `Definitions`).

- The queue: the project's pending reviews, oldest first (`Reviews.queue_page`, the same listing as
  `GET /v1/workflows/reviews`), each with its workflow's name, block, run, when it opened and, when the block
  produced likelihoods (consensus), the lowest one and its field.
- One review: the record, the shown version (the newest unless asked), every version, the run's state and
  inputs, the step's likelihood tree and document. The document is the first one on the step's inputs (a
  file handle, or the document a JSON handle came from); its pages are images made by `api.page_previews`.

Every read is scoped by the project of the link (the caller checks the link first): ids from the URL reach S3
only within that project.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.service import RPCError

from api.definitions import Definitions
from api.errors import NotFoundError
from api.page_previews import PreviewLimits, kind_of, page_count, page_png
from api.reviews_service import ReviewFilters, Reviews
from api.runs_service import Runs
from docflow import keys
from docflow.config import Settings
from docflow.models import FileRef, StoredFile
from docflow.review_inputs import min_leaf
from docflow.reviews import ReviewRecord, ReviewVersionRecord
from docflow.runs import RunState, StepRecord
from storage.objects import NotFound, ObjectStore
from storage.reviews import gather_chunked

QUEUE_PAGE = 50
# Run inputs shown as context are cut here: the page stays light whatever the run was given.
CONTEXT_CHARS = 20_000


@dataclass(frozen=True)
class QueueRow:
    """One waiting review, as the queue shows it."""

    record: ReviewRecord
    workflow_name: str
    lowest: tuple[str, float] | None


@dataclass
class ReviewView:
    """Everything one review's page shows."""

    record: ReviewRecord
    workflow_name: str
    shown: ReviewVersionRecord
    versions: list[ReviewVersionRecord]
    run: RunState | None
    run_inputs: str
    likelihoods: Any
    document: FileRef | None
    pages: int = 0
    preview_error: str | None = None
    trigger_reason: str | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)


class ReviewPages:
    """Reads for the review pages, with the app's clients."""

    def __init__(self, reviews: Reviews, runs: Runs, store: ObjectStore, settings: Settings) -> None:
        self.reviews = reviews
        self.runs = runs
        self.store = store
        self.settings = settings
        self.definitions = Definitions(store)

    @property
    def limits(self) -> PreviewLimits:
        """The caps of the page renderer."""
        s = self.settings
        return PreviewLimits(s.review_page_max_pages, s.review_page_max_pixels, s.review_page_render_timeout_seconds)

    async def queue(self, project_id: str, after: str | None) -> tuple[list[QueueRow], str | None]:
        """A page of the pending queue, oldest first, and the cursor of the next page (None at the end)."""
        found = await self.reviews.queue_page(project_id, ReviewFilters(), None, after, QUEUE_PAGE)
        ids = [item["id"] for item in found["data"]]
        records = [r for r in await gather_chunked(ids, lambda rid: self.reviews.reviews.find(project_id, rid)) if r]
        names = await self._workflow_names(project_id, {r.workflow_id for r in records})
        trees = await gather_chunked(records, lambda r: self.likelihoods(project_id, r))
        rows = [
            QueueRow(r, names.get(r.workflow_id, r.workflow_id), min_leaf(tree) if tree is not None else None)
            for r, tree in zip(records, trees, strict=True)
        ]
        more = found["list_metadata"].get("after")
        return rows, more if isinstance(more, str) else None

    async def _workflow_names(self, project_id: str, ids: set[str]) -> dict[str, str]:
        async def name(wid: str) -> str:
            try:
                return (await self.definitions.get_workflow(project_id, wid)).name or wid
            except (NotFoundError, NotFound):
                return wid

        ordered = sorted(ids)
        return dict(zip(ordered, await asyncio.gather(*(name(w) for w in ordered)), strict=True))

    async def _step(self, project_id: str, record: ReviewRecord) -> StepRecord | None:
        return await self.runs.step_record(project_id, record.run_id, record.step_id)

    async def likelihoods(self, project_id: str, record: ReviewRecord, step: StepRecord | None = None) -> Any:
        """The block's likelihoods (the consensus tree of an extract, a classifier's likelihood), None without."""
        step = step or await self._step(project_id, record)
        if step is None or step.artifact is None:
            return None
        try:
            artifact = (await self.store.get_json(keys.artifact(project_id, step.artifact.id))).data
        except NotFound:
            return None
        consensus = artifact.get("consensus") if isinstance(artifact, dict) else None
        return consensus.get("likelihoods") if isinstance(consensus, dict) else None

    async def view(self, project_id: str, review_id: str, version_id: str | None) -> ReviewView:
        """One review's page: its record, the version shown (the newest unless `version_id`), the run's context."""
        record = await self.reviews.get(project_id, review_id)
        versions = sorted(
            await self.reviews.reviews.versions(project_id, record.id), key=lambda v: (v.created_at, v.id)
        )
        shown = versions[-1] if versions else None
        if version_id is not None:
            shown = await self.reviews.version_of(project_id, record, version_id, "version")
        elif record.decision is not None:
            shown = next((v for v in versions if v.id == record.decision.version_id), shown)
        if shown is None:
            raise NotFoundError(f"review '{record.id}' has no version yet", code="version_not_found")
        step = await self._step(project_id, record)
        run, inputs, names, tree, evaluation = await asyncio.gather(
            self._run(project_id, record.run_id),
            self.runs.json_inputs(project_id, record.run_id),
            self._workflow_names(project_id, {record.workflow_id}),
            self.likelihoods(project_id, record, step),
            self._evaluation(project_id, record),
        )
        document = _document_of(step)
        view = ReviewView(
            record=record,
            workflow_name=names[record.workflow_id],
            shown=shown,
            versions=versions,
            run=run,
            run_inputs=await asyncio.to_thread(_short_json, inputs),
            likelihoods=tree,
            document=document,
            trigger_reason=evaluation,
            steps=[(s.block_label or s.block_id, s.lifecycle.status) for s in run.steps] if run else [],
        )
        if document is not None:
            await self._count_pages(project_id, view, document)
        return view

    async def _run(self, project_id: str, run_id: str) -> RunState | None:
        try:
            return await self.runs.state(project_id, run_id)
        except (NotFoundError, NotFound, RPCError):
            return None  # the page still shows the review; its context says no more of the run

    async def _evaluation(self, project_id: str, record: ReviewRecord) -> str | None:
        """Why the gate fired, from its evaluation artifact."""
        if record.evaluation_artifact_id is None:
            return None
        try:
            data = (await self.store.get_json(keys.artifact(project_id, record.evaluation_artifact_id))).data
        except NotFound:
            return None
        evaluation = data.get("evaluation") if isinstance(data, dict) else None
        reason = evaluation.get("reason") if isinstance(evaluation, dict) else None
        return reason if isinstance(reason, str) else None

    async def _count_pages(self, project_id: str, view: ReviewView, document: FileRef) -> None:
        kind = kind_of(document.mime_type)
        if kind is None:
            view.preview_error = f"no preview for {document.mime_type} documents"
            return
        try:
            content = await self._content(project_id, document)
            view.pages = await page_count(content, kind, self.limits)
        except (NotFound, NotFoundError):
            view.preview_error = "the document is no longer stored"
        except ValueError as exc:  # PreviewError: a document we cannot read
            view.preview_error = str(exc)

    async def _content(self, project_id: str, document: FileRef) -> bytes:
        meta = await self.store.get_model(keys.file_meta(project_id, document.id), StoredFile)
        if meta.size_bytes > self.settings.max_upload_bytes:
            raise ValueError("the document is larger than the preview accepts")
        return await self.store.get_bytes(keys.file_content(project_id, document.id))

    async def page_image(self, project_id: str, review_id: str, page: int) -> bytes:
        """Page `page` (1-based) of the review's document as PNG; 404 when there is no such page to show."""
        record = await self.reviews.get(project_id, review_id)
        document = _document_of(await self._step(project_id, record))
        kind = kind_of(document.mime_type) if document is not None else None
        if document is None or kind is None or not 1 <= page <= self.settings.review_page_max_pages:
            raise NotFoundError(f"page: review '{review_id}' has no page {page} to show", code="page_not_found")
        try:
            content = await self._content(project_id, document)
        except NotFound:
            raise NotFoundError("the document is no longer stored", code="page_not_found") from None
        try:
            return await page_png(content, kind, page - 1, self.limits)
        except ValueError as exc:
            raise NotFoundError(f"page {page}: {exc}", code="page_not_rendered", field="page") from None


def _document_of(step: StepRecord | None) -> FileRef | None:
    """The document the step read: a file input, else the document a JSON input came from."""
    if step is None:
        return None
    values = list(step.handle_inputs.values())
    for value in sorted(values, key=lambda v: v.type != "file"):
        if value.document is not None and value.document.id:
            return value.document
    return None


def _short_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= CONTEXT_CHARS else text[:CONTEXT_CHARS] + "\n… (cut)"


def waited(since: datetime, now: datetime) -> str:
    """How long a review has waited, in words: `3 min`, `2 h 5 min`, `4 d 1 h`."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"
