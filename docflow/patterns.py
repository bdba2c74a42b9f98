"""User-supplied regular expressions, run on RE2: matching time is linear in the text, whatever the pattern.

Every pattern a user writes (a conditional's `matches_regex`, a JSON Schema `pattern` or
`patternProperties` key, later test assertions) goes through `compile_pattern`, never through `re`:
Python's `re` backtracks, so `^(a+)+$` on 30 `a`s and a `!` takes seconds, doubling per character.

Refused (RE2 has no linear-time algorithm for them), with `PatternError` at write time:

- backreferences: `\\1`, `(?P=name)`, `\\k<name>`;
- lookaround: `(?=…)`, `(?!…)`, `(?<=…)`, `(?<!…)`;
- possessive quantifiers and atomic groups: `a*+`, `(?>…)`; conditionals `(?(1)…)`;
- repetition counts over 1000, nested counted repetition (`a{10}{10}`), and patterns whose compiled
  program exceeds RE2's memory budget (8 MiB).

Everything else of Python's and ECMA-262's everyday syntax works: classes, `\\d \\w \\s \\b`, anchors,
`(?i)` flags, named groups `(?P<name>…)`, counted repetition up to 1000.
"""

from __future__ import annotations

from functools import lru_cache

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the user, not logged to stderr by RE2


class PatternError(ValueError):
    """A pattern RE2 cannot run; the message says why."""


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled RE2 pattern, or PatternError naming what RE2 refuses."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(
            f"not a regular expression RE2 can run ({reason}); "
            "backreferences and lookaround are not supported, patterns run in linear time"
        ) from exc


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (raises PatternError for a refused pattern)."""
    return compile_pattern(pattern).search(text) is not None
