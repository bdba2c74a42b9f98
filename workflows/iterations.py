"""One iteration of a loop container's body, and the helpers both containers share (workflows.loops,
workflows.while_loop): each iteration is a `walker.Level` over the body with its own step-id prefix and loop
context, its item (for_each) or the previous iteration's output (while_loop) on the container's inner output.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from docflow.loops import iteration_context, iteration_prefix
    from docflow.models import Block
    from docflow.runs import HandleValue, StepState
    from workflows import options
    from workflows.walker import Failure, Level, LoopFailed


@dataclass
class Iteration:
    """What one iteration of a body produced: the value on the container's inner input, or its failure."""

    level: Level
    value: HandleValue | None
    failure: Failure | None


async def run_iteration(
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


async def container_activity(name: str, arg: object, result_type: type, summary: str) -> object:
    """A container's storage activity (items, records), with the loop options."""
    return await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=options.LOOP_STORAGE_TIMEOUT,
        retry_policy=options.STORAGE_RETRY,
        summary=summary,
    )


def required_input(level: Level, block: Block, inputs: dict[str, HandleValue], handle: str) -> HandleValue:
    """The container's outer input; its absence (the block upstream produced nothing there) fails it."""
    value = inputs.get(handle)
    if value is None:
        message = f"no value arrived on '{handle}'"
        raise LoopFailed(Failure(level.prefix + block.id, message, {"block_id": block.id, "block_name": block.label}))
    return value


def loop_failed(level: Level, block: Block, exc: ActivityError) -> LoopFailed:
    message = str(exc.cause or exc)
    return LoopFailed(Failure(level.prefix + block.id, message, {"block_id": block.id, "block_name": block.label}))
