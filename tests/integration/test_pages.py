"""Pages in a real browser: our API docs (served without a CDN) and the Temporal UI's page of a run."""

from __future__ import annotations

import os
from pathlib import Path

from retab import Retab

from tests.browser import render
from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: DOCFLOW_SCREENSHOTS to keep them, else the test's temporary directory."""
    kept = os.environ.get("DOCFLOW_SCREENSHOTS")
    return Path(kept) if kept else tmp_path


def test_api_docs_render_offline(stack: Stack, tmp_path: Path) -> None:
    shot = _shots(tmp_path) / "api-docs.png"
    dom = render(f"{stack.api_url}/docs", screenshot=shot)
    assert "/v1/workflows/runs" in dom  # Swagger UI fetched the schema and rendered the operations
    assert "cdn.jsdelivr.net" not in dom
    assert shot.stat().st_size > 10_000


def test_temporal_ui_shows_the_run_and_its_blocks(client: Retab, stack: Stack, tmp_path: Path) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("double", "function", {"expression": "input['n'] * 2"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 2}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    ui = f"http://127.0.0.1:{stack.settings.temporal_ui_port}/namespaces/default/workflows/{run.id}"
    dom = render(ui, screenshot=_shots(tmp_path) / "temporal-ui-run.png")
    assert run.id in dom
    assert "RunWorkflow" in dom
    assert "Completed" in dom or "completed" in dom
