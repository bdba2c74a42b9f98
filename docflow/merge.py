"""The merge_dicts block: several JSON objects into one, later inputs winning.

`deep` merges nested objects key by key; any other value (lists included) is replaced whole, as in
JSON Merge Patch minus its null-deletes (a null from a later input is a value, not a deletion).
`shallow` replaces top-level keys only. Inputs are never modified.
"""

from __future__ import annotations

import copy
from typing import Any, Literal


class MergeError(ValueError):
    """An input that is not a JSON object; `index` is its position (input-json-<index>)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


def merge_dicts(values: list[Any], strategy: Literal["deep", "shallow"] = "deep") -> dict[str, Any]:
    """Merge JSON objects in order, later ones winning; raise MergeError naming a non-object input."""
    merged: dict[str, Any] = {}
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            kind = "null" if value is None else type(value).__name__
            raise MergeError(f"input {index} (input-json-{index}) is a {kind}, not an object", index)
        if strategy == "deep":
            _deep_update(merged, value)
        else:
            merged.update(copy.deepcopy(value))
    return merged


def _deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _deep_update(current, value)
        else:
            # Copies, so later merges into `target` never reach back into an input.
            target[key] = copy.deepcopy(value)
