"""Human waiting time of a run (NOTES.md §2 timing): pure bookkeeping over the set of open review gates.

Rule: the run is waiting while at least one gate is open. `human_waiting_started_at` is set when the first gate
opens and cleared when the last one closes; each such interval is added to `accumulated_human_waiting_ms`
when it ends. Overlapping gates therefore count once, gates one after another count each, and a read during
a wait shows the open interval (its start) beside the intervals already closed. Times are the workflow's clock
(`workflow.now()`), given by the caller, so replay computes the same numbers.
"""

from __future__ import annotations

from datetime import datetime

from docflow.runs import RunTiming


def open_gate(timing: RunTiming, open_gates: set[str], gate: str, now: datetime) -> None:
    """A gate opens: the waiting interval starts if no other gate was open."""
    if not open_gates:
        timing.human_waiting_started_at = now
    open_gates.add(gate)


def close_gate(timing: RunTiming, open_gates: set[str], gate: str, now: datetime) -> None:
    """A gate closes: when it was the last open one, the interval ends and is added to the total."""
    if gate not in open_gates:
        return
    open_gates.discard(gate)
    if open_gates or timing.human_waiting_started_at is None:
        return
    waited = now - timing.human_waiting_started_at
    timing.accumulated_human_waiting_ms += max(0, round(waited.total_seconds() * 1000))
    timing.human_waiting_started_at = None
