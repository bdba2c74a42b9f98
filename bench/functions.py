"""Function blocks of user Python against expression blocks and bare local activities, on the real stack (issue 10).

Measures, in one run on the same dev server and worker, the wall time per block of a run of a chain of N
`function` blocks doing the same thing (`n + 1`) three ways:

- user Python (`language: python`, `code` defining `transform`), in the sandbox pool, as regular activities;
- an expression (`mapping`), in the isolated executor, as local activities;
- bare Temporal: N no-op local activities in sequence (the floor).

Prints the medians per block and the ratios Python / expression (goal <= 3) and Python / bare.

    .venv/bin/python -m bench.functions --blocks 10 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.worker import Worker  # noqa: E402

from bench.harness import EXPRESSION, exit_now, make_chain, run_on_stack, time_docflow  # noqa: E402
from bench.overhead import time_raw  # noqa: E402
from bench.raw_workflow import ChainWorkflow, LocalChainWorkflow, noop  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from worker import build_worker, isolated_executor, sandbox_pool  # noqa: E402

PYTHON = {"language": "python", "code": "def transform(input_data):\n    return {'n': input_data['n'] + 1}\n"}


async def measure(settings: Settings, api_url: str, key: str, project: str, n: int, repeat: int) -> dict[str, float]:
    """Median seconds per block: python, expression, bare local activity."""
    client = await connect(settings)
    store = ObjectStore(settings)
    raw_queue = "bench-functions-raw"
    with httpx.Client(base_url=api_url, headers={"Api-Key": key}, timeout=60) as sync_api:
        python = make_chain(sync_api, project, n, PYTHON)
        expression = make_chain(sync_api, project, n, EXPRESSION)
    async with (
        httpx.AsyncClient(base_url=api_url, headers={"Api-Key": key}, timeout=60) as api,
        httpx.AsyncClient() as http,
        isolated_executor(settings) as isolated,
        sandbox_pool(settings) as sandbox,
        build_worker(client, settings, store, http, isolated, sandbox),
        Worker(client, task_queue=raw_queue, workflows=[ChainWorkflow, LocalChainWorkflow], activities=[noop]),
    ):
        for chain in (python, expression):  # warm-up: imports, connections, sandboxes
            await time_docflow(api, settings, *chain)
        await time_raw(settings, raw_queue, n, local=True)
        times: dict[str, list[float]] = {"python": [], "expression": [], "bare": []}
        for _ in range(repeat):
            await sandbox.wait_full()
            times["python"].append(await time_docflow(api, settings, *python))
            times["expression"].append(await time_docflow(api, settings, *expression))
            times["bare"].append(await time_raw(settings, raw_queue, n, local=True))
    return {name: statistics.median(values) / n for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = run_on_stack("bench-functions", measure, args.blocks, args.repeat)
    python, expression, bare = (result[k] * 1000 for k in ("python", "expression", "bare"))
    n = args.blocks
    print(f"user Python function block (sandbox, activity):    median {python:6.1f} ms per block, chains of {n}")
    print(f"expression function block (local activity):        median {expression:6.1f} ms per block")
    print(f"bare Temporal no-op local activity:                median {bare:6.1f} ms per block")
    print(f"ratio Python / expression: {python / expression:.1f}  (goal <= 3)")
    print(f"ratio Python / bare local activity: {python / bare:.1f}")
    exit_now()


if __name__ == "__main__":
    main()
