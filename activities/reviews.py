"""Review activities: apply a decision the run accepted, close reviews a run leaves without one.

Applying writes the step record (outputs of the approved version, or the rejection as the step's error) and
the gate's `review_trigger_evaluation` artifact (who decided, when, the verdict and notes), and only then the
decision on the review record (`ReviewStore.decide`, which never overwrites another decision), so a review
reads "decided" only once the decision is in force. Every write is idempotent,
so a retried activity lands on the same records.

What an approved version becomes: extract → its snapshot on `output-json-0`; classifier → the document on
the chosen category's handle (routing follows it); split → the documents' page ranges cut and routed as the
split block does (activities.split_outputs). The model's own version keeps the block's outputs as they were.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deleted import refuse_if_deleted
from activities.split_outputs import split_outputs
from docflow import keys
from docflow.blocks import ClassifierConfig, SplitConfig, parse_config
from docflow.gates import AppliedDecision, ApplyDecisionInput, CloseReviewsInput
from docflow.reviews import ReviewDecision, ReviewRecord, ReviewVersionRecord
from docflow.runs import BlockOutcome, HandleValue, StepLifecycle, StepRecord
from storage import handles
from storage.objects import NotFound, ObjectStore
from storage.reviews import ReviewStore
from workflows.activity_names import APPLY_REVIEW_DECISION, CLOSE_REVIEWS


class ReviewActivities:
    """The activities of review decisions, with the object store injected."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.reviews = ReviewStore(store)

    @activity.defn(name=APPLY_REVIEW_DECISION)
    async def apply_decision(self, inp: ApplyDecisionInput) -> AppliedDecision:
        """Make an accepted decision the step's result; `refused` when it names a version the review lacks."""
        project, decision = inp.run.project_id, inp.decision
        # The reads are independent: at once (an approval's latency is mostly these round trips).
        review, version, _ = await asyncio.gather(
            self.reviews.find(project, inp.review_id),
            self._find_version(project, inp.review_id, decision.version_id),
            refuse_if_deleted(self.store, project, inp.run.run_id),
        )
        if review is None:
            return AppliedDecision(refused=f"review '{inp.review_id}' is not stored")
        if version is None:
            return AppliedDecision(
                refused=f"version_id: '{decision.version_id}' is not a version of review '{inp.review_id}'"
            )
        outcome: BlockOutcome | None = None
        if decision.verdict == "approved":
            outcome = await self._approved_outcome(inp, review, version.snapshot)
        await asyncio.gather(self._record_step(inp, outcome), self._record_evaluation(inp, review))
        stored = await self.reviews.decide(
            project,
            inp.review_id,
            ReviewDecision(
                verdict=decision.verdict,
                version_id=decision.version_id,
                author=decision.author,
                created_at=inp.decided_at,
                reason=decision.reason,
            ),
        )
        if stored.decision is None or (stored.decision.verdict, stored.decision.version_id) != (
            decision.verdict,
            decision.version_id,
        ):
            # Only the run decides its open reviews; a record that holds something else is not ours to overwrite.
            raise ApplicationError(
                f"review '{inp.review_id}' is {stored.status}, not the decision the run accepted",
                type="ReviewConflict",
                non_retryable=True,
            )
        return AppliedDecision(outcome=outcome)

    @activity.defn(name=CLOSE_REVIEWS)
    async def close_reviews(self, inp: CloseReviewsInput) -> None:
        """Close reviews the run will not wait for any more (cancelled run, or it failed at another block)."""
        for review_id in inp.review_ids:
            try:
                await self.reviews.close(inp.run.project_id, review_id, inp.reason, inp.closed_at)
            except NotFound:
                continue  # the run was deleted meanwhile

    async def _find_version(self, project: str, review_id: str, version_id: str) -> ReviewVersionRecord | None:
        try:
            return await self.reviews.get_version(project, review_id, version_id)
        except NotFound:
            return None

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.apply_decision, self.close_reviews]

    async def _approved_outcome(
        self, inp: ApplyDecisionInput, review: ReviewRecord, snapshot: dict[str, Any]
    ) -> BlockOutcome:
        outcome = inp.outcome.model_copy(update={"review": None})
        if inp.decision.version_id == review.seed_version_id:
            return outcome
        now = datetime.now(UTC)
        if inp.block.type == "extract":
            source = outcome.outputs.get("output-json-0")
            value = HandleValue(type="json", data=snapshot, document=source.document if source else None)
            key = keys.output(inp.run.project_id, inp.run.run_id, inp.step_id, "output-json-0")
            value = await handles.offload(self.store, value, key, inp.inline_output_limit_bytes)
            return outcome.model_copy(update={"outputs": {"output-json-0": value}, "completed_at": now})
        if inp.block.type == "classifier":
            cfg = parse_config("classifier", inp.block.config)
            assert isinstance(cfg, ClassifierConfig)
            chosen = next(c for c in cfg.categories if c.name == snapshot["category"])
            document = next((v.document for v in outcome.outputs.values() if v.document is not None), None)
            handle = f"output-file-{chosen.key}"
            outputs = {handle: HandleValue(type="file", document=document)}
            return outcome.model_copy(update={"outputs": outputs, "routing_decisions": [handle], "completed_at": now})
        if inp.block.type == "split":
            return await self._split_outcome(inp, outcome, snapshot, now, review.page_count)
        raise ApplicationError(f"block type '{inp.block.type}' is not reviewable", type="BlockError")

    async def _split_outcome(
        self,
        inp: ApplyDecisionInput,
        outcome: BlockOutcome,
        snapshot: dict[str, Any],
        now: datetime,
        page_count: int | None,
    ) -> BlockOutcome:
        cfg = parse_config("split", inp.block.config)
        assert isinstance(cfg, SplitConfig)
        project = inp.run.project_id
        record = await self.store.get_model(keys.step(project, inp.run.run_id, inp.step_id), StepRecord)
        source = record.handle_inputs.get("input-file-0")
        if source is None or source.document is None:
            raise ApplicationError("the split's input document is not recorded", type="BlockError")
        doc = source.document
        content = await self.store.get_bytes(keys.file_content(project, doc.id))
        parts = [(d["name"], sorted(d["pages"])) for d in snapshot.get("documents", [])]
        parts.sort(key=lambda part: part[1][0] if part[1] else 0)
        # The document's page count as the split read it (a reviewer's pages are checked against it).
        total = page_count or max((page for _, pages in parts for page in pages), default=0)
        outputs, _ = await split_outputs(self.store, project, doc, content, parts, cfg.subdocuments, total)
        return outcome.model_copy(update={"outputs": outputs, "routing_decisions": list(outputs), "completed_at": now})

    async def _record_step(self, inp: ApplyDecisionInput, outcome: BlockOutcome | None) -> None:
        key = keys.step(inp.run.project_id, inp.run.run_id, inp.step_id)
        record = await self.store.get_model(key, StepRecord)
        record.completed_at = inp.decided_at
        if outcome is None:
            reason = inp.decision.reason or "rejected"
            record.lifecycle = StepLifecycle(
                status="error", message=f"review rejected: {reason}", stage="execution", category="permanent"
            )
        else:
            record.lifecycle = StepLifecycle(status="completed")
            record.handle_outputs = {h: await handles.load(self.store, v) for h, v in outcome.outputs.items()}
            record.routing_decisions = outcome.routing_decisions
        await self.store.put_json(key, record)

    async def _record_evaluation(self, inp: ApplyDecisionInput, review: ReviewRecord) -> None:
        if review.evaluation_artifact_id is None:
            return
        key = keys.artifact(inp.run.project_id, review.evaluation_artifact_id)
        try:
            artifact = (await self.store.get_json(key)).data
        except NotFound:
            return
        decision = inp.decision
        artifact.update(
            reviewer_id=decision.author.id,
            reviewer=decision.author.model_dump(mode="json"),
            review_decision=decision.verdict,
            review_version_id=decision.version_id,
            review_notes=decision.reason,
            reviewed_at=inp.decided_at.isoformat(),
        )
        await self.store.put_json(key, artifact)
