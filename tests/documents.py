"""Multi-page test PDFs: one-page PDFs from docflow.sample_invoice joined with pypdf."""

from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter

from docflow.sample_invoice import invoice_pdf_bytes


def pdf_of(pages: list[tuple[str, ...]]) -> bytes:
    """A PDF with one page per entry, each page showing its lines."""
    writer = PdfWriter()
    for lines in pages:
        writer.append(PdfReader(io.BytesIO(invoice_pdf_bytes(lines))))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def invoice_pages(number: str, vendor: str, total: str) -> list[tuple[str, ...]]:
    """Two pages of one invoice: header and lines, then the totals, each with a "Page n of 2" footer."""
    return [
        (
            "INVOICE",
            f"Invoice Number: {number}",
            f"Vendor: {vendor}",
            "Customer: Globex Corporation",
            "2 x Widget A @ 400.00",
            "Page 1 of 2",
        ),
        (
            f"Invoice Number: {number} (continued)",
            "1 x Service B @ 400.00",
            f"Total Due: EUR {total}",
            "Page 2 of 2",
        ),
    ]


THREE_INVOICES = [
    ("INV-1001", "Acme Supplies Ltd", "1,440.00"),
    ("INV-1002", "Initech GmbH", "980.00"),
    ("INV-1003", "Umbrella Corp", "2,150.00"),
]


def three_invoices_pdf() -> bytes:
    """Six pages: three two-page invoices, one after the other."""
    return pdf_of([page for invoice in THREE_INVOICES for page in invoice_pages(*invoice)])


def page_texts(content: bytes) -> list[str]:
    """The text of each page of a PDF."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(content)).pages]
