"""Page images for OCR: a PDF page rendered with PDFium, or a frame of a PNG, JPEG or TIFF decoded with Pillow.

Every image handed on is grayscale PNG bytes of at most `max_pixels` pixels. A PDF page is rendered at the
asked resolution, scaled down when its size would pass the cap (a huge MediaBox is not a reason to fail);
an image file whose declared size passes the cap is refused before it is decoded (a decompression bomb
costs nothing then). These functions block: callers run them off the event loop.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator

import pypdfium2 as pdfium
from PIL import Image, ImageSequence


class PageImageError(ValueError):
    """A page that cannot be turned into an image; `page` is 1-based."""

    def __init__(self, page: int, message: str) -> None:
        super().__init__(message)
        self.page = page


class TooManyFrames(PageImageError):
    """An image file with more frames (pages) than the limit."""


def render_pdf_page(content: bytes, index: int, dpi: int, max_pixels: int) -> tuple[bytes, int]:
    """Page `index` (0-based) of a PDF as grayscale PNG bytes and the dots per inch it got: `dpi`, or fewer
    when the page would pass `max_pixels` at `dpi`."""
    try:
        pdf = pdfium.PdfDocument(content)
        try:
            page = pdf[index]
            width, height = page.get_size()  # points, 1/72 inch
            scale = min(dpi / 72, math.sqrt(max_pixels / max(width * height, 1.0)))
            bitmap = page.render(scale=scale, grayscale=True)
            image = bitmap.to_pil()
        finally:
            pdf.close()
    except pdfium.PdfiumError as exc:
        raise PageImageError(index + 1, f"page {index + 1} could not be rendered ({exc})") from exc
    return _png(image.convert("L")), max(1, round(scale * 72))


def image_frames(content: bytes, max_pixels: int, max_frames: int) -> Iterator[bytes]:
    """Each frame of an image file (a TIFF may hold many) as grayscale PNG bytes; refuse what passes the caps."""
    image = _open(content)
    for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
        if number > max_frames:
            raise TooManyFrames(number, f"the image has more than {max_frames} pages (frames)")
        width, height = frame.size
        if width * height > max_pixels:
            raise PageImageError(
                number, f"page {number} is {width}x{height} pixels, over the limit of {max_pixels} pixels"
            )
        try:
            yield _png(frame.convert("L"))
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt pixel data
            raise PageImageError(number, f"page {number} could not be decoded ({exc})") from exc


def _open(content: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own size check (per frame, against the setting) replaces Pillow's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(content), formats=["PNG", "JPEG", "TIFF"])
    except Image.DecompressionBombError as exc:
        raise PageImageError(1, f"page 1 is too large to decode ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise PageImageError(1, f"page 1 is not a readable PNG, JPEG or TIFF image ({exc})") from exc


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)  # read once by the OCR engine: speed over size
    return out.getvalue()
