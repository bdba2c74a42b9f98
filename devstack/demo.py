"""The demo: create the bundled invoice workflow, publish it, run it over the sample PDF, show progress.

Exits 0 only if the run completed with the expected fields.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

import docflow

# The bundled example lives with the shared package (the tests build it too).
EXAMPLES = Path(docflow.__file__).parent / "examples"
EXPECTED = {
    "invoice_number": "INV-2026-0042",
    "total_amount": 1440.0,
    "needs_approval": True,
    "customer_id": "cust_123",
}
TERMINAL = {"completed", "error", "cancelled"}


class DemoError(RuntimeError):
    """The demo could not finish as expected."""


def _check(response: httpx.Response) -> Any:
    if response.is_error:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text}"
        )
    return response.json() if response.content else None


def create_workflow(api: httpx.Client, project_id: str, suffix: str) -> tuple[str, dict[str, str]]:
    """Create the example workflow with its blocks and edges; returns (workflow id, example id → block id)."""
    spec = json.loads((EXAMPLES / "invoice_workflow.json").read_text())
    wf = _check(
        api.post(
            "/v1/workflows", json={"name": spec["name"], "description": spec["description"], "project_id": project_id}
        )
    )
    ids = {b["id"]: f"{b['id']}-{suffix}" for b in spec["blocks"]}
    for block in spec["blocks"]:
        _check(api.post("/v1/workflows/blocks", json={**block, "id": ids[block["id"]], "workflow_id": wf["id"]}))
    for edge in spec["edges"]:
        body = {
            **edge,
            "workflow_id": wf["id"],
            "source_block": ids[edge["source_block"]],
            "target_block": ids[edge["target_block"]],
        }
        _check(api.post("/v1/workflows/edges", json=body))
    return wf["id"], ids


def run_demo(api_url: str, api_key: str, project_id: str, temporal_ui_url: str) -> int:
    """Run the demo against a running stack; returns the exit status."""
    with httpx.Client(base_url=api_url, headers={"Api-Key": api_key}, timeout=60) as api:
        suffix = hex(int(time.time() * 1000))[-6:]
        workflow_id, ids = create_workflow(api, project_id, suffix)
        published = _check(api.post(f"/v1/workflows/{workflow_id}/publish", json={"description": "demo"}))
        print(f"workflow {workflow_id} published as {published['published']['version_id']}")
        pdf = (EXAMPLES / "invoice.pdf").read_bytes()
        body = {
            "workflow_id": workflow_id,
            "documents": {
                ids["invoice"]: {
                    "filename": "invoice.pdf",
                    "url": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
                }
            },
            "json_inputs": {ids["customer"]: {"customer_id": "cust_123", "priority": "high"}},
        }
        run = _check(api.post("/v1/workflows/runs", json=body))
        print(f"run {run['id']} started ({run['lifecycle']['status']})")
        run = _follow(api, run["id"])
        print(f"Temporal UI: {temporal_ui_url}/namespaces/default/workflows/{run['id']}")
        if run["lifecycle"]["status"] != "completed":
            print(f"run ended {run['lifecycle']['status']}: {run['lifecycle'].get('message')}")
            return 1
        merged = _check(api.get(f"/v1/workflows/steps/{ids['merge']}", params={"run_id": run["id"]}))
        data = merged["handle_outputs"]["output-json-0"]["data"]
        print("extracted data:")
        print(json.dumps(data, indent=2))
        wrong = {k: (data.get(k), v) for k, v in EXPECTED.items() if data.get(k) != v}
        if wrong:
            print(f"unexpected fields (got, expected): {wrong}")
            return 1
        print(f"completed in {run['timing']['duration_ms']} ms with the expected fields")
        return 0


def _follow(api: httpx.Client, run_id: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the run and print each step's status as it changes."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _check(api.get(f"/v1/workflows/runs/{run_id}"))
        steps = _check(api.get(f"/v1/workflows/runs/{run_id}/steps"))
        for step in steps:
            status = step["lifecycle"]["status"]
            if seen.get(step["step_id"]) != status:
                seen[step["step_id"]] = status
                reason = step["lifecycle"].get("reason") or step["lifecycle"].get("message") or ""
                print(f"  {step['block_label'] or step['block_id']:<24} {status:<10} {reason}")
        if run["lifecycle"]["status"] in TERMINAL:
            return dict(run)
        time.sleep(0.25)
    raise DemoError(f"run {run_id} did not finish within {timeout}s")
