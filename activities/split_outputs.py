"""A split's outputs from its parts: one stored PDF per part, one handle per sub-document, `output-json-splits`.

Shared by the split block and by an approved review version that changes a split's documents, so both cut
and route the same way (docflow/blocks.py says how several instances of one sub-document are handled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from activities.errors import BlockError
from activities.pdf_pages import PageRangeError, pdf_of_pages
from activities.stored_files import store_made_document
from docflow.blocks import Subdocument
from docflow.models import FileRef
from docflow.runs import HandleValue
from storage.objects import ObjectStore


async def split_outputs(
    store: ObjectStore,
    project: str,
    doc: FileRef,
    content: bytes,
    parts: Sequence[tuple[str, list[int]]],
    subdocuments: Sequence[Subdocument],
    page_total: int,
) -> tuple[dict[str, HandleValue], list[dict[str, Any]]]:
    """The handles' values and the splits (name, pages, stored file) of `parts` (name, 1-based pages)."""
    keys_by_name = {d.name: d.key for d in subdocuments}
    stem = doc.filename.rsplit(".", 1)[0] or "document"
    splits: list[dict[str, Any]] = []
    for index, (name, pages) in enumerate(parts, start=1):
        filename = f"{stem}-{keys_by_name[name]}-{index}.pdf"
        file = await store_pages(store, project, doc, content, pages, filename, page_total)
        splits.append({"name": name, "pages": pages, "file": file.model_dump()})
    outputs: dict[str, HandleValue] = {}
    for sub in subdocuments:
        mine = [i for i, (name, _) in enumerate(parts) if name == sub.name]
        if len(mine) == 1:
            outputs[f"output-file-{sub.key}"] = HandleValue(
                type="file", document=FileRef.model_validate(splits[mine[0]]["file"])
            )
        elif mine:
            # Several instances: the handle carries one PDF of all their pages; each is in output-json-splits.
            every = sorted({page for i in mine for page in parts[i][1]})
            file = await store_pages(store, project, doc, content, every, f"{stem}-{sub.key}.pdf", page_total)
            outputs[f"output-file-{sub.key}"] = HandleValue(type="file", document=file)
    outputs["output-json-splits"] = HandleValue(type="json", data=splits, document=doc)
    return outputs, splits


async def store_pages(
    store: ObjectStore, project: str, doc: FileRef, content: bytes, pages: list[int], filename: str, count: int
) -> FileRef:
    """The pages as a document of their own: a PDF of them, or the document itself when it is all of it."""
    if not is_pdf(content):
        if pages == list(range(1, count + 1)):
            return doc
        raise BlockError(f"{doc.filename}: only a PDF can be split into page ranges", code="unsupported_document")
    try:
        made = await asyncio.to_thread(pdf_of_pages, content, pages)
    except PageRangeError as exc:
        raise BlockError(f"{doc.filename}: {exc}", code="unsupported_document") from exc
    return await store_made_document(store, project, filename, "application/pdf", made)


def is_pdf(content: bytes) -> bool:
    """Whether the bytes are a PDF (the spec lets the header sit anywhere in the first 1024 bytes)."""
    return b"%PDF-" in content[:1024]
