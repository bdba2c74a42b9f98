"""`LoopWorkflow` and `LoopBatchWorkflow`: a large for_each's iterations, in child workflows of the run.

A for_each of more items than `loop_batch_size` runs them in batches (docs/loops.md). The run starts one
`LoopWorkflow` per such container, which runs the batches one after the other, a `LoopBatchWorkflow` child
each, and continues as new every `loop_batches_per_history` batches, carrying only the batches' references:
no history holds more than one batch's iterations, the coordinator's a bounded number of batches, the run's a
few events per loop. A batch walks each iteration with the run's walker (workflows.walker, workflows.loops:
nested loops included), stores its results in item order and its steps (`keys.loop_batch`), and returns that
reference.

A review gate that fires in a batch is held here, where its iteration runs (workflows.gates.BatchGates): its
review record names this workflow, so the API's Update `review_decision` (and an operator's signal
`review-decision`) comes here; only that iteration's body waits, the other iterations go on. The batch tells
the run when its gates open and close (signal `loop-gates`), so the run shows `awaiting_review`; it closes the
reviews of gates it leaves undecided (cancelled, or stopped by a failed iteration) before it ends, and ends
only once every handler has finished.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from docflow import keys
    from docflow.blocks import ForEachConfig
    from docflow.loops import (
        MAX_LISTED_FAILURES,
        BatchParked,
        LoopBatchInput,
        LoopBatchResult,
        LoopItems,
        LoopRunInput,
        LoopRunResult,
        StoreBatchInput,
        batches,
        in_item_order,
    )
    from docflow.runs import RunState
    from docflow.temporal import (
        LOOP_BATCH_PARKED_SIGNAL,
        LOOP_BATCH_WORKFLOW,
        LOOP_GATES_CLOSE_SIGNAL,
        LOOP_WORKFLOW,
    )
    from workflows import options
    from workflows.activity_names import STORE_LOOP_BATCH
    from workflows.execute import named
    from workflows.gates import BatchGates, DecisionHandlers, close_reviews
    from workflows.loops import Items, iterate, run_container
    from workflows.notify import Notifier
    from workflows.walker import Level, Walker


@workflow.defn(name=LOOP_BATCH_WORKFLOW)
class LoopBatchWorkflow(DecisionHandlers):
    """Iterations `start` to `stop` of one for_each."""

    _gates: BatchGates

    @workflow.init
    def __init__(self, inp: LoopBatchInput) -> None:
        self._state = RunState.initial(inp.run)
        # Review events (opened, decided) are sent from here, where the gates are.
        self._notify = Notifier(inp.run)
        info = workflow.info()
        self._gates = BatchGates(
            self._state,
            self._notify,
            inp.run.run_id,
            info.workflow_id,
            coordinator=info.parent.workflow_id if info.parent else None,
            batch=inp.batch,
            iteration_prefix=f"{inp.prefix}{inp.container.id}_iter_",
        )

    @workflow.signal(name=LOOP_GATES_CLOSE_SIGNAL)
    def close_gates(self, reason: str) -> None:
        """The run failed elsewhere: this batch's gates close without a decision."""
        self._gates.close_all(reason)

    @workflow.run
    async def run(self, inp: LoopBatchInput) -> LoopBatchResult:
        """Walk the batch's iterations, store what they produced, return its reference."""
        state = self._state
        gate_workflow_id = workflow.info().workflow_id
        walker = Walker(inp.run, inp.graph, state, self._gates, run_container, gate_workflow_id)
        parent = next((b for b in inp.graph.blocks if b.id == inp.container.parent_id), None)
        level = Level(walker, parent, inp.prefix, inp.containers, {}, {})
        listed = LoopItems(count=inp.stop, items=inp.items, items_ref=inp.items_ref)
        try:
            indexes, items = range(inp.start, inp.stop), Items(listed, offset=inp.start)
            done = await iterate(level, inp.container, indexes, items, inp.max_concurrency, self._gates.progress)
        except asyncio.CancelledError:
            await close_reviews(self._gates, walker.ctx, "the run was cancelled")
            raise
        # Gates left without a decision: a failed iteration stopped theirs, or the run failed elsewhere.
        reason = done.failure.message if done.failure else (self._gates.closing_reason or "the run failed")
        await close_reviews(self._gates, walker.ctx, reason)
        results = in_item_order(done.results, inp.stop)[inp.start :]
        key = keys.loop_batch(inp.run.project_id, inp.run.run_id, inp.prefix + inp.container.id, inp.batch)
        await workflow.execute_activity(
            STORE_LOOP_BATCH,
            StoreBatchInput(run=walker.ctx, key=key, results=results, steps=state.steps),
            start_to_close_timeout=options.LOOP_STORAGE_TIMEOUT,
            retry_policy=options.STORAGE_RETRY,
            summary=f"store batch {inp.batch}",
        )
        failure = done.failure
        result = LoopBatchResult(
            ref=key,
            failed=done.failed,
            failure_step_id=failure.step_id if failure else None,
            failure_message=failure.message if failure else None,
            failure_details=failure.details if failure else {},
        )
        await self._gates.flush()
        await self._notify.settle()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result


@workflow.defn(name=LOOP_WORKFLOW)
class LoopWorkflow:
    """Every batch of one for_each, one after the other (so `max_concurrency` holds across them). While every
    batch in flight is parked on reviews (its unfinished iterations all wait for a decision, signal
    `loop-batch-parked`), the next one starts with what is left of `max_concurrency`."""

    @workflow.init
    def __init__(self, inp: LoopRunInput) -> None:
        self._held: dict[int, int] = {}  # batch → iterations it holds waiting for reviews (while parked)
        self._next = inp.next_batch  # the next batch to start

    @workflow.signal(name=LOOP_BATCH_PARKED_SIGNAL)
    def batch_parked(self, parked: BatchParked) -> None:
        """A batch parked on reviews (held > 0), or going on again (0)."""
        self._held[parked.batch] = parked.held

    @workflow.run
    async def run(self, inp: LoopRunInput) -> LoopRunResult:
        """Run the batches from `next_batch`; continue as new after `batches_per_history` of them."""
        template = inp.template
        limit = ForEachConfig.model_validate(template.container.config).max_concurrency
        ranges = batches(inp.count, template.run.loop_batch_size)
        running: dict[int, asyncio.Task[LoopBatchResult]] = {}
        results: dict[int, LoopBatchResult] = {}
        failure: LoopBatchResult | None = None
        self._next = inp.next_batch

        def room() -> int:
            """How many iterations the next batch may run at once now (0: it may not start yet)."""
            if not running:
                return limit
            if self._next - inp.next_batch >= inp.batches_per_history:
                return 0  # continue as new only once every batch in flight has ended
            held = [self._held.get(b, 0) for b in running]
            return max(0, limit - sum(held)) if all(held) else 0

        try:
            while self._next < len(ranges) or running:
                await workflow.wait_condition(
                    lambda: any(t.done() for t in running.values()) or (self._next < len(ranges) and room() > 0)
                )
                for finished in sorted(b for b, t in running.items() if t.done()):
                    result = running.pop(finished).result()
                    self._held.pop(finished, None)
                    results[finished] = result
                    if result.failure_step_id is not None and failure is None:
                        failure = result
                if failure is not None:
                    await _cancel(running)
                    break
                share = room()
                if self._next >= len(ranges) or share == 0:
                    continue
                if self._next - inp.next_batch >= inp.batches_per_history:
                    refs, failed = _folded(inp, results)
                    carried = {"next_batch": self._next, "refs": refs, "failed": failed[:MAX_LISTED_FAILURES]}
                    workflow.continue_as_new(inp.model_copy(update=carried))
                # Beside batches parked on reviews, the new one runs only what is left of max_concurrency.
                concurrency = share if running else None
                running[self._next] = asyncio.create_task(self._batch(template, inp, ranges, self._next, concurrency))
                self._next += 1
        except asyncio.CancelledError:
            await _cancel(running)
            raise
        refs, failed = _folded(inp, results)
        if failure is not None:
            return LoopRunResult(
                refs=refs,
                failed=failed,
                failure_step_id=failure.failure_step_id,
                failure_message=failure.failure_message,
                failure_details=failure.failure_details,
            )
        return LoopRunResult(refs=refs, failed=failed)

    async def _batch(
        self,
        template: LoopBatchInput,
        inp: LoopRunInput,
        ranges: list[range],
        batch: int,
        concurrency: int | None,
    ) -> LoopBatchResult:
        indexes = ranges[batch]
        items = inp.items[indexes.start : indexes.stop] if inp.items is not None else None
        update: dict[str, Any] = {
            "batch": batch,
            "start": indexes.start,
            "stop": indexes.stop,
            "items": items,
            "max_concurrency": concurrency,
        }
        result: LoopBatchResult = await workflow.execute_child_workflow(
            LoopBatchWorkflow.run,
            template.model_copy(update=update),
            id=f"{template.run.run_id}/{template.prefix}{template.container.id}/batch-{batch}",
            static_summary=f"{named(template.container)}: items {indexes.start}–{indexes.stop - 1}",
        )
        return result


def _folded(inp: LoopRunInput, results: dict[int, LoopBatchResult]) -> tuple[list[str], list[int]]:
    """The references and failed iterations carried so far and of the batches that ended, in batch order."""
    refs, failed = list(inp.refs), list(inp.failed)
    for batch in sorted(results):
        refs.append(results[batch].ref)
        failed += results[batch].failed
    return refs, failed


async def _cancel(running: dict[int, asyncio.Task[LoopBatchResult]]) -> None:
    """Cancel the batches in flight and wait until each has ended (their open reviews close)."""
    for task in running.values():
        task.cancel()
    if running:
        await workflow.wait(list(running.values()), return_when=asyncio.ALL_COMPLETED)
    for task in running.values():
        if not task.cancelled():
            task.exception()  # retrieved: a cancelled batch's error is expected
    running.clear()
