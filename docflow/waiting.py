"""Human waiting time of a run (NOTES.md §2 timing): pure bookkeeping over the set of open review gates.

Rule: the run is waiting while at least one gate is open. `human_waiting_started_at` is set when the first gate
opens and cleared when the last one closes; each such interval is added to `accumulated_human_waiting_ms`
when it ends. Overlapping gates therefore count once, gates one after another count each, and a read during
a wait shows the open interval (its start) beside the intervals already closed. Times are the workflow's clock
(`workflow.now()`), given by the caller, so replay computes the same numbers.

A gate may close at a time earlier than one already seen in the same interval (a deadline's decision is dated
at the deadline, handled after another gate's later decision): an interval never ends before the latest close
seen in it, so the other gate's wait is not cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from docflow.runs import RunTiming


@dataclass
class OpenGates:
    """The gates counted as waiting, and the latest close seen in the current interval."""

    ids: set[str] = field(default_factory=set)
    latest_close: datetime | None = None


def open_gate(timing: RunTiming, gates: OpenGates, gate: str, now: datetime) -> None:
    """A gate opens: the waiting interval starts if no other gate was open."""
    if not gates.ids:
        timing.human_waiting_started_at = now
        gates.latest_close = None
    gates.ids.add(gate)


def close_gate(timing: RunTiming, gates: OpenGates, gate: str, at: datetime) -> None:
    """A gate closes: when it was the last open one, the interval ends and is added to the total."""
    if gate not in gates.ids:
        return
    gates.ids.discard(gate)
    end = at if gates.latest_close is None else max(at, gates.latest_close)
    gates.latest_close = end
    if gates.ids or timing.human_waiting_started_at is None:
        return
    waited = end - timing.human_waiting_started_at
    timing.accumulated_human_waiting_ms += max(0, round(waited.total_seconds() * 1000))
    timing.human_waiting_started_at = None
