"""The sandbox tests need bubblewrap and user namespaces: without them they skip, unless DOCFLOW_REQUIRE_SANDBOX is
set (CI sets it, so there they must run)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

# A uid like the ones the worker gives sandboxes when it runs as root (activities.sandbox, DOCFLOW_SANDBOX_UID_BASE).
PROBE_UID = 430999


@functools.cache
def _missing() -> str | None:
    """Why no sandbox can be made here, or None."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
    ids = {"user": PROBE_UID, "group": PROBE_UID, "extra_groups": []} if os.geteuid() == 0 else {}
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **ids,  # type: ignore[arg-type]
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({probe.stderr.strip()}); see docs/sandbox.md"
    return None


def require_bwrap() -> None:
    """Skip the calling test when no sandbox can be made, or fail when DOCFLOW_REQUIRE_SANDBOX says it must run."""
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("DOCFLOW_REQUIRE_SANDBOX"):
        pytest.fail(f"the sandbox is required (DOCFLOW_REQUIRE_SANDBOX is set): {reason}")
    pytest.skip(reason)
