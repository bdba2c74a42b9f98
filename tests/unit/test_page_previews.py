"""Page images of the review page (api.page_previews): made in a child process, capped, and refusing bad input."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
from PIL import Image

from api.page_previews import PreviewError, PreviewLimits, kind_of, page_count, page_png
from docflow.sample_invoice import invoice_pdf_bytes

LIMITS = PreviewLimits(max_pages=3, max_pixels=200_000, timeout_seconds=30)


def _pdf(pages: int, width: float = 595, height: float = 842) -> bytes:
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(width, height)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def _pixels(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.size[0] * image.size[1]


async def test_a_pdf_page_is_rendered_as_png_under_the_pixel_cap() -> None:
    content = invoice_pdf_bytes()
    assert await page_count(content, "pdf", LIMITS) == 1
    png = await page_png(content, "pdf", 0, LIMITS)
    assert 100_000 < _pixels(png) <= LIMITS.max_pixels


async def test_a_huge_page_is_scaled_down_and_the_count_is_capped() -> None:
    assert await page_count(_pdf(5, 14400, 14400), "pdf", LIMITS) == 3
    assert _pixels(await page_png(_pdf(1, 14400, 14400), "pdf", 0, LIMITS)) <= LIMITS.max_pixels


async def test_an_image_document_is_decoded_and_scaled_not_passed_on() -> None:
    out = io.BytesIO()
    Image.new("RGB", (2000, 1500), "white").save(out, "JPEG")
    assert kind_of("image/jpeg") == "image" and kind_of("text/plain") is None
    assert await page_count(out.getvalue(), "image", LIMITS) == 1
    png = await page_png(out.getvalue(), "image", 0, LIMITS)
    assert _pixels(png) <= LIMITS.max_pixels


async def test_unreadable_documents_missing_pages_and_slow_renders_are_errors() -> None:
    with pytest.raises(PreviewError, match="could not be read"):
        await page_count(b"%PDF-1.7 not really", "pdf", LIMITS)
    with pytest.raises(PreviewError, match="no page 2"):
        await page_png(invoice_pdf_bytes(), "pdf", 1, LIMITS)
    with pytest.raises(PreviewError, match="could not be read"):
        await page_png(b"\x89PNG\r\n\x1a\n garbage", "image", 0, LIMITS)
    with pytest.raises(PreviewError, match="longer than"):
        await page_png(invoice_pdf_bytes(), "pdf", 0, PreviewLimits(3, 200_000, timeout_seconds=0.01))
