"""api_call against an attacker's config: no way to loopback, no shared cookies, no resend after a 2xx, no secret kept.

Every request goes to loopback: the allowed target on 127.0.0.2, the forbidden one and the stack on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.exceptions import ValidationError
from temporalio.api.history.v1 import History

from activities.egress import Egress
from activities.http_call import ApiCaller
from docflow import keys
from docflow.egress import parse_allowlist
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, RunContext
from docflow.temporal import connect
from storage.objects import ObjectStore
from tests.conftest import TEST_SECRET, TEST_SECRET_NAME, Stack
from tests.http_target import HttpTarget
from tests.integration.builders import build, chain, wait_for


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _run_call(
    client: Retab, stack: Stack, config: dict[str, Any], data: Any = None, project_id: str | None = None
) -> tuple[str, str]:
    """Run start_json → api_call with this config; returns (run id, api_call block id) once the run ended."""
    blocks, edges = chain([("in", "start_json", {}), ("call", "api_call", config)])
    wf_id, ids = build(client, project_id or stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: data or {}}, version="draft")
    wait_for(client, run.id)
    return run.id, ids["call"]


def _step(http: httpx.Client, stack: Stack, run_id: str, block_id: str) -> dict[str, Any]:
    """The step as the API shows it, with `error` (code and message) from its stored record."""
    response = http.get(f"/v1/workflows/runs/{run_id}/steps/{block_id}")
    assert response.status_code == 200, response.text
    step: dict[str, Any] = response.json()
    key = keys.step(stack.project_id, run_id, block_id)
    record = asyncio.run(ObjectStore(stack.settings).get_json(key)).data
    step["error"] = record.get("error")
    return step


# -- 1. egress ------------------------------------------------------------------------------------------------


def test_a_template_that_could_move_the_host_is_refused_on_write(client: Retab, stack: Stack) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="ssrf").id
    for url in (
        "https://api.example.com{{ path }}",
        "https://{{ host }}/x",
        "https://api.example.com:{{ port }}/x",
        "{{ scheme }}://api.example.com/x",
        "https://user:pass@api.example.com/x",
    ):
        with pytest.raises(ValidationError) as raised:
            client.workflows.blocks.create(workflow_id=wf, id=f"c-{_tag()}", type="api_call", config={"url": url})
        assert (raised.value.details or {}).get("field") == "config.url", url


@pytest.mark.parametrize("target", ["api", "s3_filer", "localhost", "forbidden"])
def test_loopback_addresses_are_refused(
    client: Retab, http: httpx.Client, stack: Stack, forbidden_target: HttpTarget, target: str
) -> None:
    tag = _tag()
    s = stack.settings
    url = {
        "api": f"http://127.0.0.1:{s.api_port}/health",
        "s3_filer": f"http://127.0.0.1:{s.s3_filer_port}/",
        "localhost": f"http://localhost:{forbidden_target.port}/echo/{tag}",
        "forbidden": f"{forbidden_target.url}/echo/{tag}",
    }[target]
    run_id, block = _run_call(client, stack, {"method": "GET", "url": url})
    step = _step(http, stack, run_id, block)
    assert step["lifecycle"]["status"] == "error"
    assert step["error"]["error_code"] == "egress_denied"
    host = "localhost" if target == "localhost" else "127.0.0.1"
    assert host in step["error"]["message"] and "loopback" in step["error"]["message"]
    assert forbidden_target.counts[f"/echo/{tag}"] == 0


def test_a_redirect_to_a_refused_address_is_not_followed(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget, forbidden_target: HttpTarget
) -> None:
    tag = _tag()
    to = f"{forbidden_target.url}/echo/{tag}"
    run_id, block = _run_call(client, stack, {"method": "GET", "url": f"{http_target.url}/redirect/{tag}?to={to}"})
    step = _step(http, stack, run_id, block)
    assert step["error"]["error_code"] == "egress_denied", step["error"]
    assert http_target.counts[f"/redirect/{tag}"] == 1
    assert forbidden_target.counts[f"/echo/{tag}"] == 0


def test_template_values_stay_inside_the_path(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget, forbidden_target: HttpTarget
) -> None:
    tag = _tag()
    evil = f"@127.0.0.1:{forbidden_target.port}/echo/{tag}?x=1#"
    config = {"method": "GET", "url": f"{http_target.url}/headers/{tag}/{{{{ path }}}}?q={{{{ path }}}}"}
    run_id, block = _run_call(client, stack, config, {"path": evil})
    step = _step(http, stack, run_id, block)
    assert step["lifecycle"]["status"] == "completed", step.get("error")
    assert step["handle_outputs"]["output-json-0"]["data"]["query"] == {"q": [evil]}
    assert forbidden_target.counts[f"/echo/{tag}"] == 0


def test_a_response_over_the_size_cap_fails_the_step(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    depth = stack.settings.egress_max_response_bytes  # 2 × depth bytes of JSON
    tag = _tag()
    run_id, block = _run_call(client, stack, {"method": "GET", "url": f"{http_target.url}/deep/{tag}?depth={depth}"})
    step = _step(http, stack, run_id, block)
    assert step["error"]["error_code"] == "response_too_large", step["error"]
    assert http_target.counts[f"/deep/{tag}"] == 1


# -- 2. cookies -----------------------------------------------------------------------------------------------


def test_a_cookie_set_in_one_run_is_not_sent_in_another(
    client: Retab, other_client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    run_id, block = _run_call(client, stack, {"method": "GET", "url": f"{http_target.url}/cookie/{tag}"})
    assert _step(http, stack, run_id, block)["lifecycle"]["status"] == "completed"
    # The next run in the same project, and a run of another project: neither carries the cookie.
    _run_call(client, stack, {"method": "GET", "url": f"{http_target.url}/headers/{tag}"})
    _run_call(other_client, stack, {"url": f"{http_target.url}/headers/{tag}"}, project_id=stack.other_project_id)
    sent = http_target.headers[f"/headers/{tag}"]
    assert len(sent) == 2
    assert all("cookie" not in {k.lower() for k in h} for h in sent), sent


# -- 4. at most once ------------------------------------------------------------------------------------------


def test_a_2xx_with_an_unreadable_body_is_sent_once_and_fails_the_step(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    config = {"method": "POST", "url": f"{http_target.url}/deep/{tag}?depth=100000", "body": {"pay": 1}}
    run_id, block = _run_call(client, stack, config)
    step = _step(http, stack, run_id, block)
    assert step["lifecycle"]["status"] == "error"
    assert step["error"]["error_code"] == "response_unreadable", step["error"]
    assert "nested" in step["error"]["message"]
    time.sleep(1)  # a retry would have come by now
    assert http_target.counts[f"/deep/{tag}"] == 1


def test_retried_attempts_carry_one_idempotency_key(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    config = {
        "method": "POST",
        "url": f"{http_target.url}/flaky/{tag}?fail=2",
        "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.05},
    }
    run_id, block = _run_call(client, stack, config)
    assert _step(http, stack, run_id, block)["lifecycle"]["status"] == "completed"
    keys = [h.get("Idempotency-Key") for h in http_target.headers[f"/flaky/{tag}"]]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1, keys

    # Another run of the same workflow is another logical call: another key.
    again, block2 = _run_call(client, stack, {**config, "url": f"{http_target.url}/flaky/{tag}?fail=0"})
    assert _step(http, stack, again, block2)["lifecycle"]["status"] == "completed"
    assert http_target.headers[f"/flaky/{tag}"][-1]["Idempotency-Key"] != keys[0]


def test_the_idempotency_key_survives_a_killed_worker(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    config = {"method": "POST", "url": f"{http_target.url}/slow/{tag}?seconds=2", "body": {"charge": 10}}
    blocks, edges = chain([("in", "start_json", {}), ("call", "api_call", config)])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    deadline = time.monotonic() + 30
    while http_target.counts[f"/slow/{tag}"] == 0:
        assert time.monotonic() < deadline, "the call never started"
        time.sleep(0.05)
    stack.restart_worker(kill=True)  # in flight, unanswered: the new worker sends it again, with the same key
    assert wait_for(client, run.id, timeout=90).lifecycle.status == "completed"
    keys = [h.get("Idempotency-Key") for h in http_target.headers[f"/slow/{tag}"]]
    assert len(keys) >= 2 and keys[0] and len(set(keys)) == 1, keys


def test_a_key_set_by_the_user_is_kept(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    config = {"url": f"{http_target.url}/headers/{tag}", "headers": {"idempotency-key": "{{ order }}"}}
    run_id, block = _run_call(client, stack, config, {"order": "order-77"})
    assert _step(http, stack, run_id, block)["lifecycle"]["status"] == "completed"
    sent = http_target.headers[f"/headers/{tag}"][0]
    assert [v for k, v in sent.items() if k.lower() == "idempotency-key"] == ["order-77"]


# -- 10. secrets ----------------------------------------------------------------------------------------------


def _secret_config(url: str) -> dict[str, Any]:
    ref = f"{{{{ secrets.{TEST_SECRET_NAME} }}}}"
    return {
        "method": "POST",
        "url": url,
        "headers": {"Authorization": f"Bearer {ref}", "X-Token": ref},
        "query": {"token": ref},
        "body": {"token": ref, "note": f"with {ref} inside"},
        "retry": {"max_attempts": 1},
    }


def test_a_secret_reaches_the_target_and_nothing_else(
    client: Retab, http: httpx.Client, stack: Stack, http_target: HttpTarget
) -> None:
    tag = _tag()
    ok_run, ok_block = _run_call(client, stack, _secret_config(f"{http_target.url}/headers/{tag}"))
    bad_run, _ = _run_call(client, stack, _secret_config(f"{http_target.url}/missing/{tag}"))
    step = _step(http, stack, ok_run, ok_block)
    assert step["lifecycle"]["status"] == "completed", step.get("error")
    sent = http_target.headers[f"/headers/{tag}"][0]
    assert sent["Authorization"] == f"Bearer {TEST_SECRET}" and sent["X-Token"] == TEST_SECRET
    assert client.workflows.runs.get(bad_run).lifecycle.status == "error"
    # What the run keeps shows where the secret was, not what it was.
    echoed = step["handle_outputs"]["output-json-0"]["data"]
    assert echoed["headers"]["X-Token"] == "***" and echoed["body"] == {"token": "***", "note": "with *** inside"}
    trace = http.get(f"/v1/workflows/artifacts/{step['artifact']['id']}").json()
    assert trace["attempts"][0]["request_headers"]["X-Token"] == "***"
    assert "token=***" in trace["attempts"][0]["request_url"]

    secret = TEST_SECRET.encode()
    found: list[str] = []
    for run_id in (ok_run, bad_run):
        history = asyncio.run(_history_bytes(stack, run_id))
        if secret in history:
            found.append(f"history of {run_id}")
        if secret in http.get(f"/v1/workflows/runs/{run_id}/steps").content:
            found.append(f"steps of {run_id}")
    store_client = _s3(stack)
    for key in _all_keys(store_client, stack.settings.s3_bucket):
        if secret in store_client.get_object(Bucket=stack.settings.s3_bucket, Key=key)["Body"].read():
            found.append(f"s3 {key}")
    for log in (stack.settings.data_dir / "logs").glob("*.log"):
        if secret in log.read_bytes():
            found.append(f"log {log.name}")
    assert found == []


def test_an_unknown_secret_fails_the_step_naming_it(client: Retab, http: httpx.Client, stack: Stack) -> None:
    config = {"url": "http://127.0.0.2:9/x", "headers": {"X-Key": "{{ secrets.NO_SUCH_SECRET }}"}}
    run_id, block = _run_call(client, stack, config)
    step = _step(http, stack, run_id, block)
    assert step["error"]["error_code"] == "unknown_secret"
    assert "NO_SUCH_SECRET" in step["error"]["message"]


def test_a_project_cannot_name_another_projects_secret(
    other_client: Retab, stack: Stack, http_target: HttpTarget
) -> None:
    """DOCFLOW_SECRETS is keyed by project: TEST_TOKEN is the test project's, so the other project's run fails."""
    tag = _tag()
    run_id, block = _run_call(
        other_client, stack, _secret_config(f"{http_target.url}/headers/{tag}"), project_id=stack.other_project_id
    )
    key = keys.step(stack.other_project_id, run_id, block)
    error = asyncio.run(ObjectStore(stack.settings).get_json(key)).data["error"]
    assert error["error_code"] == "unknown_secret" and TEST_SECRET_NAME in error["message"]
    assert TEST_SECRET not in json.dumps(error)
    assert http_target.headers[f"/headers/{tag}"] == []  # nothing was sent


async def _history_bytes(stack: Stack, run_id: str) -> bytes:
    client = await connect(stack.settings)
    history = await client.get_workflow_handle(run_id).fetch_history()
    # Payloads are raw bytes in the protobuf encoding (its JSON form would hide them in base64).
    return bytes(History(events=history.events).SerializeToString())


def _s3(stack: Stack) -> Any:
    import boto3
    from botocore.config import Config

    s = stack.settings
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        aws_access_key_id=s.s3_access_key,
        aws_secret_access_key=s.s3_secret_key,
        region_name=s.s3_region,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def _all_keys(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def test_a_recorded_answer_is_replayed_not_sent_again(stack: Stack, http_target: HttpTarget) -> None:
    """A retried activity (say, its step record write failed after the 2xx) replays the answer it recorded."""
    tag = _tag()
    caller = ApiCaller(Egress(parse_allowlist(stack.settings.egress_allow), 1 << 20), ObjectStore(stack.settings), {})
    run = RunContext(run_id=f"run_{tag}", project_id=stack.project_id, workflow_id="wf_x", version_id="ver_x")
    block = Block(
        id="call",
        workflow_id="wf_x",
        type="api_call",
        config={"url": f"{http_target.url}/echo/{tag}"},
        updated_at=datetime.now(UTC),
    )
    inp = ExecuteBlockInput(run=run, block=block, step_id="call")
    first = asyncio.run(caller.call(inp, {"n": 1}))
    again = asyncio.run(caller.call(inp, {"n": 1}))
    assert http_target.counts[f"/echo/{tag}"] == 1
    assert again.outputs == first.outputs and again.artifact == first.artifact
