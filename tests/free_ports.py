"""Starting Temporal and S3 on free ports: a port picked free may be taken before the server binds it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from devstack.stack import Ports, Server, StackError, start_servers
from docflow.config import Settings


def start_on_free_ports(
    make_settings: Callable[[dict[str, Any]], Settings], attempts: int = 3
) -> tuple[Settings, list[Server]]:
    """Settings made with fresh free ports (`make_settings(port_overrides)`) and their servers; a start that
    fails (a port taken between picking and binding) is tried again on other ports."""
    for attempt in range(attempts):
        settings = make_settings(Ports().settings_overrides())
        try:
            return settings, start_servers(settings)
        except StackError as exc:
            if attempt == attempts - 1:
                raise
            sys.stderr.write(f"stack start failed, retrying on other ports: {exc}\n")
    raise AssertionError("unreachable")
