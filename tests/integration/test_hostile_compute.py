"""Hostile computation: catastrophic regexes, CPU and memory bombs stop their own step, never the worker or the API.

Patterns run on RE2 (linear time) everywhere; expressions and conditions run in a pool of limited processes.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from retab import Retab

from devstack.processes import wait_for_worker
from docflow import keys
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.http_target import HttpTarget
from tests.integration.builders import build, chain, json_edge, wait_for

EVIL = r"^(a+)+$"
ATTACK = "a" * 40 + "!"


def _workflow(client: Retab, stack: Stack) -> str:
    return client.workflows.create(project_id=stack.project_id, name=f"hostile {uuid.uuid4().hex[:6]}").id


def _block(http: httpx.Client, wf: str, block_type: str, config: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/workflows/blocks", json={"workflow_id": wf, "type": block_type, "config": config})


# -- (a) regexes ---------------------------------------------------------------------------------------------


def test_a_condition_regex_re2_cannot_run_is_422_naming_expected(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    wf = _workflow(client, stack)
    sub = {"path": "code", "operator": "matches_regex", "expected": r"(a)\1"}
    answer = _block(http, wf, "conditional", {"conditions": [{"id": "c", "sub_conditions": [sub]}]})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["details"]["field"] == "config.conditions.0.sub_conditions.0.expected"
    assert "RE2" in detail["message"]


def test_a_schema_pattern_re2_cannot_run_is_422_naming_its_path(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    wf = _workflow(client, stack)
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"(?<=x)y"}}}
    for block_type in ("start_json", "extract"):
        answer = _block(http, wf, block_type, {"json_schema": schema})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail["details"]["field"] == "config.json_schema"
        assert "properties.code.pattern" in detail["message"]


def test_a_catastrophic_schema_pattern_is_checked_in_linear_time_by_the_api(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": EVIL}}}
    wf_id, ids = build(
        client, stack.project_id, [{"id": "in", "type": "start_json", "config": {"json_schema": schema}}], []
    )
    start = time.monotonic()
    answer = http.post(
        "/v1/workflows/runs",
        json={"workflow_id": wf_id, "version": "draft", "json_inputs": {ids["in"]: {"code": ATTACK}}},
    )
    assert time.monotonic() - start < 3.0  # backtracking over 40 letters would take hours
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["details"]["field"] == f"json_inputs.{ids['in']}.code"
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"code": "aaaa"}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"


def test_unique_items_of_many_objects_are_checked_in_linear_time_by_the_api(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    schema = {"type": "object", "properties": {"rows": {"type": "array", "uniqueItems": True}}}
    wf_id, ids = build(
        client, stack.project_id, [{"id": "in", "type": "start_json", "config": {"json_schema": schema}}], []
    )
    rows = [{"n": i} for i in range(20_000)]
    start = time.monotonic()
    answer = http.post(
        "/v1/workflows/runs",
        json={"workflow_id": wf_id, "version": "draft", "json_inputs": {ids["in"]: {"rows": [*rows, {"n": 3}]}}},
    )
    assert time.monotonic() - start < 4.0  # pairwise over 20,001 rows is 2×10⁸ comparisons: minutes
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["details"]["field"] == f"json_inputs.{ids['in']}.rows"


def test_a_catastrophic_condition_regex_evaluates_at_once(http: httpx.Client, client: Retab, stack: Stack) -> None:
    sub = {"path": "code", "operator": "matches_regex", "expected": EVIL}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "route", "type": "conditional", "config": {"conditions": [{"id": "evil", "sub_conditions": [sub]}]}},
    ]
    edges = [json_edge("in", "route")]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"code": ATTACK}}, version="draft")
    done = wait_for(client, run.id, timeout=30)
    assert done.lifecycle.status == "completed", done.lifecycle
    route = http.get(f"/v1/workflows/runs/{run.id}/steps/{ids['route']}").json()
    assert route["routing_decisions"] == ["output-json-else"]


# -- (b, e) CPU and memory -----------------------------------------------------------------------------------

BOMBS = {
    "cpu": "sum([[1]*5000 for c in 'x'*1500], [])",
    "format": "'%0200000000d' % 1",
    "join": "('x'*100000).join('y'*2000)",
}
LIMIT_CODES = {"expression_timeout", "expression_resource_limit"}
LIMIT_SECONDS = 4.0


class HealthProbe:
    """Polls the API's /health from a thread and keeps the slowest answer."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.slowest = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=10) as http:
            while not self._stop.is_set():
                start = time.monotonic()
                assert http.get("/health").status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - start)
                self.answers += 1
                time.sleep(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def _function_workflow(client: Retab, stack: Stack, expression: str) -> tuple[str, dict[str, str]]:
    blocks, edges = chain([("in", "start_json", {}), ("fn", "function", {"expression": expression})])
    return build(client, stack.project_id, blocks, edges)


def _step_record(store: ObjectStore, stack: Stack, run_id: str, step_id: str) -> dict[str, Any]:
    record: dict[str, Any] = asyncio.run(store.get_json(keys.step(stack.project_id, run_id, step_id))).data
    return record


def _assert_stopped_by_its_limit(store: ObjectStore, stack: Stack, run_id: str, step_id: str) -> None:
    record = _step_record(store, stack, run_id, step_id)
    assert record["lifecycle"]["status"] == "error", record["lifecycle"]
    assert record["error"]["error_code"] in LIMIT_CODES, record["error"]
    took = datetime.fromisoformat(record["completed_at"]) - datetime.fromisoformat(record["started_at"])
    assert took.total_seconds() < LIMIT_SECONDS + 1.5, took


def test_each_bomb_fails_its_own_step_while_another_run_and_the_api_go_on(
    client: Retab, stack: Stack, store: ObjectStore
) -> None:
    bombs = {name: _function_workflow(client, stack, expression) for name, expression in BOMBS.items()}
    fine_id, fine_ids = _function_workflow(client, stack, "total * 2")
    with HealthProbe(stack.api_url) as probe:
        runs = {
            name: client.workflows.runs.create(workflow_id=wf, json_inputs={ids["in"]: {}}, version="draft").id
            for name, (wf, ids) in bombs.items()
        }
        fine = client.workflows.runs.create(
            workflow_id=fine_id, json_inputs={fine_ids["in"]: {"total": 21}}, version="draft"
        )
        done = wait_for(client, fine.id, timeout=30)
        finished = {name: wait_for(client, run_id, timeout=60) for name, run_id in runs.items()}
    assert done.lifecycle.status == "completed", done.lifecycle
    fn = client.workflows.steps.get(fine_ids["fn"], run_id=fine.id)
    assert fn.handle_outputs["output-json-0"].data == 42
    for name, run in finished.items():
        assert run.lifecycle.status == "error", (name, run.lifecycle)
        _assert_stopped_by_its_limit(store, stack, runs[name], bombs[name][1]["fn"])
    assert probe.answers > 0 and probe.slowest < 1.0, probe.slowest


# -- (d) heartbeats ------------------------------------------------------------------------------------------


def test_a_remote_block_beside_poisoned_blocks_runs_exactly_once(
    http: httpx.Client, client: Retab, stack: Stack, http_target: HttpTarget, store: ObjectStore
) -> None:
    tag = uuid.uuid4().hex[:8]
    slow_path = f"/slow/{tag}"
    remote_id, remote_ids = build(
        client,
        stack.project_id,
        *chain([("in", "start_json", {}), ("call", "api_call", {"url": f"{http_target.url}{slow_path}?seconds=2"})]),
    )
    # Before RE2 and the isolated pool, this regex held the worker's GIL for about a minute.
    sub = {"path": "code", "operator": "matches_regex", "expected": EVIL}
    poisoned = [
        {"id": "in", "type": "start_json"},
        {"id": "route", "type": "conditional", "config": {"conditions": [{"id": "evil", "sub_conditions": [sub]}]}},
        {"id": "fn", "type": "function", "config": {"expression": BOMBS["cpu"]}},
    ]
    edges = [
        {"source_block": "in", "target_block": t, "source_handle": "output-json-0", "target_handle": "input-json-0"}
        for t in ("route", "fn")
    ]
    poisoned_id, poisoned_ids = build(client, stack.project_id, poisoned, edges)

    remote = client.workflows.runs.create(workflow_id=remote_id, json_inputs={remote_ids["in"]: {}}, version="draft")
    deadline = time.monotonic() + 30
    while http_target.counts[slow_path] == 0:
        assert time.monotonic() < deadline, "the slow call never started"
        time.sleep(0.02)
    attack = {poisoned_ids["in"]: {"code": "a" * 31 + "!"}}
    bad = [client.workflows.runs.create(workflow_id=poisoned_id, json_inputs=attack, version="draft") for _ in range(3)]

    assert wait_for(client, remote.id, timeout=60).lifecycle.status == "completed"
    for run in bad:
        assert wait_for(client, run.id, timeout=60).lifecycle.status == "error"
        route = http.get(f"/v1/workflows/runs/{run.id}/steps/{poisoned_ids['route']}").json()
        assert route["routing_decisions"] == ["output-json-else"]
        _assert_stopped_by_its_limit(store, stack, run.id, poisoned_ids["fn"])
    assert http_target.counts[slow_path] == 1
    assert client.workflows.steps.get(remote_ids["call"], run_id=remote.id).retry_count == 0


# -- (e) restarts --------------------------------------------------------------------------------------------


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited and waits to be reaped


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_poisoned_run_resumed_by_a_restarted_worker_fails_alone(
    client: Retab, stack: Stack, store: ObjectStore
) -> None:
    bomb_id, bomb_ids = _function_workflow(client, stack, BOMBS["cpu"])
    fine_id, fine_ids = _function_workflow(client, stack, "total + 1")
    poisoned = client.workflows.runs.create(workflow_id=bomb_id, json_inputs={bomb_ids["in"]: {}}, version="draft")
    time.sleep(1.0)  # the bomb is in the pool now
    pool = _children(stack.worker.proc.pid)
    assert pool, "the worker has no isolated processes"
    try:
        stack.restart_worker(kill=True)
    finally:
        wait_for_worker(stack.settings, proc=stack.worker.proc)
    deadline = time.monotonic() + 5
    while any(_running(pid) for pid in pool):  # SIGKILLed with the worker, not orphaned
        assert time.monotonic() < deadline, "the killed worker's isolated processes live on"
        time.sleep(0.05)
    with HealthProbe(stack.api_url) as probe:
        fine = client.workflows.runs.create(
            workflow_id=fine_id, json_inputs={fine_ids["in"]: {"total": 1}}, version="draft"
        )
        assert wait_for(client, fine.id, timeout=60).lifecycle.status == "completed"
        assert wait_for(client, poisoned.id, timeout=90).lifecycle.status == "error"
    _assert_stopped_by_its_limit(store, stack, poisoned.id, bomb_ids["fn"])
    assert probe.slowest < 1.0
    again = client.workflows.runs.create(
        workflow_id=fine_id, json_inputs={fine_ids["in"]: {"total": 2}}, version="draft"
    )
    assert wait_for(client, again.id, timeout=30).lifecycle.status == "completed"
