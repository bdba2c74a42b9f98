"""OCR of page images with Tesseract, run as a child process per page; words laid out as lines and tables.

Engine: Tesseract 5 (Debian's `tesseract-ocr`, English data included), called as a program. Measured on
this machine (2 cores) on the sample invoice rendered with Pillow, clean and "scanned" (rotated 0.8°,
blurred, noise, JPEG q60), at 150/200/300 dpi:

    Tesseract 5.3      0.22-0.35 s/page clean, 0.4-1.1 s/page scanned; 9-11 of 11 lines exact, similarity 0.98-0.99
    RapidOCR 1.4.4     0.8-1.5 s/page clean, 0.75-1.0 s/page scanned; 1-8 of 11 lines exact, similarity 0.90-0.99
    (rapidocr_onnxruntime: PP-OCRv4 models inside the wheel; it drops the spaces between Latin words)

The whole path, PDF page rendered at 192 dpi then OCRed, takes ~0.3 s/page here (bench/ocr.py).

Tesseract is faster, keeps word spacing, and needs no Python wheel of ~100 MB (onnxruntime, OpenCV). Its
models ship in the Debian package, so nothing is downloaded at run time. A child process can be killed:
each page has a wall-clock limit (`page_timeout_seconds`), the event loop stays free (heartbeats go on),
the child gets an empty environment (no secrets) and one OpenMP thread, and at most `processes` children
run at once per worker (documents wait for a slot), so many scans cannot fork a process each.

Layout (modest, by geometry): words are grouped into rows by their vertical centres, a row splits into
cells at gaps wider than about 1.5 line heights, and two or more consecutive rows with the same number (≥ 2)
of cells whose left edges line up form a table, written in the block's `table_parsing_format` (markdown
pipe rows, an HTML table, a JSON list of rows, or a YAML list of rows). Other rows are their cells joined
by three spaces. Ruled lines, merged cells and rows with empty cells are not recognised as tables.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import statistics
from dataclasses import dataclass
from html import escape

TableFormat = str  # "markdown" | "html" | "json" | "yaml", as ParseConfig.table_parsing_format


class OcrError(Exception):
    """OCR of one page failed; `page` is 1-based and `code` names the failure for the step's error."""

    def __init__(self, page: int, message: str, code: str = "unreadable_page") -> None:
        super().__init__(message)
        self.page = page
        self.code = code


class OcrUnavailable(Exception):
    """The OCR program is not installed on this worker."""


@dataclass(frozen=True)
class OcrSettings:
    """How pages are OCRed; the worker builds it from docflow.config.Settings (`ocr_*`)."""

    command: str = "tesseract"
    languages: str = "eng"
    page_timeout_seconds: float = 60.0
    document_timeout_seconds: float = 300.0
    max_pages: int = 50
    max_pixels: int = 40_000_000
    processes: int = 2


@dataclass(frozen=True)
class Word:
    """A recognised word and its box, in pixels."""

    text: str
    left: int
    top: int
    width: int
    height: int


class OcrSlots:
    """The worker's OCR processes: at most `settings.processes` run at once."""

    def __init__(self, settings: OcrSettings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.processes)

    async def words(self, png: bytes, page: int, dpi: int | None) -> list[Word]:
        """The words on one page image, once a slot is free (the page's time limit starts then)."""
        async with self._slots:
            return await ocr_page(png, page, dpi, self.settings)


async def ocr_page(png: bytes, page: int, dpi: int | None, settings: OcrSettings) -> list[Word]:
    """The words Tesseract reads on one page image (PNG bytes)."""
    command = shutil.which(settings.command)
    if command is None:
        raise OcrUnavailable(f"the OCR program {settings.command!r} is not installed on this worker")
    args = [command, "stdin", "stdout", "-l", settings.languages]
    if dpi:
        args += ["--dpi", str(dpi)]
    proc = await asyncio.create_subprocess_exec(
        *args,
        "tsv",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"OMP_THREAD_LIMIT": "1"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(png), settings.page_timeout_seconds)
    except TimeoutError as exc:
        raise OcrError(
            page, f"page {page}: OCR took longer than {settings.page_timeout_seconds:g} s", "ocr_timeout"
        ) from exc
    finally:
        if proc.returncode is None:  # timed out or cancelled: the child must not outlive the step
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise OcrError(page, f"page {page} could not be read by OCR ({reason[0][:200]})")
    return parse_tsv(out.decode(errors="replace"))


def parse_tsv(tsv: str) -> list[Word]:
    """Words (level 5 rows with text) of Tesseract's TSV output."""
    words = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") == "5" and text:
            box = (int(row["left"]), int(row["top"]), int(row["width"]), int(row["height"]))
            words.append(Word(text, *box))
    return words


def layout(words: list[Word], table_format: TableFormat) -> str:
    """Page text: rows of words top to bottom, tables written in `table_format` (see the module docstring)."""
    if not words:
        return ""
    height = statistics.median(w.height for w in words)
    rows = [_cells(row, height) for row in _rows(words, height)]
    lines: list[str] = []
    i = 0
    while i < len(rows):
        end = i + 1
        while len(rows[i]) >= 2 and end < len(rows) and _aligned(rows[i], rows[end], height):
            end += 1
        if end - i >= 2:
            lines += _table([[c.text for c in row] for row in rows[i:end]], table_format)
        else:
            lines.append("   ".join(c.text for c in rows[i]))
        i = end
    return "\n".join(lines)


@dataclass(frozen=True)
class _Cell:
    text: str
    left: int


def _rows(words: list[Word], height: float) -> list[list[Word]]:
    rows: list[list[Word]] = []
    for word in sorted(words, key=lambda w: w.top + w.height / 2):
        centre = word.top + word.height / 2
        if rows and abs(centre - _centre(rows[-1])) <= height / 2:
            rows[-1].append(word)
        else:
            rows.append([word])
    return [sorted(row, key=lambda w: w.left) for row in rows]


def _centre(row: list[Word]) -> float:
    return statistics.mean(w.top + w.height / 2 for w in row)


def _cells(row: list[Word], height: float) -> list[_Cell]:
    cells: list[list[Word]] = [[row[0]]]
    for previous, word in zip(row, row[1:], strict=False):
        if word.left - (previous.left + previous.width) > 1.5 * height:
            cells.append([word])
        else:
            cells[-1].append(word)
    return [_Cell(" ".join(w.text for w in cell), cell[0].left) for cell in cells]


def _aligned(first: list[_Cell], other: list[_Cell], height: float) -> bool:
    return len(first) == len(other) and all(
        abs(a.left - b.left) <= 2 * height for a, b in zip(first, other, strict=True)
    )


def _table(rows: list[list[str]], table_format: TableFormat) -> list[str]:
    if table_format == "html":
        body = ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        return ["<table>", *body, "</table>"]
    if table_format == "json":
        return [json.dumps(rows, ensure_ascii=False)]
    if table_format == "yaml":
        # A YAML sequence of flow sequences (JSON lists are valid YAML flow sequences).
        return ["- " + json.dumps(row, ensure_ascii=False) for row in rows]
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    header = "| " + " | ".join(cells[0]) + " |"
    rule = "|" + "|".join(" --- " for _ in cells[0]) + "|"
    return [header, rule, *("| " + " | ".join(row) + " |" for row in cells[1:])]
