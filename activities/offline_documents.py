"""Offline classification and split: deterministic, no network, for the default provider and the tests.

Classification: the document and each category (its name weighted over its description) become bags of
words (lowercased, stop words dropped, a plural 's' trimmed); the score of a category is the cosine
similarity of the two bags, plus a bonus when the category's name is the document's heading. The scores go
through a softmax (temperature `SOFTMAX_TEMPERATURE`), so a category's likelihood is its share of the
real evidence: equal when nothing matches, near 1 when one category alone matches.

Split: each page after the first gets a log-odds that a new document starts there, from
- its page number: a reset ("Page 1 of 3", "Page 1") for a new document, the number after the previous
  page's against;
- an identifier (invoice / order / document … number) shared with the previous page: a different value
  for, the same value against;
- a short heading naming one of the sub-documents ("INVOICE") for;
and starts one when the probability (logistic of the log-odds) passes 0.5. Each run of pages is then
classified among the sub-documents as above; instances of a sub-document that may appear only once are
merged. A first page's likelihood is the probability that a document starts there, a later page's the
probability that it does not; a part's name likelihood is its classification likelihood.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from activities.document_tasks import (
    ClassificationRequest,
    ClassificationResult,
    SplitPart,
    SplitRequest,
    SplitResult,
    merge_single_instances,
)
from docflow.blocks import Category

SOFTMAX_TEMPERATURE = 0.1
_NAME_WEIGHT = 3.0
_HEADING_BONUS = 0.25
_PRIOR_LOG_ODDS = -1.0
_RESET_LOG_ODDS = 4.0
_IDENTIFIER_LOG_ODDS = 3.0
_HEADING_LOG_ODDS = 1.5

_WORD = re.compile(r"[a-z0-9]+")
# These run over untrusted text: every repeat next to another that could match the same characters is bounded,
# so a page of spaces or of identifier characters costs linear time.
_PAGE_NUMBER = re.compile(r"\bpage[ \t]{1,3}(\d{1,4})(?:[ \t]{0,3}(?:of|/)[ \t]{0,3}(\d{1,4}))?\b", re.IGNORECASE)
_IDENTIFIER = re.compile(
    r"\b(invoice|document|order|receipt|contract|statement|reference|policy|bill|quote|delivery|purchase order)"
    r"[ \t]{0,3}(?:number|no\.?|num|#|id)[ \t]{0,3}[:#.]?[ \t]{0,3}([A-Za-z0-9][A-Za-z0-9/_.-]{0,62}[A-Za-z0-9])",
    re.IGNORECASE,
)
_STOP_WORDS = (
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with "
    "document documents page pages any all each"
)
_STOP = frozenset(_STOP_WORDS.split())


def words(text: str) -> list[str]:
    """The words that carry meaning: lowercase, no stop words, no one-letter words, a plural 's' trimmed."""
    out = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 2 or word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def _cosine(a: Counter[str] | dict[str, float], b: Counter[str] | dict[str, float]) -> float:
    dot = sum(v * b.get(k, 0.0) for k, v in a.items())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norm if norm else 0.0


def _heading(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def similarity(text: str, category: Category) -> tuple[float, list[str]]:
    """How well the text fits the category (cosine of word bags, plus the heading bonus) and the shared words."""
    doc = {w: 1.0 + math.log(n) for w, n in Counter(words(text)).items()}
    name = words(category.name)
    bag: dict[str, float] = {}
    for w in name:
        bag[w] = bag.get(w, 0.0) + _NAME_WEIGHT
    for w in words(category.description):
        bag[w] = bag.get(w, 0.0) + 1.0
    score = _cosine(doc, bag)
    heading = set(words(_heading(text)))
    if name and set(name) <= heading:
        score += _HEADING_BONUS
    return score, sorted(w for w in bag if w in doc)


def softmax(scores: list[float], temperature: float = SOFTMAX_TEMPERATURE) -> list[float]:
    """Scores → shares summing to 1; equal scores get equal shares."""
    top = max(scores)
    exps = [math.exp((s - top) / temperature) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def classify(request: ClassificationRequest, model: str = "offline") -> ClassificationResult:
    """The category whose words best match the text; ties go to the category listed first."""
    found = [similarity(request.text, c) for c in request.categories]
    shares = softmax([score for score, _ in found])
    best = max(range(len(found)), key=lambda i: (found[i][0], -i))
    chosen = request.categories[best]
    shared = found[best][1]
    reasoning = (
        f"shares the words {', '.join(shared[:12])} with '{chosen.name}' (similarity {found[best][0]:.3f})"
        if shared
        else "no category's words appear in the document; all are equally likely"
    )
    prompt = len(request.text.split())
    return ClassificationResult(
        category=chosen.name,
        reasoning=reasoning,
        scores={c.name: round(p, 6) for c, p in zip(request.categories, shares, strict=True)},
        model=model,
        usage={"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1},
    )


@dataclass(frozen=True)
class _PageFacts:
    number: int | None
    identifiers: dict[str, str]
    heading_names: frozenset[str]


def _facts(text: str, request: SplitRequest) -> _PageFacts:
    numbers = _PAGE_NUMBER.findall(text)
    # The last "Page n" on a page is its footer; a "page 2" in the body is rarer than the footer.
    number = int(numbers[-1][0]) if numbers else None
    identifiers: dict[str, str] = {}
    for label, value in _IDENTIFIER.findall(text):
        identifiers.setdefault(label.lower(), value.upper())
    heading_words = words(_heading(text))
    heading = set(heading_words)
    # A title is short: "INVOICE", "Tax Invoice", not a first line that merely mentions the word.
    names = frozenset(
        d.name
        for d in request.subdocuments
        if (w := set(words(d.name))) and w <= heading and len(heading_words) <= len(w) + 2
    )
    return _PageFacts(number, identifiers, names)


def boundary_probabilities(request: SplitRequest) -> list[float]:
    """For each page, the probability that a new document starts there (1.0 for the first page)."""
    facts = [_facts(text, request) for text in request.pages]
    probabilities = [1.0]
    for prev, page in zip(facts, facts[1:], strict=False):
        log_odds = _PRIOR_LOG_ODDS
        if page.number == 1:
            log_odds += _RESET_LOG_ODDS
        elif page.number is not None and (prev.number is None or page.number == prev.number + 1):
            log_odds -= _RESET_LOG_ODDS
        shared = set(page.identifiers) & set(prev.identifiers)
        if shared:
            same = all(page.identifiers[k] == prev.identifiers[k] for k in shared)
            log_odds += -_IDENTIFIER_LOG_ODDS if same else _IDENTIFIER_LOG_ODDS
        if page.heading_names:
            log_odds += _HEADING_LOG_ODDS
        probabilities.append(1.0 / (1.0 + math.exp(-log_odds)))
    return probabilities


def split(request: SplitRequest, model: str = "offline") -> SplitResult:
    """The pages cut where a new document most likely starts, each run named by classification."""
    if not request.pages:
        return SplitResult(parts=[], model=model)
    starts = boundary_probabilities(request)
    runs: list[list[int]] = []
    for index, p in enumerate(starts):
        if index == 0 or p > 0.5:
            runs.append([])
        runs[-1].append(index)
    categories = [Category(name=d.name, description=d.description) for d in request.subdocuments]
    parts: list[SplitPart] = []
    for run in runs:
        text = "\n\n".join(request.pages[i] for i in run)
        decided = classify(ClassificationRequest(text=text, categories=categories), model)
        page_likelihoods = [starts[i] if k == 0 else 1.0 - starts[i] for k, i in enumerate(run)]
        parts.append(
            SplitPart(
                name=decided.category,
                pages=[i + 1 for i in run],
                likelihood=decided.likelihood,
                page_likelihoods=[round(p, 6) for p in page_likelihoods],
            )
        )
    prompt = sum(len(p.split()) for p in request.pages)
    usage = {"prompt_tokens": prompt, "completion_tokens": len(parts), "total_tokens": prompt + len(parts)}
    return SplitResult(parts=merge_single_instances(parts, request.subdocuments), model=model, usage=usage)
