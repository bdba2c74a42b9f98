"""Consensus: K independent answers (votes) merged into one, with the share of votes behind each part.

Extraction outputs merge field by field (NOTES.md §7); the kind of a field comes from its JSON schema
(`type`, local `$ref`, the non-null branch of `anyOf`/`oneOf`) or else from the votes' values:

- booleans, enums (`enum` or `const` in the schema) and values of mixed types: majority by exact value;
- numbers: clustered within 3 %, the largest cluster's mean; strings: clustered by similarity over
  normalised views, the largest cluster's medoid (the rules are in `docflow.agreement`);
- objects: field by field; arrays: items aligned into rows (`docflow.alignment`), then merged row by row.
  Arrays of scalars are multisets: an item is kept when at least half the votes holding the array contain
  it (an agreeing value), wherever it stands. Rows are ordered by the median of their relative positions
  (position / length) in the votes that have them, then by the earliest vote and position.

Presence first: an object or array stands when at least half the votes have one there (values beat None on
ties); its fields or rows then merge among the votes that have it. A row of an array stands when at least
half of those votes have an item in it. Values of another type than the field's count as disagreeing.

Likelihood: each leaf of `likelihoods` (a tree mirroring `value`) is the share of all K votes that agree
with the chosen value (for numbers and strings, the votes in the winning cluster); votes that are null,
miss the field, or miss the enclosing object or row count in the denominator. A null chosen by majority
has the share of null votes. An empty object or array has an empty likelihood tree.

Tie rule (deterministic): the larger group wins; on equal size a value beats None; among values the group
containing the earliest vote wins (for clusters, the earliest centre). Categories follow the same rule.
Splits: the chosen set is the medoid vote, the vote whose set of exact {name, pages} splits is closest to
the others (summed Jaccard), then the one whose splits overlap the others most (summed best page IoU per
same-name split), then the earliest. Each split's likelihood is the share of votes containing exactly that
{name, pages}.

Bounds: at most 10 votes (`MAX_VOTES`); values nested deeper than 32 levels merge as one leaf by exact
majority; strings compare on their first 2,000 characters; arrays align fuzzily up to 50 items a vote and
exactly beyond (see `docflow.alignment`). The work is then O(K² · size of one vote), with K ≤ 10.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from docflow.agreement import (
    canonical,
    is_number,
    largest_cluster,
    number_value,
    numbers_agree,
    string_medoid,
    strings_agree,
)
from docflow.alignment import align

MAX_VOTES = 10
MAX_DEPTH = 32
_REF_HOPS = 16


@dataclass(frozen=True)
class Consensus:
    value: Any
    likelihoods: Any


@dataclass(frozen=True)
class CategoryConsensus:
    category: str | None
    likelihood: float
    margin: float
    choices: list[str | None]


@dataclass(frozen=True)
class SplitConsensus:
    splits: list[dict[str, Any]]
    likelihoods: list[dict[str, Any]]
    choices: list[list[dict[str, Any]]]


def merge_votes(votes: list[Any], schema: dict[str, Any] | None = None) -> Consensus:
    """Merge K extraction outputs per the module docstring; raise ValueError for 0 or more than 10 votes."""
    _check_count(votes)
    root = schema or {}
    value, likelihoods = _Merge(len(votes), root).node(list(votes), root, 0)
    return Consensus(value=value, likelihoods=likelihoods)


def merge_categories(votes: list[str | None]) -> CategoryConsensus:
    """The majority category, its share of the votes and its margin over the runner-up (None counts)."""
    _check_count(votes)
    groups: dict[str | None, list[int]] = {}
    for index, vote in enumerate(votes):
        groups.setdefault(vote, []).append(index)
    ranked = sorted(groups.items(), key=lambda group: (-len(group[1]), group[0] is None, group[1][0]))
    share = len(ranked[0][1]) / len(votes)
    runner_up = len(ranked[1][1]) / len(votes) if len(ranked) > 1 else 0.0
    return CategoryConsensus(category=ranked[0][0], likelihood=share, margin=share - runner_up, choices=list(votes))


def merge_splits(votes: list[list[dict[str, Any]]]) -> SplitConsensus:
    """The medoid vote's splits, each with the share of votes containing it exactly."""
    _check_count(votes)
    normal = [
        [_split(split, index, position) for position, split in enumerate(vote)] for index, vote in enumerate(votes)
    ]
    sets = [set(vote) for vote in normal]

    def rank(index: int) -> tuple[float, float, int]:
        exact = sum(_jaccard(sets[index], other) for other in sets)
        overlap = sum(_overlap(normal[index], other) for other in normal)
        return exact, overlap, -index

    chosen = normal[max(range(len(votes)), key=rank)]
    splits = [{"name": name, "pages": list(pages)} for name, pages in chosen]
    likelihoods = [
        {**split, "likelihood": sum((name, pages) in other for other in sets) / len(votes)}
        for split, (name, pages) in zip(splits, chosen, strict=True)
    ]
    return SplitConsensus(splits=splits, likelihoods=likelihoods, choices=copy.deepcopy(votes))


def _check_count(votes: Sequence[Any]) -> None:
    if not 1 <= len(votes) <= MAX_VOTES:
        raise ValueError(f"consensus needs 1 to {MAX_VOTES} votes, got {len(votes)}")


def _split(split: Any, vote: int, position: int) -> tuple[str, tuple[int, ...]]:
    pages = split.get("pages") if isinstance(split, dict) else None
    name = split.get("name") if isinstance(split, dict) else None
    if not isinstance(name, str) or not isinstance(pages, list) or not all(_is_page(page) for page in pages):
        raise ValueError(f"vote {vote}, split {position}: needs a string name and pages as integers ≥ 1")
    return name, tuple(sorted(set(pages)))


def _is_page(page: Any) -> bool:
    return isinstance(page, int) and not isinstance(page, bool) and page >= 1


def _jaccard(a: set[tuple[str, tuple[int, ...]]], b: set[tuple[str, tuple[int, ...]]]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _overlap(a: list[tuple[str, tuple[int, ...]]], b: list[tuple[str, tuple[int, ...]]]) -> float:
    """Mean over a's splits of the best page IoU with a same-name split of b."""
    if not a:
        return 1.0 if not b else 0.0
    pages_b = [(name, set(pages)) for name, pages in b]

    def best(name: str, pages: set[int]) -> float:
        return max(
            (len(pages & other) / len(pages | other) for n, other in pages_b if n == name and pages | other),
            default=0.0,
        )

    return sum(best(name, set(pages)) for name, pages in a) / max(len(a), len(b))


class _Merge:
    """One merge: the vote count K (every likelihood's denominator) and the root schema ($ref target)."""

    def __init__(self, total: int, root: dict[str, Any]) -> None:
        self.total = total
        self.root = root

    def node(self, values: list[Any], schema: Any, depth: int) -> tuple[Any, Any]:
        schema = self.resolve(schema)
        kind = _kind(values, schema) if depth < MAX_DEPTH else "exact"
        typed = [value for value in values if _value_kind(value) == kind]
        if kind == "exact" or not typed:
            return self.majority(values, depth)
        if kind in ("object", "array"):
            if 2 * len(typed) < len(values):
                return self.majority(values, depth)
            return self.object(typed, schema, depth) if kind == "object" else self.array(typed, schema, depth)
        if kind == "number":
            members = largest_cluster(typed, numbers_agree)
            chosen: Any = number_value([typed[index] for index in members], schema.get("type") == "integer")
        else:
            members = largest_cluster(typed, strings_agree)
            chosen = string_medoid([typed[index] for index in members])
        nulls = sum(value is None for value in values)
        if len(members) < nulls:
            return None, nulls / self.total
        return chosen, len(members) / self.total

    def majority(self, values: list[Any], depth: int) -> tuple[Any, Any]:
        groups: dict[str, list[int]] = {}
        for index, value in enumerate(values):
            groups.setdefault(canonical(value), []).append(index)
        spelling, members = max(groups.items(), key=lambda group: (len(group[1]), group[0] != "null", -group[1][0]))
        chosen = copy.deepcopy(values[members[0]])
        return chosen, _uniform(chosen, len(members) / self.total, depth)

    def object(self, objects: list[dict[str, Any]], schema: dict[str, Any], depth: int) -> tuple[Any, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        names = [name for name in properties if any(name in item for item in objects)]
        names += [name for item in objects for name in item if name not in properties]
        value: dict[str, Any] = {}
        likelihoods: dict[str, Any] = {}
        for name in dict.fromkeys(names):
            merged = self.node([item.get(name) for item in objects], properties.get(name, {}), depth + 1)
            value[name], likelihoods[name] = merged
        return value, likelihoods

    def array(self, arrays: list[list[Any]], schema: dict[str, Any], depth: int) -> tuple[Any, Any]:
        item_schema = self.resolve(schema.get("items", {}))
        rows = [row for row in align(arrays, item_schema) if 2 * len(row) >= len(arrays)]

        def place(row: list[tuple[int, int, Any]]) -> tuple[float, int, int]:
            middle = median(position / len(arrays[vote]) for vote, position, _ in row)
            return middle, row[0][0], row[0][1]

        merged = [self.node([item for _, _, item in row], item_schema, depth + 1) for row in sorted(rows, key=place)]
        return [value for value, _ in merged], [likelihood for _, likelihood in merged]

    def resolve(self, schema: Any) -> dict[str, Any]:
        """Follow local `$ref`s and take the one non-null branch of anyOf/oneOf; {} when unknown."""
        for _ in range(_REF_HOPS):
            if not isinstance(schema, dict):
                return {}
            ref = schema.get("$ref")
            options = schema.get("anyOf", schema.get("oneOf"))
            if isinstance(ref, str) and ref.startswith("#/"):
                schema = self.root
                for part in ref[2:].split("/"):
                    part = part.replace("~1", "/").replace("~0", "~")
                    schema = schema.get(part) if isinstance(schema, dict) else None
            elif isinstance(options, list):
                branches = [
                    option for option in options if not (isinstance(option, dict) and option.get("type") == "null")
                ]
                schema = branches[0] if len(branches) == 1 else {}
            else:
                return schema
        return {}


def _kind(values: list[Any], schema: dict[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        return "exact"
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((name for name in declared if name != "null"), None)
    if declared in ("number", "integer"):
        return "number"
    if declared in ("object", "array", "string"):
        return str(declared)
    if declared == "boolean":
        return "exact"
    kinds = {_value_kind(value) for value in values if value is not None}
    return kinds.pop() if len(kinds) == 1 else "exact"


def _value_kind(value: Any) -> str:
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "exact"


def _uniform(value: Any, likelihood: float, depth: int) -> Any:
    """A likelihood tree mirroring `value` with the same share at every leaf (one leaf below MAX_DEPTH)."""
    if depth < MAX_DEPTH and isinstance(value, dict):
        return {name: _uniform(item, likelihood, depth + 1) for name, item in value.items()}
    if depth < MAX_DEPTH and isinstance(value, list):
        return [_uniform(item, likelihood, depth + 1) for item in value]
    return likelihood
