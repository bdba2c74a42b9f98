"""Public shapes of runs and steps, built from the workflow's state and the records in S3."""

from __future__ import annotations

from typing import Any

from docflow.runs import RunState, StepRecord, StepState


def public_run(state: RunState, json_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run as the SDK's `WorkflowRun`, plus the get-run page's nested `workflow` and timing extras."""
    return {
        "id": state.run_id,
        "workflow_id": state.workflow_id,
        "workflow_version_id": state.version_id,
        "project_id": state.project_id,
        "workflow": {
            "workflow_id": state.workflow_id,
            "version_id": state.version_id,
            "name_at_run_time": state.workflow_name,
            "requested_version": state.requested_version,
        },
        "trigger": {"type": state.trigger},
        "lifecycle": state.lifecycle.model_dump(mode="json"),
        "timing": state.timing.model_dump(mode="json"),
        "inputs": {
            "documents": {k: v.model_dump(mode="json") for k, v in state.inputs.documents.items()},
            "json_data": json_data if json_data is not None else state.inputs.json_data,
        },
        # Beyond the SDK's shape: review-decision signals the run recorded and ignored (workflows.gates).
        "ignored_signals": [s.model_dump(mode="json") for s in state.ignored_signals],
    }


def public_step(run_id: str, step: StepState, record: StepRecord | None) -> dict[str, Any]:
    """A step as the SDK's `WorkflowRunStep`, with `routing_decisions` as an extra."""
    return {
        "run_id": run_id,
        "block_id": step.block_id,
        "step_id": step.step_id,
        "block_type": step.block_type,
        "block_label": step.block_label,
        "lifecycle": step.lifecycle.model_dump(mode="json"),
        "created_at": _iso(step.created_at),
        "started_at": _iso(step.started_at),
        "completed_at": _iso(step.completed_at),
        "model": step.model,
        "loop_containers": [c.model_dump(mode="json") for c in step.loop_containers],
        "handle_inputs": {k: v.public() for k, v in (record.handle_inputs if record else {}).items()},
        "handle_outputs": {k: v.public() for k, v in (record.handle_outputs if record else {}).items()},
        # A failed step's artifact (what it sent, printed, answered) is on its record only: the workflow learns
        # of artifacts from completed blocks.
        "artifact": artifact.model_dump(mode="json")
        if (artifact := step.artifact or (record and record.artifact))
        else None,
        "routing_decisions": step.routing_decisions,
        # Beyond the SDK's shape, on a loop container's step (docs/loops.md).
        "iterations": step.iterations,
        "failed_iterations": step.failed_iterations,
        "retry_count": record.retry_count if record else step.retry_count,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def page(items: list[dict[str, Any]], key: str, limit: int, has_more: bool) -> dict[str, Any]:
    """The list envelope: `{data, list_metadata: {before, after}}`; `after` is set only when more follow."""
    return {
        "data": items,
        "list_metadata": {
            "before": items[0][key] if items else None,
            "after": items[-1][key] if items and has_more else None,
        },
    }
