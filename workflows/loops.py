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
        LoopItems,
        LoopItemsInput,
        RecordLoopInput,
        Termination,
        TerminationInput,
        iteration_context,
        iteration_prefix,
    )
    from docflow.models import Block
    from docflow.runs import BlockOutcome, HandleValue, StepLifecycle, StepState
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


def _loop_failed(level: Level, block: Block, exc: ActivityError) -> LoopFailed:
    message = str(exc.cause or exc)
    return LoopFailed(Failure(level.prefix + block.id, message, {"block_id": block.id, "block_name": block.label}))


async def _for_each(level: Level, block: Block, step: StepState) -> BlockOutcome:
    cfg = ForEachConfig.model_validate(block.config)
    step_id = level.prefix + block.id
    inputs = level.inputs(block)
    started = workflow.now()
    arg = LoopItemsInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        value=inputs["fe-left-in"],
        inline_output_limit_bytes=level.run.inp.inline_output_limit_bytes,
    )
    try:
        listed = await _activity(PREPARE_LOOP_ITEMS, arg, LoopItems, f"items of {named(block)}")
    except ActivityError as exc:
        raise _loop_failed(level, block, exc) from exc
    assert isinstance(listed, LoopItems)
    step.iterations = listed.count
    source = _Items(listed)
    results: dict[int, HandleValue | None] = {}
    failed: list[int] = []
    first_failure: Failure | None = None
    running: dict[asyncio.Task[Iteration], int] = {}
    live: dict[int, dict[str, StepState]] = {}
    next_index = 0
    try:
        while True:
            while first_failure is None and next_index < listed.count and len(running) < cfg.max_concurrency:
                item = await source.get(next_index)
                task = asyncio.create_task(
                    _iteration(level, block, next_index, "fe-left-out", item, True, "fe-right-in", live)
                )
                running[task] = next_index
                next_index += 1
            if not running:
                break
            done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: running[t]):
                index = running.pop(task)
                outcome = task.result()
                results[index] = outcome.value
                live.pop(index, None)
                if outcome.failure is not None:
                    failed.append(index)
                    if cfg.on_iteration_error == "fail" and first_failure is None:
                        first_failure = outcome.failure
                        message = f"iteration {index} failed: {outcome.failure.message}"
                        first_failure = Failure(outcome.failure.step_id, message, outcome.failure.details)
                        await _stop(running, live, f"iteration {index} of '{block.id}' failed")
    except asyncio.CancelledError:
        await cancel_all(running)
        raise
    failed.sort()
    step.failed_iterations = failed[:MAX_LISTED_FAILURES] or None
    record = RecordLoopInput(
        run=level.run.ctx,
        block=block,
        step_id=step_id,
        loop_containers=level.containers,
        inputs=inputs,
        results=None if first_failure else [results.get(i) for i in range(listed.count)],
        iterations=listed.count,
        failed_iterations=failed[:MAX_LISTED_FAILURES],
        error=first_failure.message if first_failure else None,
        started_at=started,
        inline_output_limit_bytes=level.run.inp.inline_output_limit_bytes,
    )
    recorded = await _activity(RECORD_LOOP, record, BlockOutcome, f"record {named(block)}")
    assert isinstance(recorded, BlockOutcome)
    if first_failure is not None:
        raise LoopFailed(first_failure)
    return recorded


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


class _Items:
    """A for_each's items, inline or read from storage one slice at a time."""

    def __init__(self, listed: LoopItems) -> None:
        self.listed = listed
        self.slice_start = -1
        self.slice: list[HandleValue] = []

    async def get(self, index: int) -> HandleValue:
        if self.listed.items is not None:
            return self.listed.items[index]
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
    value = inputs["loop-left-in"]
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
