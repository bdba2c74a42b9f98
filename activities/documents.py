"""Document bytes → text per page, for the parse block and for every block that reads a document's text.

PDFs go through pypdf in layout mode (text in reading order, columns kept apart by spaces); a page
pypdf cannot lay out falls back to its plain mode. A PDF page whose text layer has (almost) no text,
fewer than TEXT_LAYER_MIN_CHARS visible characters, is a scan: it is rendered in a child process
(activities.page_images) and OCRed by another (activities.ocr). PNG, JPEG and TIFF images are decoded the
same way and OCRed, one page per frame. Text and JSON are one page.

Limits (OcrSettings): at most `max_pages` pages are OCRed per document, a page image has at most
`max_pixels` pixels, each page has `page_timeout_seconds` (render or decode, then OCR) and the whole
document `document_timeout_seconds`. A page that cannot be read fails the document naming the page
(UnsupportedDocumentError with code `unreadable_page` and `details.page`).
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
from dataclasses import dataclass, field, replace
from typing import Any

from pypdf import PageObject, PdfReader

from activities.ocr import OcrError, OcrSettings, OcrSlots, layout
from activities.page_images import PageImageError, PageTimeout, RenderedPages, TooManyFrames, page_renderer

_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
OCR_IMAGE_TYPES = {"image/png", "image/jpeg", "image/tiff"}
# Fewer visible characters than this on a PDF page: it is a scan (a stray page number does not count as text).
TEXT_LAYER_MIN_CHARS = 10


class UnsupportedDocumentError(ValueError):
    """A document whose type or content cannot be turned into text; `code` and `details` go to the step error."""

    def __init__(self, message: str, code: str = "unsupported_document", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.details = details or {}


@dataclass(frozen=True)
class ReadOptions:
    """How scanned pages are read: the parse block's settings, or their defaults for other blocks."""

    dpi: int = 192
    table_format: str = "markdown"
    ocr: OcrSettings = field(default_factory=OcrSettings)
    # The worker's shared OCR slots; None: a pool of this call's own (tests, benchmarks).
    slots: OcrSlots | None = None


async def read_pages(content: bytes, mime_type: str, filename: str, options: ReadOptions) -> list[str]:
    """The text of each page: the text layer where there is one, OCR for scans and images."""
    kind = _effective_type(mime_type, filename)
    options = options if options.slots else replace(options, slots=OcrSlots(options.ocr))
    if kind in OCR_IMAGE_TYPES:
        return await _within_document_limit(_ocr_image(content, filename, options), filename, options.ocr)
    pages = await asyncio.to_thread(extract_pages, content, mime_type, filename)
    scanned = [i for i, text in enumerate(pages) if sum(not c.isspace() for c in text) < TEXT_LAYER_MIN_CHARS]
    if kind != "application/pdf" or not scanned:
        return pages
    if len(scanned) > options.ocr.max_pages:
        raise _too_many_pages(filename, options.ocr.max_pages)
    ocred = await _within_document_limit(_ocr_pdf(content, scanned, filename, options), filename, options.ocr)
    for index, text in zip(scanned, ocred, strict=True):
        pages[index] = text
    return pages


def extract_pages(content: bytes, mime_type: str, filename: str) -> list[str]:
    """The text layer of each page of a document (PDF, text/*, JSON); raise UnsupportedDocumentError otherwise."""
    kind = _effective_type(mime_type, filename)
    if kind == "application/pdf":
        return _pdf_pages(content, filename)
    if kind.startswith("text/") or kind == "application/json" or kind.endswith("+json"):
        # utf-8-sig drops a byte-order mark that would otherwise start the text.
        return [content.decode("utf-8-sig", errors="replace")]
    if kind.startswith("image/"):
        raise UnsupportedDocumentError(f"{filename}: image type {kind!r} is not supported (PNG, JPEG and TIFF are)")
    raise UnsupportedDocumentError(f"{filename}: unsupported document type {kind!r}")


async def _ocr_pdf(content: bytes, indices: list[int], filename: str, options: ReadOptions) -> list[str]:
    texts = []
    async with page_renderer(content, "pdf", indices, options.dpi, options.ocr) as pages:
        for index in indices:
            rendered = await _next_page(pages, index + 1, filename, options.ocr)
            assert rendered is not None  # a PDF renderer sends one frame per page asked for
            texts.append(await _ocr(*rendered, index + 1, filename, options))
    return texts


async def _ocr_image(content: bytes, filename: str, options: ReadOptions) -> list[str]:
    texts: list[str] = []
    async with page_renderer(content, "image", [], options.dpi, options.ocr) as frames:
        while (decoded := await _next_page(frames, len(texts) + 1, filename, options.ocr)) is not None:
            texts.append(await _ocr(*decoded, len(texts) + 1, filename, options))
    return texts


async def _next_page(pages: RenderedPages, page: int, filename: str, limits: OcrSettings) -> tuple[bytes, int] | None:
    try:
        rendered: tuple[bytes, int] | None = await pages.next(page)
    except TooManyFrames as exc:
        raise _too_many_pages(filename, limits.max_pages) from exc
    except PageTimeout as exc:
        raise UnsupportedDocumentError(f"{filename}: {exc}", "ocr_timeout", {"page": exc.page}) from exc
    except PageImageError as exc:
        raise UnsupportedDocumentError(f"{filename}: {exc}", "unreadable_page", {"page": exc.page}) from exc
    return rendered


async def _ocr(png: bytes, dpi: int, page: int, filename: str, options: ReadOptions) -> str:
    try:
        assert options.slots is not None  # set by read_pages
        words = await options.slots.words(png, page, dpi or None)
    except OcrError as exc:
        raise UnsupportedDocumentError(f"{filename}: {exc}", exc.code, {"page": exc.page}) from exc
    return layout(words, options.table_format)


async def _within_document_limit(work: Any, filename: str, limits: OcrSettings) -> list[str]:
    try:
        result: list[str] = await asyncio.wait_for(work, limits.document_timeout_seconds)
    except TimeoutError as exc:
        message = f"{filename}: OCR took longer than {limits.document_timeout_seconds:g} s for the document"
        raise UnsupportedDocumentError(message, "ocr_timeout") from exc
    return result


def _too_many_pages(filename: str, limit: int) -> UnsupportedDocumentError:
    message = f"{filename}: more than {limit} pages need OCR (the limit per document)"
    return UnsupportedDocumentError(message, "too_many_pages", {"limit": limit})


def _effective_type(mime_type: str, filename: str) -> str:
    kind = mime_type.split(";", 1)[0].strip().lower()
    if kind in _GENERIC_TYPES:
        # Uploads often arrive as octet-stream: the file name is the better witness then.
        guessed, _ = mimetypes.guess_type(filename)
        return guessed or kind or "application/octet-stream"
    return kind


def _pdf_pages(content: bytes, filename: str) -> list[str]:
    # The PDF spec lets the header sit anywhere in the first 1024 bytes.
    if b"%PDF-" not in content[:1024]:
        raise UnsupportedDocumentError(f"{filename}: not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedDocumentError(f"{filename}: the PDF is password-protected")
        return [_page_text(page) for page in reader.pages]
    except UnsupportedDocumentError:
        raise
    except Exception as exc:  # pypdf on damaged bytes raises many types; all mean "unreadable"
        raise UnsupportedDocumentError(f"{filename}: not a readable PDF ({type(exc).__name__}: {exc})") from exc


def _page_text(page: PageObject) -> str:
    try:
        text = page.extract_text(extraction_mode="layout")
    except Exception:  # layout mode trips on some fonts and transforms; plain mode still reads them
        text = page.extract_text()
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).strip("\n")
