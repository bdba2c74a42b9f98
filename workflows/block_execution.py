"""`BlockExecutionWorkflow`: one block rerun with the current draft's config on a past step's recorded inputs.

It runs the block through `workflows.execute` (the code a run uses), with the records under the execution's own
prefix, opens no review, and stores its record when it ends. The API starts it and links it to the source run
(memo and the `DocflowSourceRun` search attribute), so the Temporal UI finds a run's reruns.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import ROUTING_TYPES
    from docflow.executions import BlockExecutionInput, ExecutionLifecycle, ExecutionRecord, PersistExecutionInput
    from docflow.runs import ExecuteBlockInput, RunContext
    from docflow.temporal import BLOCK_EXECUTION_WORKFLOW, EXECUTION_STATE_QUERY
    from workflows import options
    from workflows.activity_names import PERSIST_EXECUTION
    from workflows.execute import execute_block


# Outside the sandbox: building a sandbox for each workflow costs ~50 ms (more on a loaded worker), most of a
# rerun's latency, which is what its user waits for. This module is small and stays sandbox-safe by construction
# (no I/O, time only from `workflow.now()`, only pure `docflow` and `workflows` code imported); the run's walker,
# where the graph's logic lives, keeps the sandbox.
@workflow.defn(name=BLOCK_EXECUTION_WORKFLOW, sandboxed=False)
class BlockExecutionWorkflow:
    """One rerun of one block."""

    @workflow.init
    def __init__(self, inp: BlockExecutionInput) -> None:
        self._record = ExecutionRecord.initial(inp)

    @workflow.query(name=EXECUTION_STATE_QUERY)
    def state(self) -> ExecutionRecord:
        """The live record."""
        return self._record

    @workflow.run
    async def run(self, inp: BlockExecutionInput) -> ExecutionRecord:
        """Execute the block, then store the record."""
        record = self._record
        record.started_at = workflow.now()
        record.lifecycle = ExecutionLifecycle(status="running")
        workflow.set_current_details(f"rerun of `{inp.block.id}` from run `{inp.source_run_id}`")
        arg = ExecuteBlockInput(
            run=RunContext(
                run_id=inp.execution_id,
                project_id=inp.project_id,
                workflow_id=inp.workflow_id,
                version_id=inp.workflow_version_id,
            ),
            block=inp.block,
            step_id=inp.source_step_id,
            inputs=inp.inputs,
            documents=inp.documents,
            json_inputs_key=inp.json_inputs_key,
            inline_output_limit_bytes=inp.inline_output_limit_bytes,
            storage_retry_budget_seconds=inp.storage_retry_budget_seconds,
            review_gates=False,
        )
        cancelled = False
        try:
            outcome = await execute_block(arg, summary_prefix="rerun ")
        except ActivityError as exc:
            cause = exc.cause or exc
            # A cancelled execution's activity reports its cancellation as the activity's error.
            cancelled = isinstance(cause, CancelledError)
            record.lifecycle = ExecutionLifecycle(status="error", message=str(cause))
        except asyncio.CancelledError:
            cancelled = True
        if cancelled:
            record.lifecycle = ExecutionLifecycle(status="cancelled", reason="cancelled by request")
            record.completed_at = workflow.now()
            await self._persist()
            raise asyncio.CancelledError("block execution cancelled")
        else:
            record.lifecycle = ExecutionLifecycle(status="completed")
            record.started_at = outcome.started_at
            record.artifact = outcome.artifact
            record.routing_decisions = outcome.routing_decisions if inp.block.type in ROUTING_TYPES else None
        record.completed_at = workflow.now() if record.lifecycle.status == "error" else outcome.completed_at
        await self._persist()
        if record.lifecycle.status == "error":
            raise ApplicationError(record.lifecycle.message or "block failed", type="BlockExecutionFailed")
        return record

    async def _persist(self) -> None:
        # A local activity: one S3 write, and a rerun's latency is what its user waits for.
        await workflow.execute_local_activity(
            PERSIST_EXECUTION,
            PersistExecutionInput(record=self._record),
            start_to_close_timeout=options.LOCAL_TIMEOUT,
            retry_policy=options.LOCAL_BLOCK_RETRY,
            summary="persist execution record",
        )
