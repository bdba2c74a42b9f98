"""Overhead of docflow against raw Temporal, on the same dev server, in the same run.

Measures the wall time of a docflow run of a chain of N `function` blocks (from the API call that starts it
to the workflow's result) and of a bare Temporal workflow running N no-op activities in sequence, and prints
their ratio. Goal: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.worker import Worker  # noqa: E402

from bench.harness import exit_now, make_chain, run_on_stack, time_docflow  # noqa: E402
from bench.raw_workflow import ChainWorkflow, LocalChainWorkflow, noop  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from worker import build_worker, isolated_executor  # noqa: E402


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
    run_on_stack("bench-docflow", measure, args.blocks, args.repeat)
    exit_now()


if __name__ == "__main__":
    main()
