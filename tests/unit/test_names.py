"""One source per name: what the compose file registers matches the search attributes the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from docflow.temporal import SEARCH_ATTRIBUTES

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def test_the_compose_file_registers_every_search_attribute_and_no_other() -> None:
    registered = dict(re.findall(r"\b(Docflow\w+):(Keyword(?:List)?)\b", COMPOSE.read_text()))
    assert registered == SEARCH_ATTRIBUTES
