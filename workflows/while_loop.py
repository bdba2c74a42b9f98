"""A while_loop inside a run's walk: its iterations one after the other, each fed the previous one's output,
until a termination condition matches or `max_iterations` ran (docflow.loops, docs/loops.md). The conditions are
checked by a local activity in the isolated executor; the container's record and its `while_loop_termination`
artifact are written by an activity when it ends (activities.loops).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import WhileLoopConfig
    from docflow.loops import RecordLoopInput, Termination, TerminationInput
    from docflow.models import Block
    from docflow.runs import BlockOutcome, StepState
    from workflows import options
    from workflows.activity_names import CHECK_LOOP_TERMINATION, RECORD_LOOP
    from workflows.execute import named
    from workflows.iterations import container_activity, loop_failed, required_input, run_iteration
    from workflows.walker import Failure, Level, LoopFailed


async def run_while_loop(level: Level, block: Block, step: StepState) -> BlockOutcome:
    cfg = WhileLoopConfig.model_validate(block.config)
    step_id = level.prefix + block.id
    inputs = level.inputs(block)
    started = workflow.now()
    value = required_input(level, block, inputs, "loop-left-in")
    terminations: list[Termination] = []
    failure: Failure | None = None
    iterations = 0
    for index in range(cfg.max_iterations):
        iterations = index + 1
        outcome = await run_iteration(level, block, index, "loop-left-out", value, False, "loop-right-in")
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
            failure = loop_failed(level, block, exc).failure
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
    recorded = await container_activity(RECORD_LOOP, record, BlockOutcome, f"record {named(block)}")
    assert isinstance(recorded, BlockOutcome)
    if failure is not None:
        raise LoopFailed(failure)
    return recorded
