"""The SDK's workflow endpoints docflow has not built yet: a clear 501 instead of a bare 404.

Registered before the resource routers, so `/tests/runs` is not read as a test id (api.routes.tests has
the tests themselves).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request

from api.errors import ApiError

router = APIRouter(include_in_schema=False)

# Path prefixes under /v1/workflows, each with what it is for.
UNBUILT = {
    "evals": "block tests and test runs",
    "experiments": "experiments",
    "blocks/versions": "block versions",
    "edges/versions": "edge versions",
    "versions/diff": "version diffs",
    "runs/export": "run exports",
}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class NotBuiltError(ApiError):
    """501: an endpoint of the wire contract that is not built yet."""

    status = 501
    code = "not_built"


def _refuse(what: str) -> Callable[[Request], Awaitable[None]]:
    async def refuse(request: Request) -> None:
        raise NotBuiltError(f"{what} is not built yet in docflow", path=request.url.path)

    return refuse


for prefix, what in UNBUILT.items():
    router.add_api_route(f"/{prefix}", _refuse(what), methods=_METHODS)
    router.add_api_route(f"/{prefix}/{{rest:path}}", _refuse(what), methods=_METHODS)
