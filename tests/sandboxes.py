"""The sandbox tests need bubblewrap: without it they skip, unless DOCFLOW_REQUIRE_SANDBOX is set (CI sets it, so
there they must run)."""

from __future__ import annotations

import os
import shutil

import pytest


def require_bwrap() -> None:
    """Skip the calling test when bubblewrap is missing, or fail when DOCFLOW_REQUIRE_SANDBOX says it must run."""
    if shutil.which("bwrap") is not None:
        return
    if os.environ.get("DOCFLOW_REQUIRE_SANDBOX"):
        pytest.fail("bubblewrap is required (DOCFLOW_REQUIRE_SANDBOX is set) but not installed")
    pytest.skip("bubblewrap is not installed (Debian: apt-get install bubblewrap)")
