"""OCR seconds per page: the sample invoice as an image-only PDF, read the way the parse block reads it.

Each page is rendered by PDFium at the parse block's resolution and OCRed by Tesseract (activities.ocr),
one page after another as in a block. Prints seconds per page and how many of the invoice's lines came
back exactly. `ocr_seconds_per_page()` is importable (bench/consensus.py prints it with its own numbers).

    .venv/bin/python -m bench.ocr --pages 4 --dpi 192
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.documents import ReadOptions, read_pages  # noqa: E402
from activities.ocr import OcrSettings  # noqa: E402
from docflow.sample_invoice import INVOICE_LINES  # noqa: E402
from tests.scans import encoded, page_image  # noqa: E402


def ocr_seconds_per_page(pages: int = 4, dpi: int = 192) -> tuple[float, float]:
    """(seconds per page, share of the invoice's lines read exactly) over a `pages`-page image-only PDF."""
    pdf = encoded([page_image() for _ in range(pages)], "PDF")
    options = ReadOptions(dpi=dpi, ocr=OcrSettings(max_pages=pages))
    started = time.perf_counter()
    texts = asyncio.run(read_pages(pdf, "application/pdf", "bench.pdf", options))
    elapsed = time.perf_counter() - started
    exact = sum(line in text.splitlines() for text in texts for line in INVOICE_LINES)
    return elapsed / pages, exact / (pages * len(INVOICE_LINES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--dpi", type=int, default=192)
    args = parser.parse_args()
    seconds, exact = ocr_seconds_per_page(args.pages, args.dpi)
    print(f"OCR: {seconds:.2f} s/page at {args.dpi} dpi over {args.pages} pages; {exact:.0%} of lines exact")


if __name__ == "__main__":
    main()
