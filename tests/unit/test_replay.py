"""Saved histories of real runs replay against the current workflow code: a change that would break
running workflows fails here, not in production. Regenerate with `python -m tests.record_history`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from docflow.temporal import data_converter
from worker import workflow_runner
from workflows.loop_batch import LoopBatchWorkflow, LoopWorkflow
from workflows.run import RunWorkflow

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[RunWorkflow, LoopWorkflow, LoopBatchWorkflow],
        data_converter=data_converter(),
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflow(history)


def test_there_are_histories_to_replay() -> None:
    assert HISTORIES, "no saved histories under tests/histories"
