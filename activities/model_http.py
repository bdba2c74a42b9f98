"""One chat-completions request, retried: 429, 5xx, timeouts and lost connections, with bounded backoff.

A retryable failure waits, then tries again: the server's `Retry-After` (seconds or an HTTP date; OpenAI's
`retry-after-ms` too) when it gives one, else exponential backoff with jitter (`initial · 2^n`, capped at
`max_wait`, times 0.5–1 so parallel votes do not retry in step). A `Retry-After` longer than `max_wait`
is not waited out here: the call ends as transient at once and the activity's retry policy takes over.
After `max_retries` retries the last failure is raised as `ProviderTransientError`; anything else that
fails (a 4xx, a body that is not JSON) is a `ProviderError` at once. One logical call (`CallStats`, which
may span a repair request) also has a time budget: no attempt, wait or queueing for a slot runs past it,
so an extraction ends within the budget and the activity's own timeout never cuts it short.

Every attempt holds one slot of a semaphore shared by all calls through the same `ChatEndpoint` (one per
worker): `max_concurrency` requests in flight at most. Waits between attempts hold no slot.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from activities.provider_errors import ProviderError, ProviderTransientError

_TRANSIENT_STATUS = {408, 409, 425, 429}
_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How a model call is retried; see the module docstring."""

    max_retries: int = 4
    initial_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    budget_seconds: float = 600.0

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (0-based) when the server named none."""
        ceiling: float = min(self.max_wait_seconds, self.initial_seconds * 2.0**retry)
        return ceiling * random.uniform(0.5, 1.0)


@dataclass
class CallStats:
    """One logical call: when it started, HTTP requests sent, how many were retries, the usage reported."""

    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    retries: int = 0
    usage: list[dict[str, Any]] = field(default_factory=list)


def retry_after_seconds(headers: httpx.Headers, now: datetime.datetime | None = None) -> float | None:
    """The wait a response asks for (`retry-after-ms`, `Retry-After` in seconds or as an HTTP date), or None."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - now).total_seconds())


class ChatEndpoint:
    """`POST {base_url}/chat/completions` with the retry policy and the concurrency limit."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        timeout_seconds: float | None,
        retry: RetryPolicy,
        max_concurrency: int,
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_seconds
        self.retry = retry
        self._slots = asyncio.Semaphore(max_concurrency)

    async def post(self, payload: dict[str, Any], stats: CallStats) -> dict[str, Any]:
        """The response body of a successful request, retrying what may succeed later."""
        deadline = stats.started + self.retry.budget_seconds
        retry = 0
        while True:
            stats.requests += 1
            try:
                response = await self._attempt(payload, deadline)
                _raise_for_status(response)
                return _json_body(response)
            except ProviderTransientError as exc:
                if retry >= self.retry.max_retries:
                    raise ProviderTransientError(
                        f"{exc.message} (after {retry} retries)", exc.status, retry_after=exc.retry_after
                    ) from exc
                wait = exc.retry_after if exc.retry_after is not None else self.retry.backoff(retry)
                if wait > self.retry.max_wait_seconds or time.monotonic() + wait >= deadline:
                    raise  # longer than we wait in-process: the activity's retry policy takes it from here
            retry += 1
            stats.retries += 1
            await asyncio.sleep(wait)

    async def _attempt(self, payload: dict[str, Any], deadline: float) -> httpx.Response:
        """One request within the call's budget: waiting for a slot, then sending it."""
        remaining = deadline - time.monotonic()
        budget = f"model call to {self.url} ran out of its {self.retry.budget_seconds:g} s budget"
        if remaining <= 0:
            raise ProviderTransientError(budget)
        try:
            async with asyncio.timeout(remaining), self._slots:
                return await self._send(payload, remaining)
        except TimeoutError as exc:
            raise ProviderTransientError(budget) from exc

    async def _send(self, payload: dict[str, Any], remaining: float) -> httpx.Response:
        timeout = min(self._timeout, remaining) if self._timeout is not None else httpx.USE_CLIENT_DEFAULT
        started = time.monotonic()
        try:
            return await self.client.post(self.url, json=payload, headers=self._headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            waited = time.monotonic() - started
            raise ProviderTransientError(f"model call to {self.url} timed out after {waited:.1f} s") from exc
        except httpx.TransportError as exc:
            raise ProviderTransientError(f"model call to {self.url} failed: {exc!r}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    excerpt = response.text[:_EXCERPT_CHARS]
    message = f"model server answered HTTP {status}: {excerpt}"
    if status >= 500 or status in _TRANSIENT_STATUS:
        raise ProviderTransientError(message, status, retry_after=retry_after_seconds(response.headers))
    raise ProviderError(message, status)


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        excerpt = response.text[:_EXCERPT_CHARS]
        raise ProviderError(f"model server answered non-JSON: {excerpt}", response.status_code) from exc
    if not isinstance(body, dict):
        raise ProviderError("model server answered JSON that is not an object", response.status_code)
    return body
