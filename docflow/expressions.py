"""The safe expression language of the `function` block, on simpleeval; never `exec` or `eval`.

An expression sees `input` (the whole JSON input), its alias `data`, and each top-level key of a dict
input that is a valid identifier (`total * 1.2`). Dict keys read with subscripts (`input['total']`)
or as attributes (`input.total`); a key wins over a dict method of the same name. Method calls are
limited to read-only methods of str, dict, list and numbers, so an expression cannot change its
input; simpleeval's size limits stay on, with extra guards on the str methods that can grow text.
Results are returned as JSON (tuples become lists, sets sorted lists); anything else is an error.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Callable, ItemsView, KeysView, ValuesView
from typing import Any

import simpleeval
from simpleeval import EvalWithCompoundTypes, FeatureNotAvailable, IterableTooLong, NumberTooHigh

from docflow.blocks import FunctionConfig

_MAX_LEN = simpleeval.MAX_STRING_LENGTH
# simpleeval bounds each operand of `**`; bounding the result keeps `4000000 ** 4000000` out too.
_MAX_POWER_BITS = 1 << 16

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "sum": sum,
    "min": min,
    "max": max,
    "round": round,
    "abs": abs,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "sorted": sorted,
    "any": any,
    "all": all,
    "list": list,
    "dict": dict,
}

_STR_METHODS = {
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdecimal",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rpartition", "rsplit",
    "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
}  # fmt: skip
SAFE_ATTRS: dict[type, set[str]] = {
    str: _STR_METHODS,
    dict: {"get", "keys", "values", "items", "copy"},
    list: {"index", "count", "copy"},
    int: {"real", "imag", "bit_length", "is_integer"},
    float: {"real", "imag", "is_integer"},
}

_DISALLOWED_PREFIXES = tuple(simpleeval.DISALLOW_PREFIXES)
# AST nodes simpleeval has no handler for, refused when an expression is written.
_REFUSED_NODES = (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom, ast.SetComp)


class ExpressionError(ValueError):
    """An expression that does not parse or fails on its input; `field` names the config field."""

    def __init__(self, message: str, field: str) -> None:
        # str() is the message alone: callers prefix the field where they show it.
        super().__init__(message)
        self.message = message
        self.field = field


def run_function(config: FunctionConfig, data: Any) -> Any:
    """Evaluate the block's `expression`, or each entry of its `mapping`, over the JSON input."""
    names = _names(data)
    if config.expression is not None:
        return _evaluate(config.expression, names, "expression")
    mapping = config.mapping or {}
    return {key: _evaluate(expr, names, f"mapping.{key}") for key, expr in mapping.items()}


def check_expressions(config: FunctionConfig) -> None:
    """Parse (not run) every expression of the config; raise ExpressionError on the first bad one."""
    if config.expression is not None:
        parse_expression(config.expression, "expression")
    for key, expr in (config.mapping or {}).items():
        parse_expression(expr, f"mapping.{key}")


def parse_expression(expression: str, field: str) -> ast.expr:
    """Parse one expression, refusing statements and constructs the evaluator cannot run."""
    if not expression.strip():
        raise ExpressionError("empty expression", field)
    try:
        # mode="eval" refuses statements, assignments and `a; b` outright.
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg} (column {exc.offset})", field) from exc
    for node in ast.walk(tree):
        if isinstance(node, _REFUSED_NODES):
            raise ExpressionError(f"{type(node).__name__} is not supported", field)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attribute '{node.attr}' is not allowed", field)
    return tree.body


def _names(data: Any) -> dict[str, Any]:
    names: dict[str, Any] = {}
    if isinstance(data, dict):
        names.update(
            (key, value)
            for key, value in data.items()
            if isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)
        )
    # The fixed names win over input keys of the same name.
    names.update({"input": data, "data": data, "True": True, "False": False, "None": None})
    return names


def _evaluate(expression: str, names: dict[str, Any], field: str) -> Any:
    tree = parse_expression(expression, field)
    evaluator = _Evaluator(names)
    try:
        result = evaluator.eval(expression, previously_parsed=tree)
    except (ExpressionError, MemoryError):
        raise  # a MemoryError is the process's limit, reported as such by the isolated executor
    except Exception as exc:  # the expression is user input: any failure is theirs to fix
        raise ExpressionError(_describe(exc), field) from exc
    return _to_json(result, field)


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}" if exc.args else "missing key"
    text = str(exc) or type(exc).__name__
    # simpleeval's own messages read well alone; Python's need their type (ZeroDivisionError…).
    return text if isinstance(exc, simpleeval.InvalidExpression) else f"{type(exc).__name__}: {text}"


def _to_json(value: Any, field: str) -> Any:
    def default(obj: Any) -> Any:
        if isinstance(obj, set | frozenset):
            return sorted(obj)
        if isinstance(obj, KeysView | ValuesView | ItemsView):
            return list(obj)
        raise TypeError(f"a {type(obj).__name__} is not JSON")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"the result is not JSON: {exc}", field) from exc


class _Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with per-type attribute allow-lists, dict keys as attributes and growth guards."""

    def __init__(self, names: dict[str, Any]) -> None:
        operators = dict(simpleeval.DEFAULT_OPERATORS)
        operators[ast.Pow] = _safe_power
        super().__init__(operators=operators, functions=dict(FUNCTIONS), names=names)

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith(tuple(simpleeval.DISALLOW_PREFIXES)) or node.attr in simpleeval.DISALLOW_METHODS:
            raise FeatureNotAvailable(f"attribute '{node.attr}' is not allowed")
        value = self._eval(node.value)
        if isinstance(value, dict) and node.attr in value:
            return value[node.attr]
        allowed = SAFE_ATTRS.get(type(value), set())
        if node.attr not in allowed:
            if isinstance(value, dict):
                raise KeyError(node.attr)
            raise FeatureNotAvailable(f"'.{node.attr}' is not available on a {type(value).__name__}")
        return getattr(value, node.attr)

    def _eval_call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Attribute):
            return super()._eval_call(node)
        # Method calls: arguments are evaluated once, checked for growth, then passed.
        method = self._eval(node.func)
        args = [self._eval(arg) for arg in node.args]
        kwargs = dict(self._eval(k) for k in node.keywords)
        _guard_growth(node.func.attr, getattr(method, "__self__", None), args)
        return method(*args, **kwargs)

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        # A format spec like `>1000000000` would build a huge string before any length check.
        if node.format_spec is not None:
            spec = str(self._eval(node.format_spec))
            if any(int(n) > _MAX_LEN for n in re.findall(r"\d+", spec)):
                raise IterableTooLong("format width too large")
        return super()._eval_formattedvalue(node)


def _guard_growth(method: str, target: Any, args: list[Any]) -> None:
    if not isinstance(target, str):
        return
    if method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = target.count(args[0]) if args[0] else len(target) + 1
        size = len(target) + hits * len(args[1])
    elif method == "join" and args and isinstance(args[0], list | tuple):
        size = sum(len(str(a)) for a in args[0]) + len(target) * len(args[0])
    else:
        return
    if size > _MAX_LEN:
        raise IterableTooLong(f"str.{method} would build a string of {size} characters (max {_MAX_LEN})")


def _safe_power(base: Any, exponent: Any) -> Any:
    ints = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if ints and abs(base).bit_length() * exponent > _MAX_POWER_BITS:
        raise NumberTooHigh(f"{base} ** {exponent} is too large")
    return simpleeval.safe_power(base, exponent)
