"""Write-time check of a function block's user Python: it parses and defines `transform(input_data)`, else 422.

Parsing hostile code is CPU work: it runs in a thread, never on the event loop, on code FunctionConfig has
already capped in size (docflow.python_code).
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.errors import InvalidError
from docflow.python_code import code_issue


async def check_function_code(block_id: str, block_type: str, config: dict[str, Any] | None) -> None:
    """Raise a 422 naming `config.code` and the line when a function block's code cannot run."""
    code = (config or {}).get("code")
    if block_type != "function" or not isinstance(code, str):
        return  # absent or not text: the config model reports it
    issue = await asyncio.to_thread(code_issue, code)
    if issue is not None:
        raise InvalidError(
            f"Block '{block_id}' has an invalid config.code: {issue.message}.",
            code="invalid_config",
            block_id=block_id,
            field="config.code",
            line=issue.line,
        )
