"""Classification and split as model tasks: the requests, the results, and how a model is asked and read.

A chat model is asked through the provider's structured-output `extract` call: classification with a
schema whose `category` is an enum of the category names plus a `scores` object (one number per
category); split with `splits: [{name, pages}]` whose names are an enum of the sub-document names and whose
pages are 1-based numbers of the document. The document's pages reach the model as one text with
`--- page N ---` markers (`paged_text`). An answer outside the enum or the page range is a ProviderError
naming the path, never a silent guess.

Likelihoods: a classification's likelihood is the chosen category's share of the scores (None when the
model gave none); its top margin is the chosen share minus the best other share. A split part's likelihood is
the model's optional `confidence` for it (None when absent or not a number in [0, 1]); a model gives no
per-page likelihoods.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from docflow.blocks import Category, Subdocument

CLASSIFICATION_SCHEMA_TITLE = "docflow_classification"
SPLIT_SCHEMA_TITLE = "docflow_split"
_PAGE_MARKER = re.compile(r"^--- page (\d+) ---$", re.MULTILINE)


class ClassificationRequest(BaseModel):
    """The document text and the categories to choose from."""

    text: str
    categories: list[Category]
    instructions: str | None = None
    model: str | None = None


class ClassificationResult(BaseModel):
    """The chosen category, why, and the share of the scores each category got (sums to 1)."""

    category: str
    reasoning: str
    scores: dict[str, float] | None = None
    model: str
    usage: dict[str, int] = Field(default_factory=dict)

    @property
    def likelihood(self) -> float | None:
        """The chosen category's share of the scores."""
        return None if self.scores is None else self.scores.get(self.category, 0.0)

    @property
    def top_margin(self) -> float | None:
        """The chosen category's share minus the best other share (1.0 with a single category)."""
        if self.scores is None:
            return None
        others = [v for k, v in self.scores.items() if k != self.category]
        return round(self.scores.get(self.category, 0.0) - max(others, default=0.0), 6)


class SplitRequest(BaseModel):
    """The text of each page (index 0 = page 1) and the sub-documents to look for."""

    pages: list[str]
    subdocuments: list[Subdocument]
    instructions: str | None = None
    model: str | None = None


class SplitPart(BaseModel):
    """One sub-document instance: its name, its 1-based pages, and how sure the split is of each.

    `likelihood` is the confidence in the name; `page_likelihoods[i]` the confidence that `pages[i]`
    belongs here (for a first page: that a new document starts there). None when the model gave none.
    """

    name: str
    pages: list[int]
    likelihood: float | None = None
    page_likelihoods: list[float] | None = None


class SplitResult(BaseModel):
    """The sub-document instances in order of their first page."""

    parts: list[SplitPart]
    model: str
    usage: dict[str, int] = Field(default_factory=dict)


class AnswerError(ValueError):
    """A model answer that does not fit the task (a category outside the list, a page out of range)."""


def paged_text(pages: list[str]) -> str:
    """The pages as one text, each after a `--- page N ---` line (N from 1)."""
    return "\n\n".join(f"--- page {i} ---\n{text}" for i, text in enumerate(pages, start=1))


def read_paged_text(text: str) -> list[str]:
    """The pages of a `paged_text` (the whole text as one page if it has no markers)."""
    marks = list(_PAGE_MARKER.finditer(text))
    if not marks:
        return [text]
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [text[m.end() : end].strip("\n") for m, end in zip(marks, ends, strict=True)]


def classification_schema(categories: list[Category]) -> dict[str, Any]:
    """The JSON schema a model's classification answer must match."""
    names = [c.name for c in categories]
    return {
        "title": CLASSIFICATION_SCHEMA_TITLE,
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "description": "Why the document belongs to the category"},
            "category": {"type": "string", "enum": names},
            "scores": {
                "type": "object",
                "description": "For every category, how well the document fits it, from 0 to 1",
                "properties": {
                    c.name: {"type": "number", "minimum": 0, "maximum": 1, "description": c.description}
                    for c in categories
                },
            },
        },
        "required": ["reasoning", "category", "scores"],
    }


def classification_instructions(categories: list[Category], instructions: str | None) -> str:
    """What the model is told: choose exactly one category, described one per line."""
    lines = "\n".join(f"- {c.name}: {c.description}" if c.description else f"- {c.name}" for c in categories)
    text = f"Classify the document into exactly one of these categories and score every category:\n{lines}"
    return f"{text}\n\n{instructions}" if instructions else text


def read_classification(
    request: ClassificationRequest, data: dict[str, Any], model: str, usage: dict[str, int]
) -> ClassificationResult:
    """A model's answer checked against the categories; scores normalised to shares."""
    by_name = {c.name.casefold(): c.name for c in request.categories}
    raw = data.get("category")
    if not isinstance(raw, str) or raw.strip().casefold() not in by_name:
        raise AnswerError(f"category: the model answered {raw!r}, not one of {sorted(by_name.values())}")
    category = by_name[raw.strip().casefold()]
    reasoning = data.get("reasoning")
    return ClassificationResult(
        category=category,
        reasoning=reasoning if isinstance(reasoning, str) else "",
        scores=_shares(data.get("scores"), request.categories),
        model=model,
        usage=usage,
    )


def _shares(raw: Any, categories: list[Category]) -> dict[str, float] | None:
    """Each category's score as a share of the total; None if the scores are missing or unusable."""
    if not isinstance(raw, dict):
        return None
    folded = {str(k).casefold(): v for k, v in raw.items()}
    values: dict[str, float] = {}
    for c in categories:
        v = folded.get(c.name.casefold(), 0.0)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v < 0:
            return None
        values[c.name] = float(v)
    total = sum(values.values())
    if total <= 0 or total == float("inf"):
        return None
    return {k: round(v / total, 6) for k, v in values.items()}


def split_schema(subdocuments: list[Subdocument], page_count: int) -> dict[str, Any]:
    """The JSON schema a model's split answer must match."""
    return {
        "title": SPLIT_SCHEMA_TITLE,
        "type": "object",
        "properties": {
            "splits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "enum": [d.name for d in subdocuments]},
                        "pages": {
                            "type": "array",
                            "items": {"type": "integer", "minimum": 1, "maximum": page_count},
                        },
                        "confidence": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": 1,
                            "description": "How sure the split is of this sub-document and its pages",
                        },
                    },
                    "required": ["name", "pages"],
                },
            }
        },
        "required": ["splits"],
    }


def split_instructions(subdocuments: list[Subdocument], instructions: str | None) -> str:
    """What the model is told: which documents to find and which may repeat."""
    lines = "\n".join(
        f"- {d.name}: {d.description or '(no description)'}"
        + (" (may appear several times: list each instance)" if d.allow_multiple_instances else " (at most once)")
        for d in subdocuments
    )
    text = (
        "The document's pages are marked '--- page N ---'. Split it into these sub-documents and give the "
        f"pages (numbers from 1) of each one found:\n{lines}"
    )
    return f"{text}\n\n{instructions}" if instructions else text


def read_split(request: SplitRequest, data: dict[str, Any], model: str, usage: dict[str, int]) -> SplitResult:
    """A model's answer checked against the sub-documents and the page range."""
    by_name = {d.name.casefold(): d for d in request.subdocuments}
    count = len(request.pages)
    splits = data.get("splits")
    if not isinstance(splits, list):
        raise AnswerError("splits: the model gave no list of splits")
    parts: list[SplitPart] = []
    for i, item in enumerate(splits):
        if not isinstance(item, dict):
            raise AnswerError(f"splits[{i}]: not an object")
        name = item.get("name")
        if not isinstance(name, str) or name.strip().casefold() not in by_name:
            raise AnswerError(f"splits[{i}].name: {name!r} is not one of {[d.name for d in request.subdocuments]}")
        pages = item.get("pages")
        if not isinstance(pages, list):
            raise AnswerError(f"splits[{i}].pages: not a list of page numbers")
        for j, page in enumerate(pages):
            if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= count:
                raise AnswerError(f"splits[{i}].pages[{j}]: {page!r} is not a page of this {count}-page document")
        confidence = _confidence(item.get("confidence"))
        if pages:
            parts.append(
                SplitPart(
                    name=by_name[name.strip().casefold()].name,
                    pages=sorted(set(pages)),
                    likelihood=confidence,
                )
            )
    return SplitResult(parts=merge_single_instances(parts, request.subdocuments), model=model, usage=usage)


def _confidence(raw: Any) -> float | None:
    """An optional confidence: a number in [0, 1], else None (dropped, never guessed)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
        return None
    return float(raw)


def merge_single_instances(parts: list[SplitPart], subdocuments: list[Subdocument]) -> list[SplitPart]:
    """Instances of a sub-document that may appear only once merged into one part; parts by first page."""
    single = {d.name for d in subdocuments if not d.allow_multiple_instances}
    merged: dict[str, SplitPart] = {}
    out: list[SplitPart] = []
    for part in parts:
        first = merged.get(part.name)
        if part.name not in single or first is None:
            copy = part.model_copy(deep=True)
            out.append(copy)
            if part.name in single:
                merged[part.name] = copy
            continue
        known = first.page_likelihoods is not None and part.page_likelihoods is not None
        pages: dict[int, float] = {}
        for each in (first, part):
            pages.update(zip(each.pages, each.page_likelihoods or [0.0] * len(each.pages), strict=True))
        first.pages = sorted(pages)
        first.page_likelihoods = [pages[p] for p in first.pages] if known else None
        if first.likelihood is not None and part.likelihood is not None:
            first.likelihood = min(first.likelihood, part.likelihood)
    return sorted(out, key=lambda p: p.pages[0])
