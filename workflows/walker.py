"""The graph walk of one run: ready set, concurrent blocks, skips with reasons, review gates.

A step's status lives in one place, its `StepState.lifecycle` (typed `StepStatus`); readiness reads it from
there. A block whose gate fires stays in its task while it waits (workflows.gates), so blocks that do not
depend on it keep running and blocks that do wait, as they would for a slow block.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import ROUTING_TYPES
    from docflow.gates import AppliedDecision, ApplyDecisionInput
    from docflow.models import Block, Edge, Graph
    from docflow.readiness import next_actions
    from docflow.runs import (
        BlockOutcome,
        ExecuteBlockInput,
        HandleValue,
        RunContext,
        RunLifecycle,
        RunState,
        RunWorkflowInput,
        StepLifecycle,
    )
    from workflows import options
    from workflows.activity_names import APPLY_REVIEW_DECISION
    from workflows.execute import execute_block, named
    from workflows.gates import Gate, GateClosed, Gates
    from workflows.progress import show_progress


class Walker:
    """Walks a run's graph; `gates` holds the review gates its blocks open."""

    def __init__(self, inp: RunWorkflowInput, graph: Graph, state: RunState, gates: Gates) -> None:
        self.inp = inp
        self.graph = graph
        self.state = state
        self.gates = gates
        self.blocks = {b.id: b for b in graph.blocks}
        self.steps = {s.block_id: s for s in state.steps}
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
            if failed:
                self.gates.close_all(f"the run failed at block '{self.state.lifecycle.failing_step_id}'")
            show_progress(self.state)

    def _status(self) -> dict[str, str]:
        return {block_id: step.lifecycle.status for block_id, step in self.steps.items()}

    def _skip_rest(self) -> None:
        """After a failure, blocks that never started are skipped, naming the block that failed."""
        failing = self.state.lifecycle.failing_step_id
        for step in self.steps.values():
            if step.lifecycle.status == "pending":
                step.lifecycle = StepLifecycle(status="skipped", reason=f"the run failed at block '{failing}'")

    def _schedule(self, in_flight: int) -> list[str]:
        """Skip what can no longer run, then return the ready blocks within the concurrency bound."""
        # One call is enough: next_actions cascades skips, and counts them when it picks ready blocks.
        ready, skip = next_actions(self.graph, self._status(), self.routing)
        for block_id, reason in skip.items():
            if block_id in self.steps:
                self.steps[block_id].lifecycle = StepLifecycle(status="skipped", reason=reason)
        room = max(0, self.inp.max_concurrent_blocks - in_flight)
        chosen = ready[:room]
        for block_id in chosen:
            step = self.steps[block_id]
            step.lifecycle = StepLifecycle(status="running")
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
        """The block's activity; when its gate fires, the wait for the review's decision."""
        outcome = await self._activity(block)
        if outcome.review is None:
            return outcome
        return await self.gates.wait(block, self.steps[block.id], outcome, self._apply)

    async def _activity(self, block: Block) -> BlockOutcome:
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
        return await execute_block(arg)

    async def _apply(self, gate: Gate, block: Block) -> AppliedDecision:
        """Apply an accepted decision; a failure that outlasts the retries leaves the gate open."""
        assert gate.decision is not None and gate.decided_at is not None
        arg = ApplyDecisionInput(
            run=self.ctx,
            block=block,
            step_id=gate.step_id,
            review_id=gate.review_id,
            decision=gate.decision,
            decided_at=gate.decided_at,
            outcome=gate.outcome,
            inline_output_limit_bytes=self.inp.inline_output_limit_bytes,
        )
        try:
            applied: AppliedDecision = await workflow.execute_activity(
                APPLY_REVIEW_DECISION,
                arg,
                result_type=AppliedDecision,
                start_to_close_timeout=options.APPLY_DECISION_TIMEOUT,
                retry_policy=options.STORAGE_RETRY,
                summary=f"{gate.decision.verdict} review {gate.review_id} · {named(block)}",
            )
        except ActivityError as exc:
            return AppliedDecision(refused=f"the decision could not be applied: {exc.cause or exc}")
        return applied

    def _record(self, block_id: str, task: asyncio.Task[BlockOutcome]) -> bool:
        """Fold a finished block into the state; False if it failed."""
        step = self.steps[block_id]
        step.completed_at = workflow.now()
        exc = task.exception()
        if isinstance(exc, GateClosed):
            step.lifecycle = StepLifecycle(status="cancelled", reason=f"review closed: {exc}")
            return True
        if exc is not None:
            self._record_error(block_id, exc)
            return False
        outcome = task.result()
        step.lifecycle = StepLifecycle(status="completed")
        step.started_at = outcome.started_at or step.started_at
        step.artifact = outcome.artifact
        step.review_evaluation = outcome.review_evaluation
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
        details = {"block_id": block_id, "block_name": block.label, "error_code": code, "message": message}
        self.steps[block_id].lifecycle = StepLifecycle(
            status="error", message=message, stage="execution", category="permanent", details=details
        )
        if self.state.lifecycle.status != "error":
            self.state.lifecycle = RunLifecycle(
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
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved: a cancelled block's error is expected, not "never retrieved"
