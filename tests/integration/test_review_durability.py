"""A run waiting for review survives its worker killed (SIGKILL) and the Temporal server restarted on its database.

Its own stack (the session's must not lose its Temporal server): the run waits, the worker is killed, Temporal
is stopped and started again on the same SQLite file, a new worker starts, and the approval completes the run
with the whole wait counted as waiting time.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from retab import Retab
from retab.types.workflows.reviews import Review

from api.auth import create_key
from devstack.processes import ThreadedApi, start_worker, wait_for_worker
from devstack.stack import Server, start_temporal
from docflow.config import Settings
from tests.free_ports import start_on_free_ports
from tests.integration.builders import build, json_edge, wait_for
from tests.integration.test_review_gates import ALWAYS, SCHEMA, WAITING


def test_a_waiting_run_survives_a_killed_worker_and_a_restarted_temporal(tmp_path: Path) -> None:
    settings, servers = start_on_free_ports(
        lambda ports: Settings(data_dir=tmp_path / "data", task_queue="review-durability", **ports)
    )
    key, project = create_key(settings.keys_file)
    worker: Server | None = None
    api: ThreadedApi | None = None
    try:
        worker = start_worker(settings, settings.data_dir / "logs" / "worker.log")
        wait_for_worker(settings, proc=worker.proc)
        api = ThreadedApi(settings).start()
        client = Retab(api_key=key, base_url=api.url, max_retries=0)
        extract = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "review": ALWAYS}
        blocks = [
            {"id": "in", "type": "start_json"},
            {"id": "ex", "type": "extract", "config": extract},
            {"id": "double", "type": "function", "config": {"expression": "input['total'] * 2"}},
        ]
        edges = [json_edge("in", "ex", "input-json-text"), json_edge("ex", "double")]
        wf_id, ids = build(client, project, blocks, edges)
        text = "Invoice number: D-1\nTotal: 4"
        run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"text": text}}, version="draft")
        assert wait_for(client, run.id, WAITING).lifecycle.status == "awaiting_review"
        waited_from = time.monotonic()

        worker.proc.kill()  # SIGKILL: no goodbye to the server
        worker.proc.wait(10)
        servers[0].stop()  # Temporal, then again on the same database file
        servers[0] = start_temporal(settings)
        worker = start_worker(settings, settings.data_dir / "logs" / "worker.log")
        wait_for_worker(settings, proc=worker.proc)

        review = _open_review(client, run.id)
        seed = next(iter(client.workflows.reviews.versions.list(review_id=review.id)))
        corrected = client.workflows.reviews.versions.create(
            review_id=review.id, parent_id=seed.id, snapshot={"invoice_number": "D-1", "total": 5}
        )
        waited_ms = (time.monotonic() - waited_from) * 1000  # until the approval is sent
        answer = client.workflows.reviews.approve(review.id, version_id=corrected.id)
        assert answer.submission_status == "accepted"
        done = wait_for(client, run.id, timeout=60)
        assert done.lifecycle.status == "completed", done.lifecycle
        double = next(s for s in client.workflows.steps.list(run_id=run.id) if s.block_id == ids["double"])
        assert double.handle_outputs["output-json-0"].data == 10
        timing = httpx.get(f"{api.url}/v1/workflows/runs/{run.id}", headers={"Api-Key": key}).json()["timing"]
        assert timing["accumulated_human_waiting_ms"] >= waited_ms
        assert timing["active_duration_ms"] == timing["duration_ms"] - timing["accumulated_human_waiting_ms"]
    finally:
        if api is not None:
            api.stop()
        if worker is not None:
            worker.stop()
        for server in reversed(servers):
            server.stop()


def _open_review(client: Retab, run_id: str) -> Review:
    """The run's review; the API may need a moment to reach the restarted server."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return next(iter(client.workflows.reviews.list(run_id=run_id)))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
