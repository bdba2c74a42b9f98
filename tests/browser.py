"""Headless Chromium (Debian's `chromium`) for pages: the DOM after the page's scripts ran, and screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Without these, Chromium tries to reach Google's services through a closed network, many times over.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",  # single-page apps render within the virtual time budget, not before
]


def chromium() -> str:
    """The browser binary; a skip where it is absent, a failure where CI requires it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("DOCFLOW_REQUIRE_BROWSER"):
        pytest.fail("chromium is required (DOCFLOW_REQUIRE_BROWSER is set) but not installed")
    pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")


def render(url: str, screenshot: Path | None = None, timeout: float = 60) -> str:
    """The page's DOM after its scripts ran; with `screenshot`, also a PNG of it."""
    with tempfile.TemporaryDirectory() as profile:
        args = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000"]
        if screenshot is not None:
            subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True, timeout=timeout, check=True)
        done = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout
