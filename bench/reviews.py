"""Review gates under load: worker memory, history and approval latency with many runs waiting, in one run.

On the real embedded stack (Temporal dev server, SeaweedFS, the API in a thread, one worker process), with a
published start_json → extract (review predicate `always`) → function workflow and the offline model:

1. approval-to-completion latency with 1 run waiting: `--samples` times, one run is started, waits at its
   gate, is approved, and the time from sending the approval to the run's result is taken;
2. the worker's RSS (VmRSS of the worker process) at idle, then with `--waiting` runs waiting at once;
3. the history of one waiting run (its length and event types; and that it does not grow while it waits);
4. the same latency with `--waiting` runs waiting: `--samples` of them approved one after the other.

It prints the p50/p90 of both latencies and their ratio (goal <= 2). The approval goes through `approve()`:
the Temporal Update `review_decision` (as the reviews API sends it) until the reviews API exists, then its
route. `--waiting 50` makes a quick smoke run; tests/integration/test_bench_reviews.py runs the core with 5.

    .venv/bin/python -m bench.reviews --waiting 1000 --samples 30

Measured on 2026-11-26, 2 cores shared with four other sessions (load average 4 to 11), --waiting 1000
--samples 30, four runs (and one with --waiting 1200):

- worker RSS 143-145 MiB at start, 149-154 MiB idle (warm), 328-332 MiB with 1,000 runs waiting: 178 to 188 KiB
  per waiting run. The SDK keeps at most 1,000 runs in its sticky cache (`max_cached_workflows`, its default;
  worker.py does not set it): with 1,200 waiting RSS was 352 MiB, and approving the oldest runs (evicted
  first) took 40 ms in the Update's task instead of 7-10 ms, the cost of replaying an evicted run.
- history of a waiting run: 19 events, 8 KB, and none added while it waits: started; task 1 (status search
  attribute, load_graph scheduled); load_graph's 3 events; task 2 (start_json's local-activity marker, extract
  scheduled); extract's 3 events; task 3 (the awaiting_review search attribute). No timer (no deadline set), no
  activity held open, nothing polled.
- 1,000 runs started in 45 to 87 s, all waiting after 117 to 298 s (the whole bench: 2.5 to 6 minutes); CPU
  per run from its start to its wait: worker 55-57 ms, Temporal dev server 62-69 ms, SeaweedFS 23-24 ms, API +
  bench client 15-17 ms.
- approval → completion p50 (p90), 1 waiting → 1,000 waiting: 263 (402) → 383 (700) ms, ratio 1.40;
  184 (234) → 176 (247) ms, 0.96; 122 (340) → 221 (395) ms, 1.78; 143 (248) → 105 (147) ms, 0.72. With 1,200
  waiting: 110 (161) → 185 (218) ms, 1.73. The spread follows the machine's other load (ratios on both sides of 1).
  The parts (medians, ms): the Update's task 7-8, apply_review_decision 33-45 (nine S3 calls in sequence),
  the task resuming the walk (the function block runs in it as a local activity) 27-34, persist_run 13-18,
  the last task 13-21.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402

from api.auth import create_key  # noqa: E402
from devstack.processes import ThreadedApi, start_worker, wait_for_worker  # noqa: E402
from devstack.stack import Ports, start_s3, start_temporal  # noqa: E402
from docflow import keys  # noqa: E402
from docflow.config import Settings  # noqa: E402
from docflow.reviews import review_id  # noqa: E402
from docflow.temporal import SA_STATUS, SA_WORKFLOW_ID, connect  # noqa: E402
from storage.objects import ObjectStore  # noqa: E402
from storage.payloads import external_storage  # noqa: E402
from storage.reviews import ReviewStore  # noqa: E402

SCHEMA = {"type": "object", "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}}}
TEXT = "Invoice number: B-7\nTotal: 21"
GOAL = 2.0


@dataclass
class Target:
    """A running stack: its settings, the API and its key, and the pid of the one worker process."""

    settings: Settings
    api_url: str
    api_key: str
    project_id: str
    worker_pid: int
    # Other processes whose CPU use is reported (name → pid; with their child processes): Temporal, S3.
    servers: dict[str, int] = field(default_factory=dict)


@dataclass
class Gated:
    """The published gated workflow."""

    workflow_id: str
    start_block: str
    extract_block: str


@dataclass
class Report:
    """What one bench run measured (bytes, seconds)."""

    waiting: int
    # The runs started to wait together; all but the first `samples` are still waiting when measure() returns.
    runs: list[str] = field(default_factory=list)
    rss_start: int = 0
    rss_idle: int = 0
    rss_waiting: int = 0
    peak_rss: int = 0
    start_seconds: float = 0.0
    # CPU seconds per run from its start to its wait, by process: worker, API thread + bench client, servers.
    cpu_per_run: dict[str, float] = field(default_factory=dict)
    all_waiting_seconds: float = 0.0
    history_events: int = 0
    history_bytes: int = 0
    history_events_later: int = 0
    history_types: list[str] = field(default_factory=list)
    # The last approved run's events from the approval's workflow task on: (type, ms after its scheduling).
    approved_timeline: list[tuple[str, float]] = field(default_factory=list)
    s3_round_trips: list[float] = field(default_factory=list)
    one_waiting: list[float] = field(default_factory=list)
    many_waiting: list[float] = field(default_factory=list)
    # Per approved run, the ms of each part of its resumption (phases()), for the 1-waiting and N-waiting cases.
    one_phases: list[list[tuple[str, float]]] = field(default_factory=list)
    many_phases: list[list[tuple[str, float]]] = field(default_factory=list)

    @property
    def rss_per_run(self) -> float:
        return (self.rss_waiting - self.rss_idle) / self.waiting

    @property
    def ratio(self) -> float:
        return statistics.median(self.many_waiting) / statistics.median(self.one_waiting)


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes, from /proc (Linux)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its descendants have used, from /proc (Linux)."""
    stats: dict[int, tuple[int, float]] = {}  # pid → (parent pid, CPU seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command name (which may hold spaces): ppid is the 2nd, utime and stime the 12th, 13th.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, family = 0.0, {pid}
    for child, (_, used) in stats.items():
        ancestor = child
        while ancestor not in family and ancestor in stats and ancestor > 1:
            ancestor = stats[ancestor][0]
        if ancestor in family:
            family.add(child)
            total += used
    return total


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was measured."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def make_gated(api: httpx.Client, project: str) -> Gated:
    """A published start_json → extract (gated, `always`) → function workflow."""
    suffix = uuid.uuid4().hex[:6]
    wf = api.post("/v1/workflows", json={"name": f"bench reviews {suffix}", "project_id": project})
    wf.raise_for_status()
    wf_id = wf.json()["id"]
    start, extract, double = f"in-{suffix}", f"ex-{suffix}", f"double-{suffix}"
    config = {
        "json_schema": SCHEMA,
        "inputs": [{"name": "text", "type": "json"}],
        "review": {"predicate": {"kind": "always"}},
    }
    blocks: list[dict[str, Any]] = [
        {"id": start, "type": "start_json"},
        {"id": extract, "type": "extract", "config": config},
        {"id": double, "type": "function", "config": {"expression": "input['total'] * 2"}},
    ]
    for block in blocks:
        api.post("/v1/workflows/blocks", json={**block, "workflow_id": wf_id}).raise_for_status()
    for source, target, handle in ((start, extract, "input-json-text"), (extract, double, "input-json-0")):
        edge = {"workflow_id": wf_id, "source_block": source, "target_block": target,
                "source_handle": "output-json-0", "target_handle": handle}  # fmt: skip
        api.post("/v1/workflows/edges", json=edge).raise_for_status()
    api.post(f"/v1/workflows/{wf_id}/publish", json={}).raise_for_status()
    return Gated(wf_id, start, extract)


async def start_run(api: httpx.AsyncClient, gated: Gated) -> str:
    """POST /v1/workflows/runs; the run's id (also its Temporal workflow id)."""
    body = {"workflow_id": gated.workflow_id, "json_inputs": {gated.start_block: {"text": TEXT}}}
    response = await api.post("/v1/workflows/runs", json=body)
    response.raise_for_status()
    run_id: str = response.json()["id"]
    return run_id


async def start_many(api: httpx.AsyncClient, gated: Gated, n: int, concurrency: int) -> list[str]:
    """Start n runs, at most `concurrency` requests in flight."""
    bound = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with bound:
            return await start_run(api, gated)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def wait_gate_open(handle: WorkflowHandle[object, object], timeout: float = 60) -> None:
    """Until the run's status search attribute reads awaiting_review (set in the task that opens the gate)."""
    deadline = time.monotonic() + timeout
    while True:
        desc = await handle.describe()
        if desc.typed_search_attributes.get(SA_STATUS) == "awaiting_review":
            return
        if desc.close_time is not None or time.monotonic() > deadline:
            raise RuntimeError(f"run {handle.id} did not reach awaiting_review (status {desc.status})")
        await asyncio.sleep(0.05)


async def count_waiting(temporal: Client, gated: Gated) -> int:
    """Runs of the workflow awaiting review, by visibility."""
    query = f"{SA_WORKFLOW_ID.name} = '{gated.workflow_id}' AND {SA_STATUS.name} = 'awaiting_review'"
    return (await temporal.count_workflows(query)).count


async def wait_all_waiting(temporal: Client, gated: Gated, n: int, timeout: float) -> None:
    """Until visibility counts n runs of the workflow awaiting review."""
    deadline = time.monotonic() + timeout
    while (count := await count_waiting(temporal, gated)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {n} runs awaiting review after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def progress(temporal: Client, gated: Gated, worker_pid: int, every: float = 10) -> None:
    """Print, to stderr, how many runs wait and the worker's CPU use, until cancelled (--progress)."""
    began, cpu = time.monotonic(), cpu_seconds(worker_pid)
    while True:
        await asyncio.sleep(every)
        now, used = time.monotonic(), cpu_seconds(worker_pid)
        waiting = await count_waiting(temporal, gated)
        rss, _ = memory(worker_pid)
        sys.stderr.write(
            f"  {now - began:5.0f} s: {waiting} waiting, worker CPU {(used - cpu) / every:.0%} "
            f"over the last {every:.0f} s, RSS {rss / 2**20:.0f} MiB, load {os.getloadavg()[0]:.1f}\n"
        )
        cpu = used


@dataclass
class Clients:
    """What the bench talks to: Temporal, the API, the review records."""

    temporal: Client
    api: httpx.AsyncClient
    reviews: ReviewStore
    project_id: str


async def seed_version(clients: Clients, run_id: str, gated: Gated) -> tuple[str, str]:
    """The review of the run's gated step and its first version (the model's output)."""
    review = review_id(run_id, gated.extract_block)
    record = await clients.reviews.get(clients.project_id, review)
    return review, record.seed_version_id


async def approve(clients: Clients, run_id: str, review: str, version: str) -> None:
    """Approve a version through the reviews API: the request the SDK's `client.workflows.reviews.approve` sends
    (the API sends the run the Update `review_decision` and answers once the run has applied it)."""
    answer = await clients.api.post(f"/v1/workflows/reviews/{review}/approve", json={"version_id": version})
    if answer.status_code != 200 or answer.json().get("submission_status") != "accepted":
        raise RuntimeError(f"approval of {review} not accepted: {answer.status_code} {answer.text}")


async def approval_latency(clients: Clients, run_id: str, gated: Gated) -> float:
    """Seconds from sending the approval of a waiting run to its result (the run completed)."""
    review, version = await seed_version(clients, run_id, gated)
    began = time.perf_counter()
    await approve(clients, run_id, review, version)
    await clients.temporal.get_workflow_handle(run_id).result()
    return time.perf_counter() - began


async def history(temporal: Client, run_id: str) -> tuple[int, int, list[str]]:
    """(events, bytes, event types in order) of a run's history."""
    handle = temporal.get_workflow_handle(run_id)
    info = (await handle.describe()).raw_description.workflow_execution_info
    events = (await handle.fetch_history()).events
    types = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
    return info.history_length, info.history_size_bytes, types


async def after_approval(temporal: Client, run_id: str) -> list[tuple[str, float]]:
    """A completed run's events from the workflow task that accepted the approval, with ms since it was scheduled."""
    events = (await temporal.get_workflow_handle(run_id).fetch_history()).events
    names = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]
    accepted = names.index("WORKFLOW_EXECUTION_UPDATE_ACCEPTED")
    first = max(i for i in range(accepted) if names[i] == "WORKFLOW_TASK_SCHEDULED")
    origin = events[first].event_time.ToDatetime()
    return [
        (name, (event.event_time.ToDatetime() - origin).total_seconds() * 1000)
        for name, event in zip(names[first:], events[first:], strict=True)
    ]


def phases(timeline: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The resumption cut into its workflow tasks and activities: (part, ms), each ending at a completion."""
    parts: list[tuple[str, float]] = []
    began, tasks, activities = 0.0, 0, 0
    for name, at in timeline:
        if name == "WORKFLOW_TASK_COMPLETED":
            tasks += 1
            parts.append((f"task {tasks}", at - began))
        elif name == "ACTIVITY_TASK_COMPLETED":
            activities += 1
            parts.append((f"activity {activities}", at - began))
        else:
            continue
        began = at
    return parts


def phase_medians(runs: list[list[tuple[str, float]]]) -> str:
    """The median of each part over runs cut the same way."""
    if not runs or any([p for p, _ in r] != [p for p, _ in runs[0]] for r in runs):
        return "(runs resumed in different shapes)"
    names = [p for p, _ in runs[0]]
    return ", ".join(f"{name} {statistics.median(r[i][1] for r in runs):.0f}" for i, name in enumerate(names))


async def measure(
    target: Target, waiting: int, samples: int, concurrency: int = 16, show_progress: bool = False
) -> Report:
    """The bench: latency with 1 waiting, RSS idle and with `waiting` runs waiting, history, latency again."""
    settings = target.settings
    store = ObjectStore(settings)
    temporal = await connect(settings, external_storage(store, settings.payload_offload_bytes))
    report = Report(waiting=waiting)
    report.rss_start, _ = memory(target.worker_pid)
    headers = {"Api-Key": target.api_key}
    with httpx.Client(base_url=target.api_url, headers=headers, timeout=60) as sync_api:
        gated = make_gated(sync_api, target.project_id)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.api_url, headers=headers, timeout=120, limits=limits) as api:
        clients = Clients(temporal, api, ReviewStore(store), target.project_id)

        async def one_waiting() -> str:
            run_id = await start_run(api, gated)
            await wait_gate_open(temporal.get_workflow_handle(run_id))
            report.one_waiting.append(await approval_latency(clients, run_id, gated))
            return run_id

        for _ in range(3):
            await one_waiting()  # warm-up: imports, connections, the isolated pool, the sandbox
        report.one_waiting.clear()
        alone = [await one_waiting() for _ in range(samples)]
        report.rss_idle, _ = memory(target.worker_pid)

        processes = {"worker": target.worker_pid, **target.servers}
        began, bench_cpu = time.perf_counter(), time.process_time()
        cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
        watcher = asyncio.create_task(progress(temporal, gated, target.worker_pid)) if show_progress else None
        try:
            runs = report.runs = await start_many(api, gated, waiting, concurrency)
            report.start_seconds = time.perf_counter() - began
            await wait_all_waiting(temporal, gated, waiting, timeout=120 + waiting * 0.5)
        finally:
            if watcher is not None:
                watcher.cancel()
        report.all_waiting_seconds = time.perf_counter() - began
        report.cpu_per_run = {name: (cpu_seconds(pid) - cpu[name]) / waiting for name, pid in processes.items()}
        report.cpu_per_run["API + bench client"] = (time.process_time() - bench_cpu) / waiting
        await asyncio.sleep(1)  # the last workflow tasks' garbage
        report.rss_waiting, report.peak_rss = memory(target.worker_pid)

        watched = runs[-1]
        report.history_events, report.history_bytes, report.history_types = await history(temporal, watched)
        # The oldest runs first: past the worker's cache size, they are the ones evicted.
        report.many_waiting = [await approval_latency(clients, run_id, gated) for run_id in runs[:samples]]
        report.history_events_later, _, _ = await history(temporal, watched)
    report.approved_timeline = await after_approval(temporal, runs[samples - 1])
    report.one_phases = [phases(await after_approval(temporal, run_id)) for run_id in alone]
    report.many_phases = [phases(await after_approval(temporal, run_id)) for run_id in runs[:samples]]
    review = keys.review(target.project_id, review_id(watched, gated.extract_block))
    for _ in range(20):
        began = time.perf_counter()
        await store.get_json(review)
        report.s3_round_trips.append(time.perf_counter() - began)
    return report


def show(report: Report) -> None:
    """Print the report."""
    mib = 1024 * 1024
    n = report.waiting
    print(f"worker RSS at start (before the first run):        {report.rss_start / mib:7.1f} MiB")
    print(f"worker RSS idle (warm, no run waiting):            {report.rss_idle / mib:7.1f} MiB")
    print(f"worker RSS with {n} runs waiting:               {report.rss_waiting / mib:7.1f} MiB"
          f"  (peak {report.peak_rss / mib:.1f} MiB)")  # fmt: skip
    print(f"worker RSS per waiting run:                        {report.rss_per_run / 1024:7.1f} KiB")
    print(f"started {n} runs in {report.start_seconds:.1f} s; all waiting after {report.all_waiting_seconds:.1f} s")
    used = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in report.cpu_per_run.items())
    print(f"CPU per run, from its start to its wait: {used}")
    print(
        f"history of one waiting run: {report.history_events} events, {report.history_bytes} bytes; "
        f"{report.history_events_later} events after the {len(report.many_waiting)} approvals"
    )
    print(textwrap.fill(", ".join(report.history_types), width=116, initial_indent="  ", subsequent_indent="  "))
    steps = ", ".join(f"{name} +{ms:.0f}" for name, ms in report.approved_timeline)
    print(f"an approved run's events from the approval's workflow task on ({len(report.approved_timeline)}, ms):")
    print(textwrap.fill(steps, width=116, initial_indent="  ", subsequent_indent="  "))
    s3 = percentile(report.s3_round_trips, 50) * 1000
    print(f"S3 round trip (GET of a review record, from this process): p50 {s3:.1f} ms")
    print("the resumption's parts, median ms (task 1 accepts the Update, activity 1 applies the decision):")
    print(f"  {'1 run waiting':>16}: {phase_medians(report.one_phases)}")
    print(f"  {f'{n} runs waiting':>16}: {phase_medians(report.many_phases)}")
    for label, values in (("1 run waiting", report.one_waiting), (f"{n} runs waiting", report.many_waiting)):
        print(
            f"approval → completion, {label:>16}: p50 {percentile(values, 50) * 1000:7.1f} ms, "
            f"p90 {percentile(values, 90) * 1000:7.1f} ms over {len(values)} approvals"
        )
    print(f"ratio p50 with {n} waiting / with 1 waiting: {report.ratio:.2f}  (goal <= {GOAL:g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000, help="runs waiting at once (default 1000)")
    parser.add_argument("--samples", type=int, help="approvals timed in each case (default 30, at most --waiting)")
    parser.add_argument("--concurrency", type=int, default=16, help="run starts in flight (default 16)")
    parser.add_argument("--progress", action="store_true", help="print progress while the runs start")
    args = parser.parse_args()
    args.samples = min(30, args.waiting) if args.samples is None else args.samples
    if args.samples < 1 or args.waiting < args.samples:
        parser.error("need 1 <= --samples <= --waiting")
    data = Path(tempfile.mkdtemp(prefix="docflow-bench-"))
    settings = Settings(data_dir=data, task_queue="bench-reviews", log_level="WARNING", **Ports().settings_overrides())  # type: ignore[arg-type]
    servers = [start_temporal(settings), start_s3(settings)]
    worker = start_worker(settings, data / "logs" / "worker.log")
    pids = {server.name: server.proc.pid for server in servers}
    api: ThreadedApi | None = None
    try:
        wait_for_worker(settings, proc=worker.proc)
        key, project = create_key(settings.keys_file, name="bench")
        api = ThreadedApi(settings).start()
        target = Target(settings, api.url, key, project, worker.proc.pid, pids)
        report = asyncio.run(measure(target, args.waiting, args.samples, args.concurrency, args.progress))
    finally:
        worker.stop()
        if api is not None:
            api.stop()
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(data, ignore_errors=True)
    show(report)
    # The SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
