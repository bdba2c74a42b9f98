"""The steps of a run including those of loop iterations that ran in batches (child workflows).

A run's state holds its top-level steps and the steps of loops small enough to run in the run itself; a
for_each run in batches keeps only references to each batch's record (`StepState.step_pages`). Reads put
each batch's steps after its container's step, batches read concurrently, nested batches likewise.
"""

from __future__ import annotations

import asyncio

from docflow.loops import LoopBatchRecord
from docflow.runs import StepState
from storage.objects import NotFound, ObjectStore


async def with_loop_steps(store: ObjectStore, steps: list[StepState]) -> list[StepState]:
    """`steps` with, after each container's step, the steps of its batches (in item order)."""
    if not any(s.step_pages for s in steps):
        return steps
    pages = [ref for s in steps for ref in s.step_pages or []]
    read = await asyncio.gather(*(_page(store, ref) for ref in pages))
    by_ref = dict(zip(pages, read, strict=True))
    out: list[StepState] = []
    for step in steps:
        out.append(step)
        for ref in step.step_pages or []:
            out += await with_loop_steps(store, by_ref[ref])
    return out


async def _page(store: ObjectStore, ref: str) -> list[StepState]:
    try:
        return (await store.get_model(ref, LoopBatchRecord)).steps
    except NotFound:
        return []  # a batch that had not stored its record when the run was deleted or stopped
