"""Record the history of a real run into tests/histories/, for the replay test.

Usage: python -m tests.record_history <run_id> <name>  (with DOCFLOW_* pointing at the stack that ran it)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from docflow.config import get_settings
from docflow.temporal import connect


async def record(run_id: str, name: str) -> Path:
    client = await connect(get_settings())
    history = await client.get_workflow_handle(run_id).fetch_history()
    path = Path(__file__).parent / "histories" / f"{name}.json"
    path.write_text(history.to_json())
    return path


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1], sys.argv[2])))
