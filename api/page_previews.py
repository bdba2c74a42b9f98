"""Page images for the review page: a document's page count and one page as PNG, made in a child process.

    count = await page_count(content, "pdf", limits)       # at most limits.max_pages
    png = await page_png(content, "pdf", 0, limits)        # PreviewError with a message a reviewer can read

Documents are hostile: PDFium (pypdfium2) and Pillow run in a child (`python -m api.page_previews`), never on the
API's event loop nor in its threads (PDFium is not thread-safe and a page can take unbounded time). The child
(started and limited by `rendering.child`, rendering with `rendering.pages`) starts with an empty environment
(no secrets), an address-space limit, a CPU-time limit, and is killed when it passes the time limit. A page is
scaled down to `max_pixels`, and so is an image; an image declaring more than `BOMB_PIXELS` is refused before it
is decoded (a decompression bomb costs nothing then). Only PNG bytes we encoded are sent on: never the
document's own bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from asyncio.subprocess import PIPE
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rendering.child import answer_stream, limit_child, start_child

if TYPE_CHECKING:
    from PIL import Image

Kind = Literal["pdf", "image"]
MEMORY_BYTES = 1 << 30
# Screen resolution: a page of A4 is about 900×1270 pixels, readable beside the form at 1280×800.
DPI = 110
# An image declaring more pixels is refused before it is decoded; a smaller one is scaled down to the cap.
BOMB_PIXELS = 40_000_000


class PreviewError(ValueError):
    """A document or page that cannot be shown."""


@dataclass(frozen=True)
class PreviewLimits:
    """Caps of one child: pages counted, pixels of a page image, seconds."""

    max_pages: int
    max_pixels: int
    timeout_seconds: float


def kind_of(mime_type: str) -> Kind | None:
    """What the previewer does with a document of this type: render (PDF), decode (PNG/JPEG/TIFF), nothing."""
    if mime_type == "application/pdf":
        return "pdf"
    if mime_type in ("image/png", "image/jpeg", "image/tiff"):
        return "image"
    return None


async def page_count(content: bytes, kind: Kind, limits: PreviewLimits) -> int:
    """Pages the document has, at most `limits.max_pages`."""
    out = await _child(content, ["count", kind, "0", str(limits.max_pixels), str(limits.max_pages)], limits)
    return min(int(out.decode()), limits.max_pages)


async def page_png(content: bytes, kind: Kind, index: int, limits: PreviewLimits) -> bytes:
    """Page `index` (0-based) as a grayscale PNG of at most `limits.max_pixels` pixels."""
    return await _child(content, ["render", kind, str(index), str(limits.max_pixels), str(limits.max_pages)], limits)


async def _child(content: bytes, args: list[str], limits: PreviewLimits) -> bytes:
    cpu_seconds = str(math.ceil(limits.timeout_seconds))
    proc = await start_child("api.page_previews", [*args, cpu_seconds], stderr=PIPE, start_new_session=True)
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            out, err = await proc.communicate(content)
    except TimeoutError:
        raise PreviewError(f"the page took longer than {limits.timeout_seconds:g} s to render") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise PreviewError(message[-1][:300] if message else f"the renderer exited with {proc.returncode}")
    return out


# -- the child's side ------------------------------------------------------------------------------
# PDFium and Pillow are imported here, in the child, never by the API.


def _count(content: bytes, kind: str, max_pages: int) -> int:
    if kind == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(content)
        try:
            return len(pdf)
        finally:
            pdf.close()
    from PIL import ImageSequence

    from rendering.pages import open_image

    frames = ImageSequence.Iterator(open_image(content, BOMB_PIXELS))
    return len(list(zip(range(max_pages), frames, strict=False)))


def _render(content: bytes, kind: str, index: int, max_pixels: int) -> bytes:
    from PIL import ImageSequence

    from rendering.pages import open_image, png_bytes, render_pdf_page

    image: Image.Image
    if kind == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(content)
        try:
            if not 0 <= index < len(pdf):
                raise PreviewError(f"the document has no page {index + 1}")
            image, _ = render_pdf_page(pdf, index, DPI, max_pixels)
        finally:
            pdf.close()
    else:
        frames = ImageSequence.Iterator(open_image(content, BOMB_PIXELS))
        try:
            image = frames[index]
        except IndexError:
            raise PreviewError(f"the image has no page {index + 1}") from None
    width, height = image.size
    if width * height > max_pixels:  # an image over the cap, or a page rounded up past it by the renderer
        shrink = math.sqrt(max_pixels / (width * height))
        image = image.resize((max(1, int(width * shrink)), max(1, int(height * shrink))))
    return png_bytes(image.convert("L"))


def main(argv: list[str]) -> int:
    """`count|render pdf|image INDEX MAX_PIXELS MAX_PAGES CPU_SECONDS`, the document on stdin, the answer on stdout."""
    action, kind, index, max_pixels, max_pages, cpu = argv[0], argv[1], *map(int, argv[2:6])
    out = answer_stream()
    content = sys.stdin.buffer.read()
    with contextlib.suppress(OSError):
        limit_child(MEMORY_BYTES, cpu_seconds=cpu)
    try:
        if action == "count":
            out.write(str(_count(content, kind, max_pages)).encode())
        else:
            out.write(_render(content, kind, index, max_pixels))
    except PreviewError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except MemoryError:
        sys.stderr.write("the page needs more memory than the renderer may use\n")
        return 2
    except Exception as exc:  # a hostile document: any library error is a page we cannot show
        sys.stderr.write(f"the document could not be read ({type(exc).__name__})\n")
        return 2
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
