"""OCR of scanned documents: image-only PDFs and images read with Tesseract, tables, limits and unreadable pages."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from activities.documents import ReadOptions, UnsupportedDocumentError, read_pages
from activities.ocr import OcrSettings, OcrSlots, OcrUnavailable, Word, layout
from activities.page_images import render_pdf_pages
from docflow.sample_invoice import INVOICE_LINES, invoice_pdf_bytes
from tests.scans import encoded, page_image, require_tesseract, scanned_invoice_pdf

# The labelled lines an extraction reads; OCR must give each of them exactly.
KEY_LINES = [line for line in INVOICE_LINES if ":" in line]


@pytest.fixture(autouse=True)
def _tesseract() -> None:
    require_tesseract()


def read(content: bytes, mime: str, name: str = "scan", **ocr: object) -> list[str]:
    options = ReadOptions(ocr=OcrSettings(**ocr))  # type: ignore[arg-type]
    return asyncio.run(read_pages(content, mime, name, options))


def error_of(content: bytes, mime: str, name: str = "scan", **ocr: object) -> UnsupportedDocumentError:
    with pytest.raises(UnsupportedDocumentError) as info:
        read(content, mime, name, **ocr)
    return info.value


def test_image_only_pdf_has_no_text_layer_and_is_read_by_ocr() -> None:
    pdf = scanned_invoice_pdf()
    assert PdfReader(io.BytesIO(pdf)).pages[0].extract_text().strip() == ""
    [text] = read(pdf, "application/pdf", "scan.pdf")
    for line in KEY_LINES:
        assert line in text.splitlines()


@pytest.mark.parametrize("fmt, mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("TIFF", "image/tiff")])
def test_images_are_read_by_ocr(fmt: str, mime: str) -> None:
    [text] = read(encoded([page_image()], fmt), mime)
    for line in KEY_LINES:
        assert line in text.splitlines()


def test_octet_stream_image_is_recognised_by_its_name() -> None:
    [text] = read(encoded([page_image()], "PNG"), "application/octet-stream", "scan.PNG")
    assert "Total Due: EUR 1,440.00" in text


def test_multi_page_tiff_gives_one_text_per_frame() -> None:
    frames = [page_image(("Page one", "Invoice Number: A-1")), page_image(("Page two", "Invoice Number: B-2"))]
    pages = read(encoded(frames, "TIFF"), "image/tiff")
    assert [p.splitlines() for p in pages] == [["Page one", "Invoice Number: A-1"], ["Page two", "Invoice Number: B-2"]]


def test_text_layer_is_kept_and_only_the_scanned_page_is_ocred() -> None:
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(invoice_pdf_bytes(("Typed page", "Invoice Number: T-1")))))
    writer.append(PdfReader(io.BytesIO(encoded([page_image(("Scanned page", "Invoice Number: S-2"))], "PDF"))))
    out = io.BytesIO()
    writer.write(out)
    pages = read(out.getvalue(), "application/pdf", "mixed.pdf")
    assert pages == ["Typed page\nInvoice Number: T-1", "Scanned page\nInvoice Number: S-2"]


def test_corrupt_image_fails_naming_the_page() -> None:
    png = encoded([page_image()], "PNG")
    error = error_of(png[: len(png) // 3], "image/png", "broken.png")
    assert error.code == "unreadable_page" and error.details == {"page": 1}
    assert "broken.png" in str(error) and "page 1" in str(error)


def test_garbage_named_as_image_fails_naming_the_page() -> None:
    error = error_of(b"not an image at all", "image/jpeg", "photo.jpg")
    assert error.code == "unreadable_page" and error.details == {"page": 1}


def test_ocr_failure_on_a_pdf_page_names_that_page(tmp_path: Path) -> None:
    failing = tmp_path / "ocr"
    failing.write_text("#!/bin/sh\necho 'Error: cannot read the image' >&2\nexit 1\n")
    failing.chmod(0o755)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(invoice_pdf_bytes())))
    writer.append(PdfReader(io.BytesIO(scanned_invoice_pdf())))
    out = io.BytesIO()
    writer.write(out)
    error = error_of(out.getvalue(), "application/pdf", "two.pdf", command=str(failing))
    assert error.code == "unreadable_page" and error.details == {"page": 2}
    assert "two.pdf: page 2" in str(error) and "cannot read the image" in str(error)


def test_declared_size_over_the_pixel_cap_is_refused_before_decoding() -> None:
    # A PNG header claiming 60000 x 60000 pixels (a decompression bomb), with no pixel data behind it.
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    error = error_of(b"\x89PNG\r\n\x1a\n" + chunk, "image/png", "bomb.png")
    assert error.code == "unreadable_page" and error.details == {"page": 1}
    small_cap = error_of(encoded([page_image()], "PNG"), "image/png", "big.png", max_pixels=1_000_000)
    assert "over the limit of 1000000 pixels" in str(small_cap)


def test_huge_pdf_page_is_rendered_scaled_down_to_the_pixel_cap() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=14400, height=14400)  # 200 inches square: 576 M pixels at 120 dpi
    out = io.BytesIO()
    writer.write(out)
    [(png, dpi)] = render_pdf_pages(out.getvalue(), [0], 120, 4_000_000)
    width, height = Image.open(io.BytesIO(png)).size
    assert width * height <= 4_000_000 * 1.01 and dpi == 10


def test_pages_over_the_limit_are_refused() -> None:
    frames = [page_image(("Page",)) for _ in range(3)]
    error = error_of(encoded(frames, "TIFF"), "image/tiff", "many.tiff", max_pages=2)
    assert error.code == "too_many_pages" and error.details == {"limit": 2}
    pdf_error = error_of(encoded(frames, "PDF"), "application/pdf", "many.pdf", max_pages=2)
    assert pdf_error.code == "too_many_pages"


def test_a_hanging_ocr_is_killed_at_the_page_limit_while_the_loop_keeps_running(tmp_path: Path) -> None:
    hanging = tmp_path / "ocr"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    options = ReadOptions(ocr=OcrSettings(command=str(hanging), page_timeout_seconds=0.5))

    async def run() -> tuple[UnsupportedDocumentError, float]:
        gaps: list[float] = []

        async def tick() -> None:  # stands in for the heartbeat task
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(time.perf_counter() - last)
                last = time.perf_counter()

        ticker = asyncio.create_task(tick())
        with pytest.raises(UnsupportedDocumentError) as info:
            await read_pages(encoded([page_image()], "PNG"), "image/png", "slow.png", options)
        ticker.cancel()
        return info.value, max(gaps)

    started = time.perf_counter()
    error, longest_gap = asyncio.run(run())
    assert error.code == "ocr_timeout" and error.details == {"page": 1}
    assert time.perf_counter() - started < 5
    assert longest_gap < 0.25


def test_missing_ocr_program_is_named() -> None:
    with pytest.raises(OcrUnavailable, match="no-such-ocr"):
        read(encoded([page_image()], "PNG"), "image/png", command="no-such-ocr")


def _table_image() -> bytes:
    image = Image.new("L", (1240, 700), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=23)
    draw.text((150, 100), "Line items", font=font, fill=0)
    rows = [
        ("Item", "Count", "Price", "Amount"),
        ("Widget A", "2", "400.00", "800.00"),
        ("Cable kit", "10", "4.50", "45.00"),
    ]
    for r, row in enumerate(rows):
        for x, cell in zip((150, 500, 700, 950), row, strict=True):
            draw.text((x, 160 + r * 40), cell, font=font, fill=0)
    draw.text((150, 400), "Total Due: EUR 845.00", font=font, fill=0)
    return encoded([image], "PNG")


def test_a_scanned_table_keeps_its_rows_and_columns_as_markdown() -> None:
    [text] = read(_table_image(), "image/png")
    assert text.splitlines() == [
        "Line items",
        "| Item | Count | Price | Amount |",
        "| --- | --- | --- | --- |",
        "| Widget A | 2 | 400.00 | 800.00 |",
        "| Cable kit | 10 | 4.50 | 45.00 |",
        "Total Due: EUR 845.00",
    ]


def _grid() -> list[Word]:
    words = []
    for r, row in enumerate([("Item", "Amount"), ("Pen|Blue", "1.00"), ("Ink", "2.00")]):
        for x, text in zip((100, 400), row, strict=True):
            words.append(Word(text, x, 100 + r * 30, 10 * len(text), 20))
    return words + [Word("Total", 100, 200, 50, 20), Word("3.00", 160, 200, 40, 20)]


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("markdown", ["| Item | Amount |", "| --- | --- |", "| Pen\\|Blue | 1.00 |", "| Ink | 2.00 |"]),
        ("html", ["<table>", "<tr><td>Item</td><td>Amount</td></tr>", "<tr><td>Pen|Blue</td><td>1.00</td></tr>",
                  "<tr><td>Ink</td><td>2.00</td></tr>", "</table>"]),
        ("json", ['[["Item", "Amount"], ["Pen|Blue", "1.00"], ["Ink", "2.00"]]']),
        ("yaml", ['- ["Item", "Amount"]', '- ["Pen|Blue", "1.00"]', '- ["Ink", "2.00"]']),
    ],
)  # fmt: skip
def test_grid_of_words_is_written_in_the_table_format(fmt: str, expected: list[str]) -> None:
    assert layout(_grid(), fmt).splitlines() == [*expected, "Total 3.00"]


def test_rows_that_do_not_line_up_are_plain_lines() -> None:
    words = [Word("Name:", 100, 100, 60, 20), Word("Ann", 400, 100, 40, 20), Word("Date:", 100, 130, 50, 20)]
    words.append(Word("today", 700, 130, 50, 20))
    assert layout(words, "markdown").splitlines() == ["Name:   Ann", "Date:   today"]
    assert layout([], "markdown") == ""


def test_ocr_processes_are_limited_per_worker(tmp_path: Path) -> None:
    # Each OCR process marks itself running, logs how many are running, and stays a while: the largest count
    # logged is how many ran at once (counted, not timed, so a loaded machine cannot fail it).
    running, log = tmp_path / "running", tmp_path / "counts"
    slow = tmp_path / "ocr"
    slow.write_text(
        f"#!/bin/sh\ncat >/dev/null\nmkdir -p {running}\ntouch {running}/$$\n"
        f"ls {running} | wc -l >> {log}\nsleep 0.8\nrm {running}/$$\n"
    )
    slow.chmod(0o755)
    png = encoded([page_image(("x",), dpi=72)], "PNG")

    async def most_at_once(processes: int, documents: int) -> int:
        log.unlink(missing_ok=True)
        settings = OcrSettings(command=str(slow), processes=processes)
        options = ReadOptions(ocr=settings, slots=OcrSlots(settings))
        await asyncio.gather(*(read_pages(png, "image/png", f"{i}.png", options) for i in range(documents)))
        counts = [int(line) for line in log.read_text().split()]
        assert len(counts) == documents
        return max(counts)

    assert asyncio.run(most_at_once(1, 3)) == 1  # one after another
    assert asyncio.run(most_at_once(2, 4)) == 2  # two at a time, never three


def test_a_page_too_big_for_the_renderers_memory_fails_that_page_not_the_worker() -> None:
    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(invoice_pdf_bytes())).pages[0])
    writer.add_blank_page(width=14400, height=14400)  # 1.5 G pixels at 192 dpi: past the renderer's memory
    out = io.BytesIO()
    writer.write(out)
    error = error_of(out.getvalue(), "application/pdf", "huge.pdf", max_pixels=4_000_000_000)
    assert error.code == "unreadable_page" and error.details == {"page": 2}
    assert "more memory than the renderer may use" in str(error)


def test_a_page_that_renders_past_the_page_limit_fails_naming_it() -> None:
    # 10 ms: less than the renderer needs to start, so the first page is late.
    error = error_of(scanned_invoice_pdf(), "application/pdf", "slow.pdf", page_timeout_seconds=0.01)
    assert error.code == "ocr_timeout" and error.details == {"page": 1}
    assert "slow.pdf: page 1 took longer than 0.01 s to render" in str(error)
