"""Pure parts of uploads and downloads: the Content-Disposition of a download."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest

from api.files_service import content_disposition


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("請求書.txt", "___.txt"),
        ("facture été.pdf", "facture _t_.pdf"),
        ('a"b\\c.txt', "a_b_c.txt"),
        ("evil\r\nSet-Cookie: x=1.txt", "evil__Set-Cookie: x=1.txt"),
        ("plain.pdf", "plain.pdf"),
    ],
)
def test_content_disposition_has_an_ascii_fallback_and_the_exact_name(name: str, fallback: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # what the server must be able to send
    assert "\r" not in header and "\n" not in header
    assert f'filename="{fallback}"' in header
    extended = re.search(r"filename\*=UTF-8''(\S+)$", header)
    assert extended is not None and unquote(extended.group(1), errors="strict") == name
