"""The steps of a run including those of loop iterations that ran in batches (child workflows).

A run's state holds its top-level steps and the steps of loops small enough to run in the run itself; a
for_each run in batches keeps only references to each batch's record (`StepState.step_pages`), known once the
loop ends. While it runs, the batches finished so far are found by listing its records (`keys.loop_batches_prefix`),
so a large loop's steps show up batch by batch. Each batch's steps come after its container's step; batches
are read concurrently, nested batches likewise.
"""

from __future__ import annotations

import asyncio

from docflow import keys
from docflow.loops import LoopBatchRecord
from docflow.runs import RunState, StepState
from storage.objects import NotFound, ObjectStore


async def with_loop_steps(store: ObjectStore, state: RunState) -> list[StepState]:
    """The run's steps with, after each container's step, the steps of its batches (in item order)."""
    return await _expand(store, state.project_id, state.run_id, state.steps)


async def _expand(store: ObjectStore, project: str, run_id: str, steps: list[StepState]) -> list[StepState]:
    running = [
        s for s in steps if s.block_type == "for_each" and s.step_pages is None and s.lifecycle.status == "running"
    ]
    if not running and not any(s.step_pages for s in steps):
        return steps
    listed = await asyncio.gather(
        *(store.list_keys(keys.loop_batches_prefix(project, run_id, s.step_id)) for s in running)
    )
    pages_of = {s.step_id: s.step_pages or [] for s in steps}
    pages_of.update({s.step_id: found for s, found in zip(running, listed, strict=True)})
    refs = [ref for pages in pages_of.values() for ref in pages]
    read = dict(zip(refs, await asyncio.gather(*(_page(store, ref) for ref in refs)), strict=True))
    out: list[StepState] = []
    for step in steps:
        out.append(step)
        for ref in pages_of[step.step_id]:
            out += await _expand(store, project, run_id, read[ref])
    return out


async def _page(store: ObjectStore, ref: str) -> list[StepState]:
    try:
        return (await store.get_model(ref, LoopBatchRecord)).steps
    except NotFound:
        return []  # a batch that had not stored its record when the run was deleted or stopped
