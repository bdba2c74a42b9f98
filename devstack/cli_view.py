"""What the CLI shows a person: tables of steps, runs and reviews, and the outputs of a run (pure rendering).

Rendering takes the API's JSON as it comes and never calls the API, so a live view redraws from a poll's
answers alone. Durations of unfinished steps count up to `now`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

TERMINAL = {"completed", "error", "cancelled"}
STATUS_STYLE = {
    "completed": "green",
    "error": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "awaiting_review": "magenta",
    "running": "cyan",
}


def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp from the API, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration(started: Any, ended: Any, now: datetime | None = None) -> str:
    """`1.2s` from two API timestamps; an unfinished interval counts to `now`; blank if it never started."""
    start = parse_time(started)
    if start is None:
        return ""
    end = parse_time(ended) or now or datetime.now(UTC)
    seconds = max(0.0, (end - start).total_seconds())
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def status_text(status: str) -> Text:
    """A status, coloured by what it means."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def lifecycle_note(lifecycle: dict[str, Any]) -> str:
    """The reason or message a lifecycle carries, if any."""
    return str(lifecycle.get("message") or lifecycle.get("reason") or "")


def steps_table(run: dict[str, Any], steps: list[dict[str, Any]], now: datetime | None = None) -> Table:
    """One row per block: block, type, status, duration (the live view and `runs show`)."""
    lifecycle = run.get("lifecycle", {})
    title = f"run {run.get('id')} · {lifecycle.get('status')}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("block", "type", "status", "duration", "note"):
        table.add_column(column, overflow="fold")
    for step in steps:
        step_life = step.get("lifecycle", {})
        label = step.get("block_label") or ""
        name = step.get("step_id") or step.get("block_id", "")
        block = f"{name} ({label})" if label and label != name else name
        table.add_row(
            block,
            step.get("block_type", ""),
            status_text(str(step_life.get("status", ""))),
            duration(step.get("started_at"), step.get("completed_at"), now),
            lifecycle_note(step_life)[:120],
        )
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """`runs list`: id, workflow, status, trigger, created, duration."""
    table = Table(title_justify="left")
    for column in ("run", "workflow", "status", "created", "duration"):
        table.add_column(column, overflow="fold")
    for run in runs:
        timing = run.get("timing", {})
        table.add_row(
            run.get("id", ""),
            run.get("workflow_id", ""),
            status_text(str(run.get("lifecycle", {}).get("status", ""))),
            str(timing.get("created_at", ""))[:19],
            duration(timing.get("started_at"), timing.get("completed_at")),
        )
    return table


def reviews_table(reviews: list[dict[str, Any]]) -> Table:
    """`reviews list`: id, workflow, run, block, waiting since, verdict."""
    table = Table(title_justify="left")
    for column in ("review", "workflow", "run", "block", "waiting since", "decision"):
        table.add_column(column, overflow="fold")
    for review in reviews:
        decision = review.get("decision") or {}
        table.add_row(
            review.get("id", ""),
            review.get("workflow_id", ""),
            review.get("run_id", ""),
            review.get("step_id") or review.get("block_id", ""),
            str(review.get("created_at", ""))[:19],
            status_text(str(decision.get("verdict", "pending"))),
        )
    return table


def handle_value(payload: dict[str, Any]) -> Any:
    """A handle's payload as a person reads it: the JSON data, or the document's name and id."""
    if payload.get("type") == "file" and isinstance(payload.get("document"), dict):
        document = payload["document"]
        return f"document {document.get('filename')} ({document.get('id')})"
    return payload.get("data")


def leaf_blocks(graph: dict[str, Any]) -> set[str]:
    """Blocks no edge leaves from (notes excepted): whose outputs are the run's results."""
    sources = {e.get("source_block") for e in graph.get("edges", [])}
    return {b["id"] for b in graph.get("blocks", []) if b["id"] not in sources and b.get("type") != "note"}


def outputs_of(steps: list[dict[str, Any]], leaves: set[str] | None) -> dict[str, dict[str, Any]]:
    """Step id → handle → value for completed steps of the leaf blocks (every completed step without a graph)."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        if step.get("lifecycle", {}).get("status") != "completed" or not step.get("handle_outputs"):
            continue
        if leaves is not None and step.get("block_id") not in leaves:
            continue
        found[step.get("step_id") or step["block_id"]] = {
            handle: handle_value(payload) for handle, payload in step["handle_outputs"].items()
        }
    return found


def outputs_text(outputs: dict[str, dict[str, Any]]) -> str:
    """The outputs, block by block, as indented JSON."""
    if not outputs:
        return "no outputs"
    parts = []
    for step_id, handles in outputs.items():
        for handle, value in handles.items():
            shown = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            parts.append(f"{step_id} · {handle}:\n{shown}")
    return "\n".join(parts)
