"""Consensus cost and OCR speed, in one run on the same machine.

Against a local chat-completions server that takes 300 ms per call, times a docflow run of
start_json → extract with `n_consensus=1` and with `n_consensus=5` (the 5 votes run in parallel, then merge in
the isolated executor) and prints the ratio (goal <= 1.3); then prints OCR seconds per page (bench/ocr.py).

    .venv/bin/python -m bench.consensus --repeat 3
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
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.auth import create_key  # noqa: E402
from bench.ocr import ocr_seconds_per_page  # noqa: E402
from devstack.processes import ThreadedApi  # noqa: E402
from devstack.stack import Ports, start_s3, start_temporal  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from tests.chat_server import ChatCompletionsServer  # noqa: E402
from worker import build_worker, isolated_executor, model_http_client  # noqa: E402

CALL_SECONDS = 0.3
SCHEMA = {
    "type": "object",
    "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}, "paid": {"type": "boolean"}},
}


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"invoice_number": "INV-7", "total": 120.5, "paid": True}


def make_workflow(api: httpx.Client, project: str, n: int) -> tuple[str, str]:
    """A published start_json → extract(n_consensus=n) workflow; returns (workflow id, start block id)."""
    suffix = uuid.uuid4().hex[:6]
    wf = api.post("/v1/workflows", json={"name": f"bench consensus {n}", "project_id": project}).json()
    start, extract = f"in-{suffix}", f"ex-{suffix}"
    config = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "n_consensus": n}
    for block in ({"id": start, "type": "start_json"}, {"id": extract, "type": "extract", "config": config}):
        api.post("/v1/workflows/blocks", json={**block, "workflow_id": wf["id"]}).raise_for_status()
    edge = {"workflow_id": wf["id"], "source_block": start, "target_block": extract,
            "source_handle": "output-json-0", "target_handle": "input-json-text"}  # fmt: skip
    api.post("/v1/workflows/edges", json=edge).raise_for_status()
    api.post(f"/v1/workflows/{wf['id']}/publish", json={}).raise_for_status()
    return wf["id"], start


async def time_run(api: httpx.AsyncClient, settings: Settings, wf_id: str, start: str) -> float:
    """Seconds from POST /runs to the run workflow's result."""
    client = await connect(settings)
    began = time.perf_counter()
    body = {"workflow_id": wf_id, "json_inputs": {start: {"text": "Invoice INV-7, total 120.50, paid"}}}
    run = (await api.post("/v1/workflows/runs", json=body)).json()
    await client.get_workflow_handle(run["id"]).result()
    return time.perf_counter() - began


async def measure(settings: Settings, api_url: str, key: str, project: str, repeat: int) -> tuple[float, float]:
    client = await connect(settings)
    store = ObjectStore(settings)
    with httpx.Client(base_url=api_url, headers={"Api-Key": key}, timeout=60) as sync_api:
        one, five = make_workflow(sync_api, project, 1), make_workflow(sync_api, project, 5)
    async with (
        httpx.AsyncClient(base_url=api_url, headers={"Api-Key": key}, timeout=60) as api,
        model_http_client(settings) as http,
        isolated_executor(settings) as isolated,
        build_worker(client, settings, store, http, isolated),
    ):
        await time_run(api, settings, *one)  # warm-up: imports, connections, the isolated pool
        await time_run(api, settings, *five)
        ones, fives = [], []
        for _ in range(repeat):
            ones.append(await time_run(api, settings, *one))
            fives.append(await time_run(api, settings, *five))
    return statistics.median(ones), statistics.median(fives)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="docflow-bench-"))
    with ChatCompletionsServer() as model:
        model.answer(_answer, model="bench-model")
        model.delay(CALL_SECONDS)
        settings = Settings(
            data_dir=data,
            task_queue="bench-consensus",
            log_level="WARNING",
            model_provider="openai",
            model_base_url=model.url,
            model_api_key="sk-bench",
            model_name="bench-model",
            **Ports().settings_overrides(),  # type: ignore[arg-type]
        )
        servers = [start_temporal(settings), start_s3(settings)]
        key, project = create_key(settings.keys_file, name="bench")
        api = ThreadedApi(settings).start()
        try:
            one, five = asyncio.run(measure(settings, api.url, key, project, args.repeat))
        finally:
            api.stop()
            for server in reversed(servers):
                server.stop()
    print(f"extract, n_consensus=1 ({CALL_SECONDS * 1000:.0f} ms per model call): median {one * 1000:7.1f} ms")
    print(f"extract, n_consensus=5 ({CALL_SECONDS * 1000:.0f} ms per model call): median {five * 1000:7.1f} ms")
    print(f"ratio n_consensus=5 / n_consensus=1: {five / one:.2f}  (goal <= 1.3)")
    seconds, exact = ocr_seconds_per_page()
    print(f"OCR: {seconds:.2f} s/page at 192 dpi; {exact:.0%} of the invoice's lines read exactly")
    # The SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
