"""Inside a renderer child: a PDF page rendered under a pixel cap, an image file opened, an image as PNG.

    image, scale = render_pdf_page(pdf, 0, dpi=110, max_pixels=4_000_000)   # grayscale, scale in pixels/point
    image = open_image(content, bomb_pixels=40_000_000)                       # PNG, JPEG or TIFF only

Run only in a child started by `rendering.child` (PDFium is not thread-safe, documents are hostile). A PDF page
is rendered at the asked resolution, scaled down when it would pass the cap: a huge MediaBox is no reason to fail.
"""

from __future__ import annotations

import io
import math
import warnings

import pypdfium2 as pdfium
from PIL import Image

IMAGE_FORMATS = ["PNG", "JPEG", "TIFF"]


def render_pdf_page(pdf: pdfium.PdfDocument, index: int, dpi: int, max_pixels: int) -> tuple[Image.Image, float]:
    """Page `index` (0-based) in grayscale at `dpi`, or smaller when it would pass `max_pixels`; with its scale
    (pixels per point, 1/72 inch)."""
    page = pdf[index]
    width, height = page.get_size()  # points, 1/72 inch
    scale = min(dpi / 72, math.sqrt(max_pixels / max(width * height, 1.0)))
    return page.render(scale=scale, grayscale=True).to_pil(), scale


def open_image(content: bytes, bomb_pixels: int | None) -> Image.Image:
    """A PNG, JPEG or TIFF file, its pixels not yet decoded. One declaring more than `bomb_pixels` pixels is
    refused here (Pillow's DecompressionBombWarning raised); None leaves the size check to the caller (Pillow
    still refuses twice its default limit)."""
    with warnings.catch_warnings():
        if bomb_pixels is None:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        else:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = bomb_pixels
        return Image.open(io.BytesIO(content), formats=IMAGE_FORMATS)


def png_bytes(image: Image.Image, compress_level: int = -1) -> bytes:
    """`image` encoded as PNG; `compress_level` 0-9, -1 for zlib's default."""
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=compress_level)
    return out.getvalue()
