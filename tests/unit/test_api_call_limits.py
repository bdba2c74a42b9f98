"""The api_call activity's time limit: every attempt at its timeout, plus the capped waits between attempts."""

from __future__ import annotations

from datetime import UTC, datetime

from docflow.blocks import api_call_time_budget
from docflow.models import Block
from workflows.options import block_timeout


def test_the_time_limit_covers_every_attempt_and_wait() -> None:
    retry = {"max_attempts": 4, "initial_backoff_seconds": 20, "backoff_multiplier": 3}
    config = {"url": "https://api.example.com/x", "timeout_seconds": 10, "retry": retry}
    # 4 attempts × 10 s; waits 20, 60, 60 (each capped at 60 s)
    assert api_call_time_budget(config) == 40 + 140
    block = Block(id="c", workflow_id="wf", type="api_call", config=config, updated_at=datetime.now(UTC))
    assert block_timeout(block).total_seconds() == 40 + 140 + 60  # and a minute to record outcome and step


def test_the_defaults_give_a_limit() -> None:
    assert api_call_time_budget({}) == 3 * 30 + 0.5 + 1.0
