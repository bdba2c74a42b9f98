"""Retab's function blocks in user Python, end to end through the SDK: runs, artifacts, reruns, tests, escapes.

Every escape attempt ends in a clear step error or harmless output; after each one a plain run completes,
so the worker stayed healthy. Network attempts happen inside the sandbox's empty network namespace only.
"""

from __future__ import annotations

import asyncio
import errno
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab

from docflow import keys
from storage.objects import ObjectStore
from tests.conftest import TEST_SECRET, Stack
from tests.integration.builders import build, chain, wait_for
from tests.sandboxes import require_bwrap

REPO = Path(__file__).resolve().parents[2]
RETAB_CODE = """\
def transform(input_data: Input) -> Output:
    items = input_data["items"]
    print(f"summing {len(items)} items")
    total = sum(item["price"] * item["qty"] for item in items)
    print("total", total)
    return {"total": total, "count": len(items)}
"""
OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "count": {"type": "integer"}},
    "required": ["total", "count"],
}


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_bwrap()


def _function(code: str, **config: Any) -> dict[str, Any]:
    return {"language": "python", "code": code, **config}


def _run(
    client: Retab, stack: Stack, config: dict[str, Any], data: Any, timeout: float = 60
) -> tuple[str, str, str, str]:
    """start_json → function; returns (workflow id, run id, function block id, run status) once the run ended."""
    blocks, edges = chain([("in", "start_json", {}), ("fn", "function", config)])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: data}, version="draft")
    return wf_id, run.id, ids["fn"], wait_for(client, run.id, timeout=timeout).lifecycle.status


def _step(http: httpx.Client, stack: Stack, run_id: str, block_id: str) -> dict[str, Any]:
    """The step as the API shows it, with `error` from its stored record and its artifact (if any)."""
    step: dict[str, Any] = http.get(f"/v1/workflows/runs/{run_id}/steps/{block_id}").json()
    record = asyncio.run(ObjectStore(stack.settings).get_json(keys.step(stack.project_id, run_id, block_id))).data
    step["error"] = record.get("error")
    # A failed step's artifact is on its record (the run's view shows artifacts of completed steps).
    if record.get("artifact"):
        step["artifact_record"] = http.get(f"/v1/workflows/artifacts/{record['artifact']['id']}").json()
    return step


def _output(http: httpx.Client, stack: Stack, run_id: str, block_id: str) -> Any:
    return _step(http, stack, run_id, block_id)["handle_outputs"]["output-json-0"]["data"]


def _healthy(client: Retab, stack: Stack, http: httpx.Client) -> None:
    _, run_id, fn, status = _run(client, stack, _function("def transform(d):\n    return d['n'] + 1\n"), {"n": 1})
    assert status == "completed"
    assert _output(http, stack, run_id, fn) == 2


def test_a_retab_function_block_returns_what_the_code_returns_with_its_invocation_recorded(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    data = {"items": [{"price": 2.5, "qty": 2}, {"price": 10, "qty": 1}]}
    config = _function(RETAB_CODE, output_schema=OUTPUT_SCHEMA, timeout_seconds=30)
    _, run_id, fn, status = _run(client, stack, config, data)
    assert status == "completed"
    step = client.workflows.steps.get(fn, run_id=run_id)
    assert step.handle_outputs["output-json-0"].data == {"total": 15.0, "count": 2}  # type: ignore[index]
    assert step.artifact is not None and step.artifact.operation == "function_invocation"
    artifact = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    assert artifact["operation"] == "function_invocation"
    assert artifact["id"].startswith("fninv_")
    assert artifact["inputs"] == {"input-json-0": data}
    assert artifact["output"] == {"total": 15.0, "count": 2}
    assert artifact["printed"] == ["summing 2 items", "total 15.0"]
    assert isinstance(artifact["duration_ms"], int) and 0 <= artifact["duration_ms"] < 30_000
    assert artifact["error"] is None


def test_code_that_cannot_run_is_refused_on_write_with_its_line(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name=f"py {uuid.uuid4().hex[:6]}").id
    cases = [
        ("def transform(d):\n    return d +\n", "syntax error at line 2", 2),
        ("def transfrom(d):\n    return d\n", "no top-level function 'transform", None),
    ]
    for code, fragment, line in cases:
        body = {"workflow_id": wf, "type": "function", "config": _function(code)}
        answer = http.post("/v1/workflows/blocks", json=body)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail["details"]["field"] == "config.code"
        assert fragment in detail["message"]
        assert detail["details"].get("line") == line
    block = http.post(
        "/v1/workflows/blocks", json={"workflow_id": wf, "type": "function", "config": _function(RETAB_CODE)}
    )
    assert block.status_code in (200, 201), block.text
    patch = http.patch(
        f"/v1/workflows/blocks/{block.json()['id']}", json={"workflow_id": wf, "config": {"code": "def transform(:"}}
    )
    assert patch.status_code == 422 and patch.json()["detail"]["details"]["line"] == 1, patch.text


def test_an_exception_is_a_step_error_with_the_users_traceback_and_prints(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    code = "def transform(d):\n    print('about to fail')\n    return d['missing']\n"
    _, run_id, fn, status = _run(client, stack, _function(code), {"n": 1})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] == "function_error"
    assert "KeyError" in step["error"]["message"] and "(line 3)" in step["error"]["message"]
    artifact = step["artifact_record"]
    assert artifact["printed"] == ["about to fail"]
    assert artifact["error"]["line"] == 3
    assert 'File "<function>", line 3, in transform' in artifact["error"]["traceback"]
    # The failed step's view names its artifact too (the SDK reads it from there).
    shown = client.workflows.steps.get(fn, run_id=run_id)
    assert shown.artifact is not None and shown.artifact.id == artifact["id"]


def test_an_output_breaking_output_schema_is_a_step_error_naming_the_path(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    code = "def transform(d):\n    return {'total': 'lots', 'count': 1}\n"
    _, run_id, fn, status = _run(client, stack, _function(code, output_schema=OUTPUT_SCHEMA), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] == "output_schema_mismatch"
    assert "at total" in step["error"]["message"]
    assert step["artifact_record"]["output"] == {"total": "lots", "count": 1}


def test_a_block_execution_reruns_a_function_block_with_the_drafts_code(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, run_id, fn, status = _run(client, stack, _function("def transform(d):\n    return d['n'] * 2\n"), {"n": 4})
    assert status == "completed"
    client.workflows.blocks.update(fn, config={"code": "def transform(d):\n    return d['n'] * 3\n"}, workflow_id=wf_id)
    rerun = client.workflows.blocks.executions.create(run_id=run_id, block_id=fn)
    assert rerun.lifecycle.status == "completed", rerun.lifecycle
    assert rerun.handle_outputs["output-json-0"].data == 12  # type: ignore[index]
    assert rerun.artifact is not None and rerun.artifact.operation == "function_invocation"


def test_a_workflow_test_runs_on_a_function_block(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, _, fn, status = _run(client, stack, _function("def transform(d):\n    return d['n'] * 3\n"), {"n": 1})
    assert status == "completed"
    tests = {}
    for name, expected in (("triples", 15), ("wrong", 16)):
        tests[name] = client.workflows.tests.create(
            workflow_id=wf_id,
            target={"type": "block", "block_id": fn},
            source={"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"n": 5}}}},
            name=name,
            assertion={
                "target": {"output_handle_id": "output-json-0"},
                "condition": {"kind": "number_compare", "op": "eq", "expected": expected},
            },
        ).id
    created = client.workflows.tests.runs.create(workflow_id=wf_id)
    deadline = time.monotonic() + 60
    while (answer := http.get(f"/v1/workflows/tests/runs/{created.id}").json())["lifecycle"]["status"] not in (
        "completed",
        "error",
        "cancelled",
    ):
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert answer["counts"]["outcome"] == {"passed": 1, "failed": 1, "blocked": 0}, answer
    verdicts = {r.test_id: r.verdict for r in client.workflows.tests.results.list(run_id=created.id)}
    assert verdicts == {tests["triples"]: "passed", tests["wrong"]: "failed"}


# -- escapes: each ends cleanly, then a plain run completes -----------------------------------------------


def _body(lines: str) -> str:
    return "def transform(input_data):\n" + "".join(f"    {line}\n" for line in lines.splitlines())


def _connect(host: str, port: int) -> str:
    """A transform that opens a TCP connection from inside the sandbox: the errno it fails with, or 'connected'."""
    return _body(
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=2)\n"
        "except OSError as exc:\n"
        "    return exc.errno\n"
        "return 'connected'"
    )


def test_reading_etc_passwd_finds_nothing(client: Retab, stack: Stack, http: httpx.Client) -> None:
    _, run_id, fn, status = _run(client, stack, _function(_body("return open('/etc/passwd').read()")), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert "FileNotFoundError" in step["error"]["message"] and "/etc/passwd" in step["error"]["message"]
    _healthy(client, stack, http)


def test_the_projects_files_and_its_data_dir_are_not_there(client: Retab, stack: Stack, http: httpx.Client) -> None:
    paths = [str(REPO / "pyproject.toml"), str(REPO / "worker.py"), str(stack.settings.data_dir.resolve())]
    code = _body(f"import os\nreturn {{p: os.path.exists(p) for p in {paths!r}}}")
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "completed"
    assert _output(http, stack, run_id, fn) == dict.fromkeys(paths, False)
    _healthy(client, stack, http)


def test_the_workers_environment_is_not_there(client: Retab, stack: Stack, http: httpx.Client) -> None:
    code = _body("import os\nreturn {'env': dict(os.environ), 'proc': os.path.exists('/proc/self/environ')}")
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "completed"
    seen = _output(http, stack, run_id, fn)
    assert TEST_SECRET not in str(seen)
    assert not [name for name in seen["env"] if name.startswith("DOCFLOW")]
    assert seen["proc"] is False


@pytest.mark.parametrize("target", ["api", "s3"])
def test_a_socket_to_the_api_or_s3_never_connects(client: Retab, stack: Stack, http: httpx.Client, target: str) -> None:
    port = stack.settings.api_port if target == "api" else int(stack.settings.s3_endpoint.rsplit(":", 1)[1])
    code = _connect("127.0.0.1", port)
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "completed"
    assert _output(http, stack, run_id, fn) in (errno.ENETUNREACH, errno.ECONNREFUSED)
    _healthy(client, stack, http)


def test_no_route_leads_out_of_the_sandbox(client: Retab, stack: Stack, http: httpx.Client) -> None:
    # No outside address is named or dialled (the network rule): the sandbox's only interface is its own loopback,
    # so nothing but that loopback is reachable (the API's and S3's ports there: the test above).
    code = _body("import socket\nreturn [name for _, name in socket.if_nameindex()]")
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "completed"
    assert _output(http, stack, run_id, fn) == ["lo"]
    _healthy(client, stack, http)


def test_a_fork_bomb_ends_its_step_only(client: Retab, stack: Stack, http: httpx.Client) -> None:
    code = _body("import os\nwhile True:\n    os.fork()")
    _, run_id, fn, status = _run(client, stack, _function(code, timeout_seconds=2), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] in ("function_error", "function_timeout"), step["error"]
    _healthy(client, stack, http)


def test_allocating_8_gib_is_a_memory_error(client: Retab, stack: Stack, http: httpx.Client) -> None:
    _, run_id, fn, status = _run(client, stack, _function(_body("return len(bytearray(8 << 30))")), {})
    assert status == "error"
    assert _step(http, stack, run_id, fn)["error"]["error_code"] == "function_memory_limit"
    _healthy(client, stack, http)


def test_an_infinite_loop_is_killed_at_timeout_seconds(client: Retab, stack: Stack, http: httpx.Client) -> None:
    start = time.monotonic()
    _, run_id, fn, status = _run(client, stack, _function(_body("while True:\n    pass"), timeout_seconds=1), {})
    assert status == "error"
    assert time.monotonic() - start < 30
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] == "function_timeout"
    assert "within 1 s" in step["error"]["message"]
    _healthy(client, stack, http)


def test_writing_10_gib_stops_at_the_size_cap(client: Retab, stack: Stack, http: httpx.Client) -> None:
    code = _body(
        "chunk = b'x' * (1 << 20)\n"
        "with open('/tmp/big', 'wb') as f:\n"
        "    for _ in range(10 * 1024):\n"
        "        f.write(chunk)"
    )
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert "OSError" in step["error"]["message"], step["error"]
    _healthy(client, stack, http)


def test_ctypes_tricks_end_in_a_clear_step_error(client: Retab, stack: Stack, http: httpx.Client) -> None:
    code = _body("import ctypes\nreturn ctypes.string_at(0xFFFFFFFFFFFF0000, 8).hex()")
    _, run_id, fn, status = _run(client, stack, _function(code), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] == "function_error"
    assert "No module named '_ctypes'" in step["error"]["message"]
    # A crash of the interpreter itself ends only its sandbox.
    _, run_id, fn, status = _run(client, stack, _function(_body("import faulthandler\nfaulthandler._sigsegv()")), {})
    assert status == "error"
    step = _step(http, stack, run_id, fn)
    assert step["error"]["error_code"] == "function_crashed" and "SIGSEGV" in step["error"]["message"]
    _healthy(client, stack, http)


def test_state_left_by_one_call_is_not_seen_by_the_next(client: Retab, stack: Stack, http: httpx.Client) -> None:
    leave = _body("import builtins\nopen('/tmp/left', 'w').write('x')\nbuiltins.LEFT = 1\nreturn 'left'")
    look = _body("import builtins, os\nreturn [os.path.exists('/tmp/left'), hasattr(builtins, 'LEFT')]")
    _, first, fn, status = _run(client, stack, _function(leave), {})
    assert status == "completed"
    _, second, fn2, status = _run(client, stack, _function(look), {})
    assert status == "completed"
    assert _output(http, stack, second, fn2) == [False, False]


def test_other_runs_complete_while_a_runaway_function_burns_its_time(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    spin = _function(_body("while True:\n    pass"), timeout_seconds=6)
    blocks, edges = chain([("in", "start_json", {}), ("fn", "function", spin)])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    runaway = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    wait_for(client, runaway.id, {"running"})
    _healthy(client, stack, http)  # meanwhile, a plain run completes
    assert client.workflows.runs.get(runaway.id).lifecycle.status == "running"
    assert wait_for(client, runaway.id).lifecycle.status == "error"
    assert _step(http, stack, runaway.id, ids["fn"])["error"]["error_code"] == "function_timeout"
