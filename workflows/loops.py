"""Loop containers inside a run's walk: a for_each's iterations in item order, a while_loop's in sequence.

Each iteration is a `walker.Level` over the container's body with its own step-id prefix and loop context,
its item (for_each) or the previous iteration's output (while_loop) on the container's inner output. The
container's step record and a while_loop's `while_loop_termination` artifact are written by an activity when
the container ends (activities.loops). Semantics are in docflow.loops and docs/loops.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import ForEachConfig, WhileLoopConfig
    from docflow.loops import (
        MAX_LISTED_FAILURES,
        LoadItemsInput,
        LoopBatchInput,
        LoopItems,
        LoopItemsInput,
        LoopRunInput,
        LoopRunResult,
        RecordLoopInput,
        Termination,
        TerminationInput,
        in_item_order,
        iteration_context,
        iteration_prefix,
    )
    from docflow.models import Block
    from docflow.runs import BlockOutcome, HandleValue, StepLifecycle, StepState
    from docflow.temporal import LOOP_WORKFLOW
    from workflows import options
    from workflows.activity_names import CHECK_LOOP_TERMINATION, LOAD_LOOP_ITEMS, PREPARE_LOOP_ITEMS, RECORD_LOOP
    from workflows.execute import named
    from workflows.walker import Failure, Level, LoopFailed, cancel_all

# Items are read from storage this many at a time when they were too large to travel inline.
ITEM_SLICE = 200


@dataclass
class Iteration:
    """What one iteration of a body produced: the value on the container's inner input, or its failure."""

    level: Level
    value: HandleValue | None
    failure: Failure | None


async def run_container(level: Level, block: Block, step: StepState) -> BlockOutcome:
    """Run a container block of `level` to its end; LoopFailed when it fails."""
    if block.type == "for_each":
        return await _for_each(level, block, step)
    return await _while_loop(level, block, step)


async def _iteration(
    level: Level,
    block: Block,
    index: int,
    handle: str,
    item: HandleValue,
    parallel: bool,
    result_handle: str,
    live: dict[int, dict[str, StepState]] | None = None,
) -> Iteration:
    """Walk the body once, with `item` on the container's inner output `handle`."""
    prefix = iteration_prefix(level.prefix, block.id, index)
    containers = iteration_context(level.containers, block.id, index, parallel)
    body = [b for b in level.run.graph.blocks if b.parent_id == block.id]
    steps = level.run.new_steps(body, prefix, containers)
    if live is not None:
        live[index] = steps
    inner = Level(level.run, block, prefix, containers, {(block.id, handle): item}, steps)
    failure = await inner.walk()
    return Iteration(inner, inner.body_value(result_handle) if failure is None else None, failure)


async def _activity(name: str, arg: object, result_type: type, summary: str) -> object:
    return await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=options.LOOP_STORAGE_TIMEOUT,
        retry_policy=options.STORAGE_RETRY,
        summary=summary,
    )


def _required(level: Level, block: Block, inputs: dict[str, HandleValue], handle: str) -> HandleValue:
    """The container's outer input; its absence (the block upstream produced nothing there) fails it."""
    value = inputs.get(handle)
    if value is None:
        message = f"no value arrived on '{handle}'"
        raise LoopFailed(Failure(level.prefix + block.id, message, {"block_id": block.id, "block_name": block.label}))
    return value


def _loop_failed(level: Level, block: Block, exc: ActivityError) -> LoopFailed:
    message = str(exc.cause or exc)
    return LoopFailed(Failure(level.prefix + block.id, message, {"block_id": block.id, "block_name": block.label}))


@dataclass
class Iterated:
    """What a run of iterations produced: results by iteration, failed iterations, the first failure (mode fail)."""

    results: dict[int, HandleValue | None]
    failed: list[int]
    failure: Failure | None


async def iterate(level: Level, block: Block, indexes: range, source: Items) -> Iterated:
    """Run a for_each's iterations `indexes`, `max_concurrency` at a time; stop early on a failure (mode fail)."""
    cfg = ForEachConfig.model_validate(block.config)
    results: dict[int, HandleValue | None] = {}
    failed: list[int] = []
    failure: Failure | None = None
    running: dict[asyncio.Task[Iteration], int] = {}
    live: dict[int, dict[str, StepState]] = {}
    todo = iter(indexes)
    index = next(todo, None)
    try:
        while True:
            while failure is None and index is not None and len(running) < cfg.max_concurrency:
                item = await source.get(index)
                task = asyncio.create_task(
                    _iteration(level, block, index, "fe-left-out", item, True, "fe-right-in", live)
                )
                running[task] = index
                index = next(todo, None)
            if not running:
                break
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: running[t]):
                finished = running.pop(task)
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
    value = _required(level, block, inputs, "fe-left-in")
    arg = LoopItemsInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        value=value,
        inline_output_limit_bytes=inp.inline_output_limit_bytes,
    )
    try:
        listed = await _activity(PREPARE_LOOP_ITEMS, arg, LoopItems, f"items of {named(block)}")
    except ActivityError as exc:
        raise _loop_failed(level, block, exc) from exc
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
    recorded = await _activity(RECORD_LOOP, record, BlockOutcome, f"record {named(block)}")
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


async def _while_loop(level: Level, block: Block, step: StepState) -> BlockOutcome:
    cfg = WhileLoopConfig.model_validate(block.config)
    step_id = level.prefix + block.id
    inputs = level.inputs(block)
    started = workflow.now()
    value = _required(level, block, inputs, "loop-left-in")
    terminations: list[Termination] = []
    failure: Failure | None = None
    iterations = 0
    for index in range(cfg.max_iterations):
        iterations = index + 1
        outcome = await _iteration(level, block, index, "loop-left-out", value, False, "loop-right-in")
        if outcome.failure is not None:
            failure = Failure(
                outcome.failure.step_id, f"iteration {index} failed: {outcome.failure.message}", outcome.failure.details
            )
            break
        if outcome.value is None:
            message = f"iteration {index} delivered no value on 'loop-right-in' (the block feeding it did not run)"
            failure = Failure(step_id, message, {"block_id": block.id, "block_name": block.label})
            break
        value = outcome.value
        if not cfg.termination_conditions:
            continue
        check = TerminationInput(
            run=level.run.ctx, block=block, iteration=index, value=outcome.level.body_value("loop-termination") or value
        )
        try:
            termination: Termination = await workflow.execute_local_activity(
                CHECK_LOOP_TERMINATION,
                check,
                result_type=Termination,
                start_to_close_timeout=options.LOOP_TERMINATION_TIMEOUT,
                retry_policy=options.LOCAL_BLOCK_RETRY,
                summary=f"termination of {named(block)} after iteration {index}",
            )
        except ActivityError as exc:
            failure = _loop_failed(level, block, exc).failure
            break
        terminations.append(termination)
        if termination.matched:
            break
    step.iterations = iterations
    record = RecordLoopInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        loop_containers=level.containers,
        inputs=inputs,
        output=None if failure else value,
        iterations=iterations,
        terminations=terminations,
        error=failure.message if failure else None,
        started_at=started,
        inline_output_limit_bytes=level.run.inp.inline_output_limit_bytes,
    )
    recorded = await _activity(RECORD_LOOP, record, BlockOutcome, f"record {named(block)}")
    assert isinstance(recorded, BlockOutcome)
    if failure is not None:
        raise LoopFailed(failure)
    return recorded
