"""Deleting a run stops its activities before its data goes, and every read of the deleted run is 404."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
from retab import Retab

from api.runs_service import Runs
from docflow import keys
from docflow.ids import ARTIFACT_PREFIXES, derived_id
from docflow.temporal import connect
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.http_target import HttpTarget
from tests.integration.builders import build, chain


def _wait_running(http: httpx.Client, run_id: str, block_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = {s["block_id"]: s["lifecycle"]["status"] for s in http.get(f"/v1/workflows/runs/{run_id}/steps").json()}
        if steps.get(block_id) == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"step {block_id} never started")


def _start_with_slow_call(
    client: Retab, http: httpx.Client, stack: Stack, target: HttpTarget, path: str, seconds: float
) -> tuple[str, dict[str, str], str]:
    """A run whose api_call is in flight; returns the run id, block ids and the artifact of an earlier step."""
    call = {"method": "POST", "url": f"{target.url}{path}?seconds={seconds}", "timeout_seconds": 30}
    blocks, edges = chain(
        [("in", "start_json", {}), ("f", "function", {"expression": "input"}), ("call", "api_call", call)]
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    body = {"workflow_id": wf_id, "version": "draft", "json_inputs": {ids["in"]: {"n": 1}}}
    run_id = http.post("/v1/workflows/runs", json=body).json()["id"]
    _wait_running(http, run_id, ids["call"])
    artifact = http.get(f"/v1/workflows/steps/{ids['f']}", params={"run_id": run_id}).json()["artifact"]
    assert artifact is not None and http.get(f"/v1/workflows/artifacts/{artifact['id']}").status_code == 200
    return run_id, ids, artifact["id"]


def _assert_nothing_left(stack: Stack, store: ObjectStore, run_id: str, ids: dict[str, str]) -> None:
    left = asyncio.run(store.list_keys(keys.run_prefix(stack.project_id, run_id)))
    assert left == [], f"the deleted run still has records: {left}"
    candidates = {derived_id(p, run_id, b, length=24) for p in set(ARTIFACT_PREFIXES.values()) for b in ids.values()}
    found = [a for a in candidates if asyncio.run(store.exists(keys.artifact(stack.project_id, a)))]
    assert found == [], f"the deleted run still has artifacts: {found}"


def _assert_all_reads_404(http: httpx.Client, run_id: str, ids: dict[str, str], artifact_id: str) -> None:
    for path in (
        f"/v1/workflows/runs/{run_id}",
        f"/v1/workflows/runs/{run_id}/steps",
        f"/v1/workflows/runs/{run_id}/steps/{ids['f']}",
        f"/v1/workflows/steps?run_id={run_id}",
        f"/v1/workflows/steps/{ids['f']}?run_id={run_id}",
        f"/v1/workflows/artifacts?run_id={run_id}",
        f"/v1/workflows/artifacts/{artifact_id}",
    ):
        assert http.get(path).status_code == 404, path


def test_deleting_a_run_whose_call_answers_meanwhile_leaves_nothing_behind(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore, http_target: HttpTarget
) -> None:
    run_id, ids, artifact_id = _start_with_slow_call(client, http, stack, http_target, "/slow/delete-a", 3)
    called = time.monotonic()
    assert http.delete(f"/v1/workflows/runs/{run_id}").status_code == 204
    _assert_all_reads_404(http, run_id, ids, artifact_id)
    # Past the moment the call answered, and a heartbeat later: a block still going would have written by now.
    time.sleep(max(0.0, called + 3 + 3 - time.monotonic()))
    _assert_nothing_left(stack, store, run_id, ids)
    _assert_all_reads_404(http, run_id, ids, artifact_id)
    assert http_target.counts["/slow/delete-a"] == 1


def test_deleting_a_run_stops_its_call_in_flight(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore, http_target: HttpTarget
) -> None:
    run_id, ids, artifact_id = _start_with_slow_call(client, http, stack, http_target, "/slow/delete-b", 9)
    called = time.monotonic()
    assert http.delete(f"/v1/workflows/runs/{run_id}").status_code == 204
    assert time.monotonic() - called < 8, "the delete waited the call out instead of cancelling it"
    time.sleep(max(0.0, called + 9 + 2 - time.monotonic()))
    _assert_nothing_left(stack, store, run_id, ids)
    _assert_all_reads_404(http, run_id, ids, artifact_id)
    assert http_target.counts["/slow/delete-b"] == 1


def test_an_artifact_of_a_deleted_run_is_not_served_even_if_its_record_remains(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore
) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    body = {"workflow_id": wf_id, "version": "draft", "json_inputs": {ids["in"]: {}}}
    run_id = http.post("/v1/workflows/runs", json=body).json()["id"]
    deadline = time.monotonic() + 30
    while http.get(f"/v1/workflows/runs/{run_id}").json()["lifecycle"]["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    artifact = http.get(f"/v1/workflows/runs/{run_id}/steps/{ids['f']}").json()["artifact"]
    record = asyncio.run(store.get_json(keys.artifact(stack.project_id, artifact["id"]))).data
    assert http.delete(f"/v1/workflows/runs/{run_id}").status_code == 204
    # A write that raced the delete (or one that outlived a terminated activity) must stay invisible.
    asyncio.run(store.put_json(keys.artifact(stack.project_id, artifact["id"]), record))
    assert http.get(f"/v1/workflows/artifacts/{artifact['id']}").status_code == 404


def test_a_run_whose_worker_is_stuck_is_terminated_and_its_late_writes_do_not_land(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore, http_target: HttpTarget
) -> None:
    run_id, ids, artifact_id = _start_with_slow_call(client, http, stack, http_target, "/slow/delete-c", 2)
    settings = stack.settings.model_copy(update={"run_delete_wait_seconds": 1.0})

    async def delete() -> None:
        runs = Runs(ObjectStore(settings), await connect(settings), settings)
        await runs.delete(stack.project_id, run_id)

    stack.worker.proc.send_signal(signal.SIGSTOP)  # a stuck worker: the cancellation cannot reach its blocks
    try:
        started = time.monotonic()
        asyncio.run(delete())
        assert time.monotonic() - started < 15, "the delete did not give up waiting for the stuck run"
    finally:
        stack.worker.proc.send_signal(signal.SIGCONT)
    # The call answered while the worker was frozen: the block now resumes with its answer in hand.
    time.sleep(4)
    _assert_nothing_left(stack, store, run_id, ids)
    _assert_all_reads_404(http, run_id, ids, artifact_id)
