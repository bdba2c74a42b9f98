"""Starting docflow's own processes (API, worker) beside the servers, for `docflow up`, the demo and tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from devstack.stack import Server, StackError
from docflow.config import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as DOCFLOW_* environment variables, for a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"DOCFLOW_{name.upper()}"] = _env_value(value)
    return env


def _env_value(value: Any) -> str:
    """pydantic-settings reads dicts and lists from the environment as JSON; secrets travel in clear."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict | list):
        return json.dumps(value, default=lambda v: v.get_secret_value() if isinstance(v, SecretStr) else str(v))
    return str(value)


def start_worker(settings: Settings, log_path: Path) -> Server:
    """Start `python worker.py` as a child process with these settings."""
    env = {**os.environ, **settings_env(settings)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    return Server("worker", proc, log_path)


def wait_for_worker(settings: Settings, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until a worker polls the settings' task queue."""
    import asyncio

    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from docflow.temporal import connect

    async def polled() -> None:
        client = await connect(settings)
        request = DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise StackError(f"worker exited with {proc.returncode}; see its log")
            if (await client.workflow_service.describe_task_queue(request)).pollers:
                return
            await asyncio.sleep(0.1)
        raise StackError(f"no worker polled task queue '{settings.task_queue}' within {timeout}s")

    asyncio.run(polled())


def start_api_process(settings: Settings, log_path: Path) -> Server:
    """Start the API (uvicorn) as a child process and wait until it answers."""
    env = {**os.environ, **settings_env(settings)}
    args = [sys.executable, "-m", "devstack.cli", "api"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(args, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server("api", proc, log_path)
    try:
        wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health", 60, proc)
    except BaseException:
        server.stop()
        raise
    return server


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll a health URL until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise StackError(f"{url} did not answer within {timeout}s")


class ThreadedApi:
    """The API served by uvicorn in a background thread (tests, benchmarks)."""

    def __init__(self, settings: Settings) -> None:
        from api.app import create_app

        config = uvicorn.Config(
            create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{settings.api_host}:{settings.api_port}"

    def start(self) -> ThreadedApi:
        """Start and wait until healthy."""
        self.thread.start()
        wait_healthy(f"{self.url}/health", 60)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(10)
