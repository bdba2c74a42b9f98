"""`docflow apply FILE.yaml`, `docflow export WORKFLOW`: a workflow's draft from and to its YAML spec; and
`docflow workflows list`, to find the ids they take.

The API plans, applies and exports (`/v1/workflows/…/spec…`, api.spec_service); the CLI reads the file first
(so a bad one fails with its place before any request) and picks the workflow it applies to:

1. `--workflow WF`;
2. else `metadata.id`, when it names a workflow of the project (an exported file does);
3. else the workflow that already holds the spec's block ids (block ids are unique in a project), when its
   name is the spec's: so applying a new file twice finds, the second time, what the first one made;
4. else a new workflow.

The plan is printed before anything changes; `--dry-run` stops there. The apply sends the planned draft's
ETag as `If-Match`: the API writes the whole graph in one conditional write, so the change lands whole, and
only on the draft that was planned against (someone else's edit in between: 409, nothing changed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from devstack.cli_client import Api, ApiFailure, CliError, print_json, say
from devstack.cli_runs import JsonFlag, connection
from docflow.spec import Spec, SpecError, parse_spec

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
    try:
        spec = parse_spec(text, str(file))
    except SpecError as exc:
        raise CliError(str(exc)) from exc
    api = connection(ctx).api()
    target = find_target(api, spec, workflow)
    body = {"yaml_definition": text, "project_id": project}
    where = f"/{target['id']}/spec" if target else "/spec"
    planned, headers = api.exchange("POST", f"{where}/plan", body=body)
    # With --json the plan goes to stderr, so stdout holds the JSON alone.
    say(planned["rendered_plan"], err=as_json)
    result = planned
    changed = planned["action"] != "noop"
    if changed and not dry_run:
        etag = headers.get("ETag")
        result, _ = api.exchange("POST", f"{where}/apply", body=body, headers={"If-Match": etag} if etag else None)
        say(f"Applied to workflow {result['workflow_id']}.", err=as_json)
    if as_json:
        print_json(
            {
                "workflow_id": result["workflow_id"] or None,
                "action": planned["action"],
                "applied": changed and not dry_run,
                "summary": planned["summary"],
                "resource_changes": planned["resource_changes"],
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
    text = str(connection(ctx).api().get(f"/{workflow}/spec")["yaml_definition"])
    if output is not None:
        try:
            output.write_text(text)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror}") from exc
    if as_json:
        print_json({"workflow_id": workflow, "yaml_definition": text})
    elif output is None:
        sys.stdout.write(text)
