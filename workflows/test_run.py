"""`TestRunWorkflow`: a batch of workflow tests, each a child `BlockExecutionWorkflow` judged by its assertion.

At most `concurrency` tests run at once. A test that cannot run is recorded blocked at once. Cancelling the test
run cancels its children; the tests not finished count as cancelled. `counts` are live (the query) and stored
with the record when the run ends (docflow.test_runs).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from docflow.executions import BlockExecutionInput
    from docflow.temporal import SA_PROJECT, SA_SOURCE_RUN, SA_WORKFLOW_ID, TEST_RUN_STATE_QUERY, TEST_RUN_WORKFLOW
    from docflow.test_runs import (
        Counts,
        JudgeInput,
        PersistTestRunInput,
        TestCase,
        TestRunInput,
        TestRunLifecycle,
        TestRunRecord,
        Verdict,
    )
    from workflows import options
    from workflows.activity_names import JUDGE_TEST, PERSIST_TEST_RUN
    from workflows.block_execution import BlockExecutionWorkflow


@workflow.defn(name=TEST_RUN_WORKFLOW)
class TestRunWorkflow:
    """One run of a workflow's tests."""

    __test__ = False  # not a pytest test class

    @workflow.init
    def __init__(self, inp: TestRunInput) -> None:
        self._record = TestRunRecord(
            id=inp.test_run_id,
            project_id=inp.project_id,
            workflow_id=inp.workflow_id,
            workflow_version_id=inp.workflow_version_id,
            created_at=inp.created_at,
            test_id=inp.test_id,
            target_block_id=inp.target_block_id,
            total_tests=len(inp.cases),
            n_consensus=inp.n_consensus,
            result_ids=[c.result_id for c in inp.cases],
        )
        self._record.counts.lifecycle_counts.queued = len(inp.cases)
        self._cancelled = False

    @workflow.query(name=TEST_RUN_STATE_QUERY)
    def state(self) -> TestRunRecord:
        """The live record, counts included."""
        return self._record

    @workflow.run
    async def run(self, inp: TestRunInput) -> TestRunRecord:
        """Run every test, then store the record."""
        record = self._record
        record.started_at = workflow.now()
        record.lifecycle = TestRunLifecycle(status="running")
        room = asyncio.Semaphore(max(1, inp.concurrency))
        tasks = [asyncio.create_task(self._one(inp, case, room)) for case in inp.cases]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._cancelled = True
        if self._cancelled:
            # Children end cancelled (their cancellation reaches them as a ChildWorkflowError): the run too.
            record.lifecycle = TestRunLifecycle(status="cancelled", reason="cancelled by request")
            record.completed_at = workflow.now()
            await self._persist()
            raise asyncio.CancelledError("test run cancelled")
        record.lifecycle = TestRunLifecycle(status="completed")
        record.completed_at = workflow.now()
        await self._persist()
        return record

    async def _one(self, inp: TestRunInput, case: TestCase, room: asyncio.Semaphore) -> None:
        counts = self._record.counts
        judge = JudgeInput(
            project_id=inp.project_id,
            workflow_id=inp.workflow_id,
            test_run_id=inp.test_run_id,
            case=case,
            created_at=inp.created_at,
        )
        if case.execution is None:
            counts.lifecycle_counts.queued -= 1
            await self._judge(judge)
            return
        async with room:
            counts.lifecycle_counts.queued -= 1
            counts.lifecycle_counts.running += 1
            judge.started_at = workflow.now()
            try:
                await workflow.execute_child_workflow(
                    BlockExecutionWorkflow.run,
                    case.execution,
                    id=case.execution.execution_id,
                    search_attributes=_attributes(case.execution),
                    static_summary=f"test {case.test_id} · {case.block_id}",
                )
            except ChildWorkflowError as exc:
                if isinstance(exc.cause, CancelledError):  # the test run was cancelled: so was its child
                    self._cancel(counts)
                    return
                judge.execution_error = str(exc.cause or exc)
            except asyncio.CancelledError:
                self._cancel(counts)
                raise
            judge.completed_at = workflow.now()
            counts.lifecycle_counts.running -= 1
            await self._judge(judge)

    def _cancel(self, counts: Counts) -> None:
        counts.lifecycle_counts.running -= 1
        counts.lifecycle_counts.cancelled += 1
        self._cancelled = True

    async def _judge(self, judge: JudgeInput) -> None:
        verdict: Verdict = await workflow.execute_activity(
            JUDGE_TEST,
            judge,
            result_type=str,
            start_to_close_timeout=options.JUDGE_TIMEOUT,
            retry_policy=options.STORAGE_RETRY,
            summary=f"judge {judge.case.test_id}",
        )
        counts = self._record.counts
        counts.lifecycle_counts.completed += 1
        setattr(counts.outcome, verdict, getattr(counts.outcome, verdict) + 1)

    async def _persist(self) -> None:
        await workflow.execute_local_activity(
            PERSIST_TEST_RUN,
            PersistTestRunInput(record=self._record),
            start_to_close_timeout=options.LOCAL_TIMEOUT,
            retry_policy=options.LOCAL_BLOCK_RETRY,
            summary="persist test run",
        )


def _attributes(execution: BlockExecutionInput) -> TypedSearchAttributes:
    """A test's execution is found by project and workflow (and source run, for a test taken from a run's step)
    like an ad-hoc one."""
    pairs = [
        SearchAttributePair(SA_PROJECT, execution.project_id),
        SearchAttributePair(SA_WORKFLOW_ID, execution.workflow_id),
    ]
    if execution.source_run_id:
        pairs.append(SearchAttributePair(SA_SOURCE_RUN, execution.source_run_id))
    return TypedSearchAttributes(pairs)
