"""`docflow run` and `docflow runs list|show|cancel`: start a run, follow it block by block, read and stop runs.

A run's documents go as data URLs in the create request; each FILE is `BLOCK=PATH` or a bare path when the
workflow has one start_document block left to fill. The live view polls the run and its steps (the API has
no push channel) and redraws a table with rich's Live; `--json` skips the view and prints the final run.
"""

from __future__ import annotations

import base64
import mimetypes
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from devstack.cli_client import Api, CliError, Connection, print_json, read_json_file, say
from devstack.cli_view import TERMINAL, leaf_blocks, outputs_of, outputs_text, runs_table, steps_table

runs_app = typer.Typer(help="List, show and cancel runs.", no_args_is_help=True)
POLL_SECONDS = 0.5
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables")]


def connection(ctx: typer.Context) -> Connection:
    """The connection the global options made."""
    conn = ctx.find_root().obj
    if not isinstance(conn, Connection):
        raise CliError("internal: no connection options")
    return conn


def draft_graph(api: Api, workflow_id: str) -> dict[str, Any]:
    """The draft's blocks and edges (every page)."""
    return {kind: api.all(f"/{kind}", workflow_id=workflow_id) for kind in ("blocks", "edges")}


def _blocks_of(api: Api, workflow_id: str, version: str) -> dict[str, Any]:
    """The graph a run of this version would use: the draft's, or a version's blocks and edges."""
    if version == "draft":
        return draft_graph(api, workflow_id)
    version_id: str | None = version
    if version == "production":
        record = api.get(f"/{workflow_id}")
        version_id = (record.get("published") or {}).get("version_id")
        if not version_id:
            raise CliError(f"workflow '{workflow_id}' has no published version: publish it or pass --version draft")
    return dict(api.get(f"/versions/{version_id}", workflow_id=workflow_id))


def _assign(spec: list[str], starts: list[str], kind: str) -> dict[str, Path]:
    """`BLOCK=PATH` or bare paths → start block → path; a bare path needs exactly one start block left."""
    assigned: dict[str, Path] = {}
    bare: list[Path] = []
    for item in spec:
        block, sep, path = item.partition("=")
        if sep and block in starts:
            assigned[block] = Path(path)
        elif sep and not Path(item).exists():
            raise CliError(f"{kind} '{item}': the workflow has no {kind} block '{block}' (it has: {', '.join(starts)})")
        else:
            bare.append(Path(item))
    left = [b for b in starts if b not in assigned]
    if bare and len(left) != 1 or len(bare) > 1:
        names = ", ".join(left) or "none left"
        raise CliError(f"name the {kind} block of each input as BLOCK=PATH ({kind} blocks: {names})")
    if bare:
        assigned[left[0]] = bare[0]
    return assigned


def _data_url(path: Path) -> dict[str, str]:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {"filename": path.name, "url": f"data:{mime};base64," + base64.b64encode(content).decode()}


def _run_body(api: Api, workflow_id: str, files: list[str], json_inputs: list[str], version: str) -> dict[str, Any]:
    graph = _blocks_of(api, workflow_id, version)
    documents = [b["id"] for b in graph["blocks"] if b["type"] == "start_document"]
    jsons = [b["id"] for b in graph["blocks"] if b["type"] == "start_json"]
    docs = {block: _data_url(path) for block, path in _assign(files, documents, "start_document").items()}
    data = {
        block: read_json_file(p, f"--json-input {block}")
        for block, p in _assign(json_inputs, jsons, "start_json").items()
    }
    return {"workflow_id": workflow_id, "documents": docs, "json_inputs": data, "version": version}


def follow(
    api: Api, run_id: str, console: Console, live: bool, timeout: float | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a run until it ends, redrawing its steps; returns the final run and steps."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reviews: list[str] = []
    with Live(console=console, auto_refresh=False, transient=False) if live else _Quiet() as view:
        while True:
            run = api.get(f"/runs/{run_id}")
            steps = api.get(f"/runs/{run_id}/steps")
            status = run["lifecycle"]["status"]
            if status == "awaiting_review" and not reviews:
                reviews = [r["id"] for r in api.get("/reviews", run_id=run_id)["data"]]
            elif status != "awaiting_review":
                reviews = []
            if live:
                hint = Text(f"waiting for review: docflow reviews approve {' | '.join(reviews)}", style="magenta")
                view.update(Group(steps_table(run, steps), hint) if reviews else steps_table(run, steps), refresh=True)
            if status in TERMINAL:
                return run, steps
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(
                    f"run {run_id} still {status} after {timeout:g}s (it goes on; see docflow runs show {run_id})"
                )
            time.sleep(POLL_SECONDS)


class Interrupted(CliError):
    """Ctrl-C while following: the run is not cancelled, only no longer watched."""

    status = 130


class _Quiet:
    """A stand-in for Live when nothing is drawn (`--json`)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, *_: object, **__: object) -> None:
        """Draw nothing."""


def _outputs(api: Api, run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    try:
        graph = api.get(f"/versions/{run['workflow_version_id']}", workflow_id=run["workflow_id"])
    except CliError:
        return outputs_of(steps, None)  # a version we cannot read: show every completed step's outputs
    return outputs_of(steps, leaf_blocks(graph))


def finish(api: Api, run: dict[str, Any], steps: list[dict[str, Any]], as_json: bool, console: Console) -> None:
    """Print the outputs (or the JSON); a run that did not complete is an error line and exit 1."""
    outputs = _outputs(api, run, steps)
    if as_json:
        print_json({"run": run, "steps": steps, "outputs": outputs})
    else:
        say(outputs_text(outputs))
    lifecycle = run["lifecycle"]
    if lifecycle["status"] != "completed":
        detail = lifecycle.get("message") or lifecycle.get("reason") or ""
        raise CliError(f"run {run['id']} ended {lifecycle['status']}" + (f": {detail}" if detail else ""))


def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow id")],
    files: Annotated[
        list[str] | None, typer.Argument(help="Documents: PATH, or BLOCK=PATH for a start_document block")
    ] = None,
    json_input: Annotated[
        list[str] | None, typer.Option("--json-input", help="BLOCK=FILE.json for a start_json block (repeat)")
    ] = None,
    version: Annotated[str, typer.Option(help="production, draft, or a version id")] = "production",
    detach: Annotated[
        bool, typer.Option("--detach", help="Start the run and return its id without following it")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop following after this many seconds")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a run, show each block's status live, then print the outputs."""
    api = connection(ctx).api()
    started = api.post("/runs", _run_body(api, workflow, files or [], json_input or [], version))
    console = Console()
    if detach:
        print_json(started) if as_json else say(f"run {started['id']} started ({started['lifecycle']['status']})")
        return
    try:
        final, steps = follow(api, started["id"], console, live=not as_json, timeout=timeout)
    except KeyboardInterrupt:
        raise Interrupted(
            f"stopped following run {started['id']}; it goes on (docflow runs show {started['id']})"
        ) from None
    finish(api, final, steps, as_json, console)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's runs")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    page = connection(ctx).api().get("/runs", workflow_id=workflow, status=status, limit=limit)
    print_json(page["data"]) if as_json else Console().print(runs_table(page["data"]))


@runs_app.command("show")
def runs_show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="Run id")], as_json: JsonFlag = False
) -> None:
    """Show a run: its blocks' statuses and durations, and its outputs."""
    api = connection(ctx).api()
    found = api.get(f"/runs/{run_id}")
    steps = api.get(f"/runs/{run_id}/steps")
    outputs = _outputs(api, found, steps)
    if as_json:
        print_json({"run": found, "steps": steps, "outputs": outputs})
        return
    console = Console()
    console.print(steps_table(found, steps))
    say(outputs_text(outputs))


@runs_app.command("cancel")
def runs_cancel(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="Run id")], as_json: JsonFlag = False
) -> None:
    """Cancel a pending, running or waiting run."""
    answer = connection(ctx).api().post(f"/runs/{run_id}/cancel", {})
    if as_json:
        print_json(answer)
    else:
        say(f"run {run_id}: {answer['cancellation_status']} ({answer['run']['lifecycle']['status']})")
