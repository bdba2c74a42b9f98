"""A config stored under older rules that no longer validates fails its step naming the field (never a retry)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from activities.errors import BlockError
from activities.executors import _config
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, RunContext


def _input(block_type: str, config: dict[str, Any]) -> ExecuteBlockInput:
    block = Block(id="b", workflow_id="wf", type=block_type, config=config, updated_at=datetime.now(UTC))
    run = RunContext(run_id="run_1", project_id="proj_1", workflow_id="wf", version_id="ver_1")
    return ExecuteBlockInput(run=run, block=block, step_id="b")


@pytest.mark.parametrize(
    ("block_type", "config", "field"),
    [
        ("extract", {"json_schema": {"type": "object", "properties": {}}, "n_consensus": 11}, "config.n_consensus"),
        ("classifier", {"categories": [{"name": "a"}], "n_consensus": 0}, "config.n_consensus"),
        ("split", {"subdocuments": [{"name": "a"}], "n_consensus": 12}, "config.n_consensus"),
    ],
)
def test_an_invalid_stored_config_is_a_step_error_naming_the_field(
    block_type: str, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(BlockError) as raised:
        _config(_input(block_type, config), block_type)
    assert raised.value.code == "invalid_config"
    assert raised.value.details["field"] == field
    assert field in str(raised.value)
