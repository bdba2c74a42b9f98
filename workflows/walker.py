"""The graph walk of one run: ready set, concurrent blocks, skips with reasons, review gates, loops.

The walk is recursive: a `Level` walks one level of the graph (`docflow.readiness.scope`), the top level or one
iteration of a loop container's body, under a step-id prefix (`docflow.loops.iteration_prefix`). A container
is one block of its level; running it (workflows.loops) walks its body once per iteration, each iteration a
`Level` of its own with the container's item as the value of its inner output. Routing, skips, errors and
review gates work alike at every depth; only the top level turns a failure into the run's error.

A step's status lives in one place, its `StepState.lifecycle` (typed `StepStatus`); readiness reads it from
there. A block whose gate fires stays in its task while it waits (workflows.gates), so blocks that do not
depend on it keep running and blocks that do wait, as they would for a slow block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from docflow.blocks import CONTAINER_TYPES, ROUTING_TYPES
    from docflow.gates import AppliedDecision, ApplyDecisionInput
    from docflow.models import Block, Edge, Graph
    from docflow.readiness import next_actions, scope
    from docflow.runs import (
        BlockOutcome,
        ExecuteBlockInput,
        HandleValue,
        LoopContainer,
        RunContext,
        RunLifecycle,
        RunState,
        RunWorkflowInput,
        StepLifecycle,
        StepState,
    )
    from workflows import options
    from workflows.activity_names import APPLY_REVIEW_DECISION
    from workflows.execute import execute_block, named
    from workflows.gates import Gate, GateClosed, Gates
    from workflows.progress import show_progress


@dataclass
class Failure:
    """Where and why a level failed: the step that failed (inside a loop: the innermost one)."""

    step_id: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class LoopFailed(Exception):
    """A container failed because an iteration did (or its items could not be listed)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


# Runs a container block of a level to its end (workflows.loops.run_container, given by the workflow).
ContainerRunner = Callable[["Level", Block, StepState], Awaitable[BlockOutcome]]


async def _no_containers(level: Level, block: Block, step: StepState) -> BlockOutcome:
    raise ApplicationError(f"block '{block.id}': loop containers do not run here", type="BlockError")


class Walker:
    """What every level of a run's walk shares: the run's input, graph, state, gates and context."""

    def __init__(
        self,
        inp: RunWorkflowInput,
        graph: Graph,
        state: RunState,
        gates: Gates,
        run_container: ContainerRunner = _no_containers,
        gate_workflow_id: str | None = None,
    ) -> None:
        self.run_container = run_container
        # The workflow holding this walk's gates when it is not the run's (a loop batch): reviews name it.
        self.gate_workflow_id = gate_workflow_id
        self.inp = inp
        self.graph = graph
        self.state = state
        self.gates = gates
        self.ctx = RunContext(
            run_id=inp.run_id, project_id=inp.project_id, workflow_id=inp.workflow_id, version_id=inp.version_id
        )

    async def walk(self) -> None:
        """Run every reachable top-level block; stop scheduling at the first error."""
        steps = {s.block_id: s for s in self.state.steps if not s.loop_containers}
        await Level(self, None, "", [], {}, steps).walk()

    def fail(self, failure: Failure) -> None:
        """The run's error, from the first failure of its top level (set at once, so queries show it)."""
        if self.state.lifecycle.status != "error":
            block_id = failure.details.get("block_id", failure.step_id)
            self.state.lifecycle = RunLifecycle(
                status="error",
                message=f"block '{failure.details.get('block_name') or block_id}' failed: {failure.message}",
                stage="execution",
                category="permanent",
                details=failure.details,
                failing_step_id=failure.step_id,
            )

    def new_steps(self, blocks: list[Block], prefix: str, containers: list[LoopContainer]) -> dict[str, StepState]:
        """The steps of one iteration's blocks, added to the run's state."""
        steps = {
            b.id: StepState(
                step_id=prefix + b.id,
                block_id=b.id,
                block_type=b.type,
                block_label=b.label,
                created_at=workflow.now(),
                loop_containers=containers,
            )
            for b in blocks
            if b.type != "note"
        }
        self.state.steps.extend(steps.values())
        return steps


class Level:
    """One walk of one level: the top level, or one iteration of a container's body."""

    def __init__(
        self,
        run: Walker,
        container: Block | None,
        prefix: str,
        containers: list[LoopContainer],
        seed: dict[tuple[str, str], HandleValue],
        steps: dict[str, StepState],
    ) -> None:
        self.run = run
        self.container = container
        self.prefix = prefix
        self.containers = containers
        self.graph = scope(run.graph, container.id if container else None)
        self.blocks = {b.id: b for b in self.graph.blocks}
        self.steps = steps
        self.routing: dict[str, list[str] | None] = {}
        self.values: dict[tuple[str, str], HandleValue] = dict(seed)
        self.incoming: dict[str, list[Edge]] = {}
        for edge in self.graph.edges:
            self.incoming.setdefault(edge.target_block, []).append(edge)
        self.failure: Failure | None = None

    async def walk(self) -> Failure | None:
        """Run every reachable block of the level; stop scheduling at the first error, which is returned."""
        running: dict[asyncio.Task[BlockOutcome], str] = {}
        while True:
            if self.failure is None:
                for block_id in self._schedule(len(running)):
                    running[asyncio.create_task(self._execute(self.blocks[block_id]))] = block_id
            if not running:
                if self.failure is not None:
                    self._skip_rest()
                return self.failure
            try:
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                await cancel_all(running)
                raise
            for task in sorted(done, key=lambda t: running[t]):
                self._record(running.pop(task), task)
            if self.failure is not None and self.container is None:
                self.run.gates.close_all(f"the run failed at block '{self.failure.step_id}'")
            show_progress(self.run.state)

    def _status(self) -> dict[str, str]:
        status: dict[str, str] = {block_id: step.lifecycle.status for block_id, step in self.steps.items()}
        if self.container is not None:
            status[self.container.id] = "completed"  # the source of the body's inner inputs
        return status

    def _skip_rest(self) -> None:
        """After a failure, blocks that never started are skipped, naming the step that failed."""
        assert self.failure is not None
        where = "the run" if self.container is None else "the iteration"
        for step in self.steps.values():
            if step.lifecycle.status == "pending":
                reason = f"{where} failed at block '{self.failure.step_id}'"
                step.lifecycle = StepLifecycle(status="skipped", reason=reason)

    def _schedule(self, in_flight: int) -> list[str]:
        """Skip what can no longer run, then return the ready blocks within the concurrency bound."""
        # One call is enough: next_actions cascades skips, and counts them when it picks ready blocks.
        ready, skip = next_actions(self.graph, self._status(), self.routing)
        for block_id, reason in skip.items():
            if block_id in self.steps:
                self.steps[block_id].lifecycle = StepLifecycle(status="skipped", reason=reason)
        room = max(0, self.run.inp.max_concurrent_blocks - in_flight)
        chosen = [b for b in ready if b in self.steps][:room]
        for block_id in chosen:
            step = self.steps[block_id]
            step.lifecycle = StepLifecycle(status="running")
            step.started_at = workflow.now()
        return chosen

    def inputs(self, block: Block) -> dict[str, HandleValue]:
        """A block's input values, by input handle, from the edges of this level."""
        inputs: dict[str, HandleValue] = {}
        for edge in self.incoming.get(block.id, []):
            value = self.values.get((edge.source_block, edge.source_handle or ""))
            if value is not None and edge.target_handle is not None:
                inputs[edge.target_handle] = value
        return inputs

    def body_value(self, handle: str) -> HandleValue | None:
        """After an iteration: the value its body delivered to its container's inner input `handle`."""
        assert self.container is not None
        for edge in self.run.graph.edges:
            into = edge.target_block == self.container.id and edge.target_handle == handle
            if into and edge.source_block in self.blocks:
                return self.values.get((edge.source_block, edge.source_handle or ""))
        return None

    async def _execute(self, block: Block) -> BlockOutcome:
        """The block's activity (a container: its iterations); when its gate fires, the wait for the decision."""
        if block.type in CONTAINER_TYPES:
            return await self.run.run_container(self, block, self.steps[block.id])
        outcome = await self._activity(block)
        if outcome.review is None:
            return outcome
        return await self.run.gates.wait(block, self.steps[block.id], outcome, self._apply)

    async def _activity(self, block: Block) -> BlockOutcome:
        inp = self.run.inp
        arg = ExecuteBlockInput(
            run=self.run.ctx,
            block=block,
            step_id=self.prefix + block.id,
            inputs=self.inputs(block),
            documents={k: v for k, v in inp.documents.items() if k == block.id},
            json_inputs_key=inp.json_inputs_key if block.type == "start_json" else None,
            inline_output_limit_bytes=inp.inline_output_limit_bytes,
            storage_retry_budget_seconds=inp.storage_retry_budget_seconds,
            loop_containers=self.containers,
            gate_workflow_id=self.run.gate_workflow_id,
        )
        return await execute_block(arg, summary_prefix=f"[{self.prefix.rstrip('_')}] " if self.prefix else "")

    async def _apply(self, gate: Gate, block: Block) -> AppliedDecision:
        """Apply an accepted decision; a failure that outlasts the retries leaves the gate open."""
        assert gate.decision is not None and gate.decided_at is not None
        arg = ApplyDecisionInput(
            run=self.run.ctx,
            block=block,
            step_id=gate.step_id,
            review_id=gate.review_id,
            decision=gate.decision,
            decided_at=gate.decided_at,
            outcome=gate.outcome,
            inline_output_limit_bytes=self.run.inp.inline_output_limit_bytes,
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

    def _record(self, block_id: str, task: asyncio.Task[BlockOutcome]) -> None:
        """Fold a finished block into the state; a failure is kept in `self.failure`."""
        step = self.steps[block_id]
        step.completed_at = workflow.now()
        exc = task.exception()
        if isinstance(exc, GateClosed):
            step.lifecycle = StepLifecycle(status="cancelled", reason=f"review closed: {exc}")
            return
        if exc is not None:
            self._record_error(block_id, exc)
            return
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

    def _record_error(self, block_id: str, exc: BaseException) -> None:
        block = self.blocks[block_id]
        if isinstance(exc, LoopFailed):
            inner = exc.failure
            self.steps[block_id].lifecycle = StepLifecycle(
                status="error",
                message=inner.message,
                stage="execution",
                category="permanent",
                details={"block_id": block_id, "block_name": block.label, "message": inner.message},
            )
            self._failed(inner)
            return
        cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
        code = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
        message = str(cause) or code or "error"
        details: dict[str, Any] = {
            "block_id": block_id,
            "block_name": block.label,
            "error_code": code,
            "message": message,
        }
        self.steps[block_id].lifecycle = StepLifecycle(
            status="error", message=message, stage="execution", category="permanent", details=details
        )
        self._failed(Failure(self.prefix + block_id, message, details))

    def _failed(self, failure: Failure) -> None:
        if self.failure is None:
            self.failure = failure
            if self.container is None:
                self.run.fail(failure)


async def cancel_all(running: dict[asyncio.Task[Any], Any]) -> None:
    """Cancel the tasks in flight and wait until each has stopped."""
    for task in running:
        task.cancel()
    if running:
        await workflow.wait(list(running), return_when=asyncio.ALL_COMPLETED)
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved: a cancelled block's error is expected, not "never retrieved"
