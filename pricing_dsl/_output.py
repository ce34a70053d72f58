"""Rendering invoices and diagnostics for people and for machines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._errors import Diagnostic
from ._invoice import Invoice, Line, decimal_text

if TYPE_CHECKING:
    from ._policy import RecordedException

__all__ = ["diagnostics_text", "invoice_json", "invoice_text"]


def _group(d: Decimal, places: int) -> str:
    return f"{d:,.{places}f}"


def _qty(line: Line) -> str:
    if line.kind == "adjustment":
        return ""
    q = decimal_text(line.quantity)
    return f"{q} {line.unit}" + ("s" if line.quantity != 1 and line.unit else "")


def invoice_text(inv: Invoice, explain: bool = False) -> str:
    """A readable invoice table; with ``explain``, each line's derivation under it.

    An issued invoice mixes fees in advance and usage in arrears, so it gets
    a column with each line's service period.
    """
    places = inv.minor_units
    out = [f"Invoice for {inv.contract_name} ({inv.contract})"]
    meta = []
    if inv.account:
        meta.append(f"account {inv.account}")
    if inv.issue_date:
        meta.append(f"issued {inv.issue_date.isoformat()}")
    if inv.period:
        meta.append(f"period {inv.period}")
    meta.append(f"currency {inv.currency}")
    out.append(", ".join(meta))
    out.append("")
    with_period = inv.issue_date is not None
    head = ["Line", "Description", "Quantity", "Unit price", "Amount"]
    if with_period:
        head.insert(2, "Service period")
    rows = [head]
    for ln in inv.lines:
        price = "" if ln.unit_price is None else decimal_text(ln.unit_price)
        row = [ln.code, ln.description, _qty(ln), price, _group(ln.amount, places)]
        if with_period:
            row.insert(2, "" if ln.service_period is None else str(ln.service_period))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    left = 3 if with_period else 2  # columns aligned left: code, description (, period)

    def fmt(r: list[str]) -> str:
        cells = [f"{c:<{widths[i]}}" if i < left else f"{c:>{widths[i]}}" for i, c in enumerate(r)]
        return ("  " + "  ".join(cells)).rstrip()

    rule = "  " + "-" * (sum(widths) + 2 * (len(widths) - 1))
    out.append(fmt(rows[0]))
    out.append(rule)
    for ln, row in zip(inv.lines, rows[1:], strict=True):
        out.append(fmt(row))
        if explain and ln.explanation is not None:
            ex = ln.explanation
            out.append(f"      = {ex.formula}")
            out.append(
                f"      exact amount {decimal_text(ex.exact)}, "
                f"rounded to {_group(ln.amount, places)}"
            )
            for d in ex.details:
                out.append(f"      {d}")
            if ex.sources:
                out.append(f"      from {', '.join(ex.sources)}")
    if explain and inv.rules_applied:
        out.append("      rules applied: " + "; ".join(inv.rules_applied))
    out.append(rule)
    total = f"{inv.currency} {_group(inv.total, places)}"
    out.append(f"  {'Total':<{len(rule) - 2 - len(total)}}{total}")
    return "\n".join(out) + "\n"


def invoice_json(inv: Invoice, explain: bool = True) -> str:
    return json.dumps(inv.to_dict(explain), indent=2, ensure_ascii=False) + "\n"


def diagnostics_text(diags: Iterable[Diagnostic]) -> str:
    return "".join(d.render() + "\n" for d in diags)


def diagnostics_json(diags: Iterable[Diagnostic]) -> str:
    return "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in diags)


def _escape_github(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def diagnostics_github(diags: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands, one per diagnostic."""
    out = []
    for d in diags:
        level = "error" if d.severity == "error" else "warning"
        props: list[str] = []
        if d.path:
            props.append(f"file={_escape_github(d.path, True)}")
        if d.line:
            props.append(f"line={d.line}")
            props.append(f"col={d.column}")
            if d.end_line == d.line and d.end_column:
                props.append(f"endColumn={d.end_column}")
        props.append(f"title={_escape_github(d.code, True)}")
        message = d.message + (f" (hint: {d.hint})" if d.hint else "")
        out.append(f"::{level} {','.join(props)}::{_escape_github(message)}\n")
    return "".join(out)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def exceptions_text(exceptions: Sequence[RecordedException]) -> str:
    """The recorded policy exceptions as a table (`pricing check --approvals`)."""
    if not exceptions:
        return "no recorded exceptions\n"
    head = ("Contract", "Term", "Policy limit", "Effective", "Reference", "Approved at")
    rows = [head]
    for e in exceptions:
        d = e.to_dict()
        limit = f"{d['limit']} ({d['policy']})"
        ref = d["reference"] + (f" ({d['approved_limit']})" if d["approved_limit"] else "")
        rows.append((d["contract"], d["term"], limit, d["effective"], ref, d["approval"]))
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    out = []
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    n = len(exceptions)
    out.append(f"{n} recorded exception{'s' if n != 1 else ''}")
    return "\n".join(out) + "\n"


def exceptions_github(exceptions: Sequence[RecordedException]) -> str:
    """One GitHub Actions notice per recorded exception, at its `approved` clause."""
    out = []
    for e in exceptions:
        a, f = e.approval, e.finding
        props = [
            f"file={_escape_github(a.span.path, True)}",
            f"line={a.span.line}",
            f"col={a.span.column}",
            f"title={_escape_github('approved ' + a.reference, True)}",
        ]
        message = (
            f"`{f.contract}`: {f.term} {f.effective}, policy limit {f.limit.text} "
            f"({f.limit.policy}), approved as {a.reference}"
        )
        out.append(f"::notice {','.join(props)}::{_escape_github(message)}\n")
    return "".join(out)
