"""Errors of block execution, and their mapping to Temporal's ApplicationError.

    Exception
     └── BlockError            the block cannot produce an output: bad input, bad config, a 4xx answer
          └── InputError       a handle input is missing or has the wrong shape

Anything else raised inside an activity is treated as transient and retried by Temporal.
"""

from __future__ import annotations

from typing import Any


class BlockError(Exception):
    """A failure a retry cannot fix; the message says what to change."""

    def __init__(self, message: str, *, code: str = "block_error", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class InputError(BlockError):
    """A handle input is missing or has the wrong type."""
