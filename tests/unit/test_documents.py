"""Document text extraction: PDFs, text, refusals, and the sample invoice round trip."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from pypdf import PdfReader, PdfWriter

from activities.documents import UnsupportedDocumentError, extract_pages
from docflow.sample_invoice import EXAMPLE_PATH, INVOICE_LINES, invoice_pdf_bytes


def test_sample_invoice_round_trips_line_by_line() -> None:
    pages = extract_pages(invoice_pdf_bytes(), "application/pdf", "invoice.pdf")
    assert len(pages) == 1
    assert pages[0].splitlines() == list(INVOICE_LINES)


def test_sample_invoice_xref_offsets_point_at_objects() -> None:
    pdf = invoice_pdf_bytes()
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert pdf[xref_at:].startswith(b"xref\n0 6\n")
    entries = pdf[xref_at:].split(b"\n", 2)[2].split(b"\r\n")[1:6]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(b"%d 0 obj" % number)


def test_checked_in_example_matches_the_generator() -> None:
    assert EXAMPLE_PATH.read_bytes() == invoice_pdf_bytes()


def test_multi_page_pdf_gives_one_text_per_page() -> None:
    writer = PdfWriter()
    for lines in (("Page one", "first"), ("Page two",)):
        writer.append(PdfReader(io.BytesIO(invoice_pdf_bytes(lines))))
    out = io.BytesIO()
    writer.write(out)
    assert extract_pages(out.getvalue(), "application/pdf", "a.pdf") == ["Page one\nfirst", "Page two"]


def test_octet_stream_with_pdf_name_is_read_as_pdf() -> None:
    pages = extract_pages(invoice_pdf_bytes(), "application/octet-stream", "scan.PDF")
    assert "Total Due: EUR 1,440.00" in pages[0]


@pytest.mark.parametrize(
    "damage",
    [
        lambda pdf: pdf[: len(pdf) // 2],
        lambda pdf: pdf[:200],
        lambda pdf: b"%PDF-1.4\nthis is not a pdf body",
    ],
)
def test_corrupted_pdf_raises_unsupported_document(damage: Callable[[bytes], bytes]) -> None:
    with pytest.raises(UnsupportedDocumentError) as info:
        extract_pages(damage(invoice_pdf_bytes()), "application/pdf", "broken.pdf")
    assert "broken.pdf" in str(info.value)
    assert "not a readable PDF" in str(info.value)


def test_bytes_without_pdf_header_are_refused() -> None:
    with pytest.raises(UnsupportedDocumentError, match="not a PDF"):
        extract_pages(b"hello world", "application/pdf", "fake.pdf")


def test_text_and_json_are_one_page_with_bad_bytes_replaced() -> None:
    assert extract_pages("Total: 12 €".encode(), "text/plain; charset=utf-8", "a.txt") == ["Total: 12 €"]
    assert extract_pages(b'{"a": 1}', "application/json", "a.json") == ['{"a": 1}']
    assert extract_pages(b"ok \xff end", "text/csv", "a.csv") == ["ok \ufffd end"]
    assert extract_pages(b"\xef\xbb\xbfbom", "text/plain", "a.txt") == ["bom"]


def test_image_types_without_ocr_support_are_refused_naming_the_type() -> None:
    with pytest.raises(UnsupportedDocumentError) as info:
        extract_pages(b"GIF89a", "image/gif", "scan.gif")
    message = str(info.value)
    assert "image/gif" in message and "PNG, JPEG and TIFF" in message


def test_other_types_are_refused_naming_the_type() -> None:
    with pytest.raises(UnsupportedDocumentError, match="application/zip"):
        extract_pages(b"PK\x03\x04", "application/zip", "a.zip")
