"""The review page end to end: headless Chromium (the system's, driven by Playwright) against the real stack.

A gated extract waits for review; a reviewer opens the link, sees the document's page image and the fields (the
one consensus doubts marked), corrects it, approves, and the run completes with the corrected data (read through
the SDK). A rejection needs a reason and ends the step in error. The queue lists the review and drops it once
decided. Expired, altered and other projects' links are
403, for pages, page images and actions alike. Screenshots go to the test's temporary directory (or
DOCFLOW_SCREENSHOTS); with DOCFLOW_DOCS_SCREENSHOT=1 (`make docs-screenshot`) the review page's also replaces
docs/review-page.png, the README's (not on every run, which would leave every checkout modified).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab

from docflow.review_links import sign
from docflow.sample_invoice import INVOICE_LINES, invoice_pdf_bytes
from docflow.webhooks import REVIEW_OPENED, event_id, event_key
from storage.link_secret import review_link_secret
from tests.browser import chromium
from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.integration.builders import build, wait_for
from tests.webhook_receiver import WebhookReceiver

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "review-page.png"
SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string", "description": "Invoice number"},
        "total": {"type": "number", "description": "Total due"},
        "vendor": {"type": "object", "properties": {"name": {"type": "string"}, "city": {"type": ["string", "null"]}}},
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}},
        },
    },
    "required": ["invoice_number", "total"],
}
VOTE = {
    "invoice_number": "INV-PAGE-7",
    "total": 14.4,
    "vendor": {"name": "Acme Supplies Ltd", "city": None},
    "lines": [{"sku": "Widget A", "qty": 2}, {"sku": "Service B", "qty": 1}],
}
WAITING = {"awaiting_review", "completed", "error", "cancelled"}


def _shots(tmp_path: Path) -> Path:
    kept = os.environ.get("DOCFLOW_SCREENSHOTS")
    path = Path(kept) if kept else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium of the system, through Playwright (which never downloads a browser here)."""
    executable = chromium()  # skips, or fails under DOCFLOW_REQUIRE_BROWSER, like the other browser tests
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("DOCFLOW_REQUIRE_BROWSER"):
            pytest.fail("playwright is required (DOCFLOW_REQUIRE_BROWSER is set) but not installed")
        pytest.skip("playwright is not installed (the dev extra has it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def _gated_run(client: Retab, stack: Stack, model_server: ChatCompletionsServer, tmp_path: Path) -> tuple[Any, ...]:
    """document → extract (3 votes, always reviewed) → function doubling the total; the run waits at the gate."""
    extract = {"json_schema": SCHEMA, "n_consensus": 3, "review": {"predicate": {"kind": "always"}}}
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "ex", "type": "extract", "label": "Invoice fields", "config": extract},
        {"id": "double", "type": "function", "config": {"expression": "input['total'] * 2"}},
    ]
    edges = [
        {"source_block": "doc", "source_handle": "output-file-0", "target_block": "ex"},
        {"source_block": "ex", "source_handle": "output-json-0", "target_block": "double"},
    ]
    edges[0]["target_handle"] = "input-file-document"
    edges[1]["target_handle"] = "input-json-0"
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    path = tmp_path / "invoice.pdf"
    path.write_bytes(invoice_pdf_bytes(tuple(line.replace("INV-2026-0042", "INV-PAGE-7") for line in INVOICE_LINES)))
    # Two of three votes read the total as 14.4: consensus keeps it, with a likelihood of 0.67 (under 0.8).
    model_server.answer_next(VOTE, {**VOTE, "total": 1440.0}, VOTE)
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    assert wait_for(client, run.id, WAITING).lifecycle.status == "awaiting_review"
    [review] = list(client.workflows.reviews.list(run_id=run.id))
    return run, review, ids


def _link(http: httpx.Client, review_id: str | None = None, **extra: Any) -> dict[str, Any]:
    made = http.post("/v1/workflows/review-links", json={"review_id": review_id, **extra})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _queued(http: httpx.Client, review_id: str) -> bool:
    return any(r["id"] == review_id for r in http.get("/v1/workflows/reviews", params={"limit": 100}).json()["data"])


def test_a_reviewer_corrects_a_field_from_the_link_and_the_run_completes_with_it(
    client: Retab,
    stack: Stack,
    http: httpx.Client,
    model_server: ChatCompletionsServer,
    page: Any,
    browser: Any,
    tmp_path: Path,
) -> None:
    shots = _shots(tmp_path)
    run, review, ids = _gated_run(client, stack, model_server, tmp_path)
    queue_link, review_link = _link(http), _link(http, review.id)
    assert review_link["scope"] == "review" and queue_link["scope"] == "queue"

    # The queue lists the waiting review, with its workflow, block, run and lowest likelihood.
    queue_page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    assert queue_page.goto(queue_link["url"]).status == 200
    assert queue_page.url == f"{stack.api_url}/review/p/{stack.project_id}/"  # the token left the address bar
    row = queue_page.locator("table.queue tbody tr", has_text=run.id)
    assert row.count() == 1
    assert "Invoice fields" in row.inner_text() and "0.67 (total)" in row.inner_text()
    queue_page.screenshot(path=str(shots / "review-queue.png"))
    # The queue link opens the project's reviews too: its row leads to the review page.
    row.get_by_role("link").click()
    queue_page.wait_for_url(f"{stack.api_url}/review/p/{stack.project_id}/r/{review.id}/")
    assert queue_page.get_by_label("total", exact=True).input_value() == "14.4"
    assert queue_page.get_by_role("link", name="← Back to the queue").count() == 1
    queue_page.goto(queue_link["url"])

    # One review: the document's page image beside the form; the doubted field is marked.
    response = page.goto(review_link["url"])
    assert response.status == 200
    assert page.url == f"{stack.api_url}/review/p/{stack.project_id}/r/{review.id}/"
    image = page.get_by_alt_text("Page 1 of invoice.pdf")
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 500", arg=image.element_handle())
    total = page.get_by_label("total", exact=True)
    assert total.input_value() == "14.4"
    field = page.locator(".f-field", has=total)
    assert "low" in (field.get_attribute("class") or "") and "low confidence 0.67" in field.inner_text()
    assert page.get_by_label("invoice_number", exact=True).input_value() == "INV-PAGE-7"
    assert page.get_by_label("sku").first.input_value() == "Widget A"  # an array of objects, as fields
    assert "invoice.pdf" in page.locator(".doc").inner_text()
    assert run.id in page.locator(".facts").inner_text()  # the run's context
    page.screenshot(path=str(shots / "review-page.png"))
    if os.environ.get("DOCFLOW_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shots / "review-page.png", DOCS_SHOT)

    # A value the block's schema refuses (an item's qty emptied) is refused by the server, naming the field,
    # which the page marks and focuses; nothing is saved.
    qty = page.locator('[data-path="lines[0].qty"]')
    qty.fill("")
    page.locator("#save").click()
    page.locator("#status.error").wait_for()
    assert qty.get_attribute("aria-invalid") == "true" and qty.evaluate("el => el === document.activeElement")
    assert len(list(client.workflows.reviews.versions.list(review_id=review.id))) == 1
    qty.fill("2")

    # Correct the field with the keyboard and approve: the edit is saved as a version, then approved.
    total.fill("")
    total.press_sequentially("1440")
    page.get_by_label("Your name").fill("Rita Reviewer")
    page.locator("#approve").focus()
    page.keyboard.press("Enter")
    page.locator(".decided.approved").wait_for(timeout=30_000)
    assert "Rita Reviewer" in page.locator(".decided").inner_text()
    page.screenshot(path=str(shots / "review-approved.png"))

    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    steps = {s.block_id: s for s in client.workflows.steps.list(run_id=run.id)}
    assert steps[ids["ex"]].handle_outputs["output-json-0"].data == {**VOTE, "total": 1440}
    assert steps[ids["double"]].handle_outputs["output-json-0"].data == 2880
    decided = client.workflows.reviews.get(review.id)
    assert decided.decision.verdict == "approved" and decided.decision.author.display_name == "Rita Reviewer"
    versions = list(client.workflows.reviews.versions.list(review_id=review.id))
    assert [v.author.kind for v in versions] == ["model", "human"]
    assert decided.decision.version_id == versions[1].id and versions[1].snapshot["total"] == 1440

    # Decided, the review leaves the queue.
    queue_page.reload()
    assert queue_page.locator("table.queue tbody tr", has_text=run.id).count() == 0
    assert not _queued(http, review.id)
    queue_page.context.close()


def test_expired_and_tampered_links_are_refused(stack: Stack, http: httpx.Client, page: Any, tmp_path: Path) -> None:
    secret = review_link_secret(stack.settings)
    expired = sign(secret, stack.project_id, None, int(time.time()) - 5)
    response = page.goto(f"{stack.api_url}/review/l/{expired}")
    assert response.status == 403 and "expired" in page.locator(".error").inner_text()
    page.screenshot(path=str(_shots(tmp_path) / "review-expired.png"))

    token = _link(http)["token"]
    head, mac = token.split(".")
    for tampered in (f"{head}.{mac[:-3]}{'A' if mac[-3] != 'A' else 'B'}{mac[-2:]}", f"{head[:-2]}xx.{mac}"):
        assert page.goto(f"{stack.api_url}/review/l/{tampered}").status == 403
    # Another project's link, held by this browser, does not open this project's queue.
    with httpx.Client(base_url=stack.api_url, headers={"Api-Key": stack.other_api_key}, timeout=30) as other_http:
        other_link = _link(other_http)
    assert page.goto(other_link["url"]).status == 200
    assert page.url == f"{stack.api_url}/review/p/{stack.other_project_id}/"
    assert page.goto(f"{stack.api_url}/review/p/{stack.project_id}/").status == 403
    page.context.clear_cookies()
    # Without a link, the queue does not open.
    assert page.goto(f"{stack.api_url}/review/p/{stack.project_id}/").status == 403
    # A cookie altered in the browser is refused too (it is checked on every request, not only at the link).
    page.context.add_cookies(
        [{"name": "docflow_review", "value": f"{head}.{mac[:-1]}B", "url": f"{stack.api_url}/review/p/"}]
    )
    assert page.goto(f"{stack.api_url}/review/p/{stack.project_id}/").status == 403


def _session(stack: Stack, link: dict[str, Any]) -> httpx.Client:
    """A browser-like client that opened the link: it holds the cookie the link was exchanged for."""
    session = httpx.Client(base_url=stack.api_url, timeout=30)
    opened = session.get(link["url"].removeprefix(stack.api_url))
    assert opened.status_code == 303
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    return session


def test_a_link_reaches_only_its_own_project_and_review(
    client: Retab,
    stack: Stack,
    http: httpx.Client,
    model_server: ChatCompletionsServer,
    webhook_receivers: tuple[WebhookReceiver, WebhookReceiver],
    page: Any,
    tmp_path: Path,
) -> None:
    run, review, _ = _gated_run(client, stack, model_server, tmp_path)
    base = f"/review/p/{stack.project_id}/r/{review.id}"
    seed = next(iter(client.workflows.reviews.versions.list(review_id=review.id)))
    with httpx.Client(base_url=stack.api_url, headers={"Api-Key": stack.other_api_key}, timeout=30) as other_http:
        # Another project's key cannot make a link to this review at all...
        assert other_http.post("/v1/workflows/review-links", json={"review_id": review.id}).status_code == 404
        other_link = _link(other_http)
    # The review's own link: the one its webhook event carried.
    opened = event_id(stack.project_id, REVIEW_OPENED, event_key(run.id, review.id))
    receiver = webhook_receivers[0]
    deadline = time.monotonic() + 30
    while not receiver.received(opened):
        assert time.monotonic() < deadline, "no review.opened event"
        time.sleep(0.1)
    own = {"url": receiver.received(opened)[0].event["data"]["review_url"]}
    with closing(_session(stack, other_link)) as other, closing(_session(stack, own)) as mine:
        # ...and its queue link reaches none of this project's pages, images or actions, by either path.
        assert other.cookies.get("docflow_review") == other_link["token"]
        # The same cookie sent on every path, whatever its Path attribute would allow.
        forged = httpx.Client(
            base_url=stack.api_url, headers={"Cookie": f"docflow_review={other_link['token']}"}, timeout=30
        )
        for path in (f"{base}/", f"{base}/pages/1.png", f"/review/p/{stack.other_project_id}/r/{review.id}/"):
            for session in (other, forged):
                assert session.get(path).status_code == 403, path
        other_base = f"/review/p/{stack.other_project_id}/r/{review.id}"
        for target in (base, other_base):
            approve = forged.post(f"{target}/approve", json={"version_id": seed.id})
            assert approve.status_code == 403, approve.text
            saved = forged.post(f"{target}/versions", json={"parent_id": seed.id, "snapshot": {**VOTE, "total": 1}})
            assert saved.status_code == 403
        assert forged.get(f"/review/p/{stack.other_project_id}/").status_code == 200  # its own queue opens
        forged.close()

        # The review's own link opens its page and its document's page as PNG, and nothing else.
        assert mine.get(f"{base}/").status_code == 200
        png = mine.get(f"{base}/pages/1.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
        assert mine.get(f"{base}/pages/2.png").status_code == 404  # a one-page document
        assert mine.get(f"/review/p/{stack.project_id}/").status_code == 403  # not the queue
        # An action from another site, or not as JSON, is refused.
        foreign = mine.post(f"{base}/approve", json={"version_id": seed.id}, headers={"Origin": "http://evil.test"})
        assert foreign.status_code == 403
        as_form = mine.post(f"{base}/approve", data={"version_id": seed.id})
        assert as_form.status_code in (403, 422)
        # A rejection needs a reason; with one, the run ends the step in error.
        assert mine.post(f"{base}/reject", json={"version_id": seed.id, "reason": "  "}).status_code == 422
        assert client.workflows.reviews.get(review.id).decision is None
    # In the browser: Reject without a reason is refused on the page, with the focus on the reason; with one, the
    # step ends in error.
    assert page.goto(own["url"]).status == 200
    page.get_by_role("button", name="Reject").click()
    page.locator("#status.error").wait_for()
    assert page.locator("#reason").evaluate("el => el === document.activeElement")
    page.keyboard.type("wrong vendor")
    page.get_by_role("button", name="Reject").focus()
    page.keyboard.press("Enter")
    page.locator(".decided.rejected").wait_for(timeout=30_000)
    assert "wrong vendor" in page.locator(".decided").inner_text()
    page.screenshot(path=str(_shots(tmp_path) / "review-rejected.png"))
    assert wait_for(client, run.id).lifecycle.status == "error"
    assert client.workflows.reviews.get(review.id).decision.reason == "wrong vendor"
