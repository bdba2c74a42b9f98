"""Reviewer links: a token signed with the server's secret that opens one review, or one project's queue, until it
expires. Pure (the clock and the secret are arguments), so the API and the webhook activity share it.

The rule of a token: `<payload>.<mac>`, both unpadded base64url; the payload is the compact JSON
`{"v": 1, "p": project_id, "r": review_id or null, "e": expiry in unix seconds}`; the mac is HMAC-SHA256 with the
secret over `docflow-review-link` + 0x1f + the payload's base64 text (the label keeps a link's mac from ever
standing for another use of the same secret). `verify` checks the mac in constant time before reading the
payload, then the expiry; anything that does not parse is refused the same way, never an exception of another kind.

A link's scope is its project and, for a review link, that review: `Claims.allows(project, review)` is the one
question every page and action asks. A queue link (no review) allows every review of its project; a review link
allows that review alone; neither allows anything of another project.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

_LABEL = b"docflow-review-link\x1f"
MAX_TOKEN_LENGTH = 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


class LinkRefused(ValueError):
    """A link that opens nothing: tampered, malformed, signed with another secret, or expired (`reason` says)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a valid link grants: one project's queue (`review_id` None) or one review of it, until `expires_at`."""

    project_id: str
    review_id: str | None
    expires_at: int

    def allows(self, project_id: str, review_id: str | None) -> bool:
        """Whether this link reaches that review (or, with `review_id` None, that project's queue)."""
        if project_id != self.project_id:
            return False
        return self.review_id is None or review_id == self.review_id

    @property
    def scope(self) -> str:
        """`queue` or `review`."""
        return "queue" if self.review_id is None else "review"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, _LABEL + payload.encode(), hashlib.sha256).digest()


def sign(secret: bytes, project_id: str, review_id: str | None, expires_at: int) -> str:
    """A token for one review (or the project's queue when `review_id` is None), valid until `expires_at`."""
    for value in (project_id, review_id):
        if value is not None and not _ID.fullmatch(value):
            raise ValueError(f"not an id: {value!r}")
    body = {"v": 1, "p": project_id, "r": review_id, "e": int(expires_at)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, token: str, now: float) -> Claims:
    """The claims of a token this secret signed and that has not expired at `now`; `LinkRefused` otherwise."""
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise LinkRefused("not a review link")
    payload, sep, mac = token.partition(".")
    if not sep:
        raise LinkRefused("not a review link")
    # The signature's text is compared, not its decoded bytes: base64 ignores the spare low bits of a last
    # character, so decoding would accept several spellings of one signature (an altered link would pass).
    if not hmac.compare_digest(mac.encode(), _b64(_mac(secret, payload)).encode()):
        raise LinkRefused("the link's signature does not match: it was altered or signed by another server")
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(project_id=body["p"], review_id=body["r"], expires_at=body["e"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise LinkRefused("not a review link") from None
    if body.get("v") != 1 or not isinstance(claims.expires_at, int) or not isinstance(claims.project_id, str):
        raise LinkRefused("not a review link")
    if claims.review_id is not None and not isinstance(claims.review_id, str):
        raise LinkRefused("not a review link")
    if now >= claims.expires_at:
        raise LinkRefused("the link has expired; ask for a new one")
    return claims


def link_id(token: str) -> str:
    """A short public name of a token (who decided, in records), which reveals nothing of the token."""
    return "link:" + hashlib.sha256(b"docflow-link-id\x1f" + token.encode()).hexdigest()[:16]
