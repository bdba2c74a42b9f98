"""Votes of a consensus: the first failed call cancels the others, so no model call outlives its step."""

from __future__ import annotations

import asyncio

import pytest

from activities.provider import ProviderError, gather_all
from docflow.blocks import parse_config


async def test_the_first_failure_cancels_the_other_calls_and_is_raised() -> None:
    cancelled: list[int] = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def fails() -> int:
        await asyncio.sleep(0.01)
        raise ProviderError("refused")

    with pytest.raises(ProviderError, match="refused"):
        await asyncio.wait_for(gather_all([slow(0), fails(), slow(2)]), 2)
    assert sorted(cancelled) == [0, 2]


async def test_all_results_come_back_in_order() -> None:
    async def value(i: int) -> int:
        await asyncio.sleep(0.01 * (3 - i))
        return i

    assert await gather_all([value(i) for i in range(3)]) == [0, 1, 2]


def test_an_api_call_output_schema_that_is_not_a_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="output_schema"):
        parse_config("api_call", {"url": "https://api.example.com/x", "output_schema": {"type": "strin"}})
