"""Temporal's own claim check (`ExternalStorage` with the SDK's S3 driver), over our object store.

Block outputs are already stored in S3 by the activities above `inline_output_limit_bytes`; this is the safety
net behind that for any other payload over the SDK's threshold (experimental in the SDK). The driver's client
is our `ObjectStore`, so no second S3 stack (aioboto3) is needed.
"""

from __future__ import annotations

from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.converter import ExternalStorage

from storage.objects import NotFound, ObjectStore

PAYLOAD_PREFIX = "temporal-payloads/"


class ObjectStorePayloads(S3StorageDriverClient):
    """The SDK driver's S3 client, backed by `ObjectStore` (boto3 off the event loop)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        """Store a payload."""
        await self.store.put_bytes(PAYLOAD_PREFIX + key, data)

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        """Whether a payload is stored."""
        return await self.store.exists(PAYLOAD_PREFIX + key)

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        """Read a payload back."""
        try:
            return await self.store.get_bytes(PAYLOAD_PREFIX + key)
        except NotFound as exc:
            raise FileNotFoundError(f"payload {key} is not in the object store") from exc


def external_storage(store: ObjectStore, threshold_bytes: int = 256 * 1024) -> ExternalStorage:
    """Offload payloads over the threshold to the object store."""
    driver = S3StorageDriver(client=ObjectStorePayloads(store), bucket=store.bucket)
    return ExternalStorage(drivers=[driver], payload_size_threshold=threshold_bytes)
