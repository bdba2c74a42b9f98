"""The SendWebhook activity: POST one signed event to its project's endpoint, through the egress guard, recorded.

- A project without an endpoint (`DOCFLOW_WEBHOOKS`), or whose endpoint does not subscribe to the type, gets
  nothing: `not_configured` / `not_subscribed`, no record.
- The event and its signature are built here (`docflow.webhooks`): the secret never leaves this activity, and
  the workflow's input carries only the project, the type, the key the id derives from and the data.
- One POST per attempt, through `activities.egress.Egress` (address rule, pinned address, capped body) with the
  `webhook_timeout_seconds` limit. Its allowlist is `egress_allow` plus `webhook_egress_allow`: an operator opens
  an internal receiver to webhooks without opening it to every project's api_call.
- A 2xx is delivered. Anything else (another status, no answer, a redirect: the egress client follows it, but
  the event did not arrive where it was sent) raises, and Temporal retries the activity with backoff
  (`workflows.options.WEBHOOK_RETRY`); the signature is made per attempt, with that attempt's time.
- An address the egress rule refuses is `refused`: recorded, returned, never retried (a retry cannot fix it).
- Each attempt and where the delivery stands are recorded in S3 (`keys.webhook_delivery`): `pending` while it
  is retried, `failed` after the retry policy's last attempt, `delivered`. An attempt that finds the event
  already delivered (a worker lost between the answer and completing the activity) returns without sending.
  The record is written after the POST; if that write fails, the outcome still stands (a delivered event is
  not sent again for a missing record) and the failure is logged.
- A `workflow.review.opened` event carries `data.review_url`, a reviewer link to that review (docflow.review_links),
  signed here with the link secret, so no workflow input or history holds it. Its expiry counts from when the event
  happened, so every retry sends the same body. Without a link secret (production unconfigured) there is no link.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.egress import Egress, ResponseTooLarge
from docflow import keys
from docflow.config import Settings
from docflow.egress import EgressDenied
from docflow.review_links import sign as sign_link
from docflow.webhooks import (
    ENVIRONMENT_HEADER,
    REVIEW_OPENED,
    SIGNATURE_HEADER,
    DeliveryAttempt,
    DeliveryRecord,
    SendResult,
    WebhookEndpoint,
    WebhookEvent,
    WebhookInput,
    build_event,
    event_body,
    sign,
)
from storage.link_secret import LinksNotConfigured, review_link_secret
from storage.objects import NotFound, ObjectStore
from workflows.activity_names import SEND_WEBHOOK

log = structlog.get_logger("docflow.webhooks")
USER_AGENT = "docflow-webhooks/1"


class WebhookSender:
    """Sends webhook events, with the object store and the settings (endpoints, egress rule) injected."""

    def __init__(self, store: ObjectStore, settings: Settings, egress: Egress | None = None) -> None:
        self.store = store
        self.endpoints = dict(settings.webhooks)
        self.environment = settings.environment
        self.timeout = settings.webhook_timeout_seconds
        self.egress = egress or Egress(settings.webhook_egress_allowlist, settings.egress_max_response_bytes)
        self.settings = settings
        self._link_secret: bytes | None = None  # read at the first review event; b"" when links are off

    @activity.defn(name=SEND_WEBHOOK)
    async def send(self, inp: WebhookInput) -> SendResult:
        """Deliver one event; raises on a failed attempt so Temporal retries it."""
        endpoint = self.endpoints.get(inp.project_id)
        if endpoint is None:
            return "not_configured"
        if not endpoint.wants(inp.event_type):
            return "not_subscribed"
        info = activity.info()
        event = build_event(inp, self.environment, info.scheduled_time)
        self._add_review_link(event)
        key = keys.webhook_delivery(inp.project_id, event.id)
        record = await self._record(key, event, endpoint)
        if record.outcome == "delivered":
            return "delivered"
        attempt, refused = await self._post(endpoint, event, info.attempt)
        record.attempts.append(attempt)
        delivered = attempt.error is None and attempt.status is not None and 200 <= attempt.status < 300
        last = _last_attempt(info)
        record.outcome = "delivered" if delivered else "refused" if refused else "failed" if last else "pending"
        await self._save(key, record)
        log.info(
            "webhook attempt",
            event_id=event.id,
            type=event.type,
            project_id=inp.project_id,
            attempt=attempt.attempt,
            status=attempt.status,
            outcome=record.outcome,
        )
        if delivered:
            return "delivered"
        if refused:
            return "refused"
        raise ApplicationError(
            f"webhook {event.id} to {endpoint.public_url()} not delivered (attempt {attempt.attempt}): "
            f"{attempt.error or f'HTTP {attempt.status}'}",
            type="WebhookNotDelivered",
        )

    async def _post(self, endpoint: WebhookEndpoint, event: WebhookEvent, number: int) -> tuple[DeliveryAttempt, bool]:
        """One signed POST: the attempt as recorded, and whether the egress rule refused it."""
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(endpoint.secret.get_secret_value(), int(time.time()), body),
            ENVIRONMENT_HEADER: self.environment,
        }
        at = datetime.now(UTC)
        clock = time.perf_counter()
        status: int | None = None
        error: str | None = None
        refused = False
        try:
            answer = await self.egress.send(
                "POST",
                endpoint.url,
                headers=headers,
                content=body,
                timeout=self.timeout,
                sensitive=frozenset({SIGNATURE_HEADER.lower()}),
            )
            status = answer.status
            if answer.redirects:
                # The egress client follows redirects (a POST's 302 becomes a GET): the event did not arrive.
                error = f"the endpoint redirected (to {answer.redirects[0]}); a redirect is not a delivery"
        except EgressDenied as exc:
            error, refused = str(exc), True
        except (httpx.HTTPError, ResponseTooLarge) as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration = int((time.perf_counter() - clock) * 1000)
        return DeliveryAttempt(attempt=number, status=status, error=error, at=at, duration_ms=duration), refused

    def _add_review_link(self, event: WebhookEvent) -> None:
        """A review's opening event carries a reviewer link to it (`review_url`), when links are configured."""
        review = event.data.get("review_id")
        if event.type != REVIEW_OPENED or not isinstance(review, str):
            return
        if self._link_secret is None:
            try:
                self._link_secret = review_link_secret(self.settings)
            except LinksNotConfigured:
                self._link_secret = b""
        secret = self._link_secret
        if not secret:
            return
        expires = int(event.created_at.timestamp()) + self.settings.review_link_ttl_seconds
        token = sign_link(secret, event.organization_id, review, expires)
        event.data = {**event.data, "review_url": f"{self.settings.api_url.rstrip('/')}/review/l/{token}"}

    async def _record(self, key: str, event: WebhookEvent, endpoint: WebhookEndpoint) -> DeliveryRecord:
        """The event's delivery record so far, or a new one (a storage error raises: nothing was sent yet)."""
        try:
            return await self.store.get_model(key, DeliveryRecord)
        except NotFound:
            return DeliveryRecord(
                event_id=event.id, type=event.type, project_id=event.organization_id, url=endpoint.public_url()
            )

    async def _save(self, key: str, record: DeliveryRecord) -> None:
        try:
            await self.store.put_json(key, record)
        except Exception as exc:  # any storage failure: the POST happened, its outcome stands
            log.warning("webhook delivery not recorded", event_id=record.event_id, error=type(exc).__name__)


def _last_attempt(info: activity.Info) -> bool:
    """True when the retry policy allows no further attempt after this one."""
    policy = info.retry_policy
    return policy is not None and policy.maximum_attempts > 0 and info.attempt >= policy.maximum_attempts
