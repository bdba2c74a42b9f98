"""One way to execute a block, for every workflow that runs one: a run's walker, a block execution (a rerun).

It picks the activity by block type, local (pure, cheap blocks: `LOCAL_TYPES`, except function blocks with user
Python, which run in the sandbox for up to their `timeout_seconds`) or remote, with the options of
`workflows.options`, and names the block in the activity's summary so the Temporal UI reads as the graph.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import LOCAL_TYPES
    from docflow.models import Block
    from docflow.python_code import is_python_function
    from docflow.runs import BlockOutcome, ExecuteBlockInput
    from workflows import options
    from workflows.activity_names import BLOCK_ACTIVITIES


def named(block: Block) -> str:
    """How a block is named in summaries: its label and id, or its id."""
    return f"{block.label} [{block.id}]" if block.label and block.label != block.id else block.id


async def execute_block(arg: ExecuteBlockInput, summary_prefix: str = "") -> BlockOutcome:
    """Run `arg.block` in its activity and return its outcome (an ActivityError when it fails)."""
    block = arg.block
    name = BLOCK_ACTIVITIES.get(block.type)
    if name is None:
        raise ApplicationError(f"block type '{block.type}' cannot execute", type="BlockError", non_retryable=True)
    summary = f"{summary_prefix}{named(block)} · {block.type}"
    if block.type in LOCAL_TYPES and not is_python_function(block.type, block.config):
        outcome: BlockOutcome = await workflow.execute_local_activity(
            name,
            arg,
            result_type=BlockOutcome,
            start_to_close_timeout=options.LOCAL_TIMEOUT,
            retry_policy=options.LOCAL_BLOCK_RETRY,
            summary=summary,
        )
        return outcome
    outcome = await workflow.execute_activity(
        name,
        arg,
        result_type=BlockOutcome,
        start_to_close_timeout=options.block_timeout(block),
        heartbeat_timeout=options.HEARTBEAT_TIMEOUT,
        retry_policy=options.BLOCK_RETRY,
        # A cancelled workflow ends only once its activities have stopped, so nothing completes after it.
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=summary,
    )
    return outcome
