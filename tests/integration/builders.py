"""Building workflows through the official SDK, and waiting for runs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from retab import Retab
from retab.types.workflows import WorkflowRun

EXAMPLES = Path(__file__).resolve().parents[2] / "docflow" / "examples"
TERMINAL = {"completed", "error", "cancelled"}
INVOICE_FIELDS: dict[str, Any] = {"invoice_number": {"type": "string"}, "total": {"type": "number"}}
INVOICE_SCHEMA = {"type": "object", "properties": INVOICE_FIELDS}


def build(
    client: Retab, project_id: str, blocks: list[dict[str, Any]], edges: list[dict[str, Any]]
) -> tuple[str, dict[str, str]]:
    """Create a workflow with these blocks (ids made unique) and edges; returns (workflow id, id map)."""
    suffix = uuid.uuid4().hex[:6]
    wf = client.workflows.create(project_id=project_id, name=f"test {suffix}")
    ids = {b["id"]: f"{b['id']}-{suffix}" for b in blocks}
    for b in blocks:
        client.workflows.blocks.create(
            workflow_id=wf.id,
            id=ids[b["id"]],
            type=b["type"],
            label=b.get("label", b["id"]),
            config=b.get("config", {}),
            parent_id=ids[b["parent_id"]] if b.get("parent_id") else None,
        )
    for e in edges:
        client.workflows.edges.create(
            workflow_id=wf.id,
            source_block=ids[e["source_block"]],
            target_block=ids[e["target_block"]],
            source_handle=e.get("source_handle"),
            target_handle=e.get("target_handle"),
        )
    return wf.id, ids


def build_invoice(client: Retab, project_id: str) -> tuple[str, dict[str, str]]:
    """The bundled invoice example, published."""
    spec = json.loads((EXAMPLES / "invoice_workflow.json").read_text())
    wf_id, ids = build(client, project_id, spec["blocks"], spec["edges"])
    client.workflows.publish(wf_id)
    return wf_id, ids


def wait_for(client: Retab, run_id: str, statuses: set[str] = TERMINAL, timeout: float = 60) -> WorkflowRun:
    """Poll a run until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    run = client.workflows.runs.get(run_id)
    while run.lifecycle.status not in statuses:
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.lifecycle.status} after {timeout}s")
        time.sleep(0.1)
        run = client.workflows.runs.get(run_id)
    return run


def chain(blocks: list[tuple[str, str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Blocks connected one after the other through their JSON handles."""
    specs = [{"id": i, "type": t, "config": c} for i, t, c in blocks]
    edges = [
        {"source_block": a[0], "target_block": b[0], "source_handle": "output-json-0", "target_handle": "input-json-0"}
        for a, b in zip(blocks, blocks[1:], strict=False)
    ]
    return specs, edges


def json_edge(source: str, target: str, handle: str = "input-json-0") -> dict[str, Any]:
    """An edge from `source`'s first JSON output into `target`'s `handle`."""
    return {"source_block": source, "target_block": target, "source_handle": "output-json-0", "target_handle": handle}


def extract_chain(
    client: Retab, project_id: str, tag: str, readers: dict[str, str] | None = None
) -> tuple[str, dict[str, str], str]:
    """start_json `in` → extract `ex` (INVOICE_SCHEMA, from its `text` input) → function `double` (the total × 2) and
    a function per `readers` entry (id: expression), run once on the draft on an invoice text numbered `tag`;
    returns (workflow id, id map, run id)."""
    extract = {"json_schema": INVOICE_SCHEMA, "inputs": [{"name": "text", "type": "json"}]}
    functions = {"double": "input['total'] * 2", **(readers or {})}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "ex", "type": "extract", "config": extract},
        *[{"id": name, "type": "function", "config": {"expression": e}} for name, e in functions.items()],
    ]
    edges = [json_edge("in", "ex", "input-json-text"), *[json_edge("ex", name) for name in functions]]
    wf_id, ids = build(client, project_id, blocks, edges)
    text = f"Invoice number: {tag}\nVendor: ACME\nTotal: 12"
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"text": text}}, version="draft")
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    return wf_id, ids, run.id
