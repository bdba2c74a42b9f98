"""Test runs end to end through the SDK: three tests (passes, fails, blocked), live counts, both paths, cancel."""

from __future__ import annotations

import time
from typing import Any

import httpx
from retab import Retab

from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.integration.builders import extract_chain

TERMINAL = {"completed", "error", "cancelled"}
EXTRA = {"extra": "input['total']"}  # a second reader of the extract: a test on it is blocked once it is deleted


def _test(http: httpx.Client, body: dict[str, Any]) -> str:
    answer = http.post("/v1/workflows/tests", json=body)
    assert answer.status_code == 201, answer.text
    test_id: str = answer.json()["id"]
    return test_id


def _tests(http: httpx.Client, wf_id: str, ids: dict[str, str], run_id: str, tag: str) -> dict[str, str]:
    """One test that passes (extract, from the run's step), one that fails, one whose block leaves the draft."""
    passes = _test(
        http,
        {
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["ex"]},
            "source": {"type": "run_step", "run_id": run_id},
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "invoice_number"},
                "condition": {"kind": "equals", "expected": tag},
            },
        },
    )
    manual = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"total": 5}}}}
    fails = _test(
        http,
        {
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["double"]},
            "source": manual,
            "assertion": {
                "target": {"output_handle_id": "output-json-0"},
                "condition": {"kind": "number_compare", "op": "eq", "expected": 11},
            },
        },
    )
    blocked = _test(
        http,
        {
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["extra"]},
            "source": manual,
            "assertion": {"target": {"output_handle_id": "output-json-0"}, "condition": {"kind": "exists"}},
        },
    )
    return {"passes": passes, "fails": fails, "blocked": blocked}


def _wait_run(http: httpx.Client, test_run_id: str, timeout: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll until the test run ends; its last state and every distinct counts seen on the way."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        run = http.get(f"/v1/workflows/tests/runs/{test_run_id}").json()
        if not seen or seen[-1] != run["counts"]:
            seen.append(run["counts"])
        if run["lifecycle"]["status"] in TERMINAL:
            return run, seen
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_three_tests_end_one_passed_one_failed_one_blocked_with_live_counts(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    tag = "TESTRUN-1"
    wf_id, ids, run_id = extract_chain(client, stack.project_id, tag, EXTRA)
    tests = _tests(http, wf_id, ids, run_id, tag)
    client.workflows.blocks.delete(ids["extra"], workflow_id=wf_id)  # that test can no longer run
    model_server.delay(1.0)  # the extract test is slow, so the run is seen while it runs
    try:
        created = client.workflows.tests.runs.create(workflow_id=wf_id)
        assert created.total_tests == 3
        final, seen = _wait_run(http, created.id)
    finally:
        model_server.delay(0.0)
    assert final["lifecycle"]["status"] == "completed", final
    assert final["counts"]["outcome"] == {"passed": 1, "failed": 1, "blocked": 1}
    assert final["counts"]["lifecycle_counts"]["completed"] == 3
    assert len(seen) >= 2 and any(c["lifecycle_counts"]["running"] > 0 for c in seen), seen
    results = list(client.workflows.tests.results.list(run_id=created.id))
    verdicts = {r.test_id: r.verdict for r in results}
    assert verdicts == {tests["passes"]: "passed", tests["fails"]: "failed", tests["blocked"]: "blocked"}
    failed = next(r for r in results if r.test_id == tests["fails"])
    assert failed.assertion_result is not None and failed.assertion_result.actual_value == 10
    assert failed.verdict_summary is not None and failed.verdict_summary.passed is False
    blocked = next(r for r in results if r.test_id == tests["blocked"])
    assert blocked.assertion_result is not None and blocked.assertion_result.failure is not None
    assert "not in the draft" in blocked.assertion_result.failure.message
    one = http.get(f"/v1/workflows/tests/results/{failed.id}").json()
    assert one["verdict"] == "failed" and one["handle_outputs"]["output-json-0"]["data"] == 10


def test_the_earlier_path_runs_one_test_and_a_cancel_stops_a_run(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    tag = "TESTRUN-2"
    wf_id, ids, run_id = extract_chain(client, stack.project_id, tag, EXTRA)
    tests = _tests(http, wf_id, ids, run_id, tag)
    one = http.post(f"/v1/workflows/{wf_id}/tests/runs", json={"test_id": tests["fails"]})
    assert one.status_code == 201, one.text
    final, _ = _wait_run(http, one.json()["id"])
    assert final["test_id"] == tests["fails"] and final["total_tests"] == 1
    assert final["counts"]["outcome"] == {"passed": 0, "failed": 1, "blocked": 0}
    bad = http.post("/v1/workflows/tests/runs", json={"workflow_id": wf_id, "n_consensus": 4})
    assert bad.status_code == 422 and bad.json()["detail"]["details"]["field"] == "n_consensus"

    model_server.delay(5.0)
    try:
        slow = client.workflows.tests.runs.create(
            workflow_id=wf_id, scope={"type": "single", "test_id": tests["passes"]}
        )
        deadline = time.monotonic() + 20
        while http.get(f"/v1/workflows/tests/runs/{slow.id}").json()["counts"]["lifecycle_counts"]["running"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.workflows.tests.runs.cancel(slow.id)
        ended, _ = _wait_run(http, slow.id)
    finally:
        model_server.delay(0.0)
        model_server.drain()  # the cancelled call is still held: its answer must not take a later test's
    assert ended["lifecycle"]["status"] == "cancelled"
    assert ended["counts"]["lifecycle_counts"]["cancelled"] == 1, ended["counts"]
    listed = [r.id for r in client.workflows.tests.runs.list(workflow_id=wf_id)]
    assert listed == [slow.id, one.json()["id"]]  # newest first
    assert [r.id for r in client.workflows.tests.runs.list(workflow_id=wf_id, status="cancelled")] == [slow.id]
    assert [r.id for r in client.workflows.tests.runs.list(test_id=tests["fails"])] == [one.json()["id"]]


def test_an_llm_judged_assertion_asks_the_model_provider(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids, _ = extract_chain(client, stack.project_id, "TESTRUN-3", EXTRA)
    manual = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"total": 5}}}}
    rubric = "the doubled total is a plausible amount, judged TESTRUN-3"
    test_id = _test(
        http,
        {
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["double"]},
            "source": manual,
            "assertion": {
                "target": {"output_handle_id": "output-json-0"},
                "condition": {"kind": "llm_judged_as", "rubric": rubric, "expected_label": "pass"},
            },
        },
    )
    model_server.answer_next({"label": "pass", "reasoning": "10 is plausible"})
    created = client.workflows.tests.runs.create(workflow_id=wf_id, scope={"type": "single", "test_id": test_id})
    final, _ = _wait_run(http, created.id)
    results = http.get("/v1/workflows/tests/results", params={"run_id": created.id}).json()["data"]
    assert final["counts"]["outcome"] == {"passed": 1, "failed": 0, "blocked": 0}, results
    asked = [r for r in model_server.requests if rubric in str(r.body)]
    assert len(asked) == 1  # the judge's one call went to the model server
