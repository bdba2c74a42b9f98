"""Reviewer links, made with an API key: `POST /v1/workflows/review-links` for one review or the key's project queue.

The same link the `workflow.review.opened` webhook carries (its `data.review_url`); docs/review-page.md says how a
reviewer uses it. A review of another project is 404, as everywhere in the API.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import PrincipalDep
from api.review_access import link_secret
from api.routes.reviews import reviews_of
from docflow.config import Settings
from docflow.review_links import sign

router = APIRouter(tags=["reviews"])


class CreateReviewLink(BaseModel):
    """A link for one review, or (no `review_id`) for the project's whole queue."""

    review_id: str | None = Field(default=None, min_length=1, max_length=100)
    expires_in_seconds: int | None = Field(
        default=None, ge=60, le=90 * 24 * 3600, description="Default: the server's review_link_ttl_seconds"
    )


def link_url(settings: Settings, token: str) -> str:
    """Where a link's token is opened."""
    return f"{settings.api_url.rstrip('/')}/review/l/{token}"


@router.post("/review-links", status_code=201)
async def create_review_link(request: Request, body: CreateReviewLink, principal: PrincipalDep) -> dict[str, Any]:
    """A signed reviewer link: opens the review (or the project's queue) in a browser, without an API key, until it
    expires."""
    settings: Settings = request.app.state.settings
    if body.review_id is not None:
        await reviews_of(request).get(principal.project_id, body.review_id)
    expires = int(time.time()) + (body.expires_in_seconds or settings.review_link_ttl_seconds)
    token = sign(link_secret(request), principal.project_id, body.review_id, expires)
    return {
        "url": link_url(settings, token),
        "token": token,
        "project_id": principal.project_id,
        "review_id": body.review_id,
        "scope": "queue" if body.review_id is None else "review",
        "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
    }
