"""`pricing export`: fully resolved contract terms as JSON, for systems outside Python."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from . import _ast as A
from ._invoice import decimal_text
from ._ruleset import Ruleset
from ._terms import (
    STANDARD,
    AllowanceSpec,
    CommitmentSpec,
    RateSpec,
    ResolvedContract,
    Sourced,
    TermKey,
)

__all__ = ["export", "expr_text"]

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "==": 4,
    "!=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}


def expr_text(e: A.Expr, parent: int = 0) -> str:
    """A condition written back in the language's own syntax."""
    if isinstance(e, A.NumberExpr):
        return e.value.text
    if isinstance(e, A.DateExpr):
        return e.value.text
    if isinstance(e, A.RefExpr):
        return e.name.text
    if isinstance(e, A.AttrExpr):
        return f"{e.obj.text}.{e.attr.text}"
    if isinstance(e, A.NotExpr):
        return f"not {expr_text(e.operand, 3)}"
    prec = _PRECEDENCE[e.op]
    # Left-associative: the right operand needs parentheses at equal precedence.
    text = f"{expr_text(e.left, prec)} {e.op} {expr_text(e.right, prec + 1)}"
    return f"({text})" if prec < parent else text


def _source(s: Sourced[Any]) -> str:
    if s.span is STANDARD:
        return "standard"
    return f"{s.span.path}:{s.span.line}:{s.span.column}"


def _value(key: TermKey, v: Any) -> Any:
    if isinstance(v, RateSpec):
        if v.mode == "flat":
            assert v.price is not None
            return {"mode": "flat", "price": decimal_text(v.price), **_block(v.block, v.down)}
        return {
            "mode": v.mode,
            "tiers": [
                {
                    "up_to": None if t.up_to is None else decimal_text(t.up_to),
                    "price": decimal_text(t.price),
                    **_block(t.block, t.down),
                    **({} if t.fee is None else {"flat_fee": decimal_text(t.fee)}),
                }
                for t in v.tiers
            ],
        }
    if isinstance(v, AllowanceSpec):
        return {"kind": v.kind, "value": decimal_text(v.value)}
    if isinstance(v, CommitmentSpec):
        return {
            "amount": decimal_text(v.amount),
            "per": None if v.kind == "credit" else "year",
            "on": "usage" if v.on_usage else "all",
            "rollover": v.rollover,
        }
    if key == ("term",):
        return {"start": v[0].isoformat(), "end": v[1].isoformat()}
    if key[0] == "discount_pct":
        return {"percent": decimal_text(v[0])}
    if key == ("addons",):
        return list(v)
    if isinstance(v, (bool, str)):
        return v
    return decimal_text(v)


def _block(block: Decimal | None, down: bool) -> dict[str, Any]:
    """A price per block: the block's size and how partial blocks round (nothing per unit)."""
    if block is None:
        return {}
    return {"block": decimal_text(block), "rounding": "down" if down else "up"}


def _terms(patch: Mapping[TermKey, Sourced[Any]]) -> list[dict[str, Any]]:
    return [
        {"term": ".".join(key), "value": _value(key, s.value), "source": _source(s)}
        for key, s in patch.items()
    ]


def _contract(c: ResolvedContract, rules: Ruleset) -> dict[str, Any]:
    layers = []
    for layer in c.layers:
        entry: dict[str, Any] = {"label": layer.label}
        if layer.condition is not None:
            entry["when"] = expr_text(layer.condition)
        if layer.from_date is not None:
            entry["from"] = layer.from_date.isoformat()
        if layer.until is not None:
            entry["until"] = layer.until.isoformat()
        entry["terms"] = _terms(layer.patch)
        layers.append(entry)
    addons = c.static_terms.get(("addons",))
    return {
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "currency": c.currency,
        "minor_units": c.minor_units,
        "extends": list(c.chain[1:]),
        "source": f"{c.span.path}:{c.span.line}:{c.span.column}",
        "terms": _terms(c.static_terms),
        "addons": [
            {
                "id": a,
                "name": rules.addons[a].name,
                "catalog_price": decimal_text(rules.addons[a].price),
                "per": rules.addons[a].per,
            }
            for a in (addons.value if addons else ())
        ],
        "layers": layers,
        "approvals": [
            {
                "reference": a.reference,
                "for": a.subject,
                "bound": a.bound_text or None,
                "source": f"{a.span.path}:{a.span.line}:{a.span.column}",
            }
            for a in rules.approvals.get(c.id, ())
        ],
    }


def export(rules: Ruleset, contract_id: str | None = None) -> dict[str, Any]:
    """Resolved terms of one contract, or of every plan and contract."""
    ids = [contract_id] if contract_id else rules.contract_ids
    return {
        "meters": [
            {
                "id": m.id,
                "name": m.name,
                "unit": m.unit,
                "usage_key": m.usage_key,
                "line_code": m.line_code,
                "builtin": m.builtin,
            }
            for m in rules.meters
        ],
        "contracts": [_contract(rules.contract(cid), rules) for cid in ids],
        "policies": [
            {
                "name": p.name,
                "source": f"{p.span.path}:{p.span.line}:{p.span.column}",
                "limits": [
                    {
                        "kind": lim.kind,
                        "term": lim.subject,
                        "limit": lim.text,
                        "value": decimal_text(lim.value),
                        "targets": list(lim.targets),
                        "currency": lim.currency,
                        "source": f"{lim.span.path}:{lim.span.line}:{lim.span.column}",
                    }
                    for lim in p.limits
                ],
            }
            for p in rules.policies
        ],
    }
