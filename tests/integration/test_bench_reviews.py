"""The review-gate bench (bench/reviews.py) runs its core on the test stack with a few runs, so it cannot rot."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowFailureError

from bench.reviews import Target, measure
from docflow.temporal import connect
from tests.conftest import Stack


async def test_the_review_bench_measures_a_few_waiting_runs(stack: Stack) -> None:
    # The other project: it has no webhook endpoint, so the runs' histories hold only what the bench measures.
    target = Target(stack.settings, stack.api_url, stack.other_api_key, stack.other_project_id, stack.worker.proc.pid)
    report = await measure(target, waiting=5, samples=2)
    # The runs left waiting are cancelled (their reviews closed), so no other test finds them open.
    temporal = await connect(stack.settings)
    left = [temporal.get_workflow_handle(run_id) for run_id in report.runs[2:]]
    await asyncio.gather(*(handle.cancel() for handle in left))
    for handle in left:
        with pytest.raises(WorkflowFailureError):
            await handle.result()

    assert len(report.one_waiting) == 2 and len(report.many_waiting) == 2
    assert all(0 < s < 30 for s in report.one_waiting + report.many_waiting)
    assert report.rss_idle > 0 and report.rss_waiting > 0 and report.cpu_per_run["worker"] > 0
    # A waiting run's history is what it took to reach the gate, and waiting adds nothing to it.
    assert report.history_types[0] == "WORKFLOW_EXECUTION_STARTED"
    assert report.history_types[-1] == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"
    assert report.history_events == len(report.history_types) == report.history_events_later
    # The resumption is cut into its parts: the Update's task first, then the activity applying the decision.
    assert [part for part, _ in report.many_phases[0][:2]] == ["task 1", "activity 1"]
