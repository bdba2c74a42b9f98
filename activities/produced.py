"""What a block executor hands back to the activity that persists it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docflow.runs import HandleValue


@dataclass
class Produced:
    """A block's outputs, routing decision and artifact (without id; the activity assigns it)."""

    outputs: dict[str, HandleValue] = field(default_factory=dict)
    routing: list[str] | None = None
    artifact: dict[str, Any] | None = None
    model: str | None = None
