"""Overhead of docflow against raw Temporal, on the same dev server, in the same run.

Measures the wall time of a docflow run of a chain of N `function` blocks (from the API call that starts it
to the workflow's result) and of a bare Temporal workflow running N no-op activities in sequence, and prints
their ratio. Goal: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.worker import Worker  # noqa: E402

from api.auth import create_key  # noqa: E402
from bench.raw_workflow import ChainWorkflow, LocalChainWorkflow, noop  # noqa: E402
from devstack.processes import ThreadedApi  # noqa: E402
from devstack.stack import Ports, start_s3, start_temporal  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from worker import build_worker, isolated_executor  # noqa: E402


def make_chain(api: httpx.Client, project: str, n: int) -> tuple[str, str]:
    """A published workflow: start_json → N function blocks; returns (workflow id, start block id)."""
    suffix = uuid.uuid4().hex[:6]
    wf = api.post("/v1/workflows", json={"name": f"bench chain {n}", "project_id": project}).json()
    start = f"in-{suffix}"
    api.post(
        "/v1/workflows/blocks", json={"workflow_id": wf["id"], "id": start, "type": "start_json"}
    ).raise_for_status()
    previous = start
    for i in range(n):
        block = f"f{i}-{suffix}"
        config = {"mapping": {"n": "input['n'] + 1"}}
        api.post(
            "/v1/workflows/blocks", json={"workflow_id": wf["id"], "id": block, "type": "function", "config": config}
        ).raise_for_status()
        edge = {"workflow_id": wf["id"], "source_block": previous, "target_block": block,
                "source_handle": "output-json-0", "target_handle": "input-json-0"}  # fmt: skip
        api.post("/v1/workflows/edges", json=edge).raise_for_status()
        previous = block
    api.post(f"/v1/workflows/{wf['id']}/publish", json={}).raise_for_status()
    return wf["id"], start


async def time_docflow(api: httpx.AsyncClient, settings: Settings, wf_id: str, start: str) -> float:
    """Seconds from POST /runs to the run workflow's result."""
    client = await connect(settings)
    began = time.perf_counter()
    run = (await api.post("/v1/workflows/runs", json={"workflow_id": wf_id, "json_inputs": {start: {"n": 0}}})).json()
    await client.get_workflow_handle(run["id"]).result()
    return time.perf_counter() - began


async def time_raw(settings: Settings, queue: str, n: int, local: bool = False) -> float:
    """Seconds from start to result of the bare chain workflow (of activities, or of local activities)."""
    client = await connect(settings)
    began = time.perf_counter()
    run = LocalChainWorkflow.run if local else ChainWorkflow.run
    await client.execute_workflow(run, n, id=f"bench-{uuid.uuid4().hex}", task_queue=queue)
    return time.perf_counter() - began


async def measure(settings: Settings, api_url: str, key: str, project: str, n: int, repeat: int) -> None:
    client = await connect(settings)
    store = ObjectStore(settings)
    raw_queue = "bench-raw"
    with httpx.Client(base_url=api_url, headers={"Api-Key": key}, timeout=60) as sync_api:
        wf_id, start = make_chain(sync_api, project, n)
    async with (
        httpx.AsyncClient(base_url=api_url, headers={"Api-Key": key}, timeout=60) as api,
        httpx.AsyncClient() as http,
        isolated_executor(settings) as isolated,
        build_worker(client, settings, store, http, isolated),
        Worker(client, task_queue=raw_queue, workflows=[ChainWorkflow, LocalChainWorkflow], activities=[noop]),
    ):
        await time_docflow(api, settings, wf_id, start)  # warm-up: imports, connections, sandbox
        await time_raw(settings, raw_queue, n)
        ours, raw, local = [], [], []
        for _ in range(repeat):
            ours.append(await time_docflow(api, settings, wf_id, start))
            raw.append(await time_raw(settings, raw_queue, n))
            local.append(await time_raw(settings, raw_queue, n, local=True))
    ours_s, raw_s, local_s = statistics.median(ours), statistics.median(raw), statistics.median(local)
    print(f"docflow run, chain of {n} function blocks:             median {ours_s * 1000:7.1f} ms over {repeat} runs")
    print(f"raw Temporal, {n} no-op activities in sequence:       median {raw_s * 1000:7.1f} ms over {repeat} runs")
    print(f"raw Temporal, {n} no-op local activities in sequence: median {local_s * 1000:7.1f} ms over {repeat} runs")
    print(f"ratio docflow / raw activities: {ours_s / raw_s:.2f}  (goal <= 1.5)")
    print(f"ratio docflow / raw local activities: {ours_s / local_s:.2f}  (function blocks run as local activities)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="docflow-bench-"))
    settings = Settings(data_dir=data, task_queue="bench-docflow", log_level="WARNING", **Ports().settings_overrides())  # type: ignore[arg-type]
    servers = [start_temporal(settings), start_s3(settings)]
    key, project = create_key(settings.keys_file, name="bench")
    api = ThreadedApi(settings).start()
    try:
        asyncio.run(measure(settings, api.url, key, project, args.blocks, args.repeat))
    finally:
        api.stop()
        for server in reversed(servers):
            server.stop()
    # The SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
