"""workflows.loops.iterate folds finished iterations right when several end in one workflow activation.

The iterations are stand-ins (no Temporal: `workflow.wait` is asyncio's wait made deterministic), released
by the test in the order it chooses, so the case CI met by chance is pinned: the failing iteration and a
later one that succeeded end together; the later one keeps its result and the failure names the iteration.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from docflow.loops import LoopItems
from docflow.models import Block
from docflow.runs import HandleValue
from workflows import loops
from workflows.iterations import Iteration
from workflows.walker import Failure

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _block(on_error: str) -> Block:
    config = {"on_iteration_error": on_error, "max_concurrency": 10}
    return Block(id="loop", workflow_id="wf_1", type="for_each", config=config, updated_at=T0)


def _items(n: int) -> loops.Items:
    return loops.Items(LoopItems(count=n, items=[HandleValue(type="json", data=i) for i in range(n)]))


def _stand_in(gates: dict[int, asyncio.Event], fails: set[int]) -> Any:
    async def run_iteration(level: Any, block: Block, index: int, *args: Any, **kwargs: Any) -> Iteration:
        await gates[index].wait()
        if index in fails:
            return Iteration(level, None, Failure(f"loop_iter_{index}_fn", "boom", {"block_id": "fn"}))
        return Iteration(level, HandleValue(type="json", data=index * 10), None)

    return run_iteration


async def _iterate(
    monkeypatch: pytest.MonkeyPatch, on_error: str, fails: set[int], release: list[list[int]]
) -> loops.Iterated:
    gates = {i: asyncio.Event() for i in range(3)}
    monkeypatch.setattr(loops, "run_iteration", _stand_in(gates, fails))
    task = asyncio.create_task(loops.iterate(None, _block(on_error), range(3), _items(3)))  # type: ignore[arg-type]
    for group in release:
        for index in group:
            gates[index].set()
        for _ in range(5):  # let the released iterations end and `iterate` wake once for all of them
            await asyncio.sleep(0)
    return await asyncio.wait_for(task, timeout=5)


def test_a_failure_and_a_later_success_ending_together(monkeypatch: pytest.MonkeyPatch) -> None:
    done = asyncio.run(_iterate(monkeypatch, "fail", {1}, [[0], [1, 2]]))
    assert done.failure is not None
    assert done.failure.step_id == "loop_iter_1_fn"
    assert done.failure.message == "iteration 1 failed: boom"
    assert done.failed == [1]
    assert done.results[2] is not None and done.results[2].data == 20


def test_all_ending_together_in_mode_continue(monkeypatch: pytest.MonkeyPatch) -> None:
    done = asyncio.run(_iterate(monkeypatch, "continue", {0, 1}, [[0, 1, 2]]))
    assert done.failure is None
    assert done.failed == [0, 1]
    assert done.results[2] is not None and done.results[2].data == 20
    assert done.results[0] is None and done.results[1] is None
