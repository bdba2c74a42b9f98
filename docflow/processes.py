"""Starting docflow's own processes (API, worker) beside the servers, for `docflow up`, the demo and tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from docflow.config import Settings
from docflow.stack import Server, StackError


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as DOCFLOW_* environment variables, for a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"DOCFLOW_{name.upper()}"] = str(value)
    return env


def start_worker(settings: Settings, log_path: Path) -> Server:
    """Start `python worker.py` as a child process with these settings."""
    env = {**os.environ, **settings_env(settings)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    return Server("worker", proc, log_path)


def start_api_process(settings: Settings, log_path: Path) -> Server:
    """Start the API (uvicorn) as a child process and wait until it answers."""
    env = {**os.environ, **settings_env(settings)}
    args = [sys.executable, "-m", "docflow.cli", "api"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(args, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server("api", proc, log_path)
    wait_healthy(f"http://{settings.api_host}:{settings.api_port}/health", 60, proc)
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
