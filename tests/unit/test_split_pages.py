"""Split: page ranges cut into PDFs of their own, boundaries found offline, model answers checked."""

from __future__ import annotations

import pytest

from activities.document_tasks import (
    AnswerError,
    SplitPart,
    SplitRequest,
    merge_single_instances,
    paged_text,
    read_paged_text,
    read_split,
)
from activities.documents import extract_pages
from activities.offline_documents import boundary_probabilities, split
from activities.pdf_pages import PageRangeError, page_count, pdf_of_pages
from docflow.blocks import Subdocument
from tests.documents import THREE_INVOICES, invoice_pages, page_texts, pdf_of, three_invoices_pdf

INVOICE = Subdocument(
    name="invoice", description="A bill from a vendor with a total due", allow_multiple_instances=True
)
RECEIPT = Subdocument(name="receipt", description="Proof that a payment was received, amount paid")


def test_page_ranges_become_valid_pdfs_with_those_pages() -> None:
    source = three_invoices_pdf()
    assert page_count(source) == 6
    for first, (number, vendor, _) in zip((1, 3, 5), THREE_INVOICES, strict=True):
        part = pdf_of_pages(source, [first, first + 1])
        texts = page_texts(part)
        assert len(texts) == 2
        assert f"Invoice Number: {number}" in texts[0] and vendor in texts[0] and "Page 1 of 2" in texts[0]
        assert f"{number} (continued)" in texts[1] and "Page 2 of 2" in texts[1]
    # Same pages, same bytes: a retried split stores the same file.
    assert pdf_of_pages(source, [3, 4]) == pdf_of_pages(source, [3, 4])


def test_page_out_of_range_or_unreadable_pdf_is_named() -> None:
    with pytest.raises(PageRangeError, match="page 7 is not a page of this 6-page PDF"):
        pdf_of_pages(three_invoices_pdf(), [6, 7])
    with pytest.raises(PageRangeError, match="not a readable PDF"):
        pdf_of_pages(b"%PDF-1.4 garbage", [1])


def test_offline_split_finds_three_invoices_from_resets_and_numbers() -> None:
    pages = extract_pages(three_invoices_pdf(), "application/pdf", "three.pdf")
    result = split(SplitRequest(pages=pages, subdocuments=[INVOICE, RECEIPT]))
    assert [(p.name, p.pages) for p in result.parts] == [("invoice", [1, 2]), ("invoice", [3, 4]), ("invoice", [5, 6])]
    for part in result.parts:
        assert part.likelihood is not None and 0.5 < part.likelihood < 1
        assert part.page_likelihoods is not None and all(0.5 < p <= 1 for p in part.page_likelihoods)


def test_boundary_evidence_moves_the_probability() -> None:
    # Two invoices with no page footers: only the changing invoice number (and the heading) says where.
    no_footer = [tuple(line for line in page if not line.startswith("Page")) for page in invoice_pages("A-1", "X", "1")]
    other = [tuple(line for line in page if not line.startswith("Page")) for page in invoice_pages("B-2", "Y", "2")]
    pages = no_footer + other
    probs = boundary_probabilities(SplitRequest(pages=["\n".join(p) for p in pages], subdocuments=[INVOICE]))
    assert probs[0] == 1.0 and probs[1] < 0.1 and probs[2] > 0.9 and probs[3] < 0.1
    # Nothing at all to go on: the prior keeps pages together, and the probability is not a certainty.
    blank = boundary_probabilities(SplitRequest(pages=["alpha", "beta"], subdocuments=[INVOICE]))
    assert 0.1 < blank[1] < 0.5


def test_different_kinds_are_named_and_single_instances_merged() -> None:
    pages = [
        "INVOICE\nInvoice Number: INV-1\nVendor: Acme\nTotal Due: 10.00\nPage 1 of 1",
        "RECEIPT\nReceipt Number: R-9\nPayment received, amount paid: 10.00\nPage 1 of 1",
        "RECEIPT\nReceipt Number: R-10\nPayment received, amount paid: 5.00\nPage 1 of 1",
    ]
    result = split(SplitRequest(pages=pages, subdocuments=[INVOICE, RECEIPT]))
    # receipt may appear once: its two runs become one part.
    assert [(p.name, p.pages) for p in result.parts] == [("invoice", [1]), ("receipt", [2, 3])]


def test_model_split_answers_are_checked_against_names_and_pages() -> None:
    request = SplitRequest(pages=["a", "b", "c"], subdocuments=[INVOICE, RECEIPT])
    answer = {
        "splits": [
            {"name": "Invoice", "pages": [2, 1], "confidence": 0.8},
            {"name": "receipt", "pages": [3], "confidence": "high"},
        ]
    }
    good = read_split(request, answer, "m", {})
    assert [(p.name, p.pages, p.likelihood) for p in good.parts] == [("invoice", [1, 2], 0.8), ("receipt", [3], None)]
    with pytest.raises(AnswerError, match=r"splits\[0\]\.pages\[1\]: 4 is not a page of this 3-page document"):
        read_split(request, {"splits": [{"name": "invoice", "pages": [1, 4]}]}, "m", {})
    with pytest.raises(AnswerError, match=r"splits\[0\]\.name: 'memo'"):
        read_split(request, {"splits": [{"name": "memo", "pages": [1]}]}, "m", {})
    with pytest.raises(AnswerError, match="splits: the model gave no list"):
        read_split(request, {}, "m", {})


def test_merge_keeps_page_likelihoods_aligned() -> None:
    parts = [
        SplitPart(name="receipt", pages=[3], likelihood=0.9, page_likelihoods=[0.8]),
        SplitPart(name="receipt", pages=[1], likelihood=0.7, page_likelihoods=[0.6]),
    ]
    [merged] = merge_single_instances(parts, [RECEIPT])
    assert merged.pages == [1, 3] and merged.page_likelihoods == [0.6, 0.8] and merged.likelihood == 0.7


def test_paged_text_round_trips() -> None:
    pages = ["first\nline", "", "third"]
    assert read_paged_text(paged_text(pages)) == pages
    assert read_paged_text("no markers") == ["no markers"]


def test_single_page_pdf_helper_matches_sample() -> None:
    assert page_texts(pdf_of([("hello",)])) == ["hello"]
