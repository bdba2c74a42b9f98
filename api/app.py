"""The FastAPI application: one router per resource, all under `/v1`, all behind an API key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi_offline import FastAPIOffline

from api.body_limit import BodyLimit
from api.deps import get_principal
from api.errors import install_error_handlers
from api.openapi import install_openapi
from api.review_access import redact_access_logs
from api.routes import (
    artifacts,
    blocks,
    edges,
    executions,
    files,
    review_links,
    review_page,
    reviews,
    runs,
    spec,
    steps,
    test_runs,
    tests,
    unbuilt,
    workflows,
)
from docflow.config import Settings, get_settings
from docflow.logging import configure_logging
from docflow.temporal import connect
from storage.objects import ObjectStore
from storage.payloads import external_storage


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API, wired to the settings' Temporal and S3."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ObjectStore(settings)
        await store.ensure_bucket()
        await store.probe_conditional_copy()  # completing a presigned upload copies server-side where it can
        app.state.store = store
        app.state.temporal = await connect(settings, external_storage(store, settings.payload_offload_bytes))
        yield

    # Docs assets are served by the API itself: a self-hosted, possibly offline, deployment has no CDN.
    app = FastAPIOffline(
        title="docflow",
        version="0.1.0",
        description="Durable document-processing workflows on Temporal; wire-compatible with Retab's workflows API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["x-request-id"] = rid
        return response

    # Added last, so it is the outermost of our middleware: it sees every body before anything reads it.
    app.add_middleware(BodyLimit, limit=settings.request_body_limit)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    secured = [Depends(get_principal)]
    # Flat routes (/workflows/runs, /workflows/reviews…) are registered before /workflows/{workflow_id}.
    for module in (
        unbuilt,
        spec,
        runs,
        steps,
        artifacts,
        reviews,
        executions,
        test_runs,
        tests,
        blocks,
        edges,
        workflows,
    ):
        app.include_router(module.router, prefix="/v1/workflows", dependencies=secured)
    app.include_router(files.router, prefix="/v1/files", dependencies=secured)
    app.include_router(review_links.router, prefix="/v1/workflows", dependencies=secured)
    # The review pages authorize by reviewer link, not API key (api/review_access.py).
    app.include_router(review_page.router)
    redact_access_logs()
    install_openapi(app)
    return app
