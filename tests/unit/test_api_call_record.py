"""An answered call's outcome record is retried through a storage outage for the run's storage budget, then the
step fails for good (`api_call_unrecorded`): a retry of the activity would send the call again.

The "object store" is a loopback port with nothing listening: every write fails at once, as when S3 is down.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from activities.egress import Egress
from activities.errors import BlockError
from activities.http_call import ApiCaller
from devstack.stack import free_port
from docflow.config import Settings
from docflow.egress import parse_allowlist
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, RunContext
from storage.objects import ObjectStore


def _input(budget: float) -> ExecuteBlockInput:
    block = Block(id="call", workflow_id="wf", type="api_call", config={}, updated_at=datetime.now(UTC))
    run = RunContext(run_id="run_1", project_id="proj_1", workflow_id="wf", version_id="ver_1")
    return ExecuteBlockInput(run=run, block=block, step_id="call", storage_retry_budget_seconds=budget)


async def test_the_outcome_record_is_retried_for_the_storage_budget_then_fails_for_good() -> None:
    store = ObjectStore(Settings(s3_endpoint=f"http://127.0.0.1:{free_port()}", s3_connect_timeout_seconds=1))
    caller = ApiCaller(Egress(parse_allowlist(""), 1024), store, {})
    started = time.monotonic()
    with pytest.raises(BlockError) as raised:
        await caller._record(_input(budget=3.0), "projects/proj_1/runs/run_1/calls/call.json", {"output": 1})
    elapsed = time.monotonic() - started
    assert raised.value.code == "api_call_unrecorded"
    # Waits of 0.5 s and 1 s at least (the next, 2 s, would pass the 3 s budget): retried, not given up at once.
    assert 1.4 <= elapsed < 8.0, elapsed
