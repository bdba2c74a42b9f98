"""An S3 outage is infrastructure, not the user's fault: runs ride out a short pause and name storage after a long one.

Each test starts its own stack (pausing the shared S3 server would fail other tests), starts 30 runs of a
9-block chain, freezes the S3 server with SIGSTOP while they are in flight, then resumes it with SIGCONT.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import create_key
from devstack.processes import ThreadedApi, start_worker, wait_for_worker
from devstack.stack import Server
from docflow.config import Settings
from tests.free_ports import start_on_free_ports

RUNS = 30
CHAIN = 8  # function blocks after the start block: 9 blocks in all
BUDGET_SECONDS = 15.0


@dataclass
class OutageStack:
    settings: Settings
    servers: list[Server]
    client: httpx.Client
    project_id: str

    def pause_s3(self, seconds: float) -> None:
        """Freeze the S3 server for `seconds` (its sockets stay open: requests hang, as in a real stall)."""
        s3 = next(s for s in self.servers if s.name == "s3")
        os.kill(s3.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(s3.proc.pid, signal.SIGCONT)


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[OutageStack]:
    settings, servers = start_on_free_ports(
        lambda ports: Settings(
            data_dir=tmp_path / "data", task_queue="outage", storage_retry_budget_seconds=BUDGET_SECONDS, **ports
        )
    )
    key, project = create_key(settings.keys_file)
    api: ThreadedApi | None = None
    try:
        servers.append(start_worker(settings, settings.data_dir / "logs" / "worker.log"))
        wait_for_worker(settings, proc=servers[-1].proc)
        api = ThreadedApi(settings).start()
        with httpx.Client(base_url=api.url, headers={"Api-Key": key}, timeout=120) as client:
            yield OutageStack(settings, servers, client, project)
    finally:
        if api is not None:
            api.stop()
        for server in reversed(servers):
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
            server.stop()


def _chain_workflow(stack: OutageStack) -> str:
    client = stack.client
    wf = client.post("/v1/workflows", json={"name": "outage", "project_id": stack.project_id}).json()
    blocks: list[dict[str, Any]] = [{"id": "in", "type": "start_json"}]
    blocks += [{"id": f"f{i}", "type": "function", "config": {"expression": "input + 1"}} for i in range(CHAIN)]
    blocks[1]["config"] = {"expression": "input['n'] + 1"}
    for block in blocks:
        response = client.post("/v1/workflows/blocks", json={**block, "workflow_id": wf["id"]})
        assert response.status_code == 201, response.text
    for a, b in zip(blocks, blocks[1:], strict=False):
        edge = {"workflow_id": wf["id"], "source_block": a["id"], "target_block": b["id"]}
        assert client.post("/v1/workflows/edges", json=edge).status_code == 201
    assert client.post(f"/v1/workflows/{wf['id']}/publish", json={}).status_code == 200
    return str(wf["id"])


def _start_runs(client: httpx.Client, workflow_id: str) -> list[str]:
    body = {"workflow_id": workflow_id, "json_inputs": {"in": {"n": 0}}}
    return [client.post("/v1/workflows/runs", json=body).json()["id"] for _ in range(RUNS)]


def _wait_all(client: httpx.Client, run_ids: list[str], timeout: float = 240) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(run_ids):
        assert time.monotonic() < deadline, f"{len(run_ids) - len(done)} runs still not finished"
        for run_id in run_ids:
            if run_id not in done:
                run = client.get(f"/v1/workflows/runs/{run_id}").json()
                if run["lifecycle"]["status"] in {"completed", "error", "cancelled"}:
                    done[run_id] = run
        time.sleep(0.2)
    return [done[r] for r in run_ids]


def _assert_in_flight(client: httpx.Client, run_ids: list[str]) -> None:
    """The pause must hit runs that are still going, or it shows nothing."""
    last = client.get(f"/v1/workflows/runs/{run_ids[-1]}").json()
    assert last["lifecycle"]["status"] in {"pending", "running"}, last["lifecycle"]


def test_runs_ride_out_a_storage_pause_shorter_than_the_retry_budget(outage: OutageStack) -> None:
    client = outage.client
    run_ids = _start_runs(client, _chain_workflow(outage))
    _assert_in_flight(client, run_ids)
    outage.pause_s3(10)
    runs = _wait_all(client, run_ids)
    failures = {r["id"]: r["lifecycle"] for r in runs if r["lifecycle"]["status"] != "completed"}
    assert not failures, failures
    step = client.get(f"/v1/workflows/steps/f{CHAIN - 1}", params={"run_id": run_ids[-1]}).json()
    assert step["handle_outputs"]["output-json-0"]["data"] == CHAIN


def test_a_storage_outage_past_the_budget_fails_runs_naming_storage(outage: OutageStack) -> None:
    client = outage.client
    run_ids = _start_runs(client, _chain_workflow(outage))
    _assert_in_flight(client, run_ids)
    outage.pause_s3(BUDGET_SECONDS + 10)
    runs = _wait_all(client, run_ids)
    failed = [r for r in runs if r["lifecycle"]["status"] == "error"]
    assert failed, [r["lifecycle"] for r in runs]
    for run in failed:
        message = run["lifecycle"]["message"]
        assert "storage" in message.lower(), message
        assert "expression" not in message.lower(), message
