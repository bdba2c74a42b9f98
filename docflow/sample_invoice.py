"""A small one-page invoice PDF, written by hand so the demo and tests need no PDF library to make one.

The file has a catalog, a page tree, one page, the standard Helvetica font and one content stream
drawing one text line per invoice line; the xref table holds the real byte offsets, so strict
readers (pypdf, browsers) open it without repairs.
"""

from __future__ import annotations

from pathlib import Path

INVOICE_LINES: tuple[str, ...] = (
    "INVOICE",
    "Invoice Number: INV-2026-0042",
    "Invoice Date: 2026-11-02",
    "Vendor: Acme Supplies Ltd",
    "Customer: Globex Corporation",
    "2 x Widget A @ 400.00",
    "1 x Service B @ 400.00",
    "Subtotal: 1,200.00",
    "Tax: 240.00",
    "Total Due: EUR 1,440.00",
    "Currency: EUR",
)

EXAMPLE_PATH = Path(__file__).parent / "examples" / "invoice.pdf"

_FONT_SIZE = 11
_LEADING = 18
_TOP = 770
_LEFT = 72


def invoice_pdf_bytes(lines: tuple[str, ...] = INVOICE_LINES) -> bytes:
    """A valid one-page PDF (A4) whose text is `lines`, one per line."""
    stream = _content_stream(lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    return _assemble(objects)


def _content_stream(lines: tuple[str, ...]) -> bytes:
    # One BT…ET block per line at an absolute position: every reader sees separate lines.
    parts = [
        f"BT /F1 {_FONT_SIZE} Tf {_LEFT} {_TOP - i * _LEADING} Td ({_escape(line)}) Tj ET"
        for i, line in enumerate(lines)
    ]
    return "\n".join(parts).encode("cp1252")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _assemble(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    # Each xref entry is exactly 20 bytes: 10-digit offset, 5-digit generation, type, EOL.
    out += b"0000000000 65535 f\r\n"
    out += b"".join(b"%010d 00000 n\r\n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def main() -> None:
    """Write the sample invoice to `docflow/examples/invoice.pdf`."""
    EXAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    EXAMPLE_PATH.write_bytes(invoice_pdf_bytes())


if __name__ == "__main__":
    main()
