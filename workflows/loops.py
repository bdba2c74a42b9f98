"""Loop containers inside a run's walk: a for_each's iterations in item order, a while_loop's in sequence.

A for_each's iterations (workflows.iterations) run `max_concurrency` at a time, inline, or for a large loop in
batches of child workflows (workflows.loop_batch); its results come back in item order. The container's step
record is written by an activity when it ends (activities.loops); a while_loop is in workflows.while_loop.
Semantics are in docflow.loops and docs/loops.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import ForEachConfig
    from docflow.loops import (
        MAX_LISTED_FAILURES,
        LoadItemsInput,
        LoopBatchInput,
        LoopItems,
        LoopItemsInput,
        LoopRunInput,
        LoopRunResult,
        Progress,
        RecordLoopInput,
        in_item_order,
    )
    from docflow.models import Block
    from docflow.runs import BlockOutcome, HandleValue, StepLifecycle, StepState
    from docflow.temporal import LOOP_WORKFLOW
    from workflows import options
    from workflows.activity_names import LOAD_LOOP_ITEMS, PREPARE_LOOP_ITEMS, RECORD_LOOP
    from workflows.execute import named
    from workflows.iterations import Iteration, container_activity, loop_failed, required_input, run_iteration
    from workflows.walker import Failure, Level, LoopFailed, cancel_all
    from workflows.while_loop import run_while_loop

# Items are read from storage this many at a time when they were too large to travel inline.
ITEM_SLICE = 200


async def run_container(level: Level, block: Block, step: StepState) -> BlockOutcome:
    """Run a container block of `level` to its end; LoopFailed when it fails."""
    if block.type == "for_each":
        return await _for_each(level, block, step)
    return await run_while_loop(level, block, step)


@dataclass
class Iterated:
    """What a run of iterations produced: results by iteration, failed iterations, the first failure (mode fail)."""

    results: dict[int, HandleValue | None]
    failed: list[int]
    failure: Failure | None


async def iterate(
    level: Level,
    block: Block,
    indexes: range,
    source: Items,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> Iterated:
    """Run a for_each's iterations `indexes`, `max_concurrency` (or `concurrency`) at a time; stop early on a
    failure (mode fail)."""
    cfg = ForEachConfig.model_validate(block.config)
    limit = concurrency or cfg.max_concurrency
    results: dict[int, HandleValue | None] = {}
    failed: list[int] = []
    failure: Failure | None = None
    running: dict[asyncio.Task[Iteration], int] = {}
    live: dict[int, dict[str, StepState]] = {}
    todo = iter(indexes)
    index = next(todo, None)
    try:
        while True:
            while failure is None and index is not None and len(running) < limit:
                item = await source.get(index)
                task = asyncio.create_task(
                    run_iteration(level, block, index, "fe-left-out", item, True, "fe-right-in", live)
                )
                running[task] = index
                index = next(todo, None)
            if progress is not None:
                progress.running, progress.launched_all = set(running.values()), index is None or failure is not None
                progress.changed()
            if not running:
                break
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            # Every finished iteration leaves `running` before any is judged: a failure stops only those still
            # running, and the others that finished in the same activation keep their results.
            ended = sorted((running.pop(task), task) for task in done)
            for finished, task in ended:
                live.pop(finished, None)
                outcome = task.result()
                results[finished] = outcome.value
                if outcome.failure is None:
                    continue
                failed.append(finished)
                if cfg.on_iteration_error == "fail" and failure is None:
                    message = f"iteration {finished} failed: {outcome.failure.message}"
                    failure = Failure(outcome.failure.step_id, message, outcome.failure.details)
                    await _stop(running, live, f"iteration {finished} of '{block.id}' failed")
    except asyncio.CancelledError:
        await cancel_all(running)
        raise
    return Iterated(results, sorted(failed), failure)


async def _for_each(level: Level, block: Block, step: StepState) -> BlockOutcome:
    step_id = level.prefix + block.id
    inputs = level.inputs(block)
    started = workflow.now()
    inp = level.run.inp
    value = required_input(level, block, inputs, "fe-left-in")
    arg = LoopItemsInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        value=value,
        inline_output_limit_bytes=inp.inline_output_limit_bytes,
    )
    try:
        listed = await container_activity(PREPARE_LOOP_ITEMS, arg, LoopItems, f"items of {named(block)}")
    except ActivityError as exc:
        raise loop_failed(level, block, exc) from exc
    assert isinstance(listed, LoopItems)
    if listed.count > inp.loop_max_items:
        message = f"{listed.count} items: a for_each iterates at most {inp.loop_max_items}"
        raise LoopFailed(Failure(step_id, message, {"block_id": block.id, "block_name": block.label}))
    step.iterations = listed.count
    batch_refs: list[str] | None = None
    if listed.count > inp.loop_batch_size:
        done, batch_refs = await _in_batches(level, block, step, listed)
    else:
        done = await iterate(level, block, range(listed.count), Items(listed))
    step.failed_iterations = done.failed[:MAX_LISTED_FAILURES] or None
    record = RecordLoopInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        loop_containers=level.containers,
        inputs=inputs,
        results=None if done.failure or batch_refs is not None else in_item_order(done.results, listed.count),
        batch_refs=None if done.failure else batch_refs,
        iterations=listed.count,
        failed_iterations=done.failed[:MAX_LISTED_FAILURES],
        error=done.failure.message if done.failure else None,
        started_at=started,
        inline_output_limit_bytes=inp.inline_output_limit_bytes,
        artifact=listed.artifact,
    )
    recorded = await container_activity(RECORD_LOOP, record, BlockOutcome, f"record {named(block)}")
    assert isinstance(recorded, BlockOutcome)
    if done.failure is not None:
        raise LoopFailed(done.failure)
    return recorded


async def _in_batches(level: Level, block: Block, step: StepState, listed: LoopItems) -> tuple[Iterated, list[str]]:
    """Run the iterations in batches under one coordinator child (`LoopWorkflow`); the run's history gains only
    that child's few events, its memory each batch's reference. A failure (mode fail) stops the batches."""
    inp = level.run.inp
    template = LoopBatchInput(
        run=inp,
        graph=level.run.graph,
        container=block,
        prefix=level.prefix,
        containers=level.containers,
        batch=0,
        start=0,
        stop=0,
        items_ref=listed.items_ref,
    )
    arg = LoopRunInput(
        template=template,
        count=listed.count,
        items=listed.items,
        batches_per_history=inp.loop_batches_per_history,
    )
    result: LoopRunResult = await workflow.execute_child_workflow(
        LOOP_WORKFLOW,
        arg,
        id=f"{inp.run_id}/{level.prefix}{block.id}",
        result_type=LoopRunResult,
        static_summary=f"{named(block)}: {listed.count} items in batches of {inp.loop_batch_size}",
    )
    step.step_pages = result.refs
    failure = None
    if result.failure_step_id is not None:
        failure = Failure(
            result.failure_step_id, result.failure_message or "an iteration failed", result.failure_details
        )
    return Iterated({}, result.failed, failure), result.refs


async def _stop(
    running: dict[asyncio.Task[Iteration], int], live: dict[int, dict[str, StepState]], reason: str
) -> None:
    """Cancel the iterations still running after one failed; their unfinished steps say why."""
    await cancel_all(running)
    for index in running.values():
        for step in live.get(index, {}).values():
            if step.lifecycle.status in {"pending", "queued", "running", "awaiting_review"}:
                step.lifecycle = StepLifecycle(status="cancelled", reason=reason)
                step.completed_at = workflow.now()
    running.clear()


class Items:
    """A for_each's items, inline or read from storage one slice at a time."""

    def __init__(self, listed: LoopItems, offset: int = 0) -> None:
        self.listed = listed
        self.offset = offset  # the index of the first inline item
        self.slice_start = -1
        self.slice: list[HandleValue] = []

    async def get(self, index: int) -> HandleValue:
        if self.listed.items is not None:
            return self.listed.items[index - self.offset]
        assert self.listed.items_ref is not None
        start = index - index % ITEM_SLICE
        if start != self.slice_start:
            arg = LoadItemsInput(items_ref=self.listed.items_ref, start=start, stop=start + ITEM_SLICE)
            loaded = await workflow.execute_activity(
                LOAD_LOOP_ITEMS,
                arg,
                result_type=list[HandleValue],
                start_to_close_timeout=options.LOOP_STORAGE_TIMEOUT,
                retry_policy=options.STORAGE_RETRY,
                summary=f"items {start}–{start + ITEM_SLICE - 1}",
            )
            self.slice, self.slice_start = loaded, start
        return self.slice[index - start]
