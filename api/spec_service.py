"""Declarative specs on the server: export a draft as YAML, validate, plan and apply a YAML spec.

The spec format and the plan are `docflow.spec` (pure); here they meet the stored draft.

- **Validate** reads the spec and checks the graph it makes as a draft edit would: every block's type and
  config (`validate_block`, function code included), ids, the block limit, and the graph (`validate_graph`:
  handles, file↔json, cycles…). Those are errors: any error is a 400 `invalid_spec` naming the first one's
  place in the spec (`spec.blocks.x.config.model`) with every issue in `details.issues`, as the SDK documents.
  What only stops publishing (a block wired partly) is a warning, in `diagnostics.warnings`.
- **Plan** compares the spec with the workflow's draft (`docflow.spec.plan`) and answers the changes in the
  SDK's `resource_changes` shape, with the draft's ETag: send it back as `If-Match` on apply and the apply
  lands only on the draft that was planned against.
- **Apply** writes the whole graph in one conditional write of the draft (`Drafts.replace`: one object, one
  If-Match), so a spec lands whole or not at all, and never over an edit it did not see: the draft's ETag
  read for the plan (or the client's `If-Match`) must still be current, else 409 `draft_changed`. The
  workflow's name and description are a second write, after the graph. `POST /spec/apply` creates a new
  workflow (the spec's `metadata.id` is context, not the target, as in the SDK); if its graph is refused
  (an id another workflow holds: 409), the new workflow is deleted again.

YAML is parsed, the spec checked and the plan made off the event loop (`asyncio.to_thread`), each in time linear
in the spec: a 4 MiB spec or an alias bomb (capped at `MAX_NODES` values) costs a worker thread, never the loop;
a 400 lists at most `MAX_ISSUES` issues.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from api.definitions import Definitions, WorkflowCreate, WorkflowUpdate
from api.drafts import Draft, safe_id, same_etag
from api.errors import ApiError, ConflictError
from api.function_code import check_function_code
from api.responses import (
    SpecApplyView,
    SpecExportView,
    SpecFieldChange,
    SpecPlanView,
    SpecResourceChange,
    SpecResourceDiff,
    SpecValidationView,
)
from docflow.graph import GraphIssue, publish_issues, validate_block, validate_graph
from docflow.ids import EDGE, new_id
from docflow.models import Graph, WorkflowRecord
from docflow.spec import Change, Spec, SpecError, block_path, parse_spec, plan, render, summary, to_graph
from docflow.spec_export import dump_yaml, export_document

SOURCE = "yaml_definition"
MAX_ISSUES = 100  # listed in a 400; 20,000 broken edges are counted, not all spelled out


class SpecService:
    """The spec endpoints over one project's workflows."""

    def __init__(self, definitions: Definitions, max_blocks: int) -> None:
        self.definitions = definitions
        self.drafts = definitions.drafts
        self.max_blocks = max_blocks

    async def export(self, project_id: str, workflow_id: str) -> tuple[SpecExportView, str]:
        """The draft as YAML (applying it plans no change), and the draft's ETag."""
        record, draft = await self._read(project_id, workflow_id)
        document = export_document(record.model_dump(mode="json"), draft.graph.model_dump(mode="json"))
        text = await asyncio.to_thread(dump_yaml, document)
        return SpecExportView(workflow_id=workflow_id, yaml_definition=text), draft.etag

    async def validate(self, project_id: str, text: str) -> SpecValidationView:
        """The spec's counts and warnings; a 400 naming the first error."""
        spec = await _parse(text)
        graph, _, warnings = await self._planned(project_id, spec, None, None)
        return SpecValidationView(
            workflow_id=spec.workflow_id or "",
            block_count=len(graph.blocks),
            edge_count=len(graph.edges),
            is_valid=True,
            diagnostics=_diagnostics(warnings),
        )

    async def plan(self, project_id: str, workflow_id: str | None, text: str) -> tuple[SpecPlanView, str | None]:
        """What applying the spec would change, and the ETag of the draft compared (None: a new workflow)."""
        spec = await _parse(text)
        record, draft = await self._read(project_id, workflow_id) if workflow_id else (None, None)
        graph, changes, warnings = await self._planned(project_id, spec, record, draft)
        view = SpecPlanView(**_plan_fields(spec, record, graph, changes, warnings))
        return view, draft.etag if draft else None

    async def apply(
        self, project_id: str, workflow_id: str | None, text: str, owner: str | None, if_match: str | None
    ) -> tuple[SpecApplyView, str]:
        """Apply the spec to the workflow's draft (or to a new workflow); the draft's ETag after it."""
        spec = await _parse(text)
        if workflow_id is None:
            return await self._create(project_id, spec, owner)
        record, draft = await self._read(project_id, workflow_id)
        if if_match is not None and not same_etag(if_match, draft.etag):
            raise _draft_changed(draft.etag)
        graph, changes, warnings = await self._planned(project_id, spec, record, draft)
        etag = draft.etag
        if any(c.target != "workflow" for c in changes):
            # Only on the draft read above (the client's If-Match, if any, named it): what lands is what was
            # planned; an edit in between is a 409, not overwritten.
            etag = (await self.drafts.replace(project_id, workflow_id, graph, draft.etag)).etag
        if any(c.target == "workflow" for c in changes):
            update = WorkflowUpdate(name=spec.name, description=spec.description)
            record = await self.definitions.update_workflow(project_id, workflow_id, update)
        fields = _plan_fields(spec, record, graph, changes, warnings)
        return SpecApplyView(**fields, created=False), etag

    async def _create(self, project_id: str, spec: Spec, owner: str | None) -> tuple[SpecApplyView, str]:
        graph, changes, warnings = await self._planned(project_id, spec, None, None)
        body = WorkflowCreate(name=spec.name, description=spec.description, project_id=owner)
        record = await self.definitions.create_workflow(project_id, body)
        try:
            empty = await self.drafts.read(project_id, record.id)
            graph = _owned(graph, record.id)
            etag = (await self.drafts.replace(project_id, record.id, graph, empty.etag)).etag
        except Exception:
            await self.definitions.delete_workflow(project_id, record.id)
            raise
        fields = _plan_fields(spec, None, graph, changes, warnings)
        return SpecApplyView(**{**fields, "workflow_id": record.id}, created=True), etag

    async def _read(self, project_id: str, workflow_id: str) -> tuple[WorkflowRecord, Draft]:
        record, draft = await asyncio.gather(
            self.definitions.get_workflow(project_id, workflow_id), self.drafts.read(project_id, workflow_id)
        )
        return record, draft

    async def _planned(
        self, project_id: str, spec: Spec, record: WorkflowRecord | None, draft: Draft | None
    ) -> tuple[Graph, list[Change], list[GraphIssue]]:
        """The graph the spec makes from the draft, the changes to get there, and the warnings; the checks and
        the planning, work that grows with the spec, run in worker threads, off the event loop."""
        await asyncio.to_thread(_check_blocks, spec, self.max_blocks)
        await _check_code(spec)
        return await asyncio.to_thread(_graph_and_plan, spec, project_id, record, draft.graph if draft else Graph())


def _check_blocks(spec: Spec, max_blocks: int) -> None:
    """400 on the first error of a block on its own (module docstring): id, type, config, count."""
    errors: list[GraphIssue] = []
    for block_id, wanted in spec.blocks.items():
        if not safe_id(block_id):
            message = f"block id '{block_id}' is not valid: use letters, digits, '_', '-' or '.' (at most 128)"
            errors.append(GraphIssue(code="invalid_id", message=message, block_id=block_id, field="id"))
        issues = validate_block(wanted["type"], wanted["config"])
        errors += [i.model_copy(update={"block_id": block_id}) for i in issues]
    if len(spec.blocks) > max_blocks:
        message = f"the spec has {len(spec.blocks)} blocks, the limit is {max_blocks}"
        errors.append(GraphIssue(code="too_many_blocks", message=message, field="spec.blocks"))
    if errors:
        raise _invalid(spec, errors)


async def _check_code(spec: Spec) -> None:
    """400 naming the first function block whose code does not compile (compiled in a thread, each)."""
    for block_id, wanted in spec.blocks.items():
        try:
            await check_function_code(block_id, wanted["type"], wanted["config"])
        except ApiError as exc:
            issue = GraphIssue(code=exc.code, message=exc.message, block_id=block_id, field="config.code")
            raise _invalid(spec, [issue]) from exc


def _graph_and_plan(
    spec: Spec, project_id: str, record: WorkflowRecord | None, current: Graph
) -> tuple[Graph, list[Change], list[GraphIssue]]:
    """The graph the spec makes from `current` (400 on its first error), the plan, and the warnings."""
    graph = to_graph(spec, record.id if record else "new", project_id, current, _now(), lambda: new_id(EDGE))
    warnings = _graph_warnings(spec, graph)
    changes = plan(spec, record.model_dump(mode="json") if record else None, current.model_dump(mode="json"))
    return graph, changes, warnings


def _graph_warnings(spec: Spec, graph: Graph) -> list[GraphIssue]:
    """400 on the first error of the graph (handles, file↔json, cycles…); what only stops publishing, else."""
    if errors := validate_graph(graph):
        raise _invalid(spec, errors, graph)
    return publish_issues(graph)


async def _parse(text: str) -> Spec:
    try:
        return await asyncio.to_thread(parse_spec, text, SOURCE)
    except SpecError as exc:
        raise ApiError(str(exc), code="invalid_spec", field=exc.field) from exc


def _now() -> datetime:
    return datetime.now(UTC)


def _owned(graph: Graph, workflow_id: str) -> Graph:
    """The graph with every block and edge naming the workflow it now belongs to."""
    return Graph(
        blocks=[b.model_copy(update={"workflow_id": workflow_id}) for b in graph.blocks],
        edges=[e.model_copy(update={"workflow_id": workflow_id}) for e in graph.edges],
    )


def _draft_changed(current: str) -> ConflictError:
    return ConflictError(
        "the draft changed since you read it (If-Match does not match its ETag); plan again and retry",
        code="draft_changed",
        current_etag=current,
    )


def _spec_field(spec: Spec, issue: GraphIssue, edge_index: dict[str, int]) -> str:
    """Where an issue is in the spec: its edge (`spec.edges[2]`), else its block's place and field."""
    if issue.edge_id is not None and issue.edge_id in edge_index:
        return f"spec.edges[{edge_index[issue.edge_id]}]"
    if issue.block_id is not None and issue.block_id in spec.blocks:
        where = block_path(spec, issue.block_id)
        return f"{where}.{issue.field}" if issue.field and issue.field != "id" else where
    return issue.field or "spec"


def _invalid(spec: Spec, issues: list[GraphIssue], graph: Graph | None = None) -> ApiError:
    """The 400 naming the first issue's place in the spec; the first `MAX_ISSUES` issues, each with its place,
    in `issues`, and how many there were in `issue_count`."""
    edge_index = {e.id: i for i, e in enumerate(graph.edges)} if graph else {}
    shown = issues[:MAX_ISSUES]
    found = [{**i.model_dump(exclude_none=True), "path": _spec_field(spec, i, edge_index)} for i in shown]
    first = found[0]["path"]
    return ApiError(issues[0].message, code="invalid_spec", field=first, issues=found, issue_count=len(issues))


def _diagnostics(warnings: list[GraphIssue]) -> dict[str, Any]:
    return {"errors": [], "warnings": [w.model_dump(exclude_none=True) for w in warnings]}


def _plan_fields(
    spec: Spec, record: WorkflowRecord | None, graph: Graph, changes: list[Change], warnings: list[GraphIssue]
) -> dict[str, Any]:
    """The fields a plan and an apply answer alike."""
    action = "noop" if not changes else ("create" if record is None else "update")
    return {
        "workflow_id": record.id if record else "",
        "action": action,
        "block_count": len(graph.blocks),
        "edge_count": len(graph.edges),
        "diagnostics": _diagnostics(warnings),
        "summary": summary(changes),
        "resource_changes": [_resource_change(c) for c in changes],
        "rendered_plan": render(changes, record.id if record else f"'{spec.name}' (new)"),
    }


def _resource_change(change: Change) -> SpecResourceChange:
    """A plan entry in the SDK's `DeclarativePlanResourceChange` shape."""
    actions = ["delete", "create"] if change.action == "replace" else [change.action]
    kind = change.kind if change.target != "block" else str((change.after or change.before or {}).get("type"))
    name = change.target_id
    if change.target == "block":
        name = str((change.after or change.before or {}).get("label") or change.target_id)
    fields = [
        SpecFieldChange(
            path=path.split("."),
            path_display=path,
            action="update",
            before=_at(change.before, path),
            after=_at(change.after, path),
        )
        for path in change.fields
    ]
    return SpecResourceChange(
        address=change.address,
        target=change.target,
        target_id=change.target_id,
        name=name,
        type=kind,
        actions=actions,
        summary=f"{change.action} {change.target} {change.target_id}",
        change=SpecResourceDiff(before=change.before, after=change.after, field_changes=fields),
    )


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
