"""A block's review gate after it ran: its config, the predicate's evaluation, and what a reviewer starts from.

Built by `Executors.review_gate` (the evaluation runs in the isolated executor); the block activity opens a
review when `fired`. The corrected data a reviewer saves later is checked against what is kept here: an
extract's `output_schema`, a classifier's `categories`, a split's `subdocuments` and `page_count` (None when
the artifact does not say how many pages the document has).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docflow.blocks import BlockConfig, ClassifierConfig, ExtractConfig, SplitConfig
from docflow.review_gate import seed_snapshot
from docflow.review_models import ReviewConfig
from docflow.review_predicates import Evaluation


@dataclass(frozen=True)
class ReviewGate:
    """A gate's config and evaluation, the seed version's data, and what a corrected version must fit."""

    config: ReviewConfig
    evaluation: Evaluation
    snapshot: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    categories: list[str] | None = None
    subdocuments: list[str] | None = None
    page_count: int | None = None

    @property
    def fired(self) -> bool:
        """Whether the block's output waits for a person."""
        return self.evaluation.fired


def review_gate_of(
    block_type: str, config: BlockConfig, review: ReviewConfig, evaluation: Evaluation, artifact: dict[str, Any]
) -> ReviewGate:
    """The gate of a block that ran, from its config, its artifact and the predicate's evaluation."""
    snapshot = seed_snapshot(block_type, artifact)
    if isinstance(config, ExtractConfig):
        return ReviewGate(review, evaluation, snapshot, output_schema=config.json_schema)
    if isinstance(config, ClassifierConfig):
        return ReviewGate(review, evaluation, snapshot, categories=[c.name for c in config.categories])
    if isinstance(config, SplitConfig):
        count = artifact.get("page_count")
        pages = count if isinstance(count, int) and not isinstance(count, bool) else None
        names = [d.name for d in config.subdocuments]
        return ReviewGate(review, evaluation, snapshot, subdocuments=names, page_count=pages)
    return ReviewGate(review, evaluation, snapshot)
