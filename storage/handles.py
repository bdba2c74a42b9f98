"""The claim check of handle values: JSON over the inline limit lives in S3 and the value carries its key.

One place for both directions, used by block activities, review decisions and block executions alike:
`offload` stores a large JSON value at the given key (`{"data": …}`) and returns the reference; `load` returns
a value with its data inline again. Documents are references already and pass through.
"""

from __future__ import annotations

import json

from docflow.runs import HandleValue
from storage.objects import ObjectStore


async def load(store: ObjectStore, value: HandleValue) -> HandleValue:
    """The value with its JSON inline (read from S3 when it was claim-checked)."""
    if value.data_ref is None:
        return value
    data = (await store.get_json(value.data_ref)).data
    return value.model_copy(update={"data": data["data"], "data_ref": None})


async def offload(store: ObjectStore, value: HandleValue, key: str, limit_bytes: int) -> HandleValue:
    """The value as it travels: JSON over `limit_bytes` (serialised) stored at `key`, the rest as it is."""
    if value.type != "json" or len(json.dumps(value.data, default=str)) <= limit_bytes:
        return value
    await store.put_json(key, {"data": value.data})
    return value.model_copy(update={"data": None, "data_ref": key})
