"""The review pages under `/review/`, for reviewers holding a link (api/review_access.py), not an API key.

    GET  /review/l/{token}                             the link: kept in a cookie, then the page without it
    GET  /review/p/{project}/                          the queue (a queue link)
    GET  /review/p/{project}/r/{review}/               one review (?version=rvr_… shows another version)
    GET  /review/p/{project}/r/{review}/pages/{n}.png  page n of the review's document
    POST /review/p/{project}/r/{review}/versions       save a corrected snapshot as a version   (JSON)
    POST /review/p/{project}/r/{review}/approve        approve a version                        (JSON)
    POST /review/p/{project}/r/{review}/reject         reject a version, with a reason          (JSON)
    GET  /review/assets/review.js|review.css           the pages' own script and style

Actions call the API's own services (`Reviews.create_version`, `Decisions.decide`): the same checks, records and
Workflow Update as `POST /v1/workflows/reviews/…`. A review the link does not reach, in another project or absent,
is 403 alike, so a link tells nothing of other reviews. Pages are HTML (errors too); actions answer JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from api.errors import ApiError, InvalidError, NotFoundError
from api.review_access import LinkForbidden, authorize, check_action, exchange
from api.review_html import error_page, queue_page, review_page
from api.review_pages import ReviewPages
from api.reviews_service import CreateReviewVersion
from api.routes.reviews import decisions_of, reviews_of
from api.runs_service import Runs
from docflow.review_links import Claims, link_id
from docflow.reviews import Actor

router = APIRouter(prefix="/review", include_in_schema=False)
STATIC = Path(__file__).resolve().parents[1] / "review_static"
ASSETS = {"review.js": "text/javascript", "review.css": "text/css"}
# Our pages load only our own files; nothing may frame them; no Referer leaves them.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Id = Annotated[str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


class Named(BaseModel):
    """Who acts: the name the reviewer typed (optional)."""

    reviewer: str | None = Field(default=None, max_length=200)


class SaveVersion(Named):
    """A corrected snapshot of the review, on top of `parent_id`."""

    parent_id: str = Field(min_length=1, max_length=100)
    snapshot: dict[str, Any]
    note: str | None = Field(default=None, max_length=10_000)


class Approve(Named):
    """Approve this version."""

    version_id: str = Field(min_length=1, max_length=100)


class Reject(Named):
    """Reject this version, with a reason."""

    version_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=10_000)


def pages_of(request: Request) -> ReviewPages:
    """The page reads bound to the app's clients."""
    state = request.app.state
    return ReviewPages(
        reviews_of(request), Runs(state.store, state.temporal, state.settings), state.store, state.settings
    )


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


async def _page(render: Callable[[], Awaitable[str]]) -> HTMLResponse:
    """A page, or its error as a page with the error's status."""
    try:
        return _html(await render())
    except ApiError as exc:
        return _html(error_page(exc.status, exc.message), exc.status)


async def _reach(request: Request, project: str, review: str) -> tuple[Claims, str]:
    """The link that reaches this review: in scope and the review in the link's project; 403 otherwise."""
    claims, token = authorize(request, project, review)
    try:
        await reviews_of(request).get(claims.project_id, review)
    except NotFoundError:
        raise LinkForbidden("your reviewer link does not open this page") from None
    return claims, token


def _author(token: str, named: Named) -> Actor:
    name = named.reviewer.strip() if named.reviewer else ""
    return Actor(kind="human", id=link_id(token), display_name=name or "reviewer (link)")


@router.get("/l/{token}")
async def open_link(request: Request, token: Annotated[str, PathParam(max_length=1024)]) -> Response:
    """Open a reviewer link."""
    try:
        return exchange(request, token)
    except ApiError as exc:
        return _html(error_page(exc.status, exc.message), exc.status)


@router.get("/p/{project}/")
async def queue(request: Request, project: Id, after: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    """The project's waiting reviews, oldest first."""

    async def render() -> str:
        claims, _ = authorize(request, project, None)
        settings = request.app.state.settings
        rows, more = await pages_of(request).queue(claims.project_id, after)
        return queue_page(rows, claims.project_id, more, settings.review_page_likelihood_threshold)

    return await _page(render)


@router.get("/p/{project}/r/{review}/")
async def review(
    request: Request, project: Id, review: Id, version: Annotated[str | None, Query(max_length=100)] = None
) -> Response:
    """One review, beside its document."""

    async def render() -> str:
        claims, _ = await _reach(request, project, review)
        threshold = request.app.state.settings.review_page_likelihood_threshold
        view = await pages_of(request).view(claims.project_id, review, version)
        # A snapshot may be megabytes: its form is built off the event loop.
        return await asyncio.to_thread(review_page, view, claims, threshold)

    return await _page(render)


@router.get("/p/{project}/r/{review}/pages/{page}.png")
async def page_image(request: Request, project: Id, review: Id, page: Annotated[int, PathParam(ge=1)]) -> Response:
    """One page of the review's document, rendered on the server."""
    claims, _ = await _reach(request, project, review)
    png = await pages_of(request).page_image(claims.project_id, review, page)
    return Response(png, media_type="image/png", headers={**HEADERS, "Cache-Control": "private, max-age=300"})


@router.post("/p/{project}/r/{review}/versions", status_code=201)
async def save_version(request: Request, project: Id, review: Id, body: SaveVersion) -> dict[str, Any]:
    """Save an edit as a new version of the review (the API's `POST /reviews/versions`)."""
    check_action(request)
    claims, token = await _reach(request, project, review)
    create = CreateReviewVersion(review_id=review, parent_id=body.parent_id, snapshot=body.snapshot, note=body.note)
    version, _ = await reviews_of(request).create_version(claims.project_id, create, _author(token, body))
    return version.public()


@router.post("/p/{project}/r/{review}/approve")
async def approve(request: Request, project: Id, review: Id, body: Approve) -> dict[str, Any]:
    """Approve a version: the run goes on with it (the API's `POST /reviews/{id}/approve`)."""
    check_action(request)
    claims, token = await _reach(request, project, review)
    decisions = decisions_of(request)
    return await decisions.decide(claims.project_id, review, "approved", body.version_id, None, _author(token, body))


@router.post("/p/{project}/r/{review}/reject")
async def reject(request: Request, project: Id, review: Id, body: Reject) -> dict[str, Any]:
    """Reject a version with a reason (the API's `POST /reviews/{id}/reject`)."""
    check_action(request)
    claims, token = await _reach(request, project, review)
    reason = body.reason.strip()
    if not reason:
        raise InvalidError("reason: a rejection needs a non-empty reason", code="invalid_request", field="reason")
    decisions = decisions_of(request)
    return await decisions.decide(claims.project_id, review, "rejected", body.version_id, reason, _author(token, body))


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    """The pages' own script and style."""
    if name not in ASSETS:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})
