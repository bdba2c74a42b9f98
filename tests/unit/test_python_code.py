"""The write-time check of a function block's user Python: it parses, defines transform(input_data), never runs."""

from __future__ import annotations

import pytest

from docflow.python_code import MAX_CODE_CHARS, activity_seconds, code_issue, is_python_function


def test_good_code_passes_even_with_retabs_type_hints() -> None:
    assert code_issue("def transform(input_data: Input) -> Output:\n    return input_data\n") is None
    assert (
        code_issue("import json\n\ndef helper(x):\n    return x\n\ndef transform(data, extra=1):\n    return 1\n")
        is None
    )


@pytest.mark.parametrize(
    ("code", "fragment", "line"),
    [
        ("def transform(x):\n    return x +\n", "syntax error at line 2", 2),
        ("x = 1\n", "no top-level function 'transform", None),
        ("def other(x):\n    def transform(y):\n        return y\n", "no top-level function", None),
        ("\n\nasync def transform(x):\n    return x\n", "plain function", 3),
        ("def transform():\n    return 1\n", "one argument", 1),
        ("def transform(a, b):\n    return 1\n", "one argument", 1),
        ("def transform(a\0):\n    return 1\n", "null bytes", None),
        ("x = " + "(" * 300 + ")" * 300 + "\ndef transform(d):\n    return d\n", "too many nested", 1),
    ],
)
def test_bad_code_is_refused_with_its_line(code: str, fragment: str, line: int | None) -> None:
    issue = code_issue(code)
    assert issue is not None
    assert fragment in issue.message
    assert issue.line == line


def test_code_over_the_cap_is_refused_without_parsing() -> None:
    issue = code_issue("#" * (MAX_CODE_CHARS + 1))
    assert issue is not None and "over" in issue.message


def test_python_function_blocks_are_told_apart_and_timed() -> None:
    assert is_python_function("function", {"language": "python", "code": "..."})
    assert not is_python_function("function", {"expression": "a + 1"})
    assert not is_python_function("api_call", {"code": "x"})
    assert activity_seconds({"code": "x", "timeout_seconds": 2}) == 62
    assert activity_seconds({"code": "x", "timeout_seconds": "bad"}) == 120
