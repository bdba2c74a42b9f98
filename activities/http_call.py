"""The api_call block: an HTTP request through httpx, templated from the input, retried, traced."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from activities.errors import BlockError
from activities.produced import Produced
from docflow.blocks import ApiCallConfig, parse_config
from docflow.runs import HandleValue
from docflow.templating import TemplateError, render_template

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
_REDACTED_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}


class ApiCaller:
    """Makes api_call requests with an injected httpx client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, config: dict[str, Any], data: Any) -> Produced:
        """Render, send with retries, and return the response JSON plus an `api_call_invocation` trace."""
        cfg = parse_config("api_call", config)
        assert isinstance(cfg, ApiCallConfig)
        try:
            url = render_template(cfg.url, data)
            headers = {k: str(render_template(v, data)) for k, v in cfg.headers.items()}
            params = {k: str(render_template(v, data)) for k, v in cfg.query.items()}
            body = render_template(cfg.body, data) if cfg.body is not None else None
        except TemplateError as exc:
            raise BlockError(f"config template: {exc}", code="template_error", details={"path": exc.path}) from exc
        attempts: list[dict[str, Any]] = []
        backoff = cfg.retry.initial_backoff_seconds
        response: httpx.Response | None = None
        for attempt in range(cfg.retry.max_attempts):
            response = await self._attempt(cfg, str(url), headers, params, body, attempt, attempts)
            retryable = response is None or response.status_code in RETRYABLE_STATUS
            if not retryable or attempt == cfg.retry.max_attempts - 1:
                break
            await asyncio.sleep(backoff)
            backoff *= cfg.retry.backoff_multiplier
        artifact: dict[str, Any] = {"operation": "api_call_invocation", "attempts": attempts, "error": None}
        if response is None or not response.is_success:
            status = "no response" if response is None else f"HTTP {response.status_code}"
            message = f"{cfg.method} {url} failed after {len(attempts)} attempt(s): {status}"
            artifact["error"] = {"message": message}
            raise BlockError(message, code="api_call_failed", details={"artifact": artifact})
        return Produced(outputs={"output-json-0": _json_value(_body(response))}, artifact=artifact)

    async def _attempt(
        self,
        cfg: ApiCallConfig,
        url: str,
        headers: dict[str, str],
        params: dict[str, str],
        body: Any,
        number: int,
        attempts: list[dict[str, Any]],
    ) -> httpx.Response | None:
        started = datetime.now(UTC)
        clock = time.perf_counter()
        trace: dict[str, Any] = {
            "attempt_number": number,
            "request_method": cfg.method,
            "request_url": url,
            "request_headers": {k: ("***" if k.lower() in _REDACTED_HEADERS else v) for k, v in headers.items()},
            "request_body": body,
            "started_at": started.isoformat(),
        }
        response: httpx.Response | None = None
        try:
            response = await self.client.request(
                cfg.method,
                url,
                headers=headers,
                params=params or None,
                json=body if body is not None and not isinstance(body, str) else None,
                content=body if isinstance(body, str) else None,
                timeout=cfg.timeout_seconds,
            )
            trace.update(
                response_status=response.status_code,
                response_headers=dict(response.headers),
                response_body=_body(response),
            )
        except httpx.HTTPError as exc:
            trace["error"] = {"message": f"{type(exc).__name__}: {exc}", "error_code": "transport_error"}
        trace["duration_ms"] = int((time.perf_counter() - clock) * 1000)
        trace["completed_at"] = datetime.now(UTC).isoformat()
        attempts.append(trace)
        return response


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _json_value(data: Any) -> HandleValue:
    return HandleValue(type="json", data=data)
