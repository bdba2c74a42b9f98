"""Loops at scale: a for_each over 100 and over 1,000 items, on one dev server, in one run.

The for_each's body is two function blocks (local activities). Prints the wall time of each run (from the API
call that starts it to the workflow's result), their ratio (goal <= 11: near linear), the time per item
against one bare local activity, and the largest event count of any workflow history (the run's and each
batch child's) in the 1,000-item run (goal <= 5,000).

    .venv/bin/python -m bench.loops --repeat 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench.harness import exit_now, run_on_stack  # noqa: E402
from bench.raw_workflow import LocalChainWorkflow, noop  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.temporal import connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from worker import build_worker, isolated_executor  # noqa: E402


def make_loop(api: httpx.Client, project: str) -> tuple[str, str]:
    """A published start_json → for_each(function → function) → function workflow; (workflow id, start id)."""
    s = uuid.uuid4().hex[:6]
    wf = api.post("/v1/workflows", json={"name": "bench loops", "project_id": project}).json()["id"]
    blocks: list[dict[str, Any]] = [
        {"id": f"in-{s}", "type": "start_json"},
        {"id": f"loop-{s}", "type": "for_each", "config": {"max_concurrency": 50}},
        {"id": f"a-{s}", "type": "function", "config": {"expression": "input * 2"}, "parent_id": f"loop-{s}"},
        {"id": f"b-{s}", "type": "function", "config": {"expression": "input + 1"}, "parent_id": f"loop-{s}"},
        {"id": f"out-{s}", "type": "function", "config": {"expression": "len(input)"}},
    ]
    for block in blocks:
        api.post("/v1/workflows/blocks", json={**block, "workflow_id": wf}).raise_for_status()
    wires = [
        ("in", "loop", "output-json-0", "fe-left-in"),
        ("loop", "a", "fe-left-out", "input-json-0"),
        ("a", "b", "output-json-0", "input-json-0"),
        ("b", "loop", "output-json-0", "fe-right-in"),
        ("loop", "out", "fe-right-out", "input-json-0"),
    ]
    for source, target, out, into in wires:
        edge = {"workflow_id": wf, "source_block": f"{source}-{s}", "target_block": f"{target}-{s}",
                "source_handle": out, "target_handle": into}  # fmt: skip
        api.post("/v1/workflows/edges", json=edge).raise_for_status()
    api.post(f"/v1/workflows/{wf}/publish", json={}).raise_for_status()
    return wf, f"in-{s}"


async def time_loop(api: httpx.AsyncClient, client: Client, wf_id: str, start: str, n: int) -> tuple[float, str]:
    """Seconds from POST /runs to the run workflow's result, and the run id."""
    began = time.perf_counter()
    body = {"workflow_id": wf_id, "json_inputs": {start: list(range(n))}}
    run = (await api.post("/v1/workflows/runs", json=body)).json()
    await client.get_workflow_handle(run["id"]).result()
    return time.perf_counter() - began, run["id"]


async def largest_history(client: Client, run_id: str) -> tuple[int, int]:
    """The largest event count among the histories of the run and every workflow under it (each run of one
    that continued as new counted apart), and how many histories there were."""
    sizes: list[int] = []
    todo: list[tuple[str, str | None]] = [(run_id, None)]
    while todo:
        workflow_id, run = todo.pop()
        while True:
            events = [e async for e in client.get_workflow_handle(workflow_id, run_id=run).fetch_history_events()]
            sizes.append(len(events))
            for e in events:
                if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                    child = e.child_workflow_execution_started_event_attributes.workflow_execution
                    todo.append((child.workflow_id, child.run_id))
            if events[-1].event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                break
            run = events[-1].workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return max(sizes), len(sizes)


async def time_local_activity(client: Client, queue: str, n: int) -> float:
    """Seconds per bare no-op local activity, over a chain of n."""
    began = time.perf_counter()
    await client.execute_workflow(LocalChainWorkflow.run, n, id=f"bench-{uuid.uuid4().hex}", task_queue=queue)
    return (time.perf_counter() - began) / n


async def measure(settings: Settings, api_url: str, key: str, project: str, repeat: int) -> None:
    client = await connect(settings)
    store = ObjectStore(settings)
    with httpx.Client(base_url=api_url, headers={"Api-Key": key}, timeout=60) as sync_api:
        wf_id, start = make_loop(sync_api, project)
    async with (
        httpx.AsyncClient(base_url=api_url, headers={"Api-Key": key}, timeout=600) as api,
        httpx.AsyncClient() as http,
        isolated_executor(settings) as isolated,
        build_worker(client, settings, store, http, isolated),
        Worker(client, task_queue="bench-raw", workflows=[LocalChainWorkflow], activities=[noop]),
    ):
        await time_loop(api, client, wf_id, start, 10)  # warm-up: imports, connections, sandbox
        small, large, local = [], [], []
        run_id = ""
        for _ in range(repeat):
            small.append((await time_loop(api, client, wf_id, start, 100))[0])
            seconds, run_id = await time_loop(api, client, wf_id, start, 1000)
            large.append(seconds)
            local.append(await time_local_activity(client, "bench-raw", 200))
        biggest, children = await largest_history(client, run_id)  # children: histories, the run's included
    small_s, large_s, local_s = statistics.median(small), statistics.median(large), statistics.median(local)
    per_item = large_s / 1000
    print(f"for_each over   100 items (2 function blocks each): median {small_s:7.2f} s over {repeat} runs")
    print(f"for_each over 1,000 items (2 function blocks each): median {large_s:7.2f} s over {repeat} runs")
    print(f"ratio 1,000 / 100: {large_s / small_s:.2f}  (goal <= 11)")
    print(f"per item: {per_item * 1000:.1f} ms; one bare local activity: {local_s * 1000:.1f} ms; "
          f"ratio {per_item / local_s:.1f} (an item runs 2 blocks, each with its step record in S3)")  # fmt: skip
    print(f"largest workflow history in the 1,000-item run: {biggest} events (of {children} histories)"
          "  (goal <= 5,000)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    run_on_stack("bench-loops", measure, args.repeat)
    exit_now()


if __name__ == "__main__":
    main()
