"""What the benchmarks share: the embedded stack they run on, and the chain of function blocks several time.

    def main() -> None:
        result = run_on_stack("bench-rerun", measure, args.blocks, args.repeat)   # measure(settings, api_url,
        print(...)                                                                 #   key, project, *args)
        exit_now()

`run_on_stack` starts a dev Temporal server and SeaweedFS on free ports with a fresh data directory, makes an
API key, serves the API in a thread, runs the measurement and stops everything, failed or not. The worker is
the measurement's own (each bench builds the one it measures).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx

from api.auth import create_key
from devstack.processes import ThreadedApi
from devstack.stack import Ports, start_s3, start_temporal
from docflow.config import Settings
from docflow.temporal import connect

T = TypeVar("T")
EXPRESSION = {"mapping": {"n": "input['n'] + 1"}}


def run_on_stack(task_queue: str, measure: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """`measure(settings, api_url, key, project, *args)` on a fresh embedded stack; its result."""
    data = Path(tempfile.mkdtemp(prefix="docflow-bench-"))
    overrides: Any = Ports().settings_overrides()
    settings = Settings(data_dir=data, task_queue=task_queue, log_level="WARNING", **overrides)
    servers = [start_temporal(settings), start_s3(settings)]
    key, project = create_key(settings.keys_file, name="bench")
    api = ThreadedApi(settings).start()
    try:
        return asyncio.run(measure(settings, api.url, key, project, *args))
    finally:
        api.stop()
        for server in reversed(servers):
            server.stop()


def exit_now() -> NoReturn:
    """Leave at once, output flushed: the SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300)."""
    sys.stdout.flush()
    os._exit(0)


def make_chain(api: httpx.Client, project: str, n: int, config: dict[str, Any] = EXPRESSION) -> tuple[str, str]:
    """A published workflow: start_json → N function blocks with `config`; returns (workflow id, start block id)."""
    suffix = uuid.uuid4().hex[:6]
    wf = api.post("/v1/workflows", json={"name": f"bench chain {n}", "project_id": project}).json()
    start = f"in-{suffix}"
    api.post(
        "/v1/workflows/blocks", json={"workflow_id": wf["id"], "id": start, "type": "start_json"}
    ).raise_for_status()
    previous = start
    for i in range(n):
        block = f"f{i}-{suffix}"
        body = {"workflow_id": wf["id"], "id": block, "type": "function", "config": config}
        api.post("/v1/workflows/blocks", json=body).raise_for_status()
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
