"""Page ranges of a PDF as PDFs of their own (pypdf), for the split block.

The pages are copied as they are (content, resources, size, rotation), in the order given, so each part
opens in any reader and its text is the text of those pages. The output is deterministic for the same
input and pages, so a retried split stores the same files (file ids are content hashes).
"""

from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter


class PageRangeError(ValueError):
    """A PDF that cannot be read or written, or a page number outside it."""


def page_count(content: bytes) -> int:
    """How many pages the PDF has."""
    return len(_reader(content).pages)


def pdf_of_pages(content: bytes, pages: list[int]) -> bytes:
    """A PDF made of `pages` (1-based numbers) of the PDF `content`."""
    reader = _reader(content)
    count = len(reader.pages)
    writer = PdfWriter()
    for page in pages:
        if not 1 <= page <= count:
            raise PageRangeError(f"page {page} is not a page of this {count}-page PDF")
        writer.add_page(reader.pages[page - 1])
    out = io.BytesIO()
    try:
        writer.write(out)
    except Exception as exc:  # pypdf raises many types on odd objects; all mean "cannot copy these pages"
        raise PageRangeError(f"the pages could not be written as a PDF ({type(exc).__name__}: {exc})") from exc
    return out.getvalue()


def _reader(content: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PageRangeError("the PDF is password-protected")
        return reader
    except PageRangeError:
        raise
    except Exception as exc:  # damaged bytes: pypdf raises many types
        raise PageRangeError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
