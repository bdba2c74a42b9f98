"""The embedded stack keeps its data across restarts: workflows, runs and step records are still there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from api.auth import create_key
from devstack.processes import ThreadedApi, start_worker, wait_for_worker
from devstack.stack import Server, start_servers
from docflow.config import Settings
from tests.free_ports import start_on_free_ports


def _up(settings: Settings, servers: list[Server] | None = None) -> tuple[list[Server], ThreadedApi]:
    servers = servers if servers is not None else start_servers(settings)
    try:
        servers.append(start_worker(settings, settings.data_dir / "logs" / "worker.log"))
        wait_for_worker(settings, proc=servers[-1].proc)
        return servers, ThreadedApi(settings).start()
    except BaseException:
        for server in reversed(servers):  # leave no server behind when start-up fails
            server.stop()
        raise


def _down(servers: list[Server], api: ThreadedApi) -> None:
    api.stop()
    for server in reversed(servers):
        server.stop()


def _wait_completed(api: httpx.Client, run_id: str) -> Any:
    deadline = time.monotonic() + 60
    while (run := api.get(f"/v1/workflows/runs/{run_id}").json())["lifecycle"]["status"] != "completed":
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    return run


def test_data_survives_a_restart_of_the_stack(tmp_path: Path) -> None:
    settings, started = start_on_free_ports(
        lambda ports: Settings(data_dir=tmp_path / "data", task_queue="restart", **ports)
    )
    key, project = create_key(settings.keys_file)
    servers, api = _up(settings, started)
    try:
        with httpx.Client(base_url=api.url, headers={"Api-Key": key}, timeout=30) as client:
            wf = client.post("/v1/workflows", json={"name": "persist", "project_id": project}).json()
            function = {"id": "fn-r", "type": "function", "config": {"expression": "input['n'] + 1"}}
            for block in ({"id": "in-r", "type": "start_json"}, function):
                assert client.post("/v1/workflows/blocks", json={**block, "workflow_id": wf["id"]}).status_code == 201
            edge = {"workflow_id": wf["id"], "source_block": "in-r", "target_block": "fn-r"}
            assert client.post("/v1/workflows/edges", json=edge).status_code == 201
            version = client.post(f"/v1/workflows/{wf['id']}/publish", json={}).json()["published"]["version_id"]
            run = client.post("/v1/workflows/runs", json={"workflow_id": wf["id"], "json_inputs": {"in-r": {"n": 1}}})
            before = _wait_completed(client, run.json()["id"])
    finally:
        _down(servers, api)

    servers, api = _up(settings)
    try:
        with httpx.Client(base_url=api.url, headers={"Api-Key": key}, timeout=30) as client:
            assert client.get(f"/v1/workflows/{wf['id']}").json()["published"]["version_id"] == version
            after = client.get(f"/v1/workflows/runs/{before['id']}").json()
            assert after["lifecycle"]["status"] == "completed" and after["timing"] == before["timing"]
            step = client.get("/v1/workflows/steps/fn-r", params={"run_id": before["id"]}).json()
            assert step["handle_outputs"]["output-json-0"]["data"] == 2
            listed = client.get("/v1/workflows/runs", params={"workflow_id": wf["id"]}).json()["data"]
            assert [r["id"] for r in listed] == [before["id"]]
    finally:
        _down(servers, api)
