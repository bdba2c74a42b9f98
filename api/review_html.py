"""The review pages' HTML: the queue, one review, an error. Pure: views in, strings out; everything escaped.

No inline script or style (the pages are served with a Content-Security-Policy of `'self'` only): behaviour is
`review_static/review.js`, looks are `review_static/review.css`, both our own files.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from api.review_form import form_and_low_fields, form_schema
from api.review_pages import QueueRow, ReviewView, waited
from docflow.review_links import Claims

ASSETS = "/review/assets"


def _e(value: Any) -> str:
    return html.escape(str(value))


def layout(title: str, body: str) -> str:
    """A whole page around `body`."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · docflow review</title>"
        f'<link rel="stylesheet" href="{ASSETS}/review.css"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header class="top"><span class="brand">docflow review</span><h1>{_e(title)}</h1></header>'
        f'<main id="main" tabindex="-1">{body}</main>'
        f'<script src="{ASSETS}/review.js" defer></script></body></html>'
    )


def error_page(status: int, message: str) -> str:
    """A refused or failed page, with what the reader can do."""
    heading = {403: "This link does not open this page", 404: "Not found", 503: "Not available"}.get(status, "Error")
    return layout(heading, f'<p class="error" role="alert">{_e(message)}</p>')


def _time(at: datetime) -> str:
    return f'<time datetime="{_e(at.isoformat())}">{_e(at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))}</time>'


def _likelihood(lowest: tuple[str, float] | None, threshold: float) -> str:
    if lowest is None:
        return '<span class="muted">no consensus</span>'
    path, value = lowest
    where = f" ({_e(path)})" if path else ""
    mark = ' class="low"' if value < threshold else ""
    return f"<span{mark}>{value:.2f}{where}</span>"


def queue_page(rows: list[QueueRow], project_id: str, next_after: str | None, threshold: float) -> str:
    """The project's waiting reviews, oldest first."""
    now = datetime.now(UTC)
    if not rows:
        body = '<p class="empty">No review is waiting.</p>'
    else:
        lines = []
        for row in rows:
            r = row.record
            lines.append(
                "<tr>"
                f'<td><a href="r/{_e(r.id)}/">{_time(r.created_at)}</a><br>'
                f'<span class="muted">waiting {_e(waited(r.created_at, now))}</span></td>'
                f"<td>{_e(row.workflow_name)}</td>"
                f'<td>{_e(r.block_label or r.block_id)} <span class="muted">({_e(r.block_type)})</span></td>'
                f"<td><code>{_e(r.run_id)}</code></td>"
                f"<td>{_likelihood(row.lowest, threshold)}</td>"
                "</tr>"
            )
        body = (
            '<table class="queue"><caption>Open reviews, oldest first</caption><thead><tr>'
            '<th scope="col">Waiting since</th><th scope="col">Workflow</th><th scope="col">Block</th>'
            '<th scope="col">Run</th><th scope="col">Lowest likelihood</th></tr></thead>'
            f"<tbody>{''.join(lines)}</tbody></table>"
        )
        if next_after:
            body += f'<p><a href="?after={_e(next_after)}">Next page</a></p>'
    return layout(f"Review queue of {project_id}", body)


def review_page(view: ReviewView, claims: Claims, threshold: float) -> str:
    """One review: the document's pages beside the form of the shown version, decisions, versions, run context."""
    r = view.record
    schema = form_schema(r.block_type, r.output_schema, r.categories, r.subdocuments)
    form, low = form_and_low_fields(schema, view.shown.snapshot, view.likelihoods, threshold)
    back = '<p><a href="../../">← Back to the queue</a></p>' if claims.review_id is None else ""
    body = (
        f'<div class="review">{_document(view)}'
        f'<section class="data" aria-labelledby="data-h">{back}{_decision(view)}'
        f'<h2 id="data-h">Data <span class="muted">version <code>{_e(view.shown.id)}</code> by '
        f"{_e(view.shown.author.display_name)}</span></h2>"
        f"{_low_summary(low, threshold)}"
        f'<form id="review-form" data-review="{_e(r.id)}" data-version="{_e(view.shown.id)}" '
        f'data-open="{"1" if r.status == "pending" else "0"}" novalidate>{form}</form>'
        f"{_actions(view)}{_versions(view)}{_context(view)}</section></div>"
    )
    return layout(f"Review: {r.block_label or r.block_id}", body)


def _document(view: ReviewView) -> str:
    doc = view.document
    if doc is None:
        inner = '<p class="muted">This step read no document.</p>'
    elif view.preview_error:
        inner = f'<p class="muted">{_e(doc.filename)}: {_e(view.preview_error)}</p>'
    else:
        name = _e(doc.filename or doc.id)
        images = "".join(
            f'<figure><img src="pages/{n}.png" alt="Page {n} of {name}" loading="lazy">'
            f"<figcaption>Page {n}</figcaption></figure>"
            for n in range(1, view.pages + 1)
        )
        inner = f"<p>{name} · {view.pages} page{'s' if view.pages != 1 else ''} shown</p>{images}"
    return f'<section class="doc" aria-labelledby="doc-h" tabindex="0"><h2 id="doc-h">Document</h2>{inner}</section>'


def _low_summary(low: list[str], threshold: float) -> str:
    if not low:
        return ""
    fields = ", ".join(f"<code>{_e(p)}</code>" for p in low[:20])
    return f'<p class="low-summary">{len(low)} field(s) under likelihood {threshold:.2f}: {fields}</p>'


def _decision(view: ReviewView) -> str:
    r = view.record
    if r.decision is not None:
        d = r.decision
        reason = f": {_e(d.reason)}" if d.reason else ""
        return (
            f'<p class="decided {d.verdict}" role="status">{_e(d.verdict.capitalize())} by '
            f"{_e(d.author.display_name)} at {_time(d.created_at)} (version <code>{_e(d.version_id)}</code>)"
            f"{reason}</p>"
        )
    if r.status == "cancelled":
        return f'<p class="decided" role="status">Closed: {_e(r.closed_reason or "cancelled")}</p>'
    return ""


def _actions(view: ReviewView) -> str:
    if view.record.status != "pending":
        return '<p id="status" role="status" aria-live="polite"></p>'
    return (
        '<div class="actions">'
        '<p id="status" role="status" aria-live="polite"></p>'
        '<label for="reviewer">Your name (shown on what you save)</label><input id="reviewer" autocomplete="name">'
        '<label for="note">Note on this version (optional)</label><input id="note">'
        '<div class="buttons"><button type="button" id="save">Save version</button>'
        '<button type="button" id="approve" class="primary">Approve</button></div>'
        '<p class="muted">Approve saves your edits as a new version first, then approves it.</p>'
        '<fieldset class="reject"><legend>Reject</legend>'
        '<label for="reason">Reason (required)</label><textarea id="reason" rows="2" required></textarea>'
        '<button type="button" id="reject" class="danger">Reject</button></fieldset></div>'
    )


def _versions(view: ReviewView) -> str:
    decided = view.record.decision.version_id if view.record.decision else None
    items = []
    for v in reversed(view.versions):
        marks = []
        if v.id == view.shown.id:
            marks.append("shown")
        if v.id == decided:
            marks.append(view.record.decision.verdict if view.record.decision else "")
        mark = f" <strong>({', '.join(marks)})</strong>" if marks else ""
        note = f" — {_e(v.note)}" if v.note else ""
        items.append(
            f'<li><a href="?version={_e(v.id)}"><code>{_e(v.id)}</code></a> by {_e(v.author.display_name)} '
            f"({_e(v.author.kind)}) at {_time(v.created_at)}{mark}{note}</li>"
        )
    return f'<h2>Versions</h2><ol class="versions" reversed>{"".join(items)}</ol>'


def _context(view: ReviewView) -> str:
    r, run = view.record, view.run
    rows = [
        ("Workflow", f"{_e(view.workflow_name)} <code>{_e(r.workflow_id)}</code>"),
        ("Version", f"<code>{_e(r.workflow_version_id)}</code>"),
        ("Run", f"<code>{_e(r.run_id)}</code>" + (f" · {_e(run.lifecycle.status)}" if run else "")),
        ("Block", f"{_e(r.block_label or r.block_id)} ({_e(r.block_type)}), step <code>{_e(r.step_id)}</code>"),
        ("Opened", _time(r.created_at)),
        ("Why", _e(view.trigger_reason or r.triggered_by.get("kind", ""))),
    ]
    if r.deadline_at is not None:
        rows.append(("Deadline", _time(r.deadline_at)))
    if run is not None and run.timing.created_at is not None:
        rows.append(("Run started", _time(run.timing.created_at)))
    facts = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    steps = "".join(f"<li>{_e(label)}: {_e(status)}</li>" for label, status in view.steps)
    return (
        f'<h2>Run context</h2><dl class="facts">{facts}</dl>'
        f'<h3>Steps</h3><ul class="steps">{steps}</ul>'
        f"<details><summary>Run inputs (JSON)</summary><pre>{_e(view.run_inputs)}</pre></details>"
    )
