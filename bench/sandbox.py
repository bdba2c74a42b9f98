"""A call of user Python in the sandbox against a cold sandbox and against an expression function (issue 10).

Measures, in one run on this machine, the wall time of one call of a trivial `transform` (returns its input's
total doubled):

- through the warm pool (a sandbox started ahead and waiting; the pool refills between calls, unmeasured),
- through a sandbox started for the call (bwrap, namespaces, interpreter start-up: the cost the pool hides),
- as an expression function doing the same (`total * 2`) in the isolated executor's process pool.

Prints medians and the ratios warm / expression (goal <= 3) and cold / warm. Both sides are measured at the
executor, without the activity round trip through Temporal that either block pays on top (milliseconds).

    .venv/bin/python -m bench.sandbox --calls 30
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.isolation import IsolatedExecutor  # noqa: E402
from activities.sandbox import SandboxOptions, SandboxPool  # noqa: E402

CODE = "def transform(input_data):\n    return input_data['total'] * 2\n"
DATA = {"total": 21}


async def _median_ms(calls: int, call: Callable[[], Awaitable[Any]], before: Callable[[], Awaitable[None]]) -> float:
    times = []
    for _ in range(calls):
        await before()
        began = time.perf_counter()
        assert await call() is not None
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


async def measure(calls: int) -> dict[str, float]:
    """Median milliseconds per call: warm sandbox, cold sandbox, expression."""
    async with (
        SandboxPool(SandboxOptions(size=2)) as pool,
        IsolatedExecutor(processes=2, memory_bytes=256 << 20, cpu_seconds=5) as isolated,
    ):

        async def refilled() -> None:
            await pool.wait_full()

        async def nothing() -> None:
            return None

        async def warm() -> Any:
            return (await pool.run(CODE, DATA, 5.0)).output

        async def cold() -> Any:
            return (await pool.cold_run(CODE, DATA, 5.0)).output

        async def expression() -> Any:
            return await isolated.run("function", {"config": {"expression": "total * 2"}, "data": DATA}, timeout=4)

        await refilled()
        return {
            "warm": await _median_ms(calls, warm, refilled),
            "cold": await _median_ms(calls, cold, refilled),
            "expression": await _median_ms(calls, expression, nothing),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls))
    warm, cold, expression = result["warm"], result["cold"], result["expression"]
    print(f"user Python, warm sandbox from the pool:   median {warm:7.1f} ms over {args.calls} calls")
    print(f"user Python, sandbox started for the call: median {cold:7.1f} ms")
    print(f"expression function, isolated executor:    median {expression:7.1f} ms")
    gap = warm - expression
    print(f"ratio warm / expression: {warm / expression:.1f}  (goal <= 3; the gap per call: {gap:.1f} ms)")
    print(f"ratio cold / warm:       {cold / warm:.1f}  (what the warm pool saves)")


if __name__ == "__main__":
    main()
