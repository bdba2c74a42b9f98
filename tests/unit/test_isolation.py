"""The isolated executor: real processes with CPU, memory and wall-clock limits, killed and replaced.

The event loop that calls it stays free while a task burns CPU or memory in its process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from activities.isolation import IsolatedExecutor, ResourceLimit, TaskError, TaskTimeout, WorkerLost

MiB = 1024 * 1024
BOMBS = {
    "cpu": "sum([[1]*5000 for c in 'x'*1500], [])",
    "format": "'%0200000000d' % 1",
    "join": "('x'*100000).join('y'*2000)",
}


@pytest.fixture
async def pool() -> AsyncIterator[IsolatedExecutor]:
    async with IsolatedExecutor(processes=2, memory_bytes=256 * MiB, cpu_seconds=10) as executor:
        yield executor


def _function(expression: str, data: Any = None) -> dict[str, Any]:
    return {"config": {"expression": expression}, "data": data if data is not None else {"total": 2}}


async def _max_loop_gap(until: asyncio.Future[Any]) -> float:
    """The longest the event loop went without running this ticker, while `until` was pending."""
    gap, last = 0.0, time.monotonic()
    while not until.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gap, last = max(gap, now - last), now
    return gap


async def test_a_task_runs_and_answers_json(pool: IsolatedExecutor) -> None:
    assert await pool.run("function", _function("total * 21"), timeout=4) == 42
    assert await pool.run("function", {"config": {"mapping": {"t": "total"}}, "data": {"total": 1}}, timeout=4) == {
        "t": 1
    }


async def test_the_users_error_is_a_task_error_naming_the_field(pool: IsolatedExecutor) -> None:
    before = set(pool.pids)
    with pytest.raises(TaskError) as raised:
        await pool.run("function", _function("total / 0"), timeout=4)
    assert raised.value.code == "expression_error"
    assert raised.value.details == {"field": "expression"}
    assert "ZeroDivisionError" in raised.value.message
    assert set(pool.pids) == before  # the process is sound: kept


@pytest.mark.parametrize("name", sorted(BOMBS))
async def test_a_bomb_ends_within_its_limit_and_the_loop_stays_free(pool: IsolatedExecutor, name: str) -> None:
    start = time.monotonic()
    task = asyncio.ensure_future(pool.run("function", _function(BOMBS[name]), timeout=2))
    gap = await _max_loop_gap(task)
    with pytest.raises((TaskTimeout, ResourceLimit)):
        await task
    assert time.monotonic() - start < 3.5
    assert gap < 0.5  # a bomb on the loop would stall it for the whole timeout
    # The pool has replaced whatever it killed, and still answers.
    assert await pool.run("function", _function("total + 1"), timeout=4) == 3


async def test_memory_over_the_limit_is_a_memory_resource_limit(pool: IsolatedExecutor) -> None:
    with pytest.raises(ResourceLimit) as raised:
        await pool.run("function", _function("'%0300000000d' % 1"), timeout=10)
    assert raised.value.resource == "memory"


async def test_cpu_time_over_the_limit_kills_the_process() -> None:
    async with IsolatedExecutor(processes=1, memory_bytes=512 * MiB, cpu_seconds=1) as executor:
        start = time.monotonic()
        with pytest.raises(ResourceLimit) as raised:
            await executor.run("function", _function(BOMBS["cpu"]), timeout=20)
        assert raised.value.resource == "cpu"
        assert time.monotonic() - start < 5
        assert await executor.run("function", _function("total"), timeout=4) == 2


async def test_a_timeout_kills_and_replaces_the_process(pool: IsolatedExecutor) -> None:
    before = set(pool.pids)
    with pytest.raises(TaskTimeout):
        await pool.run("function", _function(BOMBS["cpu"]), timeout=0.5)
    await asyncio.wait_for(pool.wait_ready(), 10)
    after = set(pool.pids)
    assert len(after) == 2 and after != before
    for pid in before - after:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_cancelled_call_kills_its_process(pool: IsolatedExecutor) -> None:
    task = asyncio.ensure_future(pool.run("function", _function(BOMBS["cpu"]), timeout=30))
    await asyncio.sleep(0.3)
    busy = set(pool.pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(pool.wait_ready(), 10)
    assert len(busy - set(pool.pids)) == 1
    assert await pool.run("function", _function("total"), timeout=4) == 2


async def test_a_process_killed_from_outside_is_worker_lost_and_replaced(pool: IsolatedExecutor) -> None:
    task = asyncio.ensure_future(pool.run("function", _function(BOMBS["cpu"]), timeout=30))
    await asyncio.sleep(0.3)
    for pid in pool.pids:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerLost):
        await task
    await asyncio.wait_for(pool.wait_ready(), 10)
    assert await pool.run("function", _function("total"), timeout=4) == 2


async def test_concurrent_tasks_share_the_pool(pool: IsolatedExecutor) -> None:
    results = await asyncio.gather(*(pool.run("function", _function(f"total + {i}"), timeout=10) for i in range(6)))
    assert results == [2 + i for i in range(6)]


async def test_conditions_and_schemas_run_there_too(pool: IsolatedExecutor) -> None:
    sub = {"path": "code", "operator": "matches_regex", "expected": r"^(a+)+$"}
    config = {"conditions": [{"id": "c", "sub_conditions": [sub]}]}
    result = await pool.run("conditions", {"config": config, "data": {"code": "a" * 40 + "!"}}, timeout=4)
    assert result["selected_handles"] == ["output-json-else"]
    schema = {"properties": {"n": {"type": "integer"}}}
    assert await pool.run("json_schema", {"schema": schema, "instance": {"n": 1}}, timeout=4) is None
    with pytest.raises(TaskError) as raised:
        await pool.run("json_schema", {"schema": schema, "instance": {"n": "x"}}, timeout=4)
    assert raised.value.code == "schema_mismatch" and raised.value.details == {"path": ["n"]}
