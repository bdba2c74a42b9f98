"""The README's demo command, end to end: `docflow demo` starts its own stack, runs, stops, exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from devstack.processes import settings_env
from devstack.stack import Ports
from docflow.config import Settings


def test_demo_exits_zero_with_the_expected_fields(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", **Ports().settings_overrides())  # type: ignore[arg-type]
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "demo"], env=env, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with the expected fields" in done.stdout
    assert '"invoice_number": "INV-2026-0042"' in done.stdout
    assert "stack stopped" in done.stdout
    assert (tmp_path / "data" / "dev-api-key").stat().st_mode & 0o777 == 0o600


def test_up_serves_until_ctrl_c_then_stops_everything(tmp_path: Path) -> None:
    import signal
    import socket
    import time

    import httpx

    settings = Settings(data_dir=tmp_path / "data", **Ports().settings_overrides())  # type: ignore[arg-type]
    env = {**os.environ, **settings_env(settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while not any("Ctrl-C stops everything" in line for line in lines):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
        lines.append(proc.stdout.readline())
    printed = "".join(lines)
    assert f"{settings.api_url}/docs" in printed and settings.temporal_ui_url in printed
    key = (settings.data_dir / "dev-api-key").read_text().split()[0]
    assert key in printed  # the development key is printed on first start
    assert httpx.get(f"{settings.api_url}/v1/workflows/runs", headers={"Api-Key": key}).status_code == 200
    assert httpx.get(settings.temporal_ui_url).status_code == 200

    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stack stopped" in rest
    s3_port = int(settings.s3_endpoint.rsplit(":", 1)[1])
    for port in (settings.api_port, int(settings.temporal_address.rsplit(":", 1)[1]), s3_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after Ctrl-C"
