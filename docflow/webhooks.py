"""Webhook notifications: the event a project's endpoint receives, how it is signed, and how a receiver checks it.

The event (NOTES.md §10) is `{id, type, environment, organization_id, created_at, data}`; `organization_id` is
the project id. Types: `workflow.review.opened`, `workflow.review.decided`, and when a run ends
`workflow.run.completed` / `workflow.run.failed` / `workflow.run.cancelled`. The id (`evt_…`) is derived from
the project, the type and the event's key (the run id, plus the review id for review events), so every retry
of one notification carries the same id and a receiver dedupes on it.

The rule of the signature: `X-Retab-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
over the exact body bytes sent; `X-Retab-Environment` names the deployment's environment. A receiver recomputes
the HMAC over the raw body it read, compares in constant time, and refuses a `t` farther from its own clock than
its tolerance, so an old delivery replayed later is refused (`verify`).

Where endpoints are configured: operator settings, `DOCFLOW_WEBHOOKS` =
`{"<project_id>": {"url": "...", "secret": "...", "events": [...]}}` (`events` optional: all when absent), read
by the worker only. Why there and not in user config:
- A project gets only its own events: the endpoint is looked up by the project id the run belongs to, and there
  is no endpoint for all projects (it would receive every tenant's data).
- The URL is a request the server makes, so the operator picks it and it still goes through the egress guard;
  an internal receiver is opened by `DOCFLOW_WEBHOOK_EGRESS_ALLOW`, for webhooks only (`DOCFLOW_EGRESS_ALLOW`
  would open it to every project's api_call too).
- The signing secret never enters workflow input, history or logs: the activity reads it from its settings. It
  is the endpoint's own value, not a `DOCFLOW_SECRETS` name: the project's own api_call may template those names
  (`{{ secrets.NAME }}`) and send them where it likes, and a signing secret a tenant can read signs nothing.
A per-workflow endpoint (Retab's End/Webhook node) would need per-project secret storage docflow does not have.

Pure: no I/O here, so the workflow imports `WebhookInput` and the activity does the sending.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from docflow.ids import derived_id

EVENT = "evt_"
REVIEW_OPENED = "workflow.review.opened"
REVIEW_DECIDED = "workflow.review.decided"
RUN_COMPLETED = "workflow.run.completed"
RUN_FAILED = "workflow.run.failed"
RUN_CANCELLED = "workflow.run.cancelled"
EventType = Literal[
    "workflow.review.opened",
    "workflow.review.decided",
    "workflow.run.completed",
    "workflow.run.failed",
    "workflow.run.cancelled",
]
SIGNATURE_HEADER = "X-Retab-Signature"
ENVIRONMENT_HEADER = "X-Retab-Environment"
DEFAULT_TOLERANCE_SECONDS = 300
MIN_SECRET_LENGTH = 16


class WebhookEndpoint(BaseModel):
    """One project's endpoint (operator config): where its events go, the signing secret, which events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: SecretStr = Field(repr=False)
    events: list[EventType] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook URL is http:// or https:// with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("a webhook URL carries no credentials (the signature authenticates the sender)")
        return value

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"a webhook secret has at least {MIN_SECRET_LENGTH} characters")
        return value

    def wants(self, event_type: str) -> bool:
        """True when this endpoint subscribes to the event type."""
        return self.events is None or event_type in self.events

    def public_url(self) -> str:
        """The URL without its query, for records and logs (a query may carry a token)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


class WebhookInput(BaseModel):
    """The SendWebhook activity's input: what happened, to which project; never a URL or a secret."""

    project_id: str
    event_type: EventType
    # What the event id derives from: `event_key(run_id)` or `event_key(run_id, review_id)`.
    event_key: str
    data: dict[str, Any] = Field(default_factory=dict)
    # When it happened (workflow time); default: when the activity was first scheduled, the same on every retry.
    occurred_at: datetime | None = None


class WebhookEvent(BaseModel):
    """The body a receiver gets (NOTES.md §10)."""

    id: str
    type: EventType
    environment: str
    organization_id: str
    created_at: datetime
    data: dict[str, Any]


DeliveryOutcome = Literal["pending", "delivered", "failed", "refused"]
# What the activity returns; a failed attempt raises instead (Temporal retries it).
SendResult = Literal["delivered", "refused", "not_configured", "not_subscribed"]


class DeliveryAttempt(BaseModel):
    """One POST: the HTTP status (None when there was no answer), the error, when, how long."""

    attempt: int
    status: int | None = None
    error: str | None = None
    at: datetime
    duration_ms: int


class DeliveryRecord(BaseModel):
    """Every attempt of one event's delivery and where it stands (`keys.webhook_delivery`)."""

    event_id: str
    type: EventType
    project_id: str
    url: str
    outcome: DeliveryOutcome = "pending"
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


def event_key(run_id: str, review_id: str | None = None) -> str:
    """The key an event id derives from: the run, and the review for review events."""
    return run_id if review_id is None else f"{run_id}/{review_id}"


def event_id(project_id: str, event_type: str, key: str) -> str:
    """The event's id: the same for every send of one notification."""
    return derived_id(EVENT, project_id, event_type, key)


def build_event(inp: WebhookInput, environment: str, created_at: datetime) -> WebhookEvent:
    """The event for an activity input."""
    return WebhookEvent(
        id=event_id(inp.project_id, inp.event_type, inp.event_key),
        type=inp.event_type,
        environment=environment,
        organization_id=inp.project_id,
        created_at=inp.occurred_at or created_at,
        data=inp.data,
    )


def event_body(event: WebhookEvent) -> bytes:
    """The bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(event.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False).encode()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Retab-Signature` value: `t=<timestamp>,v1=<hex HMAC-SHA256 over "<t>.<body>">`."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when the header signs this body with this secret and its `t` is within `tolerance_s` of `now`.

    Any `v1=` entry may match (a sender rotating secrets may send two); the compare is constant-time. A header
    that does not parse is False, never an exception.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    matched = False
    for candidate in candidates:  # every candidate is compared, so timing does not tell which one matched
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    return matched
