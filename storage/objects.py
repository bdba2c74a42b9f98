"""The S3 object store: JSON records and document bytes, with conditional writes.

boto3 blocks, so every call runs on the store's own thread pool: a stalled S3 server then holds only those
threads, never the worker's default executor that other work (user evaluation, PDF parsing) relies on.
Failures of the storage service itself (connection refused, timeouts, 5xx) surface as `StorageUnavailable`,
which callers retry with backoff; a caller with a deadline (a local activity) sets `storage_deadline` and a
call still waiting at the deadline fails with `StorageUnavailable` too, naming the operation and key.
Conditional writes (`If-None-Match: *`,
`If-Match: <etag>`) are what keep concurrent editors from overwriting each other; the store probes the
endpoint at start-up and refuses one that silently ignores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from docflow.config import Settings
from docflow.ids import new_id

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# The event-loop time by which a store call must have answered (set by callers that have a deadline).
_deadline: ContextVar[float | None] = ContextVar("docflow_storage_deadline", default=None)


class StorageError(Exception):
    """Base of the store's errors."""


class NotFound(StorageError):
    """No object at that key."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists, or changed since it was read."""


class StorageUnavailable(StorageError):
    """The storage service failed or did not answer in time: infrastructure, worth retrying with backoff."""


class UnsafeEndpoint(StorageError):
    """The S3 endpoint ignores conditional writes, so concurrent edits could be lost."""


@dataclass(frozen=True)
class Versioned:
    """A JSON object and the ETag it was read at."""

    data: dict[str, Any]
    etag: str


class ObjectStore:
    """JSON records and bytes in one bucket."""

    # Set by `probe_conditional_copy`: whether server-side copies honour their conditions.
    copies_conditionally = False

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self._pool = ThreadPoolExecutor(max_workers=settings.s3_max_threads, thread_name_prefix="s3")
        self._client = self._new_client(settings, settings.s3_endpoint)
        # Presigned URLs are signed for the host clients reach, which may differ from the internal one.
        public = settings.s3_public_endpoint
        self._presigner = self._client if not public else self._new_client(settings, public)

    @staticmethod
    def _new_client(settings: Settings, endpoint: str) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=settings.s3_connect_timeout_seconds,
                read_timeout=settings.s3_read_timeout_seconds,
                max_pool_connections=max(32, settings.s3_max_threads),
            ),
        )

    # -- sync core -------------------------------------------------------------------------------

    def _put(self, key: str, body: bytes, content_type: str, **conditions: str) -> str:
        try:
            resp = self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **conditions,
            )
        except ClientError as exc:
            if _code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
                raise PreconditionFailed(key) from exc
            raise
        return str(resp["ETag"])

    def _get_object(self, key: str) -> Any:
        """boto3's GetObject answer, its body not read yet (NotFound if absent)."""
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(key) from exc
            raise

    def _get(self, key: str) -> tuple[bytes, str]:
        resp = self._get_object(key)
        return resp["Body"].read(), str(resp["ETag"])

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def _delete_prefix(self, prefix: str) -> int:
        keys = self._list(prefix)
        for chunk in _chunks(keys, 1000):
            self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
        return len(keys)

    # -- async API -------------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking boto3 call on the store's pool; storage failures become `StorageUnavailable`."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        deadline = _deadline.get()
        try:
            if deadline is None:
                return await future
            remaining = deadline - asyncio.get_running_loop().time()
            return await asyncio.wait_for(future, max(remaining, 0.0))
        except TimeoutError as exc:
            raise StorageUnavailable(f"storage did not answer in time ({what})") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"storage unavailable ({what}): {exc}") from exc
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500 or _code(exc) in {"SlowDown", "ServiceUnavailable", "InternalError"}:
                raise StorageUnavailable(f"storage unavailable ({what}): {_code(exc) or status}") from exc
            raise

    async def ensure_bucket(self) -> None:
        """Create the bucket if missing and check the endpoint honours conditional writes."""
        await self._call("create bucket", self._ensure_bucket)
        await self.probe_conditional_writes()

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    async def probe_conditional_writes(self) -> None:
        """Refuse an endpoint that silently ignores `If-None-Match` / `If-Match`."""
        key = f"_probe/{new_id('p')}"
        etag = await self.put_bytes(key, b"1", if_none_match=True)
        try:
            try:
                await self.put_bytes(key, b"2", if_none_match=True)
            except PreconditionFailed:
                pass
            else:
                raise UnsafeEndpoint("the S3 endpoint ignored If-None-Match: * (conditional writes)")
            try:
                await self.put_bytes(key, b"3", if_match='"0000"')
            except PreconditionFailed:
                pass
            else:
                raise UnsafeEndpoint("the S3 endpoint ignored If-Match (conditional writes)")
            del etag
        finally:
            await self.delete(key)

    async def put_bytes(
        self,
        key: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        *,
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write bytes; with `if_none_match` only if absent, with `if_match` only if unchanged."""
        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match
        return await self._call(f"put {key}", self._put, key, body, content_type, **conditions)

    async def get_bytes(self, key: str) -> bytes:
        """Read bytes (NotFound if absent)."""
        body, _ = await self._call(f"get {key}", self._get, key)
        return body

    async def put_json(self, key: str, value: Any, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write a JSON document (a pydantic model or plain data)."""
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return await self.put_bytes(key, body, "application/json", if_none_match=if_none_match, if_match=if_match)

    async def get_json(self, key: str) -> Versioned:
        """Read a JSON document and its ETag."""
        body, etag = await self._call(f"get {key}", self._get, key)
        return Versioned(json.loads(body), etag)

    async def get_model(self, key: str, model: type[M]) -> M:
        """Read a JSON document into a model."""
        return model.model_validate((await self.get_json(key)).data)

    async def exists(self, key: str) -> bool:
        """Whether an object exists at the key."""
        try:
            await self._call(f"head {key}", self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    async def list_keys(self, prefix: str) -> list[str]:
        """All keys under a prefix, sorted."""
        return await self._call(f"list {prefix}", self._list, prefix)

    async def list_etags(self, prefix: str) -> dict[str, str]:
        """Every key under a prefix with its ETag (quotes stripped), from the listing alone: no object is read."""
        return await asyncio.to_thread(self._list_etags, prefix)

    def _list_etags(self, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.update({obj["Key"]: obj["ETag"].strip('"') for obj in page.get("Contents", [])})
        return found

    async def delete(self, key: str) -> None:
        """Delete one object (absent is fine)."""
        await self._call(f"delete {key}", self._client.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete everything under a prefix; returns how many objects went."""
        return await self._call(f"delete {prefix}", self._delete_prefix, prefix)

    def presigned_put(self, key: str, content_type: str, expires: int = 900) -> str:
        """A presigned URL a client can PUT bytes to (with this Content-Type header)."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        return str(self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=expires))

    async def size_of(self, key: str) -> int:
        """Size in bytes of a stored object (NotFound if absent)."""
        try:
            head = await self._call(f"head {key}", self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(key) from exc
            raise
        return int(head["ContentLength"])

    # -- streamed reads, conditional copies, streamed writes (uploads) -------------------------------
    # Documents never pass through memory whole: a completion hashes the staging object chunk by chunk
    # and copies it server-side; a multipart upload is put from its spooled file; a download streams.

    def _hash_object(self, key: str, limit: int, sink: IO[bytes] | None) -> Digest:
        resp = self._get_object(key)
        body = resp["Body"]
        try:
            if int(resp.get("ContentLength", 0)) > limit:
                raise TooLarge(key)
            digest, size = hashlib.sha256(), 0
            while chunk := body.read(STREAM_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(key)
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
        return Digest(digest.hexdigest(), size, str(resp["ETag"]))

    def _copy_if_absent(self, source: str, target: str, source_etag: str) -> bool:
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceIfMatch=source_etag,
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) not in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
                raise
            # One of two conditions failed: the target exists (kept as it is) or the source changed since it
            # was verified (refused).
            try:
                self._client.head_object(Bucket=self.bucket, Key=target)
            except ClientError as head_exc:
                if _code(head_exc) in _MISSING:
                    raise PreconditionFailed(source) from exc
                raise
            return False
        return True

    async def hash_object(self, key: str, limit: int, sink: IO[bytes] | None = None) -> Digest:
        """sha256 and size of an object, read in chunks (NotFound if absent, TooLarge past `limit` bytes).

        With a `sink`, the chunks are also written to it: the bytes hashed are exactly the bytes kept.
        """
        return await self._call(f"read {key}", self._hash_object, key, limit, sink)

    async def copy_if_absent(self, source: str, target: str, *, source_etag: str) -> bool:
        """Copy server-side, only if `target` is absent and `source` is still at `source_etag`.

        True if copied, False if the target existed (left untouched); PreconditionFailed if the source changed.
        """
        return await self._call(f"copy {source} to {target}", self._copy_if_absent, source, target, source_etag)

    async def iter_bytes(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, never held whole (NotFound before the first chunk if absent)."""
        resp = await self._call(f"get {key}", self._get_object, key)
        body = resp["Body"]
        try:
            while chunk := await self._call(f"read {key}", body.read, STREAM_CHUNK):
                yield chunk
        finally:
            body.close()

    async def put_file(
        self, key: str, fileobj: IO[bytes], content_type: str = "application/octet-stream", *, if_none_match: bool
    ) -> str:
        """Write a seekable file's bytes, streamed from it; with `if_none_match` only if absent."""
        conditions = {"IfNoneMatch": "*"} if if_none_match else {}
        fileobj.seek(0)
        return await self._call(f"put {key}", self._put, key, fileobj, content_type, **conditions)

    def presigned_put_exact(self, key: str, content_type: str, size: int, expires: int) -> str:
        """A presigned PUT URL whose signature covers Content-Length: S3 refuses a body of any other size."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size}
        return str(self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=expires))

    async def probe_conditional_copy(self) -> bool:
        """Whether CopyObject honours `If-None-Match: *` and `x-amz-copy-source-if-match`; remembered.

        Until probed, or where it does not, callers stream the bytes through a conditional put instead.
        """
        source, target = f"_probe/{new_id('p')}", f"_probe/{new_id('p')}"
        etag = await self.put_bytes(source, b"1")
        await self.put_bytes(target, b"2")
        try:
            honoured = not await self.copy_if_absent(source, target, source_etag=etag)
            await self.delete(target)
            try:
                await self.copy_if_absent(source, target, source_etag='"0000"')
                honoured = False
            except PreconditionFailed:
                pass
        finally:
            await self.delete(source)
            await self.delete(target)
        self.copies_conditionally = honoured
        return honoured


@contextlib.contextmanager
def storage_deadline(seconds: float) -> Iterator[None]:
    """Store calls made inside this block (in this task) fail with `StorageUnavailable` after `seconds`."""
    token = _deadline.set(asyncio.get_running_loop().time() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


STREAM_CHUNK = 256 * 1024


class TooLarge(StorageError):
    """The object is bigger than the caller's limit (reading stopped there)."""


@dataclass(frozen=True)
class Digest:
    """What a streamed read found: sha256, size, and the ETag of the version that was read."""

    sha256: str
    size: int
    etag: str
