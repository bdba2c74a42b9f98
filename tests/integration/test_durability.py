"""A worker killed in the middle of a run (SIGKILL): a new worker finishes it, finished blocks run once."""

from __future__ import annotations

import time

from retab import Retab

from tests.conftest import Stack
from tests.http_target import HttpTarget
from tests.integration.builders import build, wait_for


def test_run_survives_a_killed_worker(client: Retab, stack: Stack, http_target: HttpTarget) -> None:
    tag = f"{time.monotonic_ns()}"
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "first", "type": "api_call", "config": {"url": f"{http_target.url}/echo/first-{tag}"}},
        {"id": "slow", "type": "api_call", "config": {"url": f"{http_target.url}/slow/{tag}?seconds=2"}},
        {"id": "last", "type": "api_call", "config": {"url": f"{http_target.url}/echo/last-{tag}"}},
    ]
    edges = [
        {"source_block": a, "target_block": b, "source_handle": "output-json-0", "target_handle": "input-json-0"}
        for a, b in [("in", "first"), ("first", "slow"), ("slow", "last")]
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"x": 1}}, version="draft")
    deadline = time.monotonic() + 30
    while http_target.counts[f"/slow/{tag}"] == 0:
        assert time.monotonic() < deadline, "the slow block never started"
        time.sleep(0.05)
    stack.restart_worker(kill=True)
    done = wait_for(client, run.id, timeout=90)
    assert done.lifecycle.status == "completed", done.lifecycle
    assert http_target.counts[f"/echo/first-{tag}"] == 1  # finished before the kill: not run again
    assert http_target.counts[f"/echo/last-{tag}"] == 1
    assert http_target.counts[f"/slow/{tag}"] >= 2  # in flight at the kill: retried by the new worker
    steps = {s.block_id: s.lifecycle.status for s in client.workflows.steps.list(run_id=run.id)}
    assert set(steps.values()) == {"completed"}
