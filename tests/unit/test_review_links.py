"""Reviewer links (docflow.review_links): signed for a scope, refused when expired, altered or signed elsewhere."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from api.review_access import RedactLinkTokens
from docflow.config import Settings
from docflow.review_links import Claims, LinkRefused, link_id, sign, verify
from storage.link_secret import LinksNotConfigured, review_link_secret

SECRET = b"s" * 32
NOW = 1_800_000_000


def _payload(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return body


def _with_payload(token: str, body: dict) -> str:
    head = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{head}.{token.split('.')[1]}"


def test_a_review_link_opens_that_review_of_its_project_only() -> None:
    claims = verify(SECRET, sign(SECRET, "proj_a", "rev_1", NOW + 60), NOW)
    assert claims == Claims("proj_a", "rev_1", NOW + 60) and claims.scope == "review"
    assert claims.allows("proj_a", "rev_1")
    assert not claims.allows("proj_a", "rev_2")
    assert not claims.allows("proj_a", None)  # not the queue
    assert not claims.allows("proj_b", "rev_1")


def test_a_queue_link_opens_every_review_of_its_project_and_nothing_of_another() -> None:
    claims = verify(SECRET, sign(SECRET, "proj_a", None, NOW + 60), NOW)
    assert claims.scope == "queue"
    assert claims.allows("proj_a", None) and claims.allows("proj_a", "rev_anything")
    assert not claims.allows("proj_b", None) and not claims.allows("proj_b", "rev_anything")


def test_a_link_expires_at_its_expiry() -> None:
    token = sign(SECRET, "proj_a", "rev_1", NOW + 60)
    assert verify(SECRET, token, NOW + 59.9).review_id == "rev_1"
    for at in (NOW + 60, NOW + 10_000):
        with pytest.raises(LinkRefused, match="expired"):
            verify(SECRET, token, at)


def test_a_tampered_payload_or_signature_is_refused() -> None:
    token = sign(SECRET, "proj_a", "rev_1", NOW + 60)
    body = _payload(token)
    for changed in ({**body, "p": "proj_b"}, {**body, "r": None}, {**body, "r": "rev_2"}, {**body, "e": NOW + 10**6}):
        with pytest.raises(LinkRefused, match="signature"):
            verify(SECRET, _with_payload(token, changed), NOW)
    head, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for bad in (f"{head}.{flipped}", f"{head}.", head, "", "a.b.c", "é.é", "x" * 5000, f"{head}.{mac}x"):
        with pytest.raises(LinkRefused):
            verify(SECRET, bad, NOW)


@pytest.mark.parametrize("n", range(24))
def test_another_spelling_of_the_same_signature_is_refused(n: int) -> None:
    """A 32-byte MAC leaves 2 spare bits in its last base64 character: every other spelling is refused."""
    token = sign(SECRET, f"proj_{n}", None, NOW + 60)
    head, mac = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    for spare in (1, 2, 3):
        other = alphabet[(last & ~3) | ((last + spare) & 3)]
        assert base64.urlsafe_b64decode(mac[:-1] + other + "=") == base64.urlsafe_b64decode(mac + "=")
        with pytest.raises(LinkRefused, match="signature"):
            verify(SECRET, f"{head}.{mac[:-1]}{other}", NOW)


def test_a_link_signed_with_another_secret_is_refused() -> None:
    token = sign(b"t" * 32, "proj_a", "rev_1", NOW + 60)
    with pytest.raises(LinkRefused, match="signature"):
        verify(SECRET, token, NOW)


def test_ids_that_are_not_ids_are_not_signed() -> None:
    for project, review in (("proj a", None), ("proj_a", "rev/../x"), ("", None)):
        with pytest.raises(ValueError):
            sign(SECRET, project, review, NOW)


def test_a_link_id_names_the_token_without_revealing_it() -> None:
    token = sign(SECRET, "proj_a", "rev_1", NOW + 60)
    assert link_id(token).startswith("link:") and token not in link_id(token)
    assert link_id(token) != link_id(sign(SECRET, "proj_a", "rev_1", NOW + 61))


def test_the_dev_secret_is_generated_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = review_link_secret(settings)
    assert len(first) >= 32 and review_link_secret(Settings(data_dir=tmp_path)) == first
    path = tmp_path / "review-link-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    configured = Settings(data_dir=tmp_path, review_link_secret="c" * 32)
    assert review_link_secret(configured) == b"c" * 32


def test_production_without_a_secret_has_no_links(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, environment="production", s3_secret_key="real-secret")
    with pytest.raises(LinksNotConfigured, match="DOCFLOW_REVIEW_LINK_SECRET"):
        review_link_secret(settings)
    assert not (tmp_path / "review-link-secret").exists()
    with pytest.raises(ValueError):
        Settings(review_link_secret="short")


def test_access_logs_name_a_link_without_its_token() -> None:
    token = sign(SECRET, "proj_a", "rev_1", NOW + 60)
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/review/l/{token}", "1.1", 303),
        None,
    )
    assert RedactLinkTokens().filter(record)
    line = record.getMessage()
    assert token not in line and token.split(".")[1] not in line
    assert line == '127.0.0.1:5 - "GET /review/l/<redacted> HTTP/1.1" 303'
