"""docflow.webhooks: the signature rule (sign/verify), the event's shape and id, the endpoint setting."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from devstack.processes import settings_env
from docflow.config import Settings
from docflow.egress import EgressDenied, check
from docflow.webhooks import (
    REVIEW_DECIDED,
    REVIEW_OPENED,
    RUN_COMPLETED,
    WebhookEndpoint,
    WebhookInput,
    build_event,
    event_body,
    event_id,
    event_key,
    sign,
    verify,
)

SECRET = "whsec-0123456789abcdef"
BODY = b'{"id":"evt_1","type":"workflow.run.completed"}'
T = 1_790_000_000


def test_the_signature_is_hmac_sha256_over_t_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_verify_accepts_its_own_signature_within_the_tolerance() -> None:
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, tolerance_s=300, now=T)
    assert verify(SECRET, header, BODY, tolerance_s=300, now=T + 300)
    assert verify(SECRET, header, BODY, tolerance_s=300, now=T - 300)


@pytest.mark.parametrize("now", [T + 301, T - 301, T + 86_400])
def test_verify_refuses_a_timestamp_outside_the_tolerance(now: int) -> None:
    assert not verify(SECRET, sign(SECRET, T, BODY), BODY, tolerance_s=300, now=now)


def test_verify_refuses_another_body_secret_or_timestamp() -> None:
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY + b" ", now=T)
    assert not verify("whsec-another-secret-000", header, BODY, now=T)
    # The timestamp is signed: moving it (to pass the tolerance) breaks the signature.
    moved = header.replace(f"t={T}", f"t={T + 1000}")
    assert not verify(SECRET, moved, BODY, now=T + 1000)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={T}",
        "v1=abc",
        f"t=,v1={'0' * 64}",
        f"t=-{T},v1={'0' * 64}",
        f"t=１２,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=ünïcode",
        f"t={T},v1",
    ],
)
def test_verify_is_false_on_a_malformed_header(header: str) -> None:
    assert verify(SECRET, header, BODY, now=T) is False


def test_verify_accepts_any_matching_v1_entry() -> None:
    good = sign(SECRET, T, BODY).split(",v1=")[1]
    assert verify(SECRET, f"t={T},v1={'0' * 64},v1={good}", BODY, now=T)
    assert not verify(SECRET, f"t={T},v1={'0' * 64},v0={good}", BODY, now=T)


def test_event_ids_are_derived_so_a_retried_send_has_the_same_id() -> None:
    one = event_id("proj_a", REVIEW_OPENED, event_key("run_1", "rev_1"))
    assert one.startswith("evt_")
    assert one == event_id("proj_a", REVIEW_OPENED, event_key("run_1", "rev_1"))
    others = {
        event_id("proj_a", REVIEW_DECIDED, event_key("run_1", "rev_1")),
        event_id("proj_a", REVIEW_OPENED, event_key("run_1", "rev_2")),
        event_id("proj_a", REVIEW_OPENED, event_key("run_2", "rev_1")),
        event_id("proj_b", REVIEW_OPENED, event_key("run_1", "rev_1")),
        event_id("proj_a", RUN_COMPLETED, event_key("run_1")),
    }
    assert one not in others and len(others) == 5


def test_the_event_has_retabs_shape_with_the_project_as_organization() -> None:
    at = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    inp = WebhookInput(project_id="proj_a", event_type=RUN_COMPLETED, event_key="run_1", data={"run_id": "run_1"})
    event = build_event(inp, "production", at)
    body = json.loads(event_body(event))
    assert body == {
        "id": event_id("proj_a", RUN_COMPLETED, "run_1"),
        "type": "workflow.run.completed",
        "environment": "production",
        "organization_id": "proj_a",
        "created_at": "2026-11-26T19:00:00Z",
        "data": {"run_id": "run_1"},
    }
    # The time it happened, when the workflow gives it, wins over the activity's scheduling time.
    happened = datetime(2026, 11, 20, tzinfo=UTC)
    assert build_event(inp.model_copy(update={"occurred_at": happened}), "production", at).created_at == happened


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        WebhookInput(project_id="p", event_type="workflow.run.exploded", event_key="k")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "secret", "field"),
    [
        ("ftp://hooks.example/x", SECRET, "url"),
        ("https:///nohost", SECRET, "url"),
        ("https://user:pw@hooks.example/x", SECRET, "url"),
        ("https://hooks.example/x", "short", "secret"),
    ],
)
def test_a_bad_endpoint_setting_is_refused_at_start(url: str, secret: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(webhooks={"proj_a": {"url": url, "secret": secret}})  # type: ignore[dict-item]
    assert field in str(info.value)


def test_endpoints_come_from_the_environment_and_never_show_their_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"proj_a": {"url": "https://hooks.example/in?token=t0k", "secret": SECRET, "events": [RUN_COMPLETED]}}
    monkeypatch.setenv("DOCFLOW_WEBHOOKS", json.dumps(config))
    settings = Settings()
    endpoint = settings.webhooks["proj_a"]
    assert endpoint.secret.get_secret_value() == SECRET
    assert endpoint.wants(RUN_COMPLETED) and not endpoint.wants(REVIEW_OPENED)
    assert endpoint.public_url() == "https://hooks.example/in"
    assert SECRET not in repr(settings) and SECRET not in repr(endpoint)
    # A child process (the test stack's worker) gets them back whole.
    assert json.loads(settings_env(settings)["DOCFLOW_WEBHOOKS"]) == config


def test_an_endpoint_without_events_gets_every_type() -> None:
    endpoint = WebhookEndpoint.model_validate({"url": "http://127.0.0.2:9/x", "secret": SECRET})
    assert all(endpoint.wants(t) for t in (REVIEW_OPENED, REVIEW_DECIDED, RUN_COMPLETED))


def test_webhook_egress_allow_opens_an_address_to_webhooks_only() -> None:
    settings = Settings(egress_allow="127.0.0.2/32", webhook_egress_allow="10.1.2.0/24, hooks.internal")
    internal = [ipaddress.ip_address("10.1.2.3")]
    check("10.1.2.3", internal, settings.webhook_egress_allowlist)
    check("hooks.internal", [ipaddress.ip_address("10.9.9.9")], settings.webhook_egress_allowlist)
    check("127.0.0.2", [ipaddress.ip_address("127.0.0.2")], settings.webhook_egress_allowlist)  # egress_allow too
    with pytest.raises(EgressDenied):
        check("10.1.2.3", internal, settings.egress_allowlist)  # api_call's rule is unchanged
    with pytest.raises(EgressDenied):
        check("10.1.3.1", [ipaddress.ip_address("10.1.3.1")], settings.webhook_egress_allowlist)
    with pytest.raises(ValidationError, match="webhook_egress_allow"):
        Settings(webhook_egress_allow="not a cidr/")
