"""`docflow rerun` (block executions: one block of a past run, on the draft's config) and `docflow test`.

`rerun --force` is both of the API's overrides: it skips the check that the block's upstream is unchanged
since the run (`check_eligibility=false`) and runs again even when an identical execution is stored
(`force=true`). `test` starts a test run of the draft and shows its counts live until it ends; it exits 1
unless every test passed, so it can gate a script or CI.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from devstack.cli_client import Api, CliError, print_json, say
from devstack.cli_runs import POLL_SECONDS, JsonFlag, connection
from devstack.cli_view import TERMINAL, handle_value, outputs_text, status_text

TimeoutOpt = Annotated[float | None, typer.Option(help="Stop waiting after this many seconds")]


def _poll(api: Api, path: str, timeout: float | None, draw: Any = None) -> dict[str, Any]:
    """GET `path` until its lifecycle ends, calling `draw` with each answer."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found: dict[str, Any] = api.get(path)
        if draw is not None:
            draw(found)
        status = found["lifecycle"]["status"]
        if status in TERMINAL:
            return found
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"{found['id']} still {status} after {timeout:g}s (it goes on)")
        time.sleep(POLL_SECONDS)


def rerun(
    ctx: typer.Context,
    block: Annotated[str, typer.Argument(help="Block id")],
    run_id: Annotated[str, typer.Option("--run", help="The run whose recorded inputs to replay")],
    force: Annotated[
        bool, typer.Option(help="Rerun even if the upstream changed or an identical rerun exists")
    ] = False,
    step: Annotated[str | None, typer.Option(help="The step (iteration) inside a loop")] = None,
    n_consensus: Annotated[int | None, typer.Option(help="3, 5 or 7 (extract, classifier, split)")] = None,
    timeout: TimeoutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Rerun one block of a run with the draft's config, on the inputs the run recorded."""
    api = connection(ctx).api()
    body = {"run_id": run_id, "block_id": block, "step_id": step, "n_consensus": n_consensus}
    body["check_eligibility"] = not force
    started = api.post("/blocks/executions", {k: v for k, v in body.items() if v is not None}, force=force or None)
    final = started
    if started["lifecycle"]["status"] not in TERMINAL:
        final = _poll(api, f"/blocks/executions/{started['id']}", timeout)
    lifecycle = final["lifecycle"]
    if as_json:
        print_json(final)
    else:
        took = f" in {final['duration_ms'] / 1000:.1f}s" if final.get("duration_ms") is not None else ""
        say(f"execution {final['id']} of {block}: {lifecycle['status']}{took}")
        outputs = {block: {h: handle_value(p) for h, p in (final.get("handle_outputs") or {}).items()}}
        if lifecycle["status"] == "completed":
            say(outputs_text(outputs))
    if lifecycle["status"] != "completed":
        detail = lifecycle.get("message") or lifecycle.get("reason") or ""
        raise CliError(f"rerun of {block} ended {lifecycle['status']}" + (f": {detail}" if detail else ""))


def counts_table(test_run: dict[str, Any]) -> Table:
    """A test run's live counts: lifecycle buckets, then outcomes."""
    counts = test_run.get("counts") or {}
    lifecycle = counts.get("lifecycle_counts") or {}
    outcome = counts.get("outcome") or {}
    title = f"test run {test_run['id']} · {test_run['lifecycle']['status']} · {test_run.get('total_tests', 0)} tests"
    table = Table(title=title, title_justify="left")
    names = ["pending", "queued", "running", "passed", "failed", "blocked", "error", "cancelled"]
    for name in names:
        table.add_column(name, justify="right")
    values = {**lifecycle, **outcome}
    table.add_row(*(str(values.get(n, 0)) for n in names))
    return table


def results_table(results: list[dict[str, Any]]) -> Table:
    """One row per test: test, block, verdict, what failed."""
    table = Table(title_justify="left")
    for column in ("test", "block", "verdict", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        assertion = result.get("assertion_result") or {}
        failure = assertion.get("failure") or {}
        detail = failure.get("message") or ""
        if not detail and result.get("verdict") == "failed":
            detail = f"actual {assertion.get('actual_value')!r}, expected {assertion.get('expected_value')!r}"
        verdict = result.get("verdict") or result.get("lifecycle", {}).get("status", "")
        table.add_row(result.get("test_id", ""), result.get("block_id", ""), status_text(str(verdict)), detail[:160])
    return table


def test(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow id")],
    block: Annotated[str | None, typer.Option(help="Only the tests of this block")] = None,
    test_id: Annotated[str | None, typer.Option("--test", help="Only this test")] = None,
    timeout: TimeoutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the workflow's tests against its draft, with live counts; exit 1 unless all passed."""
    if block is not None and test_id is not None:
        raise CliError("give --block or --test, not both")
    api = connection(ctx).api()
    scope = None
    if test_id is not None:
        scope = {"type": "single", "test_id": test_id}
    elif block is not None:
        scope = {"type": "block", "block_id": block}
    started = api.post("/tests/runs", {"workflow_id": workflow, "scope": scope})
    path = f"/tests/runs/{started['id']}"
    if as_json:
        final = _poll(api, path, timeout)
    else:
        with Live(counts_table(started), auto_refresh=False) as live:
            final = _poll(api, path, timeout, lambda r: live.update(counts_table(r), refresh=True))
    results = api.get("/tests/results", run_id=final["id"], limit=1000)["data"]
    if as_json:
        print_json({"test_run": final, "results": results})
    else:
        Console().print(results_table(results))
    _judge(final, results)


def _judge(final: dict[str, Any], results: list[dict[str, Any]]) -> None:
    status = final["lifecycle"]["status"]
    if status != "completed":
        raise CliError(f"test run {final['id']} ended {status}: {final['lifecycle'].get('message', '')}".rstrip(": "))
    if not results:
        raise CliError(f"test run {final['id']}: the workflow has no tests in this scope")
    bad = [r for r in results if r.get("verdict") != "passed"]
    if bad:
        raise CliError(f"test run {final['id']}: {len(bad)} of {len(results)} tests did not pass")
