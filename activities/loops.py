"""Loop container activities: list a for_each's items, read them in slices, check a while_loop's termination,
record a container's step when it ends.

The body's blocks run through the block activities like any block; these only do what the container itself
needs of S3 or of user-written conditions (evaluated in the isolated executor, like a conditional's).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deleted import refuse_if_deleted
from activities.document_tasks import SplitRequest
from activities.errors import BlockError
from activities.executors import LOCAL_EVALUATION_LIMIT_SECONDS, Executors, _merged_split, _model_call
from activities.isolation import IsolationError
from activities.pdf_pages import PageRangeError, page_count
from activities.provider import gather_all
from activities.split_outputs import is_pdf, store_pages
from docflow import keys
from docflow.blocks import ConditionalConfig, ForEachConfig, Subdocument, WhileLoopConfig, slug
from docflow.conditions import ConditionalResult
from docflow.ids import ARTIFACT_PREFIXES, derived_id
from docflow.loops import (
    LoadItemsInput,
    LoopBatchRecord,
    LoopItems,
    LoopItemsError,
    LoopItemsInput,
    RecordLoopInput,
    StoreBatchInput,
    Termination,
    TerminationInput,
    array_items,
    termination_reason,
)
from docflow.runs import ArtifactRef, BlockOutcome, ErrorInfo, HandleValue, StepLifecycle, StepRecord
from storage import handles
from storage.objects import ObjectStore
from workflows.activity_names import (
    CHECK_LOOP_TERMINATION,
    LOAD_LOOP_ITEMS,
    PREPARE_LOOP_ITEMS,
    RECORD_LOOP,
    STORE_LOOP_BATCH,
)


def _refused(message: str, code: str) -> ApplicationError:
    return ApplicationError(message, {"error_code": code}, type="BlockError", non_retryable=True)


class LoopActivities:
    """The container activities, with the object store and the block executors (isolation, documents) injected."""

    def __init__(self, store: ObjectStore, executors: Executors) -> None:
        self.store = store
        self.ex = executors

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.list_items, self.load_items, self.check_termination, self.record_loop, self.store_batch]

    @activity.defn(name=STORE_LOOP_BATCH)
    async def store_batch(self, inp: StoreBatchInput) -> None:
        """Store what a batch of iterations produced: results in item order, and its steps."""
        await refuse_if_deleted(self.store, inp.run.project_id, inp.run.run_id)
        await self.store.put_json(inp.key, LoopBatchRecord(results=inp.results, steps=inp.steps))

    async def _results(self, inp: RecordLoopInput) -> list[HandleValue | None]:
        if inp.results is not None:
            return inp.results
        found: list[HandleValue | None] = []
        for ref in inp.batch_refs or []:
            found += (await self.store.get_model(ref, LoopBatchRecord)).results
        return found

    @activity.defn(name=PREPARE_LOOP_ITEMS)
    async def list_items(self, inp: LoopItemsInput) -> LoopItems:
        """The items of a for_each: the array on `fe-left-in` (iterate_array) or its document's pages."""
        cfg = ForEachConfig.model_validate(inp.block.config)
        artifact = None
        try:
            if cfg.map_method == "iterate_pages":
                items = await self._pages(inp)
            elif cfg.map_method == "split_by_key":
                items, artifact = await self._partitions(inp, cfg)
            else:
                items = await self._array(inp, cfg)
        except (LoopItemsError, BlockError) as exc:
            raise _refused(f"for_each '{inp.block.id}': {exc}", "loop_items") from exc
        listed = [item.model_dump(mode="json") for item in items]
        if len(json.dumps(listed)) <= inp.inline_output_limit_bytes:
            return LoopItems(count=len(items), items=items, artifact=artifact)
        key = keys.output(inp.run.project_id, inp.run.run_id, inp.step_id, "items")
        await self.store.put_json(key, {"data": listed})
        return LoopItems(count=len(items), items_ref=key, artifact=artifact)

    async def _partitions(self, inp: LoopItemsInput, cfg: ForEachConfig) -> tuple[list[HandleValue], ArtifactRef]:
        """The document's sub-documents of kind `key`, found by the model like a split's, one PDF each."""
        doc = inp.value.document
        if inp.value.type != "file" or doc is None:
            raise LoopItemsError("split_by_key needs a document on fe-left-in")
        project = inp.run.project_id
        content = await self.ex._document_bytes(project, doc)
        pages = await self.ex._document_text(project, doc, content=content)
        kind = Subdocument(name=str(cfg.key), description=cfg.instructions, allow_multiple_instances=True)
        request = SplitRequest(pages=pages, subdocuments=[kind], instructions=cfg.instructions, model=cfg.model)
        n = cfg.n_consensus
        results = await _model_call(gather_all([self.ex.provider.split(request) for _ in range(n)]))
        result = results[0] if n == 1 else _merged_split(results)
        stem = doc.filename.rsplit(".", 1)[0] or "document"
        items: list[HandleValue] = []
        partitions: list[dict[str, Any]] = []
        for i, part in enumerate(result.parts, start=1):
            name = f"{stem}-{slug(str(cfg.key))}-{i}.pdf"
            file = await store_pages(self.store, project, doc, content, sorted(part.pages), name, len(pages))
            items.append(HandleValue(type="file", document=file))
            partitions.append({"key": f"{cfg.key} {i}", "pages": sorted(part.pages), "file": file.model_dump()})
        artifact_id = derived_id(ARTIFACT_PREFIXES["partition"], inp.run.run_id, inp.step_id, length=24)
        record = {
            "operation": "partition",
            "id": artifact_id,
            "run_id": inp.run.run_id,
            "project_id": project,
            "step_id": inp.step_id,
            "block_id": inp.block.id,
            "created_at": datetime.now(UTC).isoformat(),
            "file": doc.model_dump(),
            "model": result.model,
            "key": cfg.key,
            "instructions": cfg.instructions,
            "n_consensus": n,
            "output": [{"key": p["key"], "pages": p["pages"]} for p in partitions],
            "partitions": partitions,
            "page_count": len(pages),
            "status": "completed",
        }
        await self.store.put_json(keys.artifact(project, artifact_id), record)
        return items, ArtifactRef(operation="partition", id=artifact_id)

    async def _array(self, inp: LoopItemsInput, cfg: ForEachConfig) -> list[HandleValue]:
        value = await handles.load(self.store, inp.value)
        if value.type != "json":
            raise LoopItemsError("iterate_array needs JSON on fe-left-in; use iterate_pages for a document")
        found = array_items(value.data, cfg.map_source_path)
        run = inp.run
        # Each large item is claim-checked on its own, so an iteration reads only its item.
        return list(
            await asyncio.gather(
                *(
                    handles.offload(
                        self.store,
                        HandleValue(type="json", data=item),
                        keys.output(run.project_id, run.run_id, inp.step_id, f"item-{i}"),
                        inp.inline_output_limit_bytes,
                    )
                    for i, item in enumerate(found)
                )
            )
        )

    async def _pages(self, inp: LoopItemsInput) -> list[HandleValue]:
        doc = inp.value.document
        if inp.value.type != "file" or doc is None:
            raise LoopItemsError("iterate_pages needs a document on fe-left-in")
        content = await self.ex._document_bytes(inp.run.project_id, doc)
        try:
            count = await asyncio.to_thread(page_count, content) if is_pdf(content) else 1
        except PageRangeError as exc:
            raise LoopItemsError(f"{doc.filename}: {exc}") from exc
        stem = doc.filename.rsplit(".", 1)[0] or "document"
        pages = [
            await store_pages(self.store, inp.run.project_id, doc, content, [p], f"{stem}-page-{p}.pdf", count)
            for p in range(1, count + 1)
        ]
        return [HandleValue(type="file", document=page) for page in pages]

    @activity.defn(name=LOAD_LOOP_ITEMS)
    async def load_items(self, inp: LoadItemsInput) -> list[HandleValue]:
        """Items `start` to `stop` of a for_each's stored items."""
        data = (await self.store.get_json(inp.items_ref)).data["data"]
        return [HandleValue.model_validate(item) for item in data[inp.start : inp.stop]]

    @activity.defn(name=CHECK_LOOP_TERMINATION)
    async def check_termination(self, inp: TerminationInput) -> Termination:
        """Whether a while_loop stops after this iteration: its conditions over the body's output."""
        cfg = WhileLoopConfig.model_validate(inp.block.config)
        if not cfg.termination_conditions:
            return Termination(iteration=inp.iteration, matched=False)
        value = await handles.load(self.store, inp.value) if inp.value is not None else None
        config = ConditionalConfig(conditions=cfg.termination_conditions, else_branch=False)
        payload = {"config": config.model_dump(mode="json"), "data": value.data if value else None}
        try:
            answer = await self.ex.isolated.run("conditions", payload, timeout=LOCAL_EVALUATION_LIMIT_SECONDS)
        except IsolationError as exc:
            raise _refused(f"while_loop '{inp.block.id}': termination_conditions: {exc}", "loop_termination") from exc
        result = ConditionalResult.model_validate(answer)
        return Termination(
            iteration=inp.iteration,
            matched=bool(result.matched_condition_ids),
            matched_condition_ids=result.matched_condition_ids,
            evaluations=result.evaluations,
        )

    @activity.defn(name=RECORD_LOOP)
    async def record_loop(self, inp: RecordLoopInput) -> BlockOutcome:
        """Write the container's step record (and a while_loop's `while_loop_termination` artifact)."""
        run = inp.run
        await refuse_if_deleted(self.store, run.project_id, run.run_id)
        now = datetime.now(UTC)
        outputs: dict[str, HandleValue] = {}
        if inp.results is not None or inp.batch_refs is not None:
            results = await self._results(inp)
            loaded = await asyncio.gather(*(handles.load(self.store, r) for r in results if r is not None))
            values = iter(loaded)
            data = [None if r is None else next(values).data for r in results]
            outputs["fe-right-out"] = HandleValue(type="json", data=data)
        elif inp.output is not None:
            outputs["loop-right-out"] = inp.output
        outputs = {
            h: await handles.offload(
                self.store, v, keys.output(run.project_id, run.run_id, inp.step_id, h), inp.inline_output_limit_bytes
            )
            for h, v in outputs.items()
        }
        artifact = await self._termination_artifact(inp, now) if inp.terminations is not None else inp.artifact
        record = StepRecord(
            run_id=run.run_id,
            project_id=run.project_id,
            step_id=inp.step_id,
            block_id=inp.block.id,
            block_type=inp.block.type,
            block_label=inp.block.label,
            started_at=inp.started_at,
            completed_at=now,
            lifecycle=StepLifecycle(status="error" if inp.error else "completed", message=inp.error),
            loop_containers=inp.loop_containers,
            iterations=inp.iterations,
            failed_iterations=inp.failed_iterations or None,
            handle_inputs=inp.inputs,
            handle_outputs=outputs,
            artifact=artifact,
            error=ErrorInfo(message=inp.error, block_id=inp.block.id, block_name=inp.block.label)
            if inp.error
            else None,
        )
        await self.store.put_json(keys.step(run.project_id, run.run_id, inp.step_id), record)
        return BlockOutcome(outputs=outputs, artifact=artifact, started_at=inp.started_at, completed_at=now)

    async def _termination_artifact(self, inp: RecordLoopInput, now: datetime) -> ArtifactRef:
        terminations = inp.terminations or []
        artifact_id = derived_id(ARTIFACT_PREFIXES["while_loop_termination"], inp.run.run_id, inp.step_id, length=24)
        record = {
            "operation": "while_loop_termination",
            "id": artifact_id,
            "run_id": inp.run.run_id,
            "project_id": inp.run.project_id,
            "step_id": inp.step_id,
            "block_id": inp.block.id,
            "created_at": now.isoformat(),
            "termination_reason": termination_reason(terminations[-1] if terminations else None, inp.error is not None),
            "iterations": inp.iterations,
            # The SDK's shape: the conditions as evaluated after the last iteration; `checks` adds every check.
            "evaluations": terminations[-1].evaluations if terminations else [],
            "checks": [t.model_dump(mode="json", exclude={"evaluations"}) for t in terminations],
        }
        await self.store.put_json(keys.artifact(inp.run.project_id, artifact_id), record)
        return ArtifactRef(operation="while_loop_termination", id=artifact_id)
