"""Resolved terms + usage -> invoice lines.  The reference interpreter.

All arithmetic runs in a local decimal context with ample precision, so
products of prices and quantities are exact.  Each line is rounded once, to
the currency's minor unit, with the contract's rounding mode.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Decimal,
    Inexact,
    Rounded,
    localcontext,
)
from typing import Any

from ._conditions import holds
from ._decimal import CONTEXT, EXACT, ROUNDING
from ._errors import Diagnostic, PricingError
from ._invoice import Explanation, Invoice, Line, decimal_text
from ._terms import (
    STANDARD,
    AddonInfo,
    AllowanceSpec,
    MeterInfo,
    RateSpec,
    ResolvedContract,
    Sourced,
    TermKey,
)
from ._usage import FIRST_YEAR, LAST_YEAR, Period, Usage

__all__ = ["issue_invoice", "rate"]

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
_QUANTUM = {n: Decimal(1).scaleb(-n) for n in range(0, 5)}
_SIX_PLACES = Decimal("0.000001")


def src(span_holder: Sourced[Any]) -> str:
    s = span_holder.span
    if s is STANDARD or s.line == 0:
        return "standard rate (billing FAQ)"
    return f"{s.path}:{s.line}"


def money(d: Decimal) -> str:
    return decimal_text(d)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What rating needs besides the contract: the meters and the add-on catalog."""

    meters: tuple[MeterInfo, ...]
    addons: Mapping[str, AddonInfo]


# ------------------------------------------------------------------ terms


def terms_for(
    c: ResolvedContract, usage: Usage, period: Period | None, catalog: Catalog
) -> tuple[Mapping[TermKey, Sourced[Any]], list[str]]:
    """Fold the layers that apply to this usage and period.  Returns terms and fired labels."""
    if not c.has_conditions:
        return c.static_terms, []
    if c.uses_period and period is None:
        # Decided before evaluating anything, so whether a period is needed
        # never depends on which way a condition happens to short-circuit.
        raise PricingError(
            Diagnostic(
                "E303",
                f"a `when` rule of `{c.id}` depends on the period, but the usage has none",
                usage.source,
                key="period",
                hint="add `period: YYYY-MM` to the usage",
            )
        )
    terms: dict[TermKey, Sourced[Any]] = {}
    fired: list[str] = []
    for layer in c.layers:
        if layer.from_date is not None:
            if period is None:
                raise PricingError(
                    Diagnostic(
                        "E303",
                        f"`{c.id}` has prices that change on {layer.from_date.isoformat()}, so "
                        "the usage needs a period",
                        usage.source,
                        key="period",
                        hint="add `period: YYYY-MM` to the usage",
                    )
                )
            if period.start < layer.from_date:
                continue
            fired.append(layer.label)
        if layer.condition is not None:
            if not holds(layer.condition, usage.values, period):
                continue
            fired.append(layer.label)
        terms.update(layer.patch)
    return terms, fired


# ----------------------------------------------------------------- helpers


def _round(d: Decimal, c: ResolvedContract, terms: Mapping[TermKey, Sourced[Any]]) -> Decimal:
    mode = terms[("rounding",)].value
    return d.quantize(_QUANTUM[c.minor_units], ROUNDING[mode], CONTEXT)


def _days_in_month(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _term(terms: Mapping[TermKey, Sourced[Any]]) -> Period | None:
    t = terms.get(("term",))
    return None if t is None else Period(t.value[0], t.value[1])


def _fee_factor(period: Period | None, term: Period | None) -> tuple[Decimal, str | None]:
    """Months of fixed fees owed for a period: 1 for a whole month, days/days-in-month otherwise."""
    if period is None:
        return ONE, None
    covered = period if term is None else period.intersect(term)
    if covered is None:
        return ZERO, None
    factor = ZERO
    parts = []
    whole = True
    for month in covered.months():
        dim = _days_in_month(month.start)
        factor = CONTEXT.add(factor, CONTEXT.divide(Decimal(month.days), Decimal(dim)))
        parts.append(f"{month.days}/{dim}")
        whole &= month.days == dim
    if whole and len(parts) == 1:
        return ONE, None
    return factor, " + ".join(parts) + " of a month"


def _allowance_factor(period: Period | None, term: Period | None) -> Decimal:
    if period is None or term is None:
        return ONE
    covered = period.intersect(term)
    if covered is None:
        return ZERO
    return CONTEXT.divide(Decimal(covered.days), Decimal(period.days))


def _quantity_text(q: Decimal) -> Decimal:
    """Quantities are shown exactly when they terminate, else to six places."""
    six = q.quantize(_SIX_PLACES, ROUND_HALF_EVEN, CONTEXT)
    if q == six:
        return q.normalize(CONTEXT) if q == q.to_integral_value() else q
    return six


# ------------------------------------------------------------------- lines


def _fee_lines(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    period: Period | None,
    catalog: Catalog,
) -> tuple[list[Line], list[Line]]:
    """The base line and the add-on lines for one service period."""
    term = _term(terms)
    factor, note = _fee_factor(period, term)
    service = period if term is None or period is None else period.intersect(term)
    details = (f"prorated: {note}" + (" in the term" if term else ""),) if note else ()
    qty = _quantity_text(factor)
    base_lines: list[Line] = []
    base = terms.get(("base",))
    if base is not None:
        exact = CONTEXT.multiply(base.value, factor)
        base_lines.append(
            Line(
                "base",
                f"Base fee ({c.name})",
                qty,
                "month",
                base.value,
                _round(exact, c, terms),
                "fee",
                service,
                Explanation(
                    f"{money(base.value)} per month × {note or '1 month'}",
                    exact,
                    (src(base),),
                    details,
                ),
            )
        )
    addon_lines = []
    listed = terms[("addons",)]
    for addon_id in listed.value:
        info = catalog.addons[addon_id]
        override = terms.get(("addon_price", addon_id))
        price = override.value if override is not None else info.price
        sources = (src(listed), src(override) if override else f"{info.span.path}:{info.span.line}")
        exact = CONTEXT.multiply(price, factor)
        addon_lines.append(
            Line(
                f"addon.{addon_id}",
                info.name,
                qty,
                "month",
                price,
                _round(exact, c, terms),
                "fee",
                service,
                Explanation(
                    f"{money(price)} per month × {note or '1 month'}", exact, sources, details
                ),
            )
        )
    return base_lines, addon_lines


def _allowance(
    meter: MeterInfo,
    terms: Mapping[TermKey, Sourced[Any]],
    factor: Decimal,
) -> tuple[Decimal, str, list[str]]:
    """Free units for a meter, a description of them, and their sources."""
    spec_s = terms.get(("meter", meter.id, "allowance"))
    if spec_s is None:
        return ZERO, "", []
    spec: AllowanceSpec = spec_s.value
    sources = [src(spec_s)]
    if spec.kind == "percent":
        mau_s = terms[("meter", "mau", "allowance")]
        mau_included: Decimal = mau_s.value.value
        note = ""
        if factor != ONE:
            mau_included = CONTEXT.multiply(mau_included, factor).to_integral_value(ROUND_FLOOR)
            note = " (prorated)"
        allowed = (mau_included * spec.value / HUNDRED).to_integral_value(ROUND_FLOOR)
        sources.append(src(mau_s))
        return (
            allowed,
            f"allowance floor({decimal_text(mau_included)} MAU{note} × {spec.value}%) = "
            f"{decimal_text(allowed)} {meter.unit}s",
            sources,
        )
    included = spec.value
    if factor != ONE:
        included = CONTEXT.multiply(included, factor).to_integral_value(ROUND_FLOOR)
        return included, f"{decimal_text(included)} {meter.unit}s included (prorated)", sources
    return included, f"{decimal_text(included)} {meter.unit}s included", sources


def _meter_line(
    c: ResolvedContract,
    meter: MeterInfo,
    terms: Mapping[TermKey, Sourced[Any]],
    usage: Usage,
    period: Period | None,
    allowance_factor: Decimal,
) -> Line | None:
    rate_s = terms.get(("meter", meter.id, "rate"))
    if rate_s is None:
        return None
    rate: RateSpec = rate_s.value
    used = usage.get(meter.usage_key)
    free, free_note, sources = _allowance(meter, terms, allowance_factor)
    sources.append(src(rate_s))
    billable = max(ZERO, used - free)
    details = [f"used {decimal_text(used)} {meter.unit}s"]
    if free_note:
        details.append(free_note)
    unit_price: Decimal | None
    if rate.mode == "flat":
        assert rate.price is not None
        exact = billable * rate.price
        unit_price = rate.price
        formula = f"{decimal_text(billable)} × {money(rate.price)} per {meter.unit}"
    elif rate.mode == "graduated":
        exact = ZERO
        lower = ZERO
        parts = []
        for tier in rate.tiers:
            upper = tier.up_to
            top = used if upper is None else min(used, upper)
            qty = max(ZERO, top - max(lower, free))
            amount = qty * tier.price
            exact += amount
            bound = "above" if upper is None else f"up to {decimal_text(upper)}"
            parts.append(f"{decimal_text(qty)} × {money(tier.price)}")
            details.append(
                f"tier {bound}: {decimal_text(qty)} × {money(tier.price)} = {decimal_text(amount)}"
            )
            if upper is None or used <= upper:
                break
            lower = upper
        unit_price = None
        formula = " + ".join(parts) + " (graduated)"
    else:
        chosen = rate.tiers[-1]
        for tier in rate.tiers:
            if tier.up_to is not None and used <= tier.up_to:
                chosen = tier
                break
        exact = billable * chosen.price
        unit_price = chosen.price
        bound = "above" if chosen.up_to is None else f"up to {decimal_text(chosen.up_to)}"
        details.append(f"volume tier {bound} applies to all {decimal_text(billable)} billable")
        formula = f"{decimal_text(billable)} × {money(chosen.price)} per {meter.unit} (volume)"
    return Line(
        meter.line_code,
        meter.name,
        billable,
        meter.unit,
        unit_price,
        _round(exact, c, terms),
        "usage",
        period,
        Explanation(formula, exact, tuple(sources), tuple(details)),
    )


def _usage_lines(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    usage: Usage,
    period: Period | None,
    catalog: Catalog,
) -> list[Line]:
    term = _term(terms)
    factor = ONE
    if ("prorate", "allowances") in terms:
        factor = _allowance_factor(period, term)
    # The usage is what was metered in the part of the period within the term.
    service = period if term is None or period is None else period.intersect(term)
    lines = []
    for meter in catalog.meters:
        line = _meter_line(c, meter, terms, usage, service, factor)
        if line is not None:
            lines.append(line)
    return lines


@dataclass(frozen=True, slots=True)
class AdjStep:
    """One adjustment clause, in application order."""

    code: str
    kind: str  # "pct" | "fixed" | "cap" | "minimum"
    value: Decimal  # the percentage, or the amount
    target: str  # discount target or capped line; "" otherwise
    source: Sourced[Any]


def adjustment_plan(terms: Mapping[TermKey, Sourced[Any]]) -> tuple[AdjStep, ...]:
    """Percentage discounts, then fixed discounts, then caps, then the minimum true-up."""
    pct = [
        AdjStep(f"discount.{k[1]}", "pct", v.value[0], k[1], v)
        for k, v in terms.items()
        if k[0] == "discount_pct"
    ]
    fixed = [
        AdjStep("discount.fixed", "fixed", v.value, "", v)
        for k, v in terms.items()
        if k == ("discount_fixed",)
    ]
    caps = [
        AdjStep(f"cap.{k[1]}", "cap", v.value, k[1], v) for k, v in terms.items() if k[0] == "cap"
    ]
    minimum = [
        AdjStep("minimum", "minimum", v.value, "", v) for k, v in terms.items() if k == ("minimum",)
    ]
    return (*pct, *fixed, *caps, *minimum)


def _hit(target: str, codes: Sequence[str], kinds: Sequence[str]) -> list[int]:
    if target == "addons":
        return [i for i, c in enumerate(codes) if c.startswith("addon.")]
    if target == "usage":
        return [i for i, k in enumerate(kinds) if k == "usage"]
    return [i for i, c in enumerate(codes) if c == target]


def apply_adjustments(
    plan: Sequence[AdjStep],
    codes: Sequence[str],
    kinds: Sequence[str],
    amounts: Sequence[Decimal],
    rnd: Callable[[Decimal], Decimal],
    factor: Decimal = ONE,
) -> list[tuple[Decimal, Decimal, tuple[Any, ...]]]:
    """Amount, exact amount and working of each step.  Shared by every engine.

    ``factor`` is the share of a month the invoice bills fixed fees for: the
    fixed discount and the minimum are monthly amounts and are prorated by
    it (0 on an invoice that bills no fees).  Must run in CONTEXT.
    """
    out: list[tuple[Decimal, Decimal, tuple[Any, ...]]] = []
    running = sum(amounts, ZERO)
    # What percentage discounts took off each line: a discount of that line
    # alone counts as its rounded line, a group discount by its exact share.
    taken: dict[int, Decimal] = {}
    for step in plan:
        if step.kind == "pct":
            hit = _hit(step.target, codes, kinds)
            base = sum((amounts[i] for i in hit), ZERO)
            exact = -(base * step.value / HUNDRED)
            work: tuple[Any, ...] = (hit,)
        elif step.kind == "fixed":
            exact = -min(CONTEXT.multiply(step.value, factor), max(running, ZERO))
            work = (running,)
        elif step.kind == "cap":
            hit = _hit(step.target, codes, kinds)
            gross = amounts[hit[0]] if hit else ZERO
            net = gross + taken.get(hit[0], ZERO) if hit else ZERO
            excess = max(ZERO, net - step.value)
            exact = -min(excess, max(running, ZERO))
            work = (net, excess)
        else:
            exact = max(ZERO, CONTEXT.subtract(CONTEXT.multiply(step.value, factor), running))
            work = (running,)
        amount = rnd(exact) + ZERO  # + ZERO turns -0.00 into 0.00
        if step.kind == "pct":
            if len(hit) == 1:
                taken[hit[0]] = taken.get(hit[0], ZERO) + amount
            else:
                for i in hit:
                    taken[i] = taken.get(i, ZERO) - amounts[i] * step.value / HUNDRED
        running += amount
        out.append((amount, exact, work))
    return out


def _adjustments(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    lines: list[Line],
    factor: Decimal = ONE,
) -> list[Line]:
    """Adjustment lines, each with its explanation."""
    plan = adjustment_plan(terms)
    if not plan:
        return []
    codes = [ln.code for ln in lines]
    results = apply_adjustments(
        plan,
        codes,
        [ln.kind for ln in lines],
        [ln.amount for ln in lines],
        lambda d: _round(d, c, terms),
        factor,
    )
    out = []
    for step, (amount, exact, work) in zip(plan, results, strict=False):
        v = step.value
        if step.kind == "pct":
            hit = work[0]
            text = (
                f"-{v}% × ({' + '.join(money(lines[i].amount) for i in hit)})"
                if hit
                else f"-{v}% × 0"
            )
            detail = (
                "step 1 (percentage discounts): on " + ", ".join(codes[i] for i in hit)
                if hit
                else "step 1 (percentage discounts): no such line on this invoice"
            )
        elif step.kind == "fixed":
            shown = money(v) if factor == ONE else f"{money(v)} × {_fraction(factor)}"
            text = f"-min({shown}, subtotal {money(work[0])})"
            detail = "step 2 (fixed discounts): never takes the invoice below zero"
        elif step.kind == "cap":
            net, excess = work
            text = f"-max(0, {money(net)} - {money(v)})"
            detail = "step 3 (caps): on the line net of percentage discounts" + (
                "" if excess == ZERO else f"; {money(excess)} above the cap"
            )
        else:
            shown = money(v) if factor == ONE else f"{money(v)} × {_fraction(factor)}"
            text = f"max(0, {shown} - subtotal {money(work[0])})"
            detail = "step 4 (minimum): tops the subtotal up to the minimum"
        out.append(
            Line(
                step.code,
                adjustment_description(step),
                ONE,
                "adjustment",
                None,
                amount,
                "adjustment",
                None,
                Explanation(text, exact, (src(step.source),), (detail,)),
            )
        )
    return out


def adjustment_description(step: AdjStep) -> str:
    """The description of an adjustment's line (an ``adjustment_plan`` step)."""
    v = step.value
    if step.kind == "pct":
        return f"{v}% discount on {step.target}"
    if step.kind == "fixed":
        return f"{money(v)} discount"
    if step.kind == "cap":
        return f"{step.target} capped at {money(v)}"
    return f"Minimum commitment true-up ({money(v)})"


def _fraction(factor: Decimal) -> str:
    """A proration factor for people: `0.548387 of a month` (exact in the amount)."""
    return f"{decimal_text(_quantity_text(factor))} of a month"


def _total(lines: list[Line]) -> Decimal:
    return sum((ln.amount for ln in lines), ZERO)


def _check_in_term(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    usage: Usage,
    period: Period | None,
) -> None:
    term = _term(terms)
    if term is None:
        return
    if period is None:
        raise PricingError(
            Diagnostic(
                "E303",
                f"`{c.id}` has a term ({term.start} to {term.end}), so the usage needs a period",
                usage.source,
                key="period",
                hint="add `period: YYYY-MM` to the usage",
            )
        )
    if period.intersect(term) is None:
        raise PricingError(
            Diagnostic(
                "E302",
                f"period {period} is outside the term of `{c.id}` ({term.start} to {term.end})",
                usage.source,
                key="period",
                hint="rate a period within the term",
            )
        )


# --------------------------------------------------------------- entry points


def rate(c: ResolvedContract, usage: Usage, catalog: Catalog) -> Invoice:
    """All charges of one period: fees, usage and adjustments."""
    with localcontext(EXACT), _too_many_digits(usage):
        period = usage.period
        terms, fired = terms_for(c, usage, period, catalog)
        _check_in_term(c, terms, usage, period)
        base, addons = _fee_lines(c, terms, period, catalog)
        lines = base + _usage_lines(c, terms, usage, period, catalog) + addons
        lines += _adjustments(c, terms, lines, _fee_factor(period, _term(terms))[0])
        return Invoice(
            c.id,
            c.name,
            c.currency,
            c.minor_units,
            period,
            tuple(lines),
            _total(lines),
            account=usage.account,
            rules_applied=tuple(fired),
        )


@contextmanager
def _too_many_digits(usage: Usage) -> Iterator[None]:
    """Turn an inexact product (usage with too many digits) into a plain error."""
    try:
        yield
    except (Inexact, Rounded):
        raise PricingError(
            Diagnostic(
                "E401",
                "a usage value has too many digits to rate exactly",
                usage.source,
                hint="round usage values to a sensible precision, such as 0.001 minute",
            )
        ) from None


def _month_of(d: date) -> Period:
    return Period.month(d.year, d.month)


def issue_invoice(c: ResolvedContract, issue_date: date, usage: Usage, catalog: Catalog) -> Invoice:
    """The invoice issued on the first day of month M+1.

    Fixed fees are billed in advance for M+1, at the terms in force for M+1;
    usage is billed in arrears for M, at the terms in force for M.
    """
    # The invoice also bills the month before it, so both months must be supported.
    if not date(FIRST_YEAR, 2, 1) <= issue_date <= date(LAST_YEAR, 12, 1):
        raise PricingError(
            Diagnostic(
                "E304",
                f"{issue_date} is outside the dates that can be invoiced",
                hint=f"issue it on the first of a month from {FIRST_YEAR}-02-01 to "
                f"{LAST_YEAR}-12-01: an invoice also bills the month before it",
            )
        )
    if issue_date.day != 1:
        raise PricingError(
            Diagnostic(
                "E304",
                f"invoices are issued on the first day of a month, not on {issue_date}",
                hint=f"use {issue_date.replace(day=1)} or "
                f"{(issue_date.replace(day=1) + timedelta(days=32)).replace(day=1)}",
            )
        )
    fee_period = _month_of(issue_date)
    usage_period = _month_of(issue_date - timedelta(days=1))
    if usage.period is not None and usage.period != usage_period:
        raise PricingError(
            Diagnostic(
                "E305",
                f"the invoice issued on {issue_date} bills usage for {usage_period}, "
                f"but the usage is for {usage.period}",
                usage.source,
                key="period",
                hint=f"give the usage of {usage_period}",
            )
        )
    with localcontext(EXACT), _too_many_digits(usage):
        fee_terms, fee_fired = terms_for(c, usage, fee_period, catalog)
        use_terms, use_fired = terms_for(c, usage, usage_period, catalog)
        fee_term = _term(fee_terms)
        use_term = _term(use_terms)
        fees_due = fee_term is None or fee_period.intersect(fee_term) is not None
        usage_due = use_term is None or usage_period.intersect(use_term) is not None
        if not fees_due and not usage_due:
            term = fee_term or use_term
            assert term is not None
            raise PricingError(
                Diagnostic(
                    "E302",
                    f"nothing is billed on {issue_date}: the term of `{c.id}` runs from "
                    f"{term.start} to {term.end}",
                    hint=f"invoices for this term are issued from {term.start.replace(day=1)} "
                    f"to {(term.end.replace(day=1) + timedelta(days=32)).replace(day=1)}",
                )
            )
        base: list[Line] = []
        addons: list[Line] = []
        if fees_due:
            base, addons = _fee_lines(c, fee_terms, fee_period, catalog)
        used: list[Line] = []
        if usage_due:
            used = _usage_lines(c, use_terms, usage, usage_period, catalog)
        lines = base + used + addons
        adj_terms = fee_terms if fees_due else use_terms
        # Monthly minimums and fixed discounts follow the fees: prorated with
        # a partial month, and absent from the usage-only invoice after a term.
        factor = _fee_factor(fee_period, fee_term)[0] if fees_due else ZERO
        lines += _adjustments(c, adj_terms, lines, factor)
        return Invoice(
            c.id,
            c.name,
            c.currency,
            c.minor_units,
            None,
            tuple(lines),
            _total(lines),
            account=usage.account,
            issue_date=issue_date,
            rules_applied=tuple(dict.fromkeys([*use_fired, *fee_fired])),
        )
