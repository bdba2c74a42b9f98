"""`LoopWorkflow` and `LoopBatchWorkflow`: a large for_each's iterations, in child workflows of the run.

A for_each of more items than `loop_batch_size` runs them in batches (docs/loops.md). The run starts one
`LoopWorkflow` per such container, which runs the batches one after the other, a `LoopBatchWorkflow` child
each, and continues as new every `loop_batches_per_history` batches, carrying only the batches' references:
no history holds more than one batch's iterations, the coordinator's a bounded number of batches, the run's a
few events per loop. A batch walks each iteration with the run's walker (workflows.walker, workflows.loops:
nested loops included), stores its results in item order and its steps (`keys.loop_batch`), and returns that
reference.

Review gates do not open here: a decision is sent to the run's workflow, which does not hold this batch's
gates. A loop with reviewed blocks is refused before its batches start (workflows.loops); should a gate fire
here anyway, its block fails with a clear error.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

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
    from docflow.models import Block
    from docflow.runs import BlockOutcome, RunState, StepState
    from docflow.temporal import LOOP_BATCH_WORKFLOW, LOOP_WORKFLOW
    from workflows import options
    from workflows.activity_names import STORE_LOOP_BATCH
    from workflows.execute import named
    from workflows.gates import Apply, Gates
    from workflows.loops import Items, iterate, run_container
    from workflows.walker import Level, Walker


class _NoGates(Gates):
    """A batch's gates: a gate that fires fails its block (decisions reach the run, not the batch)."""

    async def wait(self, block: Block, step: StepState, outcome: BlockOutcome, apply: Apply) -> BlockOutcome:
        raise ApplicationError(
            f"block '{block.id}' asked for a review inside a loop run in batches; reviews inside a for_each "
            "need it to iterate at most loop_batch_size items",
            type="BlockError",
            non_retryable=True,
        )


@workflow.defn(name=LOOP_BATCH_WORKFLOW)
class LoopBatchWorkflow:
    """Iterations `start` to `stop` of one for_each."""

    @workflow.run
    async def run(self, inp: LoopBatchInput) -> LoopBatchResult:
        """Walk the batch's iterations, store what they produced, return its reference."""
        state = RunState.initial(inp.run)
        walker = Walker(inp.run, inp.graph, state, _NoGates(state, lambda *_: None), run_container)
        parent = next((b for b in inp.graph.blocks if b.id == inp.container.parent_id), None)
        level = Level(walker, parent, inp.prefix, inp.containers, {}, {})
        listed = LoopItems(count=inp.stop, items=inp.items, items_ref=inp.items_ref)
        done = await iterate(level, inp.container, range(inp.start, inp.stop), Items(listed, offset=inp.start))
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
        return LoopBatchResult(
            ref=key,
            failed=done.failed,
            failure_step_id=failure.step_id if failure else None,
            failure_message=failure.message if failure else None,
            failure_details=failure.details if failure else {},
        )


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
