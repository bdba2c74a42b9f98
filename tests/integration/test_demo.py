"""The README's demo command, end to end: `docflow demo` starts its own stack, runs, stops, exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from docflow.config import Settings
from docflow.processes import settings_env
from docflow.stack import Ports


def test_demo_exits_zero_with_the_expected_fields(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", **Ports().settings_overrides())  # type: ignore[arg-type]
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "docflow.cli", "demo"], env=env, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with the expected fields" in done.stdout
    assert '"invoice_number": "INV-2026-0042"' in done.stdout
    assert "stack stopped" in done.stdout
    assert (tmp_path / "data" / "dev-api-key").stat().st_mode & 0o777 == 0o600
