"""The `docflow` CLI through its installed entry point (`.venv/bin/docflow`), against the real stack.

Each command runs as a child process, as an operator would type it: the live views in a pseudo-terminal (so
rich draws them as on a screen), `--json` output parsed, errors read as the one line they must be.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from retab import Retab

from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.integration.builders import INVOICE_SCHEMA, build, build_invoice, json_edge, wait_for
from tests.integration.test_review_gates import ALWAYS, gated

DOCFLOW = str(Path(sys.executable).parent / "docflow")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _args(stack: Stack, args: tuple[str, ...]) -> list[str]:
    return [DOCFLOW, "--api-url", stack.api_url, "--api-key", stack.api_key, *args]


def cli(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `docflow …` with the test project's key; stdout and stderr captured."""
    return subprocess.run(_args(stack, args), capture_output=True, text=True, timeout=timeout, env=_env())


def cli_json(stack: Stack, *args: str) -> Any:
    """Run `docflow … --json`, expect success, parse stdout."""
    done = cli(stack, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "TERM": "xterm-256color", "NO_COLOR": ""}


def in_terminal(stack: Stack, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run `docflow …` with stdout on a pseudo-terminal; (status, everything drawn, escapes removed, + stderr)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(_args(stack, args), stdout=follower, stderr=subprocess.PIPE, env=_env(), text=False)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, b"".join(chunks).decode(errors="replace")
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(leader)
    status = proc.wait(30)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    raw = b"".join(chunks).decode(errors="replace")
    return status, ANSI.sub("", raw) + err


def _invoice_input(tmp_path: Path, number: str, total: float) -> Path:
    """A start_json input file holding an invoice's text, for `--json-input`."""
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"text": f"Invoice number: {number}\nTotal: {total}"}))
    return data


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The failed command's stderr: exactly one line, `error: …`, no traceback."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


def test_run_shows_each_block_live_then_prints_the_outputs(
    client: Retab, stack: Stack, samples: Path, tmp_path: Path, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = build_invoice(client, stack.project_id)
    customer = tmp_path / "customer.json"
    customer.write_text(json.dumps({"customer_id": "cust_cli", "priority": "high"}))
    model_server.delay(1.5)  # the extract is slow, so the view is seen while it runs
    try:
        status, screen = in_terminal(
            stack, "run", wf_id, str(samples / "invoice.pdf"), "--json-input", f"{ids['customer']}={customer}"
        )
    finally:
        model_server.delay(0.0)
    assert status == 0, screen
    # Redrawn as the run went on: the extract was shown running (downstream pending), then completed.
    assert re.search(rf"{re.escape(ids['extract'])}.*running", screen), screen
    assert re.search(rf"{re.escape(ids['merge'])}.*pending", screen), screen
    for block in ("invoice", "parse", "extract", "route", "approval", "merge"):
        assert re.search(rf"{re.escape(ids[block])}.*completed", screen), (block, screen)
    assert re.search(rf"{re.escape(ids['auto_approve'])}.*skipped", screen), screen
    assert re.search(r"completed\s+│\s+\d+\.\d+s", screen), screen  # a duration per finished block
    # Then the outputs: the leaf block's merged data (the customer record merged into the invoice fields).
    assert f"{ids['merge']} · output-json-0" in screen
    assert '"invoice_number": "INV-2026-0042"' in screen and '"customer_id": "cust_cli"' in screen


def test_json_outputs_parse_and_name_the_same_run(client: Retab, stack: Stack, tmp_path: Path) -> None:
    extract = {"json_schema": INVOICE_SCHEMA, "inputs": [{"name": "text", "type": "json"}]}
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": extract}]
    edges = [json_edge("in", "ex", "input-json-text")]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    data = _invoice_input(tmp_path, "CLI-J1", 7)
    # One start_json block: a bare path is enough.
    ran = cli_json(stack, "run", wf_id, "--version", "draft", "--json-input", str(data))
    run_id = ran["run"]["id"]
    assert ran["run"]["lifecycle"]["status"] == "completed"
    assert ran["outputs"] == {ids["ex"]: {"output-json-0": {"invoice_number": "CLI-J1", "total": 7}}}
    assert {s["block_id"] for s in ran["steps"]} == set(ids.values())
    shown = cli_json(stack, "runs", "show", run_id)
    assert shown["run"]["id"] == run_id and shown["outputs"] == ran["outputs"]
    listed = cli_json(stack, "runs", "list", "--workflow", wf_id)
    assert [r["id"] for r in listed] == [run_id]
    detached = cli_json(stack, "run", wf_id, "--version", "draft", "--json-input", f"{ids['in']}={data}", "--detach")
    assert detached["id"].startswith("run_") and detached["lifecycle"]["status"] in ("pending", "running", "completed")
    wait_for(client, detached["id"])
    cancelled = cli_json(stack, "runs", "cancel", detached["id"])
    assert cancelled["run"]["id"] == detached["id"] and "cancellation_status" in cancelled


def test_a_review_approved_from_the_cli_completes_its_run(client: Retab, stack: Stack, tmp_path: Path) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    data = _invoice_input(tmp_path, "CLI-R1", 21)
    started = cli_json(stack, "run", wf_id, "--version", "draft", "--json-input", f"{ids['in']}={data}", "--detach")
    run_id = started["id"]
    wait_for(client, run_id, {"awaiting_review", "completed", "error", "cancelled"})
    [review] = cli_json(stack, "reviews", "list", "--run", run_id)
    assert review["block_id"] == ids["ex"] and review["decision"] is None
    table = cli(stack, "reviews", "list", "--workflow", wf_id)
    assert review["id"] in table.stdout and run_id in table.stdout
    shown = cli_json(stack, "reviews", "show", review["id"])
    assert shown["versions"][-1]["snapshot"] == {"invoice_number": "CLI-R1", "total": 21}

    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps({"invoice_number": "CLI-R1", "total": 50}))
    answer = cli_json(stack, "reviews", "approve", review["id"], "--data", str(corrected), "--reviewer", "Ada")
    assert (answer["submission_status"], answer["resume_status"]) == ("accepted", "resumed")
    assert answer["review"]["decision"]["author"]["display_name"] == "Ada"
    done = wait_for(client, run_id)
    assert done.lifecycle.status == "completed"
    final = cli_json(stack, "runs", "show", run_id)
    assert final["outputs"][ids["double"]] == {"output-json-0": 100}  # the corrected total, doubled
    assert cli_json(stack, "reviews", "list", "--run", run_id) == []  # decided: out of the open queue
    again = cli(stack, "reviews", "approve", review["id"])
    assert again.returncode == 0 and "already_applied" in again.stdout


def test_a_followed_run_names_its_review_and_ends_once_the_cli_approves(
    client: Retab, stack: Stack, tmp_path: Path
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    data = _invoice_input(tmp_path, "CLI-R3", 4)
    followed: list[tuple[int, str]] = []
    args = ("run", wf_id, "--version", "draft", "--json-input", str(data))
    follower = threading.Thread(target=lambda: followed.append(in_terminal(stack, *args)))
    follower.start()
    deadline = time.monotonic() + 60
    while not (runs := cli_json(stack, "runs", "list", "--workflow", wf_id)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    wait_for(client, runs[0]["id"], {"awaiting_review", "completed", "error", "cancelled"})
    [review] = cli_json(stack, "reviews", "list", "--run", runs[0]["id"])
    time.sleep(1.5)  # a few redraws while it waits
    assert cli(stack, "reviews", "approve", review["id"]).returncode == 0
    follower.join(60)
    [(status, screen)] = followed
    assert status == 0, screen
    assert f"waiting for review: docflow reviews approve {review['id']}" in screen, screen
    assert re.search(rf"{re.escape(ids['ex'])}.*awaiting_review", screen), screen
    assert re.search(rf"{re.escape(ids['double'])}.*completed", screen), screen
    assert f"{ids['double']} · output-json-0:\n8" in screen  # the approved total, doubled


def test_ctrl_c_stops_following_not_the_run_which_cancel_then_stops(
    client: Retab, stack: Stack, tmp_path: Path
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    data = _invoice_input(tmp_path, "CLI-C1", 4)
    args = _args(stack, ("run", wf_id, "--version", "draft", "--json-input", str(data)))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 60
    while not (runs := cli_json(stack, "runs", "list", "--workflow", wf_id)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    run_id = runs[0]["id"]
    wait_for(client, run_id, {"awaiting_review", "completed", "error", "cancelled"})
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert err.splitlines() == [f"error: stopped following run {run_id}; it goes on (docflow runs show {run_id})"]
    assert cli_json(stack, "runs", "show", run_id)["run"]["lifecycle"]["status"] == "awaiting_review"
    cancelled = cli(stack, "runs", "cancel", run_id)
    assert cancelled.returncode == 0 and run_id in cancelled.stdout, cancelled.stderr
    assert wait_for(client, run_id).lifecycle.status == "cancelled"
    assert cli_json(stack, "reviews", "list", "--run", run_id) == []  # its review closed with it


def test_the_dev_stack_key_and_docflow_api_key_are_found_without_options(stack: Stack, tmp_path: Path) -> None:
    host, port = stack.api_url.removeprefix("http://").rsplit(":", 1)
    env = {**_env(), "DOCFLOW_DATA_DIR": str(tmp_path), "DOCFLOW_API_HOST": host, "DOCFLOW_API_PORT": port}
    env.pop("DOCFLOW_API_KEY", None)
    bare = [DOCFLOW, "runs", "list", "--json"]
    missing = subprocess.run(bare, capture_output=True, text=True, timeout=60, env=env)
    assert "no API key" in one_error_line(missing)
    (tmp_path / "dev-api-key").write_text(f"{stack.api_key} {stack.project_id}\n")  # as `docflow up` keeps it
    listed = subprocess.run(bare, capture_output=True, text=True, timeout=60, env=env)
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list), listed.stderr
    # A new workflow goes in the dev key's project without --project.
    spec = tmp_path / "wf.yaml"
    spec.write_text(SPEC.format(tag=uuid.uuid4().hex[:6], factor=2, extra="", description="d"))
    applied = subprocess.run(
        [DOCFLOW, "apply", str(spec), "--json"], capture_output=True, text=True, timeout=60, env=env
    )
    assert applied.returncode == 0 and json.loads(applied.stdout)["action"] == "create", applied.stderr
    env["DOCFLOW_API_KEY"] = "sk_docflow_from_env"  # the setting wins over the file
    refused = subprocess.run(bare, capture_output=True, text=True, timeout=60, env=env)
    assert "HTTP 401" in one_error_line(refused)


def test_a_review_rejected_from_the_cli_ends_the_run_in_error(client: Retab, stack: Stack, tmp_path: Path) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    data = _invoice_input(tmp_path, "CLI-R2", 21)
    run_id = cli_json(stack, "run", wf_id, "--version", "draft", "--json-input", str(data), "--detach")["id"]
    wait_for(client, run_id, {"awaiting_review", "completed", "error", "cancelled"})
    [review] = cli_json(stack, "reviews", "list", "--run", run_id)
    one_error_line(cli(stack, "reviews", "reject", review["id"]))  # --reason is required
    rejected = cli_json(stack, "reviews", "reject", review["id"], "--reason", "wrong vendor")
    assert rejected["review"]["decision"]["verdict"] == "rejected"
    assert wait_for(client, run_id).lifecycle.status == "error"
    shown = cli_json(stack, "runs", "show", run_id)  # showing a failed run is no failure of `show`
    step = next(s for s in shown["steps"] if s["block_id"] == ids["ex"])
    assert step["lifecycle"]["status"] == "error" and "wrong vendor" in step["lifecycle"]["message"]


SPEC = """\
apiVersion: workflows.retab.com/v1alpha2
kind: Workflow
metadata:
  name: CLI spec {tag}
  description: {description}
spec:
  blocks:
    in-{tag}:
      type: start_json
      label: Input
      position: {{x: 0, y: 0}}
    total-{tag}:
      type: function
      label: Total
      position: {{x: 200, y: 0}}
      config:
        expression: input['total'] * {factor}
{extra}  edges:
    - from: {{block: in-{tag}, handle: output-json-0}}
      to: {{block: total-{tag}, handle: input-json-0}}
"""
EXTRA = """\
    note-{tag}:
      type: note
      config:
        text: |
          Two lines
          of notes.
    memo-{tag}:
      type: note
"""
REPLACED = """\
    note-{tag}:
      type: start_json
"""


def test_apply_twice_changes_nothing_the_second_time_and_export_round_trips(
    client: Retab, stack: Stack, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    spec = tmp_path / "wf.yaml"
    spec.write_text(SPEC.format(tag=tag, factor=2, extra=EXTRA.format(tag=tag), description="Built from YAML"))
    # A new workflow needs the key's project: the API has no "who am I" (the dev key's file names it).
    first = cli(stack, "apply", str(spec), "--project", stack.project_id)
    assert first.returncode == 0, first.stderr
    assert "+ block in-" in first.stdout and "6 to add" in first.stdout and "Applied to workflow" in first.stdout
    wf_id = re.search(r"Applied to workflow (wf_\w+)", first.stdout).group(1)  # type: ignore[union-attr]
    listed = {w["id"]: w["name"] for w in cli_json(stack, "workflows", "list")}
    assert listed[wf_id] == f"CLI spec {tag}"
    assert wf_id in cli(stack, "workflows", "list").stdout
    second = cli_json(stack, "apply", str(spec))
    assert second["workflow_id"] == wf_id and second["action"] == "noop" and second["applied"] is False
    assert second["summary"]["has_changes"] is False
    assert "No changes" in cli(stack, "apply", str(spec)).stdout

    # The applied draft runs.
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"total": 21}))
    ran = cli_json(stack, "run", wf_id, "--version", "draft", "--json-input", str(data))
    assert ran["outputs"][f"total-{tag}"] == {"output-json-0": 42}
    assert "no published version" in one_error_line(cli(stack, "run", wf_id, "--json-input", str(data)))

    # Changes: the factor and the description move, the memo goes, the note becomes another type; the plan
    # says so and only that happens.
    spec.write_text(SPEC.format(tag=tag, factor=3, extra=REPLACED.format(tag=tag), description="Changed"))
    planned = cli_json(stack, "apply", str(spec), "--dry-run")
    changes = {(c["address"], tuple(c["actions"])) for c in planned["resource_changes"]}
    assert changes == {
        (f"workflow.{wf_id}", ("update",)),
        (f"block.total-{tag}", ("update",)),
        (f"block.memo-{tag}", ("delete",)),
        (f"block.note-{tag}", ("delete", "create")),
    }, changes
    assert planned["applied"] is False
    assert cli_json(stack, "apply", str(spec))["summary"] == {**planned["summary"]}
    assert cli_json(stack, "apply", str(spec))["action"] == "noop"

    exported = tmp_path / "exported.yaml"
    assert cli(stack, "export", wf_id, "-o", str(exported)).returncode == 0
    document = yaml.safe_load(exported.read_text())
    assert document["metadata"] == {"id": wf_id, "name": f"CLI spec {tag}", "description": "Changed"}
    assert document["spec"]["blocks"][f"total-{tag}"]["config"] == {"expression": "input['total'] * 3"}
    assert document["spec"]["blocks"][f"note-{tag}"]["type"] == "start_json"
    assert f"memo-{tag}" not in document["spec"]["blocks"]
    assert cli_json(stack, "apply", str(exported))["action"] == "noop"  # export, then apply: no change
    assert cli(stack, "export", wf_id).stdout == exported.read_text()
    as_json = cli_json(stack, "export", wf_id)
    assert as_json == {"workflow_id": wf_id, "yaml_definition": exported.read_text()}

    # Another spec naming these block ids is not taken for this workflow: it is refused, naming it.
    spec.write_text(SPEC.format(tag=tag, factor=3, extra="", description="x").replace("CLI spec", "Other"))
    line = one_error_line(cli(stack, "apply", str(spec)))
    assert f"block id 'in-{tag}' is used by workflow {wf_id}" in line and f"--workflow {wf_id}" in line


def test_rerun_replays_a_block_on_the_draft_and_force_skips_the_upstream_check(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "add", "type": "function", "config": {"expression": "input['n'] + 1"}},
        {"id": "double", "type": "function", "config": {"expression": "input * 2"}},
    ]
    edges = [json_edge("in", "add"), json_edge("add", "double")]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 4}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    client.workflows.blocks.update(ids["double"], config={"expression": "input * 10"}, workflow_id=wf_id)
    rerun = cli_json(stack, "rerun", ids["double"], "--run", run.id)
    assert rerun["lifecycle"]["status"] == "completed" and rerun["handle_outputs"]["output-json-0"]["data"] == 50
    shown = cli(stack, "rerun", ids["double"], "--run", run.id)
    assert shown.returncode == 0 and "completed" in shown.stdout and "50" in shown.stdout

    client.workflows.blocks.update(ids["add"], config={"expression": "input['n'] + 2"}, workflow_id=wf_id)
    line = one_error_line(cli(stack, "rerun", ids["double"], "--run", run.id))
    assert ids["add"] in line and "409" in line  # the upstream changed: refused, naming the block
    forced = cli_json(stack, "rerun", ids["double"], "--run", run.id, "--force")
    assert forced["lifecycle"]["status"] == "completed" and forced["forced"] is True


def _add_test(http: httpx.Client, wf_id: str, block: str, expected: int) -> str:
    body = {
        "workflow_id": wf_id,
        "target": {"type": "block", "block_id": block},
        "source": {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"n": 5}}}},
        "assertion": {
            "target": {"output_handle_id": "output-json-0"},
            "condition": {"kind": "number_compare", "op": "eq", "expected": expected},
        },
    }
    answer = http.post("/v1/workflows/tests", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_the_test_command_shows_live_counts_and_exits_one_unless_all_pass(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "add", "type": "function", "config": {"expression": "input['n'] + 1"}},
    ]
    edges = [
        {"source_block": "in", "target_block": "add", "source_handle": "output-json-0", "target_handle": "input-json-0"}
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    passing = _add_test(http, wf_id, ids["add"], 6)
    status, screen = in_terminal(stack, "test", wf_id)
    assert status == 0, screen
    assert re.search(r"test run \S+ · completed · 1 tests", screen) and passing in screen, screen
    assert re.search(rf"{passing}.*passed", screen), screen

    failing = _add_test(http, wf_id, ids["add"], 7)
    done = cli(stack, "test", wf_id, "--json")
    assert (
        done.returncode == 1
        and done.stderr.strip()
        == f"error: test run {json.loads(done.stdout)['test_run']['id']}: 1 of 2 tests did not pass"
    )
    report = json.loads(done.stdout)
    assert report["test_run"]["counts"]["outcome"] == {"passed": 1, "failed": 1, "blocked": 0}
    assert {r["test_id"]: r["verdict"] for r in report["results"]} == {passing: "passed", failing: "failed"}
    only = cli_json(stack, "test", wf_id, "--test", passing)
    assert only["test_run"]["total_tests"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_errors_exit_non_zero_with_one_readable_line(stack: Stack, tmp_path: Path) -> None:
    line = one_error_line(cli(stack, "run", "wf_nope", "--version", "draft"))
    assert "wf_nope" in line and "HTTP 404" in line
    assert "HTTP 404" in one_error_line(cli(stack, "runs", "show", "run_nope", "--json"))
    assert "HTTP 404" in one_error_line(cli(stack, "export", "wf_nope"))

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: workflows.retab.com/v1alpha2\nspec:\n  blocks: [unclosed\n")
    assert "not valid YAML" in one_error_line(cli(stack, "apply", str(bad)))
    dated = tmp_path / "dated.yaml"
    dated.write_text(SPEC.format(tag="d", factor="2\n        since: 2026-01-01", extra="", description="d"))
    assert "spec.blocks.total-d.config.since" in one_error_line(cli(stack, "apply", str(dated)))
    python = tmp_path / "python.yaml"
    python.write_text("!!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n")
    assert "not valid YAML" in one_error_line(cli(stack, "apply", str(python)))
    assert not (tmp_path / "pwned").exists()
    assert "cannot read" in one_error_line(cli(stack, "apply", str(tmp_path / "missing.yaml")))

    down = subprocess.run(
        [DOCFLOW, "--api-url", f"http://127.0.0.1:{_free_port()}", "--api-key", "k", "runs", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "cannot reach the API" in one_error_line(down) and down.stdout == ""
    wrong_key = subprocess.run(
        [DOCFLOW, "--api-url", stack.api_url, "--api-key", "sk_docflow_wrong", "reviews", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "HTTP 401" in one_error_line(wrong_key)
    assert "No such option" in one_error_line(cli(stack, "runs", "list", "--bogus"))
