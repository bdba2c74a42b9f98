"""The S3 object store: JSON records and document bytes, with conditional writes.

boto3 blocks, so every call goes through `asyncio.to_thread`. Conditional writes (`If-None-Match: *`,
`If-Match: <etag>`) are what keep concurrent editors from overwriting each other; the store probes the
endpoint at start-up and refuses one that silently ignores them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel

from docflow.config import Settings
from docflow.ids import new_id

M = TypeVar("M", bound=BaseModel)


class StorageError(Exception):
    """Base of the store's errors."""


class NotFound(StorageError):
    """No object at that key."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists, or changed since it was read."""


class UnsafeEndpoint(StorageError):
    """The S3 endpoint ignores conditional writes, so concurrent edits could be lost."""


@dataclass(frozen=True)
class Versioned:
    """A JSON object and the ETag it was read at."""

    data: dict[str, Any]
    etag: str


class ObjectStore:
    """JSON records and bytes in one bucket."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
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
                max_pool_connections=32,
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

    def _get(self, key: str) -> tuple[bytes, str]:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise NotFound(key) from exc
            raise
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

    async def ensure_bucket(self) -> None:
        """Create the bucket if missing and check the endpoint honours conditional writes."""
        await asyncio.to_thread(self._ensure_bucket)
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
        return await asyncio.to_thread(self._put, key, body, content_type, **conditions)

    async def get_bytes(self, key: str) -> bytes:
        """Read bytes (NotFound if absent)."""
        body, _ = await asyncio.to_thread(self._get, key)
        return body

    async def put_json(self, key: str, value: Any, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write a JSON document (a pydantic model or plain data)."""
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return await self.put_bytes(key, body, "application/json", if_none_match=if_none_match, if_match=if_match)

    async def get_json(self, key: str) -> Versioned:
        """Read a JSON document and its ETag."""
        body, etag = await asyncio.to_thread(self._get, key)
        return Versioned(json.loads(body), etag)

    async def get_model(self, key: str, model: type[M]) -> M:
        """Read a JSON document into a model."""
        return model.model_validate((await self.get_json(key)).data)

    async def exists(self, key: str) -> bool:
        """Whether an object exists at the key."""
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    async def list_keys(self, prefix: str) -> list[str]:
        """All keys under a prefix, sorted."""
        return await asyncio.to_thread(self._list, prefix)

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
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete everything under a prefix; returns how many objects went."""
        return await asyncio.to_thread(self._delete_prefix, prefix)

    def presigned_put(self, key: str, content_type: str, expires: int = 900) -> str:
        """A presigned URL a client can PUT bytes to (with this Content-Type header)."""
        params = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        return str(self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=expires))

    async def size_of(self, key: str) -> int:
        """Size in bytes of a stored object (NotFound if absent)."""
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                raise NotFound(key) from exc
            raise
        return int(head["ContentLength"])


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
