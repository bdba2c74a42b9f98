"""Page images for OCR, made in a child process: PDF pages rendered with PDFium, image frames decoded with Pillow.

    async with page_renderer(content, "pdf", [0, 3], dpi=192, settings=ocr) as pages:
        png, dpi = await pages.next(page=1)      # PageImageError names the page that failed

Documents are hostile and PDFium is not thread-safe (one call at a time per process), so rendering and
decoding run in a child (`python -m activities.page_images`, started and limited by `rendering.child`): one
per document, started with an empty environment (no secrets), an address-space limit (RENDER_MEMORY_BYTES
over its idle size), killed when the worker dies, when a page passes its time limit or when the caller is
done. A crash there fails the page, not the worker.

Every image handed on is grayscale PNG of at most `max_pixels` pixels: a PDF page is rendered at the asked
resolution, scaled down when it would pass the cap (a huge MediaBox is no reason to fail); an image whose
declared size passes the cap is refused before it is decoded (a decompression bomb costs nothing then).
Frames on the child's stdout: `>BII` (status, page or dpi, length) then `length` bytes (PNG or message).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import BinaryIO, Literal

import pypdfium2 as pdfium
from PIL import Image, ImageSequence

from activities.ocr import OcrSettings
from rendering.child import answer_stream, limit_child, start_child
from rendering.pages import open_image, png_bytes, render_pdf_page

RENDER_MEMORY_BYTES = 1 << 30
_FRAME = struct.Struct(">BII")
_PNG, _FAILED, _TOO_MANY, _END = range(4)


class PageImageError(ValueError):
    """A page that cannot be turned into an image; `page` is 1-based."""

    def __init__(self, page: int, message: str) -> None:
        super().__init__(message)
        self.page = page


class TooManyFrames(PageImageError):
    """An image file with more frames (pages) than the limit."""


class PageTimeout(PageImageError):
    """A page took longer than the page time limit to render or decode."""


class RenderedPages:
    """The pages a renderer child sends, read one at a time under the page time limit."""

    def __init__(self, proc: asyncio.subprocess.Process, settings: OcrSettings) -> None:
        self.proc = proc
        self.settings = settings

    async def next(self, page: int) -> tuple[bytes, int] | None:
        """The next page's PNG and dots per inch (0 when unknown); None after the last frame of an image."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(self.settings.page_timeout_seconds):
                status, value, length = _FRAME.unpack(await self.proc.stdout.readexactly(_FRAME.size))
                body = await self.proc.stdout.readexactly(length)
        except TimeoutError as exc:
            limit = self.settings.page_timeout_seconds
            raise PageTimeout(page, f"page {page} took longer than {limit:g} s to render") from exc
        except asyncio.IncompleteReadError as exc:
            code = await self.proc.wait()
            raise PageImageError(page, f"page {page} could not be rendered (the renderer exited with {code})") from exc
        if status == _PNG:
            return body, value
        if status == _END:
            return None
        error = TooManyFrames if status == _TOO_MANY else PageImageError
        message = body.decode(errors="replace")
        raise error(value, message) if value else error(page, f"page {page}: {message}")


@asynccontextmanager
async def page_renderer(
    content: bytes, kind: Literal["pdf", "image"], indices: list[int], dpi: int, settings: OcrSettings
) -> AsyncIterator[RenderedPages]:
    """A child rendering PDF pages `indices` (0-based) at `dpi`, or decoding every frame of an image."""
    args = [kind, str(dpi), str(settings.max_pixels), str(settings.max_pages), *map(str, indices)]
    proc = await start_child("activities.page_images", args, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdin is not None
        proc.stdin.write(content)
        # A renderer that died or stalled early is reported by reading its first page, under the page limit.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            await asyncio.wait_for(proc.stdin.drain(), settings.page_timeout_seconds)
        proc.stdin.close()
        yield RenderedPages(proc, settings)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


# -- the child's side ------------------------------------------------------------------------------


def render_pdf_pages(content: bytes, indices: list[int], dpi: int, max_pixels: int) -> Iterator[tuple[bytes, int]]:
    """PDF pages `indices` (0-based) as grayscale PNG and the dots per inch each got: `dpi`, or fewer when the
    page would pass `max_pixels` at `dpi`."""
    page_number = indices[0] + 1 if indices else 1
    try:
        pdf = pdfium.PdfDocument(content)
    except pdfium.PdfiumError as exc:
        raise PageImageError(page_number, f"page {page_number} could not be rendered ({exc})") from exc
    try:
        for index in indices:
            try:
                image, scale = render_pdf_page(pdf, index, dpi, max_pixels)
            except pdfium.PdfiumError as exc:
                raise PageImageError(index + 1, f"page {index + 1} could not be rendered ({exc})") from exc
            yield _png(image.convert("L")), max(1, round(scale * 72))
    finally:
        pdf.close()


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
        # Our own size check (per frame, against the setting) replaces Pillow's bomb warning.
        return open_image(content, bomb_pixels=None)
    except Image.DecompressionBombError as exc:
        raise PageImageError(1, f"page 1 is too large to decode ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise PageImageError(1, f"page 1 is not a readable PNG, JPEG or TIFF image ({exc})") from exc


def _png(image: Image.Image) -> bytes:
    return png_bytes(image, compress_level=1)  # read once by the OCR engine: speed over size


def _send(out: BinaryIO, status: int, value: int, body: bytes) -> None:
    out.write(_FRAME.pack(status, value, len(body)) + body)
    out.flush()


def main(argv: list[str]) -> None:
    """Render or decode the document on stdin, page by page, onto stdout (see the module docstring)."""
    kind, dpi, max_pixels, max_pages = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    out = answer_stream()  # anything a library prints stays off the frames
    content = sys.stdin.buffer.read()
    limit_child(RENDER_MEMORY_BYTES, die_with_parent=True)
    try:
        if kind == "pdf":
            for png, got in render_pdf_pages(content, [int(a) for a in argv[4:]], dpi, max_pixels):
                _send(out, _PNG, got, png)
        else:
            for png in image_frames(content, max_pixels, max_pages):
                _send(out, _PNG, 0, png)
            _send(out, _END, 0, b"")
    except TooManyFrames as exc:
        _send(out, _TOO_MANY, exc.page, str(exc).encode())
    except PageImageError as exc:
        _send(out, _FAILED, exc.page, str(exc).encode())
    except MemoryError:
        _send(out, _FAILED, 0, b"the page needs more memory than the renderer may use")


if __name__ == "__main__":
    main(sys.argv[1:])
