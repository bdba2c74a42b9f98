"""Test runs (NOTES.md §6): a batch of workflow tests, each a child block execution judged by its assertion.

A `TestRunWorkflow` (`wftestrun_…`) runs one child `BlockExecutionWorkflow` per runnable test, at most
`concurrency` at once, evaluates each assertion (docflow.assertions) in an activity and stores one result
(`wfnodetestrun_…`) per test. A test that cannot run (its block is gone from the draft, its inputs no longer
fit the block) is `blocked` with the reason, without an execution. `counts` are live while it runs: each test
is in one lifecycle bucket, and a completed one also in one outcome bucket (passed, failed, blocked).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from docflow.executions import BlockExecutionInput
from docflow.models import Model
from docflow.runs import ArtifactRef, Lifecycle, elapsed_ms

TEST_RUN = "wftestrun_"
TEST_RESULT = "wfnodetestrun_"
TestRunStatus = Literal["pending", "queued", "running", "completed", "error", "cancelled"]
Verdict = Literal["passed", "failed", "blocked"]


class TestRunLifecycle(Lifecycle):
    """A test run's (or one result's) lifecycle."""

    __test__ = False  # not a pytest test class

    status: TestRunStatus


class TestCase(Model):
    """One test of the run: its execution's input, or why it cannot run."""

    __test__ = False  # not a pytest test class

    test_id: str
    result_id: str
    block_id: str
    block_type: str
    assertion: dict[str, Any]
    execution: BlockExecutionInput | None = None
    blocked: str | None = None


class LifecycleCounts(Model):
    pending: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    error: int = 0
    cancelled: int = 0


class OutcomeCounts(Model):
    passed: int = 0
    failed: int = 0
    blocked: int = 0


class Counts(Model):
    """The SDK's `BlockTestBatchExecutionCounts`."""

    lifecycle_counts: LifecycleCounts = Field(default_factory=LifecycleCounts)
    outcome: OutcomeCounts = Field(default_factory=OutcomeCounts)


class TestRunInput(Model):
    """The one input of `TestRunWorkflow`."""

    __test__ = False  # not a pytest test class

    test_run_id: str
    project_id: str
    workflow_id: str
    workflow_version_id: str
    created_at: datetime
    cases: list[TestCase] = Field(default_factory=list)
    test_id: str | None = None
    target_block_id: str | None = None
    n_consensus: int | None = None
    concurrency: int = 4


class TestRunRecord(Model):
    """A test run as stored and served (the SDK's `WorkflowTestRun`, plus `project_id` and `result_ids`)."""

    __test__ = False  # not a pytest test class

    id: str
    project_id: str
    workflow_id: str
    workflow_version_id: str
    lifecycle: TestRunLifecycle = Field(default_factory=lambda: TestRunLifecycle(status="queued"))
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    test_id: str | None = None
    target_block_id: str | None = None
    total_tests: int = 0
    counts: Counts = Field(default_factory=Counts)
    n_consensus: int | None = None
    result_ids: list[str] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The SDK's `WorkflowTestRun`."""
        duration = elapsed_ms(self.started_at, self.completed_at)
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "workflow_version_id": self.workflow_version_id,
            "trigger": {"type": "api"},
            "lifecycle": self.lifecycle.model_dump(mode="json"),
            "timing": {
                "created_at": self.created_at.isoformat(),
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "completed_at": self.completed_at.isoformat() if self.completed_at else None,
                "duration_ms": duration,
            },
            "target": {"type": "block", "block_id": self.target_block_id} if self.target_block_id else None,
            "test_id": self.test_id,
            "total_tests": self.total_tests,
            "counts": self.counts.model_dump(mode="json"),
            "n_consensus": self.n_consensus,
        }


class ResultRecord(Model):
    """One test's result in a test run (the SDK's `WorkflowTestResult`, plus `project_id`)."""

    id: str
    project_id: str
    workflow_test_run_id: str
    test_id: str
    workflow_id: str
    block_id: str
    block_type: str
    lifecycle: TestRunLifecycle
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    verdict: Verdict | None = None
    execution_id: str | None = None
    fingerprints: dict[str, str] = Field(default_factory=dict)
    artifact: ArtifactRef | None = None
    handle_inputs: dict[str, Any] = Field(default_factory=dict)
    handle_outputs: dict[str, Any] | None = None
    routing_decisions: list[str] | None = None
    warnings: list[str] = Field(default_factory=list)
    assertion_result: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """The SDK's `WorkflowTestResult`."""
        outcome = (self.assertion_result or {}).get("outcome")
        aid = (self.assertion_result or {}).get("assertion_id")
        summary = None
        if self.verdict is not None:
            summary = {
                "passed": self.verdict == "passed",
                "assertions_passed": int(outcome == "passed"),
                "assertions_failed": int(outcome == "failed"),
                "blocked_assertions": int(self.verdict == "blocked"),
                "failed_assertion_ids": [aid] if outcome == "failed" and aid else [],
            }
        duration = elapsed_ms(self.started_at, self.completed_at)
        return {
            "id": self.id,
            "workflow_test_run_id": self.workflow_test_run_id,
            "test_id": self.test_id,
            "lifecycle": self.lifecycle.model_dump(mode="json"),
            "timing": {
                "created_at": self.created_at.isoformat(),
                "started_at": self.started_at.isoformat() if self.started_at else None,
                "completed_at": self.completed_at.isoformat() if self.completed_at else None,
                "duration_ms": duration,
            },
            "verdict": self.verdict,
            "workflow_id": self.workflow_id,
            "block_id": self.block_id,
            "block_type": self.block_type,
            **self.fingerprints,
            "artifact": self.artifact.model_dump(mode="json") if self.artifact else None,
            "handle_inputs": self.handle_inputs,
            "handle_outputs": self.handle_outputs,
            "routing_decisions": self.routing_decisions,
            "warnings": self.warnings,
            "assertion_result": self.assertion_result,
            "verdict_summary": summary,
            "execution_id": self.execution_id,
        }


class JudgeInput(Model):
    """Evaluate one test's assertion on its execution's outputs (or record it blocked) and store its result."""

    project_id: str
    workflow_id: str
    test_run_id: str
    case: TestCase
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    execution_error: str | None = None
    cancelled: bool = False


class PersistTestRunInput(Model):
    """Input of the activity that stores a test run's record."""

    record: TestRunRecord
