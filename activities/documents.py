"""Document bytes → text per page, for the parse and extract blocks.

PDFs go through pypdf in layout mode (text in reading order, columns kept apart by spaces); a page
pypdf cannot lay out falls back to its plain mode. Text and JSON are one page. Images need OCR by a
model provider, which is not built yet, so they are refused with a message that says so.
"""

from __future__ import annotations

import io
import mimetypes

from pypdf import PageObject, PdfReader

_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


class UnsupportedDocumentError(ValueError):
    """A document whose type or content cannot be turned into text."""


def extract_pages(content: bytes, mime_type: str, filename: str) -> list[str]:
    """The text of each page of a document (PDF, text/*, JSON); raise UnsupportedDocumentError otherwise."""
    kind = _effective_type(mime_type, filename)
    if kind == "application/pdf":
        return _pdf_pages(content, filename)
    if kind.startswith("text/") or kind == "application/json" or kind.endswith("+json"):
        # utf-8-sig drops a byte-order mark that would otherwise start the text.
        return [content.decode("utf-8-sig", errors="replace")]
    if kind.startswith("image/"):
        raise UnsupportedDocumentError(
            f"{filename}: image documents ({kind}) need OCR through a model provider, which is not built yet"
        )
    raise UnsupportedDocumentError(f"{filename}: unsupported document type {kind!r}")


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
