"""The baseline: a bare Temporal workflow running N no-op activities in sequence."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop(i: int) -> int:
    """Does nothing."""
    return i


@workflow.defn(name="BenchChain")
class ChainWorkflow:
    """N no-op activities, one after the other."""

    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(noop, i, start_to_close_timeout=timedelta(seconds=10))
        return total


@workflow.defn(name="BenchLocalChain")
class LocalChainWorkflow:
    """N no-op local activities, one after the other (what docflow uses for cheap pure blocks)."""

    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_local_activity(noop, i, start_to_close_timeout=timedelta(seconds=10))
        return total
