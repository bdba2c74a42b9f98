"""Classifier: configs checked on write, offline likelihoods from the evidence, model answers checked."""

from __future__ import annotations

from typing import Any

import pytest

from activities.document_tasks import AnswerError, ClassificationRequest, read_classification
from activities.offline_documents import classify
from docflow.blocks import Category, handles_of, parse_config, slug
from docflow.graph import validate_block

INVOICE = Category(name="Invoice", description="A bill from a vendor asking for payment of a total due")
BOOKING = Category(name="Booking Confirmation", description="A hotel or travel reservation with check-in dates")
INVOICE_TEXT = "INVOICE\nInvoice Number: INV-7\nVendor: Acme\nTotal Due: EUR 1,440.00"
BOOKING_TEXT = "Booking confirmation\nHotel Adlon, check-in 2026-12-01, reservation for 2 guests"


def test_slug_is_lowercase_with_dashes() -> None:
    assert slug("Booking Confirmation") == "booking-confirmation"
    assert slug("  Tax/Invoice (EU) ") == "tax-invoice-eu"
    assert slug("Ärger") == "rger"


def test_handles_one_per_category_and_split_adds_splits() -> None:
    cfg = parse_config("classifier", {"categories": [INVOICE.model_dump(), {"name": "X", "handle_key": "other"}]})
    assert handles_of("classifier", cfg).inputs == ("input-file-document",)
    assert handles_of("classifier", cfg).outputs == ("output-file-invoice", "output-file-other")
    split = parse_config("split", {"subdocuments": [{"name": "Bank Statement"}]})
    assert handles_of("split", split).inputs == ("input-file-0",)
    assert handles_of("split", split).outputs == ("output-file-bank-statement", "output-json-splits")


@pytest.mark.parametrize(
    ("block_type", "config", "field", "fragment"),
    [
        ("classifier", {"categories": []}, "config.categories", "at least 1"),
        ("classifier", {"categories": [{"name": "A b"}, {"name": "a-b"}]}, "config.categories", "output-file-a-b"),
        ("classifier", {"categories": [{"name": "Same"}, {"name": "same"}]}, "config.categories", "unique"),
        ("classifier", {"categories": [{"name": "!!!"}]}, "config.categories", "no letter or digit"),
        ("classifier", {"categories": [{"name": "a"}], "n_consensus": 11}, "config.n_consensus", "between 1 and 10"),
        ("classifier", {"categories": [{"name": "a"}], "n_consensus": 11}, "config.n_consensus", "between 1 and 10"),
        ("classifier", {"categories": [{"nom": "a"}]}, "config.categories.0.name", "Field required"),
        ("split", {"subdocuments": []}, "config.subdocuments", "at least 1"),
        ("split", {"subdocuments": [{"name": "x y"}, {"name": "X_Y"}]}, "config.subdocuments", "output-file-x-y"),
        ("split", {"subdocuments": [{"name": "a"}], "n_consensus": 0}, "config.n_consensus", "between 1 and 10"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(
    block_type: str, config: dict[str, Any], field: str, fragment: str
) -> None:
    issues = {i.field: i for i in validate_block(block_type, config)}
    assert field in issues, issues
    assert issues[field].code == "invalid_config" and fragment in issues[field].message


def test_offline_classifier_picks_by_words_with_graded_likelihood() -> None:
    invoice = classify(ClassificationRequest(text=INVOICE_TEXT, categories=[INVOICE, BOOKING]))
    booking = classify(ClassificationRequest(text=BOOKING_TEXT, categories=[INVOICE, BOOKING]))
    assert invoice.category == "Invoice" and booking.category == "Booking Confirmation"
    assert invoice.scores is not None and abs(sum(invoice.scores.values()) - 1) < 1e-5
    assert invoice.likelihood is not None and 0.5 < invoice.likelihood < 1
    assert invoice.top_margin is not None and 0 < invoice.top_margin < 1
    assert "invoice" in invoice.reasoning
    # Weaker evidence gives a lower likelihood: the likelihood follows the scores, it is not a constant.
    weak = classify(ClassificationRequest(text="payment of 10 EUR", categories=[INVOICE, BOOKING]))
    assert weak.category == "Invoice" and weak.likelihood is not None and weak.likelihood < invoice.likelihood


def test_offline_classifier_with_no_evidence_is_undecided() -> None:
    result = classify(ClassificationRequest(text="zzz qqq", categories=[INVOICE, BOOKING]))
    assert result.category == "Invoice"  # ties go to the category listed first
    assert result.likelihood == pytest.approx(0.5) and result.top_margin == pytest.approx(0.0)
    assert "equally likely" in result.reasoning


def test_model_classification_answer_is_checked() -> None:
    request = ClassificationRequest(text="x", categories=[INVOICE, BOOKING])
    answer = {"category": "invoice", "reasoning": "r", "scores": {"Invoice": 0.6, "Booking Confirmation": 0.2}}
    result = read_classification(request, answer, "m", {})
    assert result.category == "Invoice" and result.likelihood == pytest.approx(0.75)
    assert result.top_margin == pytest.approx(0.5)
    no_scores = read_classification(request, {"category": "Invoice", "reasoning": "r"}, "m", {})
    assert no_scores.likelihood is None and no_scores.top_margin is None
    with pytest.raises(AnswerError, match="category: the model answered 'Receipt'"):
        read_classification(request, {"category": "Receipt"}, "m", {})
