"""The `docflow` command: the typer app.

Here: `up` (the embedded stack), `demo`, `api`, `worker`, `keys create`, the global connection options and
the entry point. The API's client commands live beside it: `run` and `runs` (devstack/cli_runs.py),
`reviews` (cli_reviews.py), `rerun` and `test` (cli_blocks.py), `apply`, `export` and `workflows list`
(cli_apply.py).

Every error a user can act on (devstack.cli_client.CliError, a usage error) ends the command with one line on
stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from devstack import cli_apply, cli_blocks, cli_runs
from devstack.cli_client import CliError, Connection, dev_key
from devstack.cli_reviews import reviews_app
from docflow.config import Settings, get_settings

app = typer.Typer(
    help="docflow: durable document-processing workflows on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Manage API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(cli_runs.runs_app, name="runs")
app.add_typer(reviews_app, name="reviews")
app.add_typer(cli_apply.workflows_app, name="workflows")
app.command("run")(cli_runs.run)
app.command("rerun")(cli_blocks.rerun)
app.command("test")(cli_blocks.test)
app.command("apply")(cli_apply.apply)
app.command("export")(cli_apply.export)


@app.callback()
def _connection(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option(help="The API's base URL (default: the settings' api_url)")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (default: DOCFLOW_API_KEY, else the dev key)")] = None,
) -> None:
    """Global options: where the API is and which key to send."""
    ctx.obj = Connection(get_settings(), api_url=api_url, api_key=api_key)


def _dev_key(settings: Settings) -> tuple[str, str]:
    """The development key: created (and printed) on first start; kept in <data_dir>/dev-api-key (0600)."""
    from api.auth import KeyRing, create_key, write_private

    found = dev_key(settings)  # the same file the client commands read their default key from
    if found is not None and KeyRing.load(settings.keys_file).authenticate(found[0]) is not None:
        return found
    key, project = create_key(settings.keys_file, name="dev")
    write_private(settings.data_dir / "dev-api-key", f"{key} {project}\n")
    print(f"created a development API key for project {project}: {key}")
    return key, project


@contextmanager
def embedded_stack(settings: Settings) -> Iterator[tuple[str, str]]:
    """Start Temporal, S3, the API and the worker; yield (dev key, project); stop them all on exit."""
    from devstack.processes import start_api_process, start_worker, wait_for_worker
    from devstack.stack import Server, start_s3, start_temporal

    if settings.environment != "development":
        raise typer.BadParameter("the embedded stack is for development; set DOCFLOW_ENVIRONMENT=development")
    servers: list[Server] = []
    logs = settings.data_dir / "logs"
    try:
        print("starting Temporal dev server…")
        servers.append(start_temporal(settings))
        print("starting S3 (SeaweedFS)…")
        servers.append(start_s3(settings))
        key, project = _dev_key(settings)
        print("starting API and worker…")
        servers.append(start_worker(settings, logs / "worker.log"))
        servers.append(start_api_process(settings, logs / "api.log"))
        wait_for_worker(settings, proc=servers[-2].proc)
        yield key, project
    finally:
        for server in reversed(servers):
            server.stop()
        print("stack stopped")


@app.command()
def up() -> None:
    """Start the embedded stack (Temporal, S3, API, worker) until Ctrl-C."""
    settings = get_settings()
    with embedded_stack(settings) as (key, project):
        print(f"API:          {settings.api_url}  (key in {settings.data_dir / 'dev-api-key'}, project {project})")
        print(f"OpenAPI docs: {settings.api_url}/docs")
        print(f"Temporal UI:  {settings.temporal_ui_url}")
        print(f"logs:         {settings.data_dir / 'logs'}   — Ctrl-C stops everything")
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop:
            time.sleep(0.2)
    _exit(0)


@app.command()
def demo() -> None:
    """Start the stack, run the invoice demo, stop the stack; exit 0 only on the expected result."""
    from devstack.demo import DemoError, run_demo

    settings = get_settings()
    status = 1
    with embedded_stack(settings) as (key, project):
        try:
            status = run_demo(settings.api_url, key, project, settings.temporal_ui_url)
        except DemoError as exc:
            print(f"demo failed: {exc}")
    _exit(status)


@app.command()
def api() -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None)


@app.command()
def worker() -> None:
    """Run a Temporal worker."""
    import worker as worker_module

    worker_module.main()


@keys_app.command("create")
def keys_create(project_id: str | None = None, name: str = "key") -> None:
    """Create an API key (printed once; only its hash is stored)."""
    from api.auth import create_key

    settings = get_settings()
    key, project = create_key(settings.keys_file, project_id, name)
    print(f"project {project}\nkey     {key}")


def _exit(status: int) -> None:
    # The SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300): exit hard after a flush.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main() -> None:
    """Console-script entry point: errors become one line on stderr and a non-zero exit."""
    try:
        status = app(standalone_mode=False)
    except CliError as exc:
        _fail(str(exc), exc.status)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # the promise is no traceback, whatever went wrong
        # Usage errors are click's (typer vendors its own copy in newer releases): matched by their interface.
        if callable(format_message := getattr(exc, "format_message", None)):
            _fail(str(format_message()), int(getattr(exc, "exit_code", 2)))
        if type(exc).__name__ == "Abort":
            _fail("aborted", 130)
        _fail(f"internal error: {type(exc).__name__}: {exc}", 1)
    sys.exit(status if isinstance(status, int) else 0)


def _fail(message: str, status: int) -> None:
    sys.stdout.flush()
    if message.strip():  # a group called bare shows its help and raises with no message
        sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.exit(status)


if __name__ == "__main__":
    main()
