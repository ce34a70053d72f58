"""`when` conditions, evaluated: one implementation for every engine.

A checked condition becomes a tree of closures, built once per condition.
Evaluation is total and always terminates: there are no loops and no calls
but these.  Arithmetic runs in the rating context, never the caller's; a
division by zero gives no value, and a comparison with no value is false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from . import _ast as A
from ._decimal import CONTEXT
from ._usage import Period

__all__ = ["holds"]

Fn = Callable[[Mapping[str, Any], "Period | None"], Any]
_ZERO = Decimal(0)


def _build(e: A.Expr) -> Fn:
    if isinstance(e, A.NumberExpr):
        k = e.value.value
        return lambda v, p: k
    if isinstance(e, A.DateExpr):
        d = e.value.value
        return lambda v, p: d
    if isinstance(e, A.RefExpr):
        key = e.name.text
        return lambda v, p: v.get(key, _ZERO)
    if isinstance(e, A.AttrExpr):
        # The checker allows only period.start and period.end, and rating
        # refuses usage without a period for contracts that use them.
        if e.attr.text == "start":
            return lambda v, p: p.start  # type: ignore[union-attr]
        return lambda v, p: p.end  # type: ignore[union-attr]
    if isinstance(e, A.NotExpr):
        inner = _build(e.operand)
        return lambda v, p: inner(v, p) is not True
    left, right = _build(e.left), _build(e.right)
    if e.op == "and":
        return lambda v, p: left(v, p) is True and right(v, p) is True
    if e.op == "or":
        return lambda v, p: left(v, p) is True or right(v, p) is True
    fn, missing = _BINARY[e.op]

    def run(v: Mapping[str, Any], p: Period | None) -> Any:
        a, b = left(v, p), right(v, p)
        if a is None or b is None:
            return missing
        return fn(a, b)

    return run


# Operator -> (function, result when a side has no value).
_BINARY: dict[str, tuple[Callable[[Any, Any], Any], Any]] = {
    "+": (CONTEXT.add, None),
    "-": (CONTEXT.subtract, None),
    "*": (CONTEXT.multiply, None),
    "/": (lambda a, b: None if b == 0 else CONTEXT.divide(a, b), None),
    "<": (lambda a, b: bool(a < b), False),
    "<=": (lambda a, b: bool(a <= b), False),
    ">": (lambda a, b: bool(a > b), False),
    ">=": (lambda a, b: bool(a >= b), False),
    "==": (lambda a, b: bool(a == b), False),
    "!=": (lambda a, b: bool(a != b), False),
}


# Keyed by identity, not by value: hashing a frozen AST walks the whole tree,
# which cost the interpreter a tenth of its time.  The entry keeps the node
# alive, so its id cannot be reused while it is cached.
_COMPILED: dict[int, tuple[A.Expr, Fn]] = {}
_MAX_COMPILED = 4096


def compiled(e: A.Expr) -> Fn:
    """The closure tree of a condition, built once per condition node."""
    hit = _COMPILED.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    fn = _build(e)
    if len(_COMPILED) >= _MAX_COMPILED:
        _COMPILED.clear()  # rulesets come and go in a long-lived process
    # Two threads may both build it; either result is the same closure tree.
    _COMPILED[id(e)] = (e, fn)
    return fn


def holds(e: A.Expr, values: Mapping[str, Any], period: Period | None) -> bool:
    """Whether a condition holds for these usage values and period."""
    return compiled(e)(values, period) is True
