"""`RunWorkflow`: walks the block graph of a pinned version, running ready blocks concurrently.

Deterministic code only: it decides what runs next and waits; activities do the work and persist it.
Values between blocks are small references (`HandleValue`): large JSON is claim-checked to S3 by the
activity that produced it, documents are `FileRef`s. The run's state lives on the instance from
`@workflow.init`, so the query, the review-decision Update and signal (workflows.gates) see it from the
first task; the run ends only once every handler has finished.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from docflow.gates import GateReport
    from docflow.models import Graph
    from docflow.runs import (
        LoadGraphInput,
        PersistRunInput,
        RunContext,
        RunLifecycle,
        RunState,
        RunStatus,
        RunWorkflowInput,
        StepLifecycle,
        StepState,
    )
    from docflow.temporal import (
        LOOP_GATES_SIGNAL,
        RUN_STATE_QUERY,
        RUN_WORKFLOW,
        SA_STATUS,
    )
    from docflow.webhooks import EventType
    from workflows import options
    from workflows.activity_names import LOAD_GRAPH, PERSIST_RUN
    from workflows.gates import DecisionHandlers, Gates, close_reviews
    from workflows.loops import run_container
    from workflows.notify import Notifier
    from workflows.progress import show_progress
    from workflows.walker import Walker


@workflow.defn(name=RUN_WORKFLOW)
class RunWorkflow(DecisionHandlers):
    """One run of one workflow version."""

    @workflow.init
    def __init__(self, inp: RunWorkflowInput) -> None:
        self._inp = inp
        self._state = RunState.initial(inp)
        self._notify = Notifier(inp)
        self._gates = Gates(self._state, self._notify)

    @workflow.query(name=RUN_STATE_QUERY)
    def run_state(self) -> RunState:
        """The live state: lifecycle, steps, timing."""
        return self._state

    @workflow.signal(name=LOOP_GATES_SIGNAL)
    def loop_gates(self, report: GateReport) -> None:
        """A loop batch's review gates opened or closed: the run shows them and counts their wait."""
        self._gates.report(report)

    @workflow.run
    async def run(self, inp: RunWorkflowInput) -> RunState:
        """Load the graph, walk it, persist the summary."""
        state = self._state
        state.timing.started_at = workflow.now()
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
                if b.type != "note" and b.parent_id is None
            ]
            await Walker(inp, graph, state, self._gates, run_container).walk()
        except asyncio.CancelledError:
            self._gates.drop_remote(workflow.now())
            self._finish_cancelled()
            await self._close_reviews("the run was cancelled")
            await self._persist()
            self._notify_end("workflow.run.cancelled")
            await self._settle()
            raise
        self._gates.drop_remote(workflow.now())
        await self._close_reviews(f"the run failed at block '{state.lifecycle.failing_step_id}'")
        if state.lifecycle.status == "error":
            return await self._fail()
        state.timing.completed_at = workflow.now()
        self._set_status("completed")
        await self._persist()
        self._notify_end("workflow.run.completed")
        await self._settle()
        return state

    async def _load_graph(self, inp: RunWorkflowInput) -> Graph | None:
        """The pinned version's graph; None (and the run's error set) if it cannot be read."""
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
            self._state.lifecycle = RunLifecycle(
                status="error", message=message, stage="registry_lookup", category="permanent"
            )
            return None
        return graph

    async def _fail(self) -> RunState:
        """End the run in error: persist the summary, then fail the Temporal workflow so the UI shows it."""
        self._state.timing.completed_at = workflow.now()
        self._set_status("error")
        await self._persist()
        self._notify_end("workflow.run.failed")
        await self._settle()
        message = self._state.lifecycle.message or "run failed"
        raise ApplicationError(message, type="RunFailed", non_retryable=True)

    def _set_status(self, status: RunStatus) -> None:
        """Mirror the status in the search attribute and the UI's current details."""
        if status in {"running", "completed"}:
            self._state.lifecycle = RunLifecycle(status=status)
        workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        show_progress(self._state)

    def _finish_cancelled(self) -> None:
        for step in self._state.steps:
            if step.lifecycle.status in {"pending", "queued", "running", "awaiting_review"}:
                step.lifecycle = StepLifecycle(status="cancelled", reason="run cancelled")
        self._state.timing.completed_at = workflow.now()
        self._state.lifecycle = RunLifecycle(status="cancelled", reason="cancelled by request")
        self._set_status("cancelled")

    async def _close_reviews(self, reason: str) -> None:
        """Reviews whose wait ended without a decision are closed as cancelled, with the reason."""
        run = RunContext(
            run_id=self._inp.run_id,
            project_id=self._inp.project_id,
            workflow_id=self._inp.workflow_id,
            version_id=self._inp.version_id,
        )
        await close_reviews(self._gates, run, reason)

    def _notify_end(self, event_type: EventType) -> None:
        state = self._state
        data = {
            "run_id": state.run_id,
            "workflow_id": state.workflow_id,
            "workflow_version_id": state.version_id,
            "lifecycle": state.lifecycle.model_dump(mode="json"),
            "timing": state.timing.model_dump(mode="json"),
        }
        self._notify(event_type, None, data)

    async def _settle(self) -> None:
        """Before the run ends: notifications delivered (or given up), every Update and signal handler done."""
        await self._notify.settle()
        if self._gates.closers:
            await asyncio.gather(*self._gates.closers, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _persist(self) -> None:
        await workflow.execute_activity(
            PERSIST_RUN,
            PersistRunInput(state=self._state),
            start_to_close_timeout=options.PERSIST_TIMEOUT,
            retry_policy=options.STORAGE_RETRY,
            summary="persist run summary",
        )
