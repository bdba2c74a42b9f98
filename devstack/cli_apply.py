"""`docflow apply FILE.yaml`, `docflow export WORKFLOW`: a workflow's draft from and to its YAML spec; and
`docflow workflows list`, to find the ids they take.

The API has no spec endpoints yet (they answer 501), so the CLI plans and applies on the client, through the
blocks, edges and workflows endpoints. Which workflow a file applies to:

1. `--workflow WF`;
2. else `metadata.id`, when it names a workflow of the project (an exported file does);
3. else the workflow that already holds the spec's block ids (block ids are unique in a project), when its
   name is the spec's: so applying a new file twice finds, the second time, what the first one made;
4. else a new workflow.

The plan is printed before anything changes; `--dry-run` stops there. Blocks are written with
`config_mode: replace`, so the draft holds exactly the file's config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from devstack.cli_client import Api, ApiFailure, CliError, Connection, print_json, say
from devstack.cli_runs import JsonFlag, connection, draft_graph
from devstack.cli_spec import (
    Change,
    EdgeKey,
    Spec,
    edge_key,
    edge_name,
    parse_spec,
    plan,
    render,
    summary,
)
from devstack.cli_spec_export import dump_yaml, export_document

workflows_app = typer.Typer(help="List workflows.", no_args_is_help=True)


@workflows_app.command("list")
def workflows_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100, as_json: JsonFlag = False
) -> None:
    """List the project's workflows, most recently changed first."""
    found = connection(ctx).api().get("", limit=limit)["data"]
    if as_json:
        print_json(found)
        return
    table = Table()
    for column in ("workflow", "name", "published version", "updated"):
        table.add_column(column, overflow="fold")
    for record in found:
        published = (record.get("published") or {}).get("version_id") or ""
        table.add_row(record["id"], record.get("name", ""), published, str(record.get("updated_at", ""))[:19])
    Console().print(table)


def _get_or_none(api: Api, path: str, **params: Any) -> Any:
    try:
        return api.get(path, **params)
    except ApiFailure as exc:
        if exc.status_code == 404:
            return None
        raise


def find_target(api: Api, spec: Spec, workflow_id: str | None) -> dict[str, Any] | None:
    """The workflow the spec applies to (module docstring), or None for a new one."""
    if workflow_id is not None:
        found = _get_or_none(api, f"/{workflow_id}")
        if found is None:
            raise CliError(f"no workflow '{workflow_id}' in this project")
        return dict(found)
    if spec.workflow_id and (found := _get_or_none(api, f"/{spec.workflow_id}")) is not None:
        return dict(found)
    for block_id in spec.blocks:
        block = _get_or_none(api, f"/blocks/{block_id}")
        if block is None:
            continue
        holder = api.get(f"/{block['workflow_id']}")
        if holder.get("name") != spec.name:
            raise CliError(
                f"block id '{block_id}' is used by workflow {holder['id']} ('{holder.get('name')}'): "
                f"pass --workflow {holder['id']} to update it, or rename the block"
            )
        return dict(holder)
    return None


def _project(conn: Connection, api: Api, given: str | None) -> str:
    """The project a new workflow goes in: --project, the dev key's, or the project of any listed workflow."""
    if given or conn.project_id:
        return str(given or conn.project_id)
    listed = api.get("", limit=1)["data"]
    if listed:
        return str(listed[0]["project_id"])
    raise CliError("creating a workflow needs the API key's project: pass --project proj_…")


def _depth(spec_blocks: dict[str, dict[str, Any]], block_id: str) -> int:
    depth, parent = 0, spec_blocks.get(block_id, {}).get("parent_id")
    while parent is not None and depth < len(spec_blocks):
        depth, parent = depth + 1, spec_blocks.get(parent, {}).get("parent_id")
    return depth


def _block_body(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in ("width", "height") or v is not None}


def execute(api: Api, spec: Spec, workflow_id: str, changes: list[Change], graph: dict[str, Any]) -> None:
    """Carry out a plan: edges and blocks go first, then blocks and edges come, then blocks are updated."""
    by_name = {edge_name(edge_key(e)): e for e in graph["edges"]}
    wanted: dict[str, EdgeKey] = {edge_name(k): k for k in spec.edges}
    for change in changes:
        if change.target == "workflow" and change.action == "update":
            api.patch(f"/{workflow_id}", {"name": spec.name, "description": spec.description})
    for change in changes:
        if change.target == "edge" and change.action in ("delete", "replace"):
            _delete_quietly(api, f"/edges/{by_name[change.target_id]['id']}")
    live_blocks = {b["id"]: b for b in graph["blocks"]}
    going = [c.target_id for c in changes if c.target == "block" and c.action in ("delete", "replace")]
    for block_id in sorted(going, key=lambda b: -_depth({**live_blocks, **spec.blocks}, b)):
        _delete_quietly(api, f"/blocks/{block_id}", workflow_id=workflow_id)
    coming = [c.target_id for c in changes if c.target == "block" and c.action in ("create", "replace")]
    for block_id in sorted(coming, key=lambda b: _depth(spec.blocks, b)):
        api.post("/blocks", {"workflow_id": workflow_id, "id": block_id, **_block_body(spec.blocks[block_id])})
    for change in changes:
        if change.target == "block" and change.action == "update":
            body = {**spec.blocks[change.target_id], "config_mode": "replace"}
            api.patch(f"/blocks/{change.target_id}", body, workflow_id=workflow_id)
    for change in changes:
        if change.target == "edge" and change.action in ("create", "replace"):
            source, source_handle, target, target_handle = wanted[change.target_id]
            body = {"workflow_id": workflow_id, "source_block": source, "target_block": target}
            api.post("/edges", body | {"source_handle": source_handle, "target_handle": target_handle})


def _delete_quietly(api: Api, path: str, **params: Any) -> None:
    """Delete; already gone (an edge removed with its block) is fine."""
    try:
        api.delete(path, **params)
    except ApiFailure as exc:
        if exc.status_code != 404:
            raise


def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The workflow's YAML spec ('-' reads stdin)")],
    workflow: Annotated[str | None, typer.Option(help="Apply to this workflow (default: see docs/cli.md)")] = None,
    project: Annotated[str | None, typer.Option(help="The project of a new workflow (default: the key's)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan, change nothing")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create or update a workflow from a YAML spec; the plan is shown first."""
    text = _read_text(file)
    spec = parse_spec(text, str(file))
    conn = connection(ctx)
    api = conn.api()
    target = find_target(api, spec, workflow)
    graph = draft_graph(api, target["id"]) if target else {"blocks": [], "edges": []}
    changes = plan(spec, target, graph)
    # With --json the plan goes to stderr, so stdout holds the JSON alone.
    say(render(changes, target["id"] if target else f"'{spec.name}' (new)"), err=as_json)
    workflow_id = target["id"] if target else None
    if changes and not dry_run:
        if workflow_id is None:
            body = {"name": spec.name, "description": spec.description, "project_id": _project(conn, api, project)}
            workflow_id = str(api.post("", body)["id"])
        execute(api, spec, workflow_id, changes, graph)
        say(f"Applied to workflow {workflow_id}.", err=as_json)
    if as_json:
        action = "noop" if not changes else ("create" if target is None else "update")
        print_json(
            {
                "workflow_id": workflow_id,
                "action": action,
                "applied": bool(changes) and not dry_run,
                "summary": summary(changes),
                "resource_changes": [c.public() for c in changes],
            }
        )


def _read_text(file: Path) -> str:
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{file}: not UTF-8 text") from exc


def export(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow id")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a workflow's draft as a YAML spec (`apply` of it changes nothing)."""
    api = connection(ctx).api()
    record = api.get(f"/{workflow}")
    text = dump_yaml(export_document(record, draft_graph(api, workflow)))
    if output is not None:
        try:
            output.write_text(text)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror}") from exc
    if as_json:
        print_json({"workflow_id": workflow, "yaml_definition": text})
    elif output is None:
        sys.stdout.write(text)
