"""Who may see and decide on the review pages: the holder of a reviewer link (`docflow.review_links`), no API key.

The link is exchanged once for an HTTP-only cookie (docs/review-page.md says why): `GET /review/l/<token>` checks
the token, sets the cookie `docflow_review` to the token itself and redirects to the page without it. The cookie's
path is the link's scope, `/review/p/<project>/` for a queue link and `/review/p/<project>/r/<review>/` for a review
link, so one browser holding links to several reviews keeps them all and sends each only where it applies; its
`Max-Age` ends with the link. Every request under `/review/p/` is then checked again from the cookie (signature,
expiry, scope): a page, a page image, saving a version, approving, rejecting. A link of project A never reaches
project B: the project in the path must be the link's, and the review is looked up in the link's project only.

The token is in a URL once, at the link: uvicorn's access log writes that path with the token redacted
(`redact_access_logs`, installed by the app).

Cross-site requests: the cookie is `SameSite=Lax` (a link clicked in a mail client still opens the page; a
cross-site POST does not carry it), the actions accept only `application/json` bodies (a form on another site
cannot send one without a CORS preflight, which we never answer), and a request whose `Origin` is not ours is
refused.
"""

from __future__ import annotations

import logging
import re
import time

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from api.errors import ApiError
from docflow.config import Settings
from docflow.review_links import Claims, LinkRefused, verify
from storage.link_secret import LinksNotConfigured, review_link_secret

COOKIE = "docflow_review"
PREFIX = "/review"


class LinkForbidden(ApiError):
    """403: no reviewer link for this page, or one that is expired, altered or for another project or review."""

    status = 403
    code = "forbidden"


class LinksOff(ApiError):
    """503: reviewer links are not configured on this server."""

    status = 503
    code = "review_links_not_configured"


def link_secret(request: Request) -> bytes:
    """The signing secret, read once per app."""
    state = request.app.state
    secret: bytes | None = getattr(state, "review_link_secret", None)
    if secret is None:
        settings: Settings = state.settings
        try:
            secret = review_link_secret(settings)
        except LinksNotConfigured as exc:
            raise LinksOff(str(exc)) from exc
        state.review_link_secret = secret
    return secret


def scope_path(claims: Claims) -> str:
    """The pages a link opens: its project's queue, or one review of it."""
    base = f"{PREFIX}/p/{claims.project_id}/"
    return base if claims.review_id is None else f"{base}r/{claims.review_id}/"


def exchange(request: Request, token: str) -> Response:
    """Check a link, keep it in an HTTP-only cookie scoped to its pages, and send the browser there."""
    try:
        claims = verify(link_secret(request), token, time.time())
    except LinkRefused as exc:
        raise LinkForbidden(exc.reason) from None
    path = scope_path(claims)
    response = RedirectResponse(path, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(1, claims.expires_at - int(time.time())),
        path=path,
        httponly=True,
        samesite="lax",
        # Behind a TLS-terminating proxy the request arrives as http: the public base URL tells.
        secure=request.url.scheme == "https" or request.app.state.settings.api_url.startswith("https://"),
    )
    return response


def _cookie_tokens(request: Request) -> list[str]:
    """Every `docflow_review` cookie the browser sent (one per scope path), most specific path first."""
    found: list[str] = []
    for part in request.headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and value:
            found.append(value.strip('"'))
    return found[:20]


def authorize(request: Request, project_id: str, review_id: str | None) -> tuple[Claims, str]:
    """The link that opens this project's review (or queue, `review_id` None), and its token; 403 otherwise."""
    secret = link_secret(request)
    refused = "this page needs a reviewer link; open the link you were sent"
    now = time.time()
    for token in _cookie_tokens(request):
        try:
            claims = verify(secret, token, now)
        except LinkRefused as exc:
            refused = exc.reason
            continue
        if claims.allows(project_id, review_id):
            return claims, token
        refused = "your reviewer link does not open this page"
    raise LinkForbidden(refused)


def check_action(request: Request) -> None:
    """An action (save, approve, reject) comes from our own page: a JSON body, and our Origin when one is sent."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise LinkForbidden("actions take a JSON body, sent by the review page")
    origin = request.headers.get("origin")
    if origin is not None and origin != _own_origin(request):
        raise LinkForbidden("a review action from another site is refused")


def _own_origin(request: Request) -> str:
    url = request.url
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = "" if url.port in (None, default) else f":{url.port}"
    return f"{url.scheme}://{url.hostname}{port}"


class RedactLinkTokens(logging.Filter):
    """Access logs name a link's path without its token: a log line must not be a way into a review."""

    _TOKEN = re.compile(r"(/review/l/)[^/?#\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self._redact(record.msg)
        return True

    def _redact(self, text: str) -> str:
        return self._TOKEN.sub(r"\1<redacted>", text)


def redact_access_logs() -> None:
    """Keep reviewer-link tokens out of uvicorn's access log (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactLinkTokens) for f in access.filters):
        access.addFilter(RedactLinkTokens())
