"""The api_call block: an HTTP request templated from the input, sent through the egress guard, at most once.

Egress: the URL's origin is the config's literal text and values are percent-encoded (`render_url`); the request
goes through `activities.egress.Egress` (address rule, pinned address, checked redirects, capped body, no
cookies). A refusal is the non-retryable step error `egress_denied`.

At most once:
- Every request of one logical call (run id + step id) carries the same `Idempotency-Key`, in this activity's
  own retries and in Temporal's retries of the activity, unless the config sets that header itself.
- The call's final outcome (a 2xx, or the error that ended it) is recorded in S3 (`keys.api_call_outcome`)
  before anything else happens; an attempt of the same step that finds the record replays it without sending.
  If the record cannot be written the step fails for good rather than risk sending again. S3 rather than
  heartbeat details: details go out throttled and in the background (and the block's heartbeat loop overwrites
  them), so a failure right after the answer could lose them; a put is acknowledged before the code moves on.
  What is left: a worker killed between the answer and the record; its retry sends again, with the same key.
- A 2xx is final: a body over the cap, invalid JSON under a JSON content type, or JSON nested deeper than
  `MAX_JSON_DEPTH` is a non-retryable step error, never an exception Temporal would retry.

Secrets: `{{ secrets.NAME }}` is resolved here from the worker's settings, among the secrets of the run's own
project only (`DOCFLOW_SECRETS` is keyed by project id): another project's name is an unknown secret. The
config (in workflow history) carries only the name. Every occurrence of one of the project's secret values in
the output, the trace artifact and error messages becomes `***` before anything leaves this module. Only the
project's own values are redacted: redacting every project's would let a tenant test a guess of another
project's secret by echoing it and watching for `***`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deleted import refuse_if_deleted
from activities.egress import Answer, Egress, ResponseTooLarge
from activities.errors import BlockError
from activities.produced import Produced
from docflow import keys
from docflow.blocks import MAX_BACKOFF_SECONDS, ApiCallConfig, parse_config
from docflow.egress import EgressDenied
from docflow.ids import derived_id
from docflow.runs import ExecuteBlockInput, HandleValue
from docflow.templating import TemplateError, UnknownSecretError, redact, render_template, render_url
from storage.objects import NotFound, ObjectStore

log = structlog.get_logger("docflow.api_call")
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
MAX_JSON_DEPTH = 64
RECORD_FIRST_BACKOFF_SECONDS = 0.5
RECORD_MAX_BACKOFF_SECONDS = 5.0
# The record's retries stop this long before the activity's own timeout, which would retry (and resend) it.
RECORD_TIMEOUT_MARGIN_SECONDS = 10.0
_REDACTED_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}


class ApiCaller:
    """Makes api_call requests through the egress guard, recording each call's outcome in the store."""

    def __init__(self, egress: Egress, store: ObjectStore, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self.egress = egress
        self.store = store
        self.secrets = {project: dict(values) for project, values in secrets.items()}

    async def call(self, inp: ExecuteBlockInput, data: Any) -> Produced:
        """Replay a recorded outcome, or render, send with retries, record, and return output + trace."""
        record_key = keys.api_call_outcome(inp.run.project_id, inp.run.run_id, inp.step_id)
        recorded = await self._recorded(record_key)
        if recorded is not None:
            return _replay(recorded)
        try:
            cfg = parse_config("api_call", inp.block.config)
        except ValueError as exc:
            raise BlockError(f"config: {exc}", code="invalid_config") from exc
        assert isinstance(cfg, ApiCallConfig)
        secrets = self.secrets.get(inp.run.project_id, {})
        request = _render(cfg, data, derived_id("idem_", inp.run.run_id, inp.step_id), secrets)
        try:
            produced = await self._send(cfg, request, secrets)
        except BlockError as exc:
            error = {"message": str(exc), "code": exc.code, "details": exc.details}
            await self._record(inp, record_key, {"error": error})
            raise
        await self._record(
            inp, record_key, {"output": produced.outputs["output-json-0"].data, "artifact": produced.artifact}
        )
        return produced

    async def _send(self, cfg: ApiCallConfig, request: _Request, secrets: Mapping[str, str]) -> Produced:
        attempts: list[dict[str, Any]] = []
        artifact: dict[str, Any] = {"operation": "api_call_invocation", "attempts": attempts, "error": None}
        backoff = cfg.retry.initial_backoff_seconds
        answer: Answer | None = None
        for number in range(cfg.retry.max_attempts):
            answer = await self._attempt(cfg, request, number, attempts, artifact, secrets)
            if answer is not None and answer.status not in RETRYABLE_STATUS:
                break
            if number < cfg.retry.max_attempts - 1:
                await asyncio.sleep(min(backoff, MAX_BACKOFF_SECONDS))
                backoff *= cfg.retry.backoff_multiplier
        if answer is None or not 200 <= answer.status < 300:
            status = "no response" if answer is None else f"HTTP {answer.status}"
            message = f"{request.method} {request.url} failed after {len(attempts)} attempt(s): {status}"
            raise _error(message, "api_call_failed", artifact, secrets)
        try:
            output = _parse_final(answer)
        except BlockError as exc:
            raise _error(str(exc), exc.code, artifact, secrets) from exc
        return Produced(
            outputs={"output-json-0": HandleValue(type="json", data=redact(output, secrets.values()))},
            artifact=redact(artifact, secrets.values()),
        )

    async def _attempt(
        self,
        cfg: ApiCallConfig,
        request: _Request,
        number: int,
        attempts: list[dict[str, Any]],
        artifact: dict[str, Any],
        secrets: Mapping[str, str],
    ) -> Answer | None:
        started = datetime.now(UTC)
        clock = time.perf_counter()
        trace: dict[str, Any] = {
            "attempt_number": number,
            "request_method": request.method,
            "request_url": request.url,
            "request_headers": {
                k: ("***" if k.lower() in _REDACTED_HEADERS else v) for k, v in request.headers.items()
            },
            "request_body": request.body,
            "started_at": started.isoformat(),
        }
        attempts.append(trace)
        answer: Answer | None = None
        try:
            answer = await self.egress.send(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                timeout=cfg.timeout_seconds,
                sensitive=frozenset(request.secret_headers(secrets)),
            )
            trace.update(
                response_status=answer.status,
                response_headers=dict(answer.headers),
                response_body=_lenient_body(answer),
                redirects=answer.redirects,
            )
        except EgressDenied as exc:
            trace["error"] = {"message": str(exc), "error_code": "egress_denied"}
            details = {"host": exc.host, "rule": exc.rule, "address": exc.address}
            raise _error(str(exc), "egress_denied", artifact, secrets, details) from None
        except ResponseTooLarge as exc:
            trace["error"] = {"message": str(exc), "error_code": "response_too_large"}
            raise _error(str(exc), "response_too_large", artifact, secrets) from None
        except httpx.HTTPError as exc:
            trace["error"] = {"message": f"{type(exc).__name__}: {exc}", "error_code": "transport_error"}
        finally:
            trace["duration_ms"] = int((time.perf_counter() - clock) * 1000)
            trace["completed_at"] = datetime.now(UTC).isoformat()
        return answer

    async def _recorded(self, key: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = (await self.store.get_json(key)).data
        except NotFound:
            return None
        return record

    async def _record(self, inp: ExecuteBlockInput, key: str, outcome: dict[str, Any]) -> None:
        """Write the outcome before anything else may fail; if it cannot be written, the step fails for good.

        A storage outage is retried with backoff for the run's storage budget, within the activity's own time
        limit; past either the step fails with `api_call_unrecorded` rather than letting a retry send again.
        """
        deadline = time.monotonic() + min(inp.storage_retry_budget_seconds, _activity_time_left())
        delay = RECORD_FIRST_BACKOFF_SECONDS
        attempt = 0
        while True:
            attempt += 1
            try:
                await refuse_if_deleted(self.store, inp.run.project_id, inp.run.run_id)
                await self.store.put_json(key, outcome)
                return
            except ApplicationError:
                raise  # the run was deleted: nothing is recorded
            except Exception as exc:  # any storage failure: the call must not be sent again
                log.warning("api_call outcome not recorded", attempt=attempt, error=type(exc).__name__)
                if time.monotonic() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_MAX_BACKOFF_SECONDS)
        raise BlockError(
            "the call was answered but its outcome could not be stored; it is not sent again",
            code="api_call_unrecorded",
        )


def _render(cfg: ApiCallConfig, data: Any, idempotency_key: str, secrets: Mapping[str, str]) -> _Request:
    """The request of one call: the config's templates filled from the input and the project's secrets."""
    try:
        url = httpx.URL(render_url(cfg.url, data, secrets))
        params = {k: _text(render_template(v, data, secrets)) for k, v in cfg.query.items()}
        headers = {k: _text(render_template(v, data, secrets)) for k, v in cfg.headers.items()}
        body = render_template(cfg.body, data, secrets) if cfg.body is not None else None
    except UnknownSecretError as exc:
        raise BlockError(str(exc), code="unknown_secret", details={"secret": exc.name}) from exc
    except TemplateError as exc:
        raise BlockError(f"config template: {exc}", code="template_error", details={"path": exc.path}) from exc
    bad = [k for k, v in headers.items() if any(c in v for c in "\r\n\0")]
    if bad:
        raise BlockError(f"header {bad[0]!r}: a value may not contain line breaks", code="template_error")
    lower = {k.lower() for k in headers}
    if "idempotency-key" not in lower:
        headers["Idempotency-Key"] = idempotency_key
    content: bytes | None = None
    if isinstance(body, str):
        content = body.encode()
    elif body is not None:
        content = json.dumps(body, ensure_ascii=False).encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
    return _Request(cfg.method, str(url.copy_merge_params(params)) if params else str(url), headers, content, body)


def _error(
    message: str,
    code: str,
    artifact: dict[str, Any],
    secrets: Mapping[str, str],
    details: dict[str, Any] | None = None,
) -> BlockError:
    """A step error whose message, details and trace carry none of the project's secret values."""
    artifact["error"] = {"message": message}
    safe = redact({"message": message, "details": {**(details or {}), "artifact": artifact}}, secrets.values())
    return BlockError(safe["message"], code=code, details=safe["details"])


def _activity_time_left() -> float:
    """Seconds left before this activity's start-to-close timeout, less a margin (unbounded outside one)."""
    if not activity.in_activity():
        return float("inf")
    info = activity.info()
    if info.start_to_close_timeout is None:
        return float("inf")
    ends = info.started_time + info.start_to_close_timeout
    return (ends - datetime.now(UTC)).total_seconds() - RECORD_TIMEOUT_MARGIN_SECONDS


@dataclass
class _Request:
    """A rendered request; its secrets are resolved, so it never leaves the activity un-redacted."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    body: Any

    def secret_headers(self, secrets: Mapping[str, str]) -> list[str]:
        """Headers whose value holds a secret: dropped on a redirect to another origin."""
        values = [v for v in secrets.values() if v]
        return [k.lower() for k, v in self.headers.items() if any(s in v for s in values)]


def _replay(recorded: dict[str, Any]) -> Produced:
    """The outcome a previous attempt recorded, without sending the request again."""
    error = recorded.get("error")
    if error is not None:
        raise BlockError(error["message"], code=error["code"], details=error.get("details") or {})
    return Produced(
        outputs={"output-json-0": HandleValue(type="json", data=recorded["output"])}, artifact=recorded["artifact"]
    )


def _parse_final(answer: Answer) -> Any:
    """The 2xx body as JSON (or text when it is not JSON); a JSON body that cannot be used is a step error."""
    media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    declared_json = media == "application/json" or media.endswith("+json")
    text = answer.body.decode(_charset(answer), errors="replace")
    try:
        value = json.loads(text)
    except RecursionError:
        raise BlockError(
            f"the 2xx answer is JSON nested too deeply to read (limit {MAX_JSON_DEPTH} levels)",
            code="response_unreadable",
        ) from None
    except ValueError as exc:
        if declared_json:
            raise BlockError(f"the 2xx answer is not valid JSON: {exc}", code="response_unreadable") from None
        return text
    if _depth(value) > MAX_JSON_DEPTH:
        raise BlockError(
            f"the 2xx answer is JSON nested more than {MAX_JSON_DEPTH} levels deep", code="response_unreadable"
        )
    return value


def _lenient_body(answer: Answer) -> Any:
    """The body for the trace: JSON when it reads as reasonable JSON, else text."""
    try:
        return _parse_final(answer)
    except BlockError:
        return answer.body[:2048].decode(_charset(answer), errors="replace")


def _charset(answer: Answer) -> str:
    content_type = str(answer.headers.get("content-type", ""))
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        charset = value.strip('"')
        if name.lower() == "charset" and charset:
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
