"""The model provider's errors (re-exported by `activities.provider`, whose docstring draws the tree)."""

from __future__ import annotations


class ProviderError(Exception):
    """A model call that failed for good: a refused request, or an answer that is not the JSON asked for.

    `path` is the JSON path (`$.lines[2].amount`) where an answer broke the schema, when that is the failure.
    """

    def __init__(self, message: str, status: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.path = path


class ProviderTransientError(ProviderError):
    """A model call that may succeed later: rate limited, server error, timeout, connection failure.

    `retry_after` is the wait in seconds the server asked for, when it named one.
    """

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after
