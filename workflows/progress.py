"""What the Temporal UI shows of a run while it runs: its status, block counts, and what waits for review."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from docflow.runs import RunState


def show_progress(state: RunState) -> None:
    """The run's status, block counts and what waits for review since when, as the Temporal UI's current details."""
    counts: dict[str, int] = {}
    for step in state.steps:
        counts[step.lifecycle.status] = counts.get(step.lifecycle.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    details = f"**{state.lifecycle.status}** · {len(state.steps)} blocks: {tally}"
    waiting = state.lifecycle.waiting_for_block_ids
    since = state.timing.human_waiting_started_at
    if waiting and since is not None:
        details += f"\n\nawaiting review: {', '.join(waiting)} since {since.isoformat(timespec='seconds')}"
    workflow.set_current_details(details)
