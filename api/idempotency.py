"""Idempotency keys: a key is bound to the request it first came with, and a creation survives a crash.

A creating request with an `Idempotency-Key` claims `keys.idempotency()` with `If-None-Match`, before it
writes anything else. The claim records a hash of the request (canonical JSON of the route's scope, the
project and the body) and what the request is about to create (`intent`). Then:

- the same key with the same request is a retry: it gets the resource the first one made, and where a
  crash stopped the first one part way, it finishes the creation from the claim (roll forward);
- the same key with another request is refused (422 `idempotency_key_reused`) and nothing changes: a
  client that reuses a key by mistake must not get, or damage, what the first request made;
- a claim is marked `done` once its resource exists, so a retry after the resource was deleted does not
  bring it back.

Keys are stored as their sha256 (any header value is safe in an S3 key) and scoped by route and project.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.errors import InvalidError
from docflow import keys
from docflow.ids import fingerprint
from storage.objects import ObjectStore, PreconditionFailed

HEADER = "Idempotency-Key"
RUNS = "runs.create"
WORKFLOWS = "workflows.create"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """A key's record: the request it is bound to, what it creates, and whether that is done."""

    key: str
    request_hash: str
    intent: dict[str, Any]
    done: bool
    etag: str


def request_hash(scope: str, project_id: str, body: Any) -> str:
    """The hash a key is bound to: canonical JSON of the route's scope, the project and the body."""
    return fingerprint({"scope": scope, "project_id": project_id, "body": body})


def content_digest(value: str) -> str:
    """A large string (a data URL) stands in a request hash as its sha256, not copied whole."""
    return hashlib.sha256(value.encode()).hexdigest()


async def claim(store: ObjectStore, project_id: str, scope: str, key: str, body: Any, intent: dict[str, Any]) -> Claim:
    """Bind the key to this request (`body`, as JSON), or find the binding; 422 if it was bound to another."""
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidError(
            f"{HEADER}: at most {MAX_KEY_LENGTH} characters", code="invalid_idempotency_key", field=HEADER
        )
    req_hash = request_hash(scope, project_id, body)
    record_key = keys.idempotency(project_id, scope, hashlib.sha256(key.encode()).hexdigest())
    record: dict[str, Any] = {"request_hash": req_hash, "intent": intent, "state": "pending", "created_at": _now()}
    try:
        etag = await store.put_json(record_key, record, if_none_match=True)
    except PreconditionFailed:
        found = await store.get_json(record_key)
        record, etag = found.data, found.etag
    if record["request_hash"] != req_hash:
        raise InvalidError(
            f"{HEADER}: this key was first used with a different request; send a new key for a new request",
            code="idempotency_key_reused",
            field=HEADER,
        )
    return Claim(record_key, req_hash, record["intent"], record.get("state") == "done", etag)


async def complete(store: ObjectStore, found: Claim) -> None:
    """Mark the claim's resource as made, so a retry after the resource is deleted does not remake it."""
    if found.done:
        return
    record = {"request_hash": found.request_hash, "intent": found.intent, "state": "done", "completed_at": _now()}
    with contextlib.suppress(PreconditionFailed):  # a concurrent retry marked it first
        await store.put_json(found.key, record, if_match=found.etag)


def _now() -> str:
    return datetime.now(UTC).isoformat()
