"""Errors of the API and their one mapping to HTTP: `{"detail": {"code", "message", "details"}}`.

    ApiError                 any error a client can act on; `details` names the field or block
     ├── NotFoundError       404: absent, or belongs to another project
     ├── ConflictError       409: a concurrent write won, a duplicate id, a gate not open
     ├── InvalidError        422: a field or the graph is wrong
     ├── TooLargeError       413: over the upload limit
     └── UnavailableError    503: a service the request needs did not answer; retry

Storage and Temporal errors are mapped here by type, never by message text: an object store that fails or
does not answer (`StorageUnavailable`) and a Temporal RPC failure are 503s the client may retry. The
framework's own HTTP errors (unknown path 404, wrong method 405, unreadable body 400) get the same shape.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from storage.objects import NotFound, PreconditionFailed, StorageUnavailable

log = structlog.get_logger("docflow.api")


class ApiError(Exception):
    """An error with an HTTP status, a stable code and the failing field or block in `details`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = {k: v for k, v in details.items() if v is not None}


class UnauthorizedError(ApiError):
    """401: no key, or a key we do not know."""

    status = 401
    code = "unauthorized"


class NotFoundError(ApiError):
    """404: absent, or in another project."""

    status = 404
    code = "not_found"


class ConflictError(ApiError):
    """409: the state changed under the request."""

    status = 409
    code = "conflict"


class InvalidError(ApiError):
    """422: a field or the graph is invalid."""

    status = 422
    code = "invalid"


class TooLargeError(ApiError):
    """413: the upload is over the limit."""

    status = 413
    code = "too_large"


class UnavailableError(ApiError):
    """503: a service (a worker, Temporal) did not answer in time; nothing changed, the client may retry."""

    status = 503
    code = "unavailable"


def _body(status: int, code: str, message: str, details: dict[str, Any]) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": {"code": code, "message": message, "details": details}})


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """Map every error type to its HTTP answer."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path")), "message": e["msg"]}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return _body(422, "invalid_request", message, {"field": first["field"], "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own answers (unknown path, wrong method, a body it could not read) in our shape. Its
        # only 400 is a request body it failed to decode for a reason other than a JSON syntax error (which is
        # a 422 above): a body nested deeper than the decoder's recursion limit, say.
        if exc.status_code == 400:
            message = "body: could not be read (not valid JSON, or nested too deeply)"
            return _body(400, "invalid_request", message, {"field": "body"})
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        answer = _body(exc.status_code, code, str(exc.detail), {})
        answer.headers.update(exc.headers or {})
        return answer

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _body(404, "not_found", "not found", {})

    @app.exception_handler(PreconditionFailed)
    async def _precondition(request: Request, exc: PreconditionFailed) -> JSONResponse:
        return _body(409, "conflict", "the resource changed concurrently; read it again and retry", {})

    @app.exception_handler(StorageUnavailable)
    async def _storage(request: Request, exc: StorageUnavailable) -> JSONResponse:
        # Infrastructure, not the request: a 503 the client may retry (the message names no key or data).
        log.error("storage unavailable", path=request.url.path, error=str(exc))
        return _body(503, "storage_unavailable", "the object store failed to answer; retry later", {})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input: log it whole, answer without internals, with the id to find the log line.
        request_id = request.headers.get("x-request-id")
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return _body(
            500, "internal_error", "internal error; the server log has the details", {"request_id": request_id}
        )

    @app.exception_handler(RPCError)
    async def _rpc(request: Request, exc: RPCError) -> JSONResponse:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return _body(404, "not_found", "not found", {})
        if exc.status == RPCStatusCode.ALREADY_EXISTS:
            return _body(409, "conflict", exc.message, {})
        log.error("temporal error", status=exc.status.name, message=exc.message)
        return _body(503, "temporal_unavailable", "the workflow service failed to answer", {})
