"""A rerun against a full run, on the same stack in the same run (issue 8).

Measures, on the real embedded stack: the wall time of a run of a chain of N `function` blocks (POST /runs to the
workflow's result), of a rerun of its last block (POST /blocks/executions with `force=true`, which answers once
the block execution has ended), and of an identical rerun answered from the stored execution (no `force`).
Prints the ratio rerun / full run (goal <= 0.2).

    .venv/bin/python -m bench.rerun --blocks 20 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import exit_now, make_chain, run_on_stack, time_docflow  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from worker import build_worker, isolated_executor  # noqa: E402


async def time_rerun(api: httpx.AsyncClient, run_id: str, block_id: str, force: bool) -> float:
    """Seconds from POST /blocks/executions to its answer (the execution completed, or the stored one)."""
    began = time.perf_counter()
    answer = await api.post(
        "/v1/workflows/blocks/executions",
        params={"force": "true"} if force else None,
        json={"run_id": run_id, "block_id": block_id},
    )
    elapsed = time.perf_counter() - began
    if answer.status_code != 200 or answer.json()["lifecycle"]["status"] != "completed":
        raise RuntimeError(f"rerun failed: {answer.status_code} {answer.text}")
    return elapsed


async def measure(settings: Settings, api_url: str, key: str, project: str, n: int, repeat: int) -> dict[str, float]:
    client = await connect(settings)
    store = ObjectStore(settings)
    with httpx.Client(base_url=api_url, headers={"Api-Key": key}, timeout=60) as sync_api:
        wf_id, start = make_chain(sync_api, project, n)
    async with (
        httpx.AsyncClient(base_url=api_url, headers={"Api-Key": key}, timeout=120) as api,
        httpx.AsyncClient() as http,
        isolated_executor(settings) as isolated,
        build_worker(client, settings, store, http, isolated),
    ):
        await time_docflow(api, settings, wf_id, start)  # warm-up
        full, rerun, stored = [], [], []
        for _ in range(repeat):
            began = time.perf_counter()
            body = {"workflow_id": wf_id, "json_inputs": {start: {"n": 0}}}
            run_id = (await api.post("/v1/workflows/runs", json=body)).json()["id"]
            await client.get_workflow_handle(run_id).result()
            full.append(time.perf_counter() - began)
            steps = (await api.get("/v1/workflows/steps", params={"run_id": run_id, "limit": 1000})).json()["data"]
            last_block = steps[-1]["block_id"]
            rerun.append(await time_rerun(api, run_id, last_block, force=True))
            stored.append(await time_rerun(api, run_id, last_block, force=False))
    return {"full": statistics.median(full), "rerun": statistics.median(rerun), "stored": statistics.median(stored)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = run_on_stack("bench-rerun", measure, args.blocks, args.repeat)
    n = args.blocks
    print(f"full run, chain of {n} function blocks:      median {result['full'] * 1000:7.1f} ms over {args.repeat}")
    print(f"rerun of its last block (force):            median {result['rerun'] * 1000:7.1f} ms")
    print(f"identical rerun (the stored execution):     median {result['stored'] * 1000:7.1f} ms")
    print(f"ratio rerun / full run: {result['rerun'] / result['full']:.2f}  (goal <= 0.2)")
    exit_now()


if __name__ == "__main__":
    main()
