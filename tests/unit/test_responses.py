"""The response models document what the builders answer: each builder's output validates against its view,
and served as the routes serve it (`exclude_unset`) it comes back as it was, absent keys absent (not null)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.responses import ReviewVersionView, ReviewView, RunView, StepView, TestResultView, TestRunView
from api.run_views import public_run, public_step
from docflow.models import FileRef
from docflow.reviews import Actor, ReviewDecision, ReviewRecord, ReviewVersionRecord
from docflow.runs import (
    ArtifactRef,
    HandleValue,
    IgnoredSignal,
    RunInputRefs,
    RunLifecycle,
    RunState,
    RunTiming,
    StepLifecycle,
    StepRecord,
    StepState,
)
from docflow.test_runs import ResultRecord, TestRunLifecycle, TestRunRecord

NOW = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=3)


def served(view: type[BaseModel], answer: dict[str, Any]) -> dict[str, Any]:
    """What a route with `response_model=view, response_model_exclude_unset=True` sends for `answer`."""
    return view.model_validate(answer).model_dump(mode="json", exclude_unset=True)


def same_instants(a: Any, b: Any) -> bool:
    """Equal JSON, timestamps compared as instants (`+00:00` and `Z` name the same one)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_instants(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_instants(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:
            return datetime.fromisoformat(a) == datetime.fromisoformat(b)
        except ValueError:
            return False
    return bool(a == b)


def _run(lifecycle: RunLifecycle) -> RunState:
    return RunState(
        run_id="run_1",
        project_id="proj_1",
        workflow_id="wf_1",
        version_id="ver_1",
        workflow_name="invoices",
        lifecycle=lifecycle,
        timing=RunTiming(created_at=NOW, started_at=NOW, completed_at=LATER, accumulated_human_waiting_ms=500),
        inputs=RunInputRefs(documents={"doc": FileRef(id="file_1", filename="a.pdf", mime_type="application/pdf")}),
        ignored_signals=[IgnoredSignal(received_at=NOW, reason="no such review", payload={"review_id": "rev_x"})],
    )


@pytest.mark.parametrize(
    "lifecycle",
    [
        RunLifecycle(status="completed"),
        RunLifecycle(status="awaiting_review", waiting_for_block_ids=["ex"]),
        RunLifecycle(
            status="error",
            message="boom",
            stage="execution",
            category="permanent",
            details={"block_id": "ex", "error_code": "x"},
            failing_step_id="ex",
        ),
        RunLifecycle(status="cancelled", reason="cancelled by request"),
    ],
    ids=lambda lc: lc.status,
)
def test_a_run_is_served_as_built(lifecycle: RunLifecycle) -> None:
    answer = public_run(_run(lifecycle), {"in": {"a": 1}})
    assert served(RunView, answer) == answer
    assert "message" not in served(RunView, public_run(_run(RunLifecycle(status="completed"))))["lifecycle"]


def test_a_step_is_served_as_built_with_its_payloads() -> None:
    state = StepState(
        step_id="ex",
        block_id="ex",
        block_type="extract",
        block_label="Extract",
        lifecycle=StepLifecycle(status="error", message="bad", stage="execution", category="permanent"),
        created_at=NOW,
        started_at=NOW,
        completed_at=LATER,
        model="m",
        artifact=ArtifactRef(operation="extraction", id="extr_1"),
        routing_decisions=None,
    )
    document = FileRef(id="file_1", filename="a.pdf", mime_type="application/pdf")
    record = StepRecord(
        **state.model_dump(),
        run_id="run_1",
        handle_inputs={"input-file-0": HandleValue(type="file", document=document)},
        handle_outputs={"output-json-0": HandleValue(type="json", data={"total": 1})},
    )
    for built in (public_step("run_1", state, record), public_step("run_1", state, None)):
        assert same_instants(served(StepView, built), built)
    assert served(StepView, public_step("run_1", state, record))["loop_containers"] == []


def test_a_view_refuses_a_key_it_does_not_document() -> None:
    answer = public_run(_run(RunLifecycle(status="completed")))
    with pytest.raises(ValidationError):
        RunView.model_validate({**answer, "surprise": 1})


def test_test_runs_and_results_are_served_as_built() -> None:
    record = TestRunRecord(
        id="wftestrun_1",
        project_id="proj_1",
        workflow_id="wf_1",
        workflow_version_id="ver_1",
        lifecycle=TestRunLifecycle(status="cancelled", reason="cancelled by request"),
        created_at=NOW,
        started_at=NOW,
        completed_at=LATER,
        target_block_id="ex",
        total_tests=3,
    )
    assert same_instants(served(TestRunView, record.public()), record.public())
    blocked = ResultRecord(
        id="wfnodetestrun_1",
        project_id="proj_1",
        workflow_test_run_id="wftestrun_1",
        test_id="wftest_1",
        workflow_id="wf_1",
        block_id="ex",
        block_type="extract",
        lifecycle=TestRunLifecycle(status="completed"),
        created_at=NOW,
        verdict="blocked",
        assertion_result={
            "assertion_id": "a1",
            "condition_kind": "exists",
            "outcome": "blocked",
            "assertion_label": None,
            "failure": {"code": "not_runnable", "message": "block gone", "details": {}},
        },
    )
    answer = served(TestResultView, blocked.public())
    assert same_instants(answer, blocked.public())
    assert "execution_fingerprint" not in answer  # a blocked test ran nothing: no fingerprints, not nulls


def test_reviews_and_versions_are_served_as_built() -> None:
    author = Actor(kind="human", id="key:1", display_name="Ana")
    review = ReviewRecord(
        id="rev_1",
        project_id="proj_1",
        workflow_id="wf_1",
        workflow_version_id="ver_1",
        run_id="run_1",
        block_id="ex",
        step_id="ex",
        block_type="extract",
        triggered_by={"kind": "always"},
        created_at=NOW,
        decision=ReviewDecision(verdict="approved", version_id="rvr_1", author=author, created_at=LATER),
        status="approved",
        seed_version_id="rvr_1",
    )
    assert served(ReviewView, review.public()) == review.public()
    version = ReviewVersionRecord(
        id="rvr_1", review_id="rev_1", project_id="proj_1", author=author, snapshot={"a": 1}, created_at=NOW
    )
    assert served(ReviewVersionView, version.public()) == version.public()
