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
    from docflow.loops import (
        MAX_LISTED_FAILURES,
        LoopBatchInput,
        LoopBatchResult,
        LoopItems,
        LoopRunInput,
        LoopRunResult,
        StoreBatchInput,
        batches,
        in_item_order,
    )
    from docflow.reviews import DecisionOutcome, DecisionRequest
    from docflow.runs import RunState
    from docflow.temporal import (
        LOOP_BATCH_WORKFLOW,
        LOOP_GATES_CLOSE_SIGNAL,
        LOOP_WORKFLOW,
        REVIEW_DECISION_SIGNAL,
        REVIEW_DECISION_UPDATE,
    )
    from workflows import options
    from workflows.activity_names import STORE_LOOP_BATCH
    from workflows.execute import named
    from workflows.gates import BatchGates, close_reviews
    from workflows.loops import Items, iterate, run_container
    from workflows.notify import Notifier
    from workflows.walker import Level, Walker


@workflow.defn(name=LOOP_BATCH_WORKFLOW)
class LoopBatchWorkflow:
    """Iterations `start` to `stop` of one for_each."""

    @workflow.init
    def __init__(self, inp: LoopBatchInput) -> None:
        self._state = RunState.initial(inp.run)
        # Review events (opened, decided) are sent from here, where the gates are.
        self._notify = Notifier(inp.run)
        self._gates = BatchGates(self._state, self._notify, inp.run.run_id, workflow.info().workflow_id)

    @workflow.update(name=REVIEW_DECISION_UPDATE)
    async def review_decision(self, decision: DecisionRequest) -> DecisionOutcome:
        """A reviewer's decision on one of this batch's gates (the API): answered once applied."""
        return await self._gates.decide(decision)

    @review_decision.validator
    def _check_decision(self, decision: DecisionRequest) -> None:
        self._gates.check(decision)

    @workflow.signal(name=REVIEW_DECISION_SIGNAL)
    def review_decision_signal(self, payload: Any) -> None:
        """The same decision from an operator (`temporal workflow signal` to this batch's workflow)."""
        self._gates.signal(payload)

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
            done = await iterate(level, inp.container, range(inp.start, inp.stop), Items(listed, offset=inp.start))
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
    """Every batch of one for_each, one after the other (so `max_concurrency` holds across them)."""

    @workflow.run
    async def run(self, inp: LoopRunInput) -> LoopRunResult:
        """Run the batches from `next_batch`; continue as new after `batches_per_history` of them."""
        template = inp.template
        ranges = batches(inp.count, template.run.loop_batch_size)
        refs, failed = list(inp.refs), list(inp.failed)
        for batch in range(inp.next_batch, len(ranges)):
            if batch - inp.next_batch >= inp.batches_per_history:
                carried = {"next_batch": batch, "refs": refs, "failed": failed[:MAX_LISTED_FAILURES]}
                workflow.continue_as_new(inp.model_copy(update=carried))
            indexes = ranges[batch]
            items = inp.items[indexes.start : indexes.stop] if inp.items is not None else None
            arg = template.model_copy(
                update={"batch": batch, "start": indexes.start, "stop": indexes.stop, "items": items}
            )
            result: LoopBatchResult = await workflow.execute_child_workflow(
                LoopBatchWorkflow.run,
                arg,
                id=f"{template.run.run_id}/{template.prefix}{template.container.id}/batch-{batch}",
                static_summary=f"{named(template.container)}: items {indexes.start}–{indexes.stop - 1}",
            )
            refs.append(result.ref)
            failed += result.failed
            if result.failure_step_id is not None:
                return LoopRunResult(
                    refs=refs,
                    failed=failed,
                    failure_step_id=result.failure_step_id,
                    failure_message=result.failure_message,
                    failure_details=result.failure_details,
                )
        return LoopRunResult(refs=refs, failed=failed)
