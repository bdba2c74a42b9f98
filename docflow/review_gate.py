"""What a review gate reads from a block's result, and what its reviewer starts from: pure functions over the
artifacts `activities/executors.py` writes (extract, classifier, split).

`gate_input` builds the `GateInput` a predicate reads (docflow.review_inputs):

- extract: `data` is the output object, `json_schema` the block's, `validation_errors` the ways the output
  breaks that schema (docflow.schemas, patterns on RE2; at most 20, each `{"path", "message"}` with a path
  like `items[1].sku`), `likelihoods` the consensus likelihood tree (None without consensus);
- classifier: `data` is the seed snapshot `{"category": name}`; `category`, `likelihood` and `top_margin`
  as the artifact records them (the vote's share with consensus, the provider's scores without);
- split: `data` is the seed snapshot `{"documents": [...]}`; `splits` each with its 1-based pages, the
  likelihood of its name and its page likelihoods (the first one: that a new document starts there);
- `routing`: the handles a routing block took.

`seed_snapshot` is the data of a review's first version, the one a reviewer corrects: an extract's output
object, a classifier's `{"category": name}`, a split's `{"documents": [{"name", "pages"}]}` (pages 1-based,
sorted). `data` is that same snapshot, so a `json_condition` reads what the reviewer will see.

Validating a user schema is user-controlled computation: `gate_input` runs in the isolated executor
(`activities/isolated_tasks.py`, task "review_gate"), never on the worker's event loop.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import jsonschema

from docflow.blocks import BlockConfig, ExtractConfig
from docflow.review_inputs import GateInput, SplitInfo
from docflow.schemas import iter_errors

MAX_VALIDATION_ERRORS = 20


def gate_input(block_type: str, config: BlockConfig, artifact: dict[str, Any], routing: list[str] | None) -> GateInput:
    """What a predicate may read of this block's result (`artifact` as its executor wrote it)."""
    if block_type == "extract" and isinstance(config, ExtractConfig):
        consensus = artifact.get("consensus")
        return GateInput(
            block_type=block_type,
            data=artifact.get("output"),
            json_schema=config.json_schema,
            validation_errors=validation_errors(artifact.get("output"), config.json_schema),
            likelihoods=consensus.get("likelihoods") if isinstance(consensus, dict) else None,
            routing=routing,
        )
    gate = GateInput(block_type=block_type, data=seed_snapshot(block_type, artifact), routing=routing)
    if block_type == "classifier":
        gate.category = _output(artifact).get("category")
        gate.likelihood = _float(artifact.get("likelihood"))
        gate.top_margin = _float(artifact.get("top_margin"))
    elif block_type == "split":
        gate.splits = _splits(artifact)
    return gate


def gate_artifact(artifact: dict[str, Any]) -> dict[str, Any]:
    """The part of an artifact `gate_input` and `seed_snapshot` read (not the votes, usage or files)."""
    kept = {key: artifact[key] for key in ("output", "likelihood", "top_margin", "page_count") if key in artifact}
    consensus = artifact.get("consensus")
    if isinstance(consensus, dict) and "likelihoods" in consensus:
        kept["consensus"] = {"likelihoods": consensus["likelihoods"]}
    return kept


def seed_snapshot(block_type: str, artifact: dict[str, Any]) -> dict[str, Any]:
    """The data of a review's first version: what the block produced, in the shape a reviewer corrects."""
    if block_type == "classifier":
        return {"category": _output(artifact).get("category")}
    if block_type == "split":
        return {"documents": [{"name": s.name, "pages": s.pages} for s in _splits(artifact)]}
    output = artifact.get("output")
    return output if isinstance(output, dict) else {}


def validation_errors(instance: Any, schema: dict[str, Any]) -> list[dict[str, str]]:
    """The first ways `instance` breaks `schema`, each with its path (`items[1].sku`) and message."""
    try:
        found = list(islice(iter_errors(instance, schema), MAX_VALIDATION_ERRORS))
    except RecursionError:
        return [{"path": "", "message": "the value is nested too deeply to validate"}]
    except jsonschema.SchemaError as exc:
        return [{"path": "", "message": f"the schema cannot be used: {exc.message}"}]
    return [{"path": _path(error.absolute_path), "message": error.message} for error in found]


def _splits(artifact: dict[str, Any]) -> list[SplitInfo]:
    output = artifact.get("output")
    consensus = artifact.get("consensus")
    scores = consensus.get("likelihoods") if isinstance(consensus, dict) else None
    splits = []
    for i, part in enumerate(output if isinstance(output, list) else []):
        if not isinstance(part, dict):
            continue
        score = scores[i] if isinstance(scores, list) and i < len(scores) and isinstance(scores[i], dict) else {}
        pages = score.get("pages")
        splits.append(
            SplitInfo(
                name=str(part.get("name", "")),
                pages=sorted(p for p in part.get("pages", []) if isinstance(p, int)),
                likelihood=_float(score.get("name")),
                page_likelihoods=pages if isinstance(pages, list) and pages else None,
            )
        )
    return splits


def _output(artifact: dict[str, Any]) -> dict[str, Any]:
    output = artifact.get("output")
    return output if isinstance(output, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _path(parts: Any) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
