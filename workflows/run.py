"""`RunWorkflow`: walks the block graph of a pinned version, running ready blocks concurrently.

Deterministic code only: it decides what runs next and waits; activities do the work and persist it.
Values between blocks are small references (`HandleValue`): large JSON is claim-checked to S3 by the
activity that produced it, documents are `FileRef`s.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import LOCAL_TYPES, ROUTING_TYPES
    from docflow.models import Block, Edge, Graph
    from docflow.readiness import next_actions
    from docflow.runs import (
        BlockOutcome,
        ExecuteBlockInput,
        HandleValue,
        Lifecycle,
        LoadGraphInput,
        PersistRunInput,
        RunContext,
        RunState,
        RunWorkflowInput,
        StepState,
    )
    from docflow.temporal import RUN_STATE_QUERY, RUN_WORKFLOW, SA_STATUS
    from workflows import options
    from workflows.activity_names import BLOCK_ACTIVITIES, LOAD_GRAPH, PERSIST_RUN


@workflow.defn(name=RUN_WORKFLOW)
class RunWorkflow:
    """One run of one workflow version."""

    def __init__(self) -> None:
        self._state: RunState | None = None

    @workflow.query(name=RUN_STATE_QUERY)
    def run_state(self) -> RunState | None:
        """The live state: lifecycle, steps, timing."""
        return self._state

    @workflow.run
    async def run(self, inp: RunWorkflowInput) -> RunState:
        """Load the graph, walk it, persist the summary."""
        state = RunState.initial(inp)
        state.timing.started_at = workflow.now()
        self._state = state
        self._set_status("running")
        try:
            graph = await self._load_graph(inp)
            if graph is None:
                return await self._fail()
            state.steps = [
                StepState(
                    step_id=b.id, block_id=b.id, block_type=b.type, block_label=b.label, created_at=workflow.now()
                )
                for b in graph.blocks
                if b.type != "note"
            ]
            await _Walker(inp, graph, state).walk()
        except asyncio.CancelledError:
            self._finish_cancelled()
            await self._persist()
            raise
        if state.lifecycle.status == "error":
            return await self._fail()
        state.timing.completed_at = workflow.now()
        self._set_status("completed")
        await self._persist()
        return state

    async def _load_graph(self, inp: RunWorkflowInput) -> Graph | None:
        """The pinned version's graph; None (and the run's error set) if it cannot be read."""
        assert self._state is not None
        try:
            graph: Graph = await workflow.execute_activity(
                LOAD_GRAPH,
                LoadGraphInput(project_id=inp.project_id, workflow_id=inp.workflow_id, version_id=inp.version_id),
                result_type=Graph,
                start_to_close_timeout=options.LOAD_GRAPH_TIMEOUT,
                retry_policy=options.STORAGE_RETRY,
                summary=f"load {inp.version_id}",
            )
        except ActivityError as exc:
            message = str(exc.cause or exc)
            self._state.lifecycle = Lifecycle(
                status="error", message=message, stage="registry_lookup", category="permanent"
            )
            return None
        return graph

    async def _fail(self) -> RunState:
        """End the run in error: persist the summary, then fail the Temporal workflow so the UI shows it."""
        assert self._state is not None
        self._state.timing.completed_at = workflow.now()
        self._set_status("error")
        await self._persist()
        message = self._state.lifecycle.message or "run failed"
        raise ApplicationError(message, type="RunFailed", non_retryable=True)

    def _set_status(self, status: str) -> None:
        """Mirror the status in the search attribute and the UI's current details."""
        assert self._state is not None
        if status in {"running", "completed"}:
            self._state.lifecycle = Lifecycle(status=status)
        workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        show_progress(self._state)

    def _finish_cancelled(self) -> None:
        assert self._state is not None
        for step in self._state.steps:
            if step.lifecycle.status in {"pending", "queued", "running"}:
                step.lifecycle = Lifecycle(status="cancelled", reason="run cancelled")
        self._state.timing.completed_at = workflow.now()
        self._set_status("cancelled")
        self._state.lifecycle = Lifecycle(status="cancelled", reason="cancelled by request")

    async def _persist(self) -> None:
        assert self._state is not None
        await workflow.execute_activity(
            PERSIST_RUN,
            PersistRunInput(state=self._state),
            start_to_close_timeout=options.PERSIST_TIMEOUT,
            retry_policy=options.STORAGE_RETRY,
            summary="persist run summary",
        )


class _Walker:
    """The graph walk of one run: ready set, concurrent blocks, skips with reasons."""

    def __init__(self, inp: RunWorkflowInput, graph: Graph, state: RunState) -> None:
        self.inp = inp
        self.graph = graph
        self.state = state
        self.blocks = {b.id: b for b in graph.blocks}
        self.steps = {s.block_id: s for s in state.steps}
        self.status: dict[str, str] = {b: "pending" for b in self.steps}
        self.routing: dict[str, list[str] | None] = {}
        self.values: dict[tuple[str, str], HandleValue] = {}
        self.incoming: dict[str, list[Edge]] = {}
        for edge in graph.edges:
            self.incoming.setdefault(edge.target_block, []).append(edge)
        self.ctx = RunContext(
            run_id=inp.run_id, project_id=inp.project_id, workflow_id=inp.workflow_id, version_id=inp.version_id
        )

    async def walk(self) -> None:
        """Run every reachable block; stop scheduling at the first error."""
        running: dict[asyncio.Task[BlockOutcome], str] = {}
        failed = False
        while True:
            if not failed:
                for block_id in self._schedule(len(running)):
                    running[asyncio.create_task(self._execute(self.blocks[block_id]))] = block_id
            if not running:
                if failed:
                    self._skip_rest()
                return
            try:
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                await _cancel_all(running)
                raise
            for task in sorted(done, key=lambda t: running[t]):
                block_id = running.pop(task)
                failed = not self._record(block_id, task) or failed
            show_progress(self.state)

    def _skip_rest(self) -> None:
        """After a failure, blocks that never started are skipped, naming the block that failed."""
        failing = self.state.lifecycle.failing_step_id
        for block_id, status in self.status.items():
            if status == "pending":
                self.status[block_id] = "skipped"
                self.steps[block_id].lifecycle = Lifecycle(
                    status="skipped", reason=f"the run failed at block '{failing}'"
                )

    def _schedule(self, in_flight: int) -> list[str]:
        """Skip what can no longer run, then return the ready blocks within the concurrency bound."""
        # One call is enough: next_actions cascades skips, and counts them when it picks ready blocks.
        ready, skip = next_actions(self.graph, self.status, self.routing)
        for block_id, reason in skip.items():
            self.status[block_id] = "skipped"
            self.steps[block_id].lifecycle = Lifecycle(status="skipped", reason=reason)
        room = max(0, self.inp.max_concurrent_blocks - in_flight)
        chosen = ready[:room]
        for block_id in chosen:
            self.status[block_id] = "running"
            step = self.steps[block_id]
            step.lifecycle = Lifecycle(status="running")
            step.started_at = workflow.now()
        return chosen

    def _inputs(self, block: Block) -> dict[str, HandleValue]:
        inputs: dict[str, HandleValue] = {}
        for edge in self.incoming.get(block.id, []):
            value = self.values.get((edge.source_block, edge.source_handle or ""))
            if value is not None and edge.target_handle is not None:
                inputs[edge.target_handle] = value
        return inputs

    async def _execute(self, block: Block) -> BlockOutcome:
        name = BLOCK_ACTIVITIES.get(block.type)
        if name is None:
            raise ApplicationError(f"block type '{block.type}' cannot execute", type="BlockError", non_retryable=True)
        arg = ExecuteBlockInput(
            run=self.ctx,
            block=block,
            step_id=block.id,
            inputs=self._inputs(block),
            documents={k: v for k, v in self.inp.documents.items() if k == block.id},
            json_inputs_key=self.inp.json_inputs_key if block.type == "start_json" else None,
            inline_output_limit_bytes=self.inp.inline_output_limit_bytes,
            storage_retry_budget_seconds=self.inp.storage_retry_budget_seconds,
        )
        named = f"{block.label} [{block.id}]" if block.label and block.label != block.id else block.id
        summary = f"{named} · {block.type}"
        if block.type in LOCAL_TYPES:
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
            # A cancelled run ends only once its activities have stopped, so nothing completes after it.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=summary,
        )
        return outcome

    def _record(self, block_id: str, task: asyncio.Task[BlockOutcome]) -> bool:
        """Fold a finished block into the state; False if it failed."""
        step = self.steps[block_id]
        step.completed_at = workflow.now()
        exc = task.exception()
        if exc is not None:
            self._record_error(block_id, exc)
            return False
        outcome = task.result()
        self.status[block_id] = "completed"
        step.lifecycle = Lifecycle(status="completed")
        step.started_at = outcome.started_at or step.started_at
        step.artifact = outcome.artifact
        step.model = outcome.model
        is_routing = self.blocks[block_id].type in ROUTING_TYPES
        step.routing_decisions = outcome.routing_decisions if is_routing else None
        self.routing[block_id] = outcome.routing_decisions if is_routing else None
        for handle, value in outcome.outputs.items():
            self.values[(block_id, handle)] = value
        return True

    def _record_error(self, block_id: str, exc: BaseException) -> None:
        block = self.blocks[block_id]
        cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
        code = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
        message = str(cause) or code or "error"
        self.status[block_id] = "error"
        details = {"block_id": block_id, "block_name": block.label, "error_code": code, "message": message}
        self.steps[block_id].lifecycle = Lifecycle(
            status="error", message=message, stage="execution", category="permanent", details=details
        )
        if self.state.lifecycle.status != "error":
            self.state.lifecycle = Lifecycle(
                status="error",
                message=f"block '{block.label or block_id}' failed: {message}",
                stage="execution",
                category="permanent",
                details=details,
                failing_step_id=block_id,
            )


async def _cancel_all(running: dict[asyncio.Task[BlockOutcome], str]) -> None:
    """Cancel the blocks in flight and wait until each has stopped."""
    for task in running:
        task.cancel()
    if running:
        await workflow.wait(list(running), return_when=asyncio.ALL_COMPLETED)


def show_progress(state: RunState) -> None:
    """The run's status and block counts, as the Temporal UI's current details."""
    counts: dict[str, int] = {}
    for step in state.steps:
        counts[step.lifecycle.status] = counts.get(step.lifecycle.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    workflow.set_current_details(f"**{state.lifecycle.status}** · {len(state.steps)} blocks: {tally}")
