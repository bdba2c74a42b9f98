"""The function block's expression language: what it computes, what it refuses, how errors read."""

from __future__ import annotations

from typing import Any

import pytest

from docflow import expressions
from docflow.blocks import FunctionConfig
from docflow.expressions import ExpressionError, check_expressions, run_function

DATA = {
    "total": 100,
    "name": "acme ltd",
    "items": [{"qty": 2, "price": 3.5}, {"qty": 1, "price": 10}],
    "input": "shadowed",
}


def unchecked(**fields: Any) -> FunctionConfig:
    """A config that skips validation on write, to test evaluation itself."""
    return FunctionConfig.model_construct(**fields)


def run(expression: str, data: Any = DATA) -> Any:
    return run_function(unchecked(expression=expression), data)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("total * 1.2", 120.0),
        ("input['total'] + data['total']", 200),
        ("input.total", 100),
        ("input.items[1].price", 10),
        ("sum([i['qty'] * i['price'] for i in items])", 17.0),
        ("max(i.qty for i in items)", 2),
        ("round(total / 3, 2)", 33.33),
        ("len(items)", 2),
        ("name.upper()", "ACME LTD"),
        ("name.title().split()", ["Acme", "Ltd"]),
        ("sorted([3, 1, 2])", [1, 2, 3]),
        ("total if total > 50 else 0", 100),
        ("{'t': total, 'pair': (1, 2)}", {"t": 100, "pair": [1, 2]}),
        ("int('12') + float('1.5') + abs(-1)", 14.5),
        ("any([False, True]) and all([1, 2])", True),
        ("str(total) + '€'", "100€"),
        ("input.get('missing', 'default')", "default"),
        ("list(input.keys())[:2]", ["total", "name"]),
    ],
)
def test_expression_computes(expression: str, expected: Any) -> None:
    assert run(expression) == expected


def test_input_key_named_input_does_not_shadow_the_whole_input() -> None:
    assert run("input['input']") == "shadowed"


def test_non_dict_input_is_reachable_as_input_and_data() -> None:
    assert run("sum(input) + len(data)", [1, 2, 3]) == 9


def test_mapping_evaluates_each_entry() -> None:
    cfg = FunctionConfig(mapping={"gross": "total * 1.2", "vendor": "name.upper()", "n": "len(items)"})
    assert run_function(cfg, DATA) == {"gross": 120.0, "vendor": "ACME LTD", "n": 2}


def test_mapping_error_names_the_key() -> None:
    cfg = FunctionConfig(mapping={"ok": "total", "bad": "input['nope']"})
    with pytest.raises(ExpressionError) as info:
        run_function(cfg, DATA)
    assert info.value.field == "mapping.bad"
    assert "nope" in info.value.message


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("undefined_name + 1", "undefined_name"),
        ("1 / 0", "ZeroDivisionError"),
        ("items.append(1)", "append"),
        ("input.__class__", "__class__"),
        ("'x'.ljust(10 ** 9)", "ljust"),
        ("'x' * 10 ** 7", "long"),
        ("('a' * 50000).replace('', 'bbbbb')", "replace"),
        ("f'{1:>1000000000}'", "format"),
        ("4000000 ** 4000000", "too large"),
        ("open('/etc/passwd')", "open"),
        ("input.keys", "not JSON"),
    ],
)
def test_unsafe_or_failing_expressions_raise_expression_error(expression: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        run(expression)
    assert info.value.field == "expression"
    assert fragment in info.value.message


@pytest.mark.parametrize("expression", ["x = 1", "total +", "lambda x: x", "a; b", "   ", "{i for i in items}"])
def test_check_expressions_refuses_what_cannot_run(expression: str) -> None:
    with pytest.raises(ExpressionError) as info:
        check_expressions(unchecked(expression=expression))
    assert info.value.field == "expression"
    with pytest.raises(ValueError, match="expression"):
        FunctionConfig(expression=expression)  # refused on write too


def test_check_expressions_accepts_valid_and_names_the_bad_mapping_key() -> None:
    check_expressions(FunctionConfig(expression="sum(i['qty'] for i in items)"))
    with pytest.raises(ExpressionError) as info:
        check_expressions(unchecked(mapping={"fine": "total", "broken": "total )"}))
    assert info.value.field == "mapping.broken"


def test_expressions_do_not_modify_their_input() -> None:
    data = {"items": [3, 1, 2]}
    assert run("sorted(items)", data) == [1, 2, 3]
    assert data == {"items": [3, 1, 2]}


def test_running_out_of_memory_is_not_an_expression_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # In the isolated executor a MemoryError is the process's limit, reported as such, not as the user's mistake.
    def exhausted(*_: Any) -> Any:
        raise MemoryError

    monkeypatch.setitem(expressions.FUNCTIONS, "len", exhausted)
    with pytest.raises(MemoryError):
        run("len(items)")
