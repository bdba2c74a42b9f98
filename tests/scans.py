"""Scanned documents made by the tests: the sample invoice drawn with Pillow, as PNG, TIFF, JPEG or image-only PDF.

Pillow's built-in scalable font (`ImageFont.load_default(size=...)`, Pillow ≥ 10.1) needs no font files.
The OCR tests need the Tesseract program: without it they skip, unless DOCFLOW_REQUIRE_OCR is set (CI sets
it, so there they must run).
"""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from docflow.sample_invoice import INVOICE_LINES

A4_INCHES = (8.27, 11.69)


def require_tesseract() -> None:
    """Skip the calling test when Tesseract is missing, or fail when DOCFLOW_REQUIRE_OCR says it must run."""
    if shutil.which("tesseract") is not None:
        return
    if os.environ.get("DOCFLOW_REQUIRE_OCR"):
        pytest.fail("tesseract is required (DOCFLOW_REQUIRE_OCR is set) but not installed")
    pytest.skip("tesseract is not installed (Debian: apt-get install tesseract-ocr)")


def page_image(lines: tuple[str, ...] = INVOICE_LINES, dpi: int = 150) -> Image.Image:
    """An A4 page at `dpi` with `lines` drawn in 11 pt text, black on white, like a clean scan."""
    width, height = (round(side * dpi) for side in A4_INCHES)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=round(11 * dpi / 72))
    for number, line in enumerate(lines):
        draw.text((dpi, dpi + number * round(18 * dpi / 72)), line, fill=0, font=font)
    return image


def encoded(images: list[Image.Image], fmt: str, dpi: int = 150) -> bytes:
    """The images saved as one file of `fmt` (PNG, JPEG: the first only; TIFF, PDF: one page each)."""
    out = io.BytesIO()
    first, rest = images[0], images[1:]
    if fmt in ("TIFF", "PDF"):
        first.save(out, fmt, save_all=True, append_images=rest, resolution=dpi)
    else:
        first.save(out, fmt)
    return out.getvalue()


def scanned_invoice_pdf(lines: tuple[str, ...] = INVOICE_LINES) -> bytes:
    """The sample invoice (or `lines`) as an image-only PDF: one page, no text layer."""
    return encoded([page_image(lines)], "PDF")
