"""Resolved terms + usage -> invoice lines.  The reference interpreter.

All arithmetic runs in a local decimal context with ample precision, so
products of prices and quantities are exact.  Each line is rounded once, to
the currency's minor unit, with the contract's rounding mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, Inexact, Rounded, localcontext

from ._decimal import CONTEXT, EXACT
from ._errors import Diagnostic, PricingError
from ._invoice import Explanation, Invoice, Line, canonical, decimal_text
from ._plan import (
    Adjustment,
    Catalog,
    Fee,
    MeterCharge,
    Plans,
    RatingPlan,
    allowance_factor,
    apply_adjustments,
    fee_factor,
    fee_share,
    hits,
    intervals,
    issued_steps,
    needs_period,
    proration_details,
    src,
)
from ._terms import ResolvedContract
from ._usage import FIRST_YEAR, LAST_YEAR, Period, Usage

__all__ = ["Catalog", "issue_invoice", "rate"]

ZERO = Decimal(0)
ONE = Decimal(1)
_SIX_PLACES = Decimal("0.000001")


def money(d: Decimal) -> str:
    return decimal_text(d)


def quantity_text(q: Decimal) -> Decimal:
    """Quantities are shown exactly when they terminate, else to six places."""
    six = q.quantize(_SIX_PLACES, ROUND_HALF_EVEN, CONTEXT)
    if q == six:
        return q.normalize(CONTEXT) if q == q.to_integral_value() else q
    return six


# ------------------------------------------------------------------- lines


def _fee_lines(plan: RatingPlan, period: Period | None) -> tuple[list[Line], list[Line]]:
    """The base line and the add-on lines for one service period."""
    term = plan.term
    service = period if term is None or period is None else period.intersect(term)

    # A monthly fee's factor is the period's, worked out once for every such fee.
    monthly, note = fee_factor(period, term)
    monthly_details = proration_details(note, term)

    def line(fee: Fee) -> Line:
        if fee.per == "month":
            factor, details = monthly, monthly_details
            formula = f"{money(fee.price)} per month × {note or '1 month'}"
        else:
            factor, details = fee_share(fee.per, period, term)
            formula = f"{money(fee.price)} per {fee.per} × {decimal_text(quantity_text(factor))}"
        exact = CONTEXT.multiply(fee.price, factor)
        return Line(
            fee.code,
            fee.description,
            quantity_text(factor),
            fee.per,
            fee.price,
            plan.round(exact),
            "fee",
            service if fee.per == "month" else _intervals_served(fee, service, term),
            Explanation(formula, exact, fee.sources, details),
        )

    base = [] if plan.base is None else [line(plan.base)]
    return base, [line(fee) for fee in plan.addons]


def _intervals_served(fee: Fee, covered: Period | None, term: Period | None) -> Period | None:
    """What a quarterly or yearly fee line pays for: its intervals that start in
    the period, within the term (the period itself when none starts)."""
    found = () if covered is None else intervals(fee.per, covered, term)
    if not found:
        return covered
    return Period(found[0].start, found[-1].last)


def _meter_line(
    plan: RatingPlan, charge: MeterCharge, usage: Usage, period: Period | None, factor: Decimal
) -> Line:
    meter = charge.meter
    free = charge.allowance.free(factor)
    # 96500.50 and 96500.5 are one value: explained in one form, whatever the input.
    worked = charge.rate(canonical(usage.get(meter.usage_key)), free)
    details = [f"used {decimal_text(worked.used)} {meter.unit}s"]
    free_note = charge.allowance.describe(factor, meter.unit)
    if free_note:
        details.append(free_note)
    billable = worked.billable
    unit = meter.unit

    def term(k: int, qty: Decimal, price: Decimal) -> str:
        """One tier's (or the flat rate's) charge: per unit, or per block."""
        block, down = charge.block(k)
        if block is None:
            return f"{decimal_text(qty)} × {money(price)}"
        n = worked.blocks[0 if charge.mode == "volume" else k]
        assert n is not None
        how = "whole block" if down else "started block"
        plural = "" if n == 1 else "s"
        details.append(
            f"{decimal_text(qty)} {unit}s in blocks of {decimal_text(block)}: "
            f"{decimal_text(n)} {how}{plural}, rounded {'down' if down else 'up'}"
        )
        return f"{decimal_text(n)} × {money(price)} per {decimal_text(block)} {unit}s"

    def fee(k: int, bound: str) -> str:
        charged = worked.fees[0 if charge.mode == "volume" else k] if worked.fees else None
        if charged is None:
            return ""
        details.append(f"tier {bound}: flat fee {money(charged)}")
        return f" + {money(charged)}"

    if charge.mode == "flat":
        price = charge.prices[0]
        formula = term(0, billable, price)
        if charge.block(0)[0] is None:
            formula += f" per {unit}"
    elif charge.mode == "graduated":
        parts = []
        for k, (qty, upper, price) in enumerate(
            zip(worked.quantities, charge.bounds, charge.prices, strict=False)
        ):
            bound = "above" if upper is None else f"up to {decimal_text(upper)}"
            part = term(k, qty, price)
            n = worked.blocks[k] if worked.blocks else None
            exact = (qty if n is None else n) * price
            details.append(f"tier {bound}: {part} = {decimal_text(exact)}")
            parts.append(part + fee(k, bound))
        formula = " + ".join(parts) + " (graduated)"
    else:
        upper = charge.bounds[worked.chosen]
        price = charge.prices[worked.chosen]
        bound = "above" if upper is None else f"up to {decimal_text(upper)}"
        details.append(f"volume tier {bound} applies to all {decimal_text(billable)} billable")
        formula = term(worked.chosen, billable, price)
        if charge.block(worked.chosen)[0] is None:
            formula += f" per {unit}"
        formula += fee(worked.chosen, bound) + " (volume)"
    return Line(
        meter.line_code,
        meter.name,
        canonical(billable),
        meter.unit,
        worked.unit_price,
        plan.round(worked.exact),
        "usage",
        period,
        Explanation(formula, worked.exact, charge.sources, tuple(details)),
    )


def _usage_lines(plan: RatingPlan, usage: Usage, period: Period | None) -> list[Line]:
    term = plan.term
    factor = allowance_factor(period, term) if plan.prorate_allowances else ONE
    # The usage is what was metered in the part of the period within the term.
    service = period if term is None or period is None else period.intersect(term)
    return [_meter_line(plan, charge, usage, service, factor) for charge in plan.meters]


def _adjustments(
    plan: RatingPlan,
    lines: list[Line],
    factor: Decimal = ONE,
    steps: Sequence[Adjustment] | None = None,
    factors: Sequence[Decimal] | None = None,
) -> list[Line]:
    """Adjustment lines, each with its explanation.

    The lines are those of this invoice, which (on an issued invoice) may be
    fewer than the plan's, so the lines each step reaches are found here.
    ``steps`` and ``factors`` (one per step) default to the plan's
    adjustments, all at ``factor``.
    """
    if steps is None:
        steps = plan.adjustments
    if not steps:
        return []
    if factors is None:
        factors = [factor] * len(steps)
    codes = [ln.code for ln in lines]
    kinds = [ln.kind for ln in lines]
    results = apply_adjustments(
        steps,
        [hits(step.target, codes, kinds) for step in steps],
        [ln.amount for ln in lines],
        plan.round,
        factors=factors,
    )
    out = []
    topped = any(step.kind == "line_min" for step in steps)
    for step, factor, (amount, exact, work) in zip(steps, factors, results, strict=True):
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
        elif step.kind == "line_min":
            shown = money(v) if factor == ONE else f"{money(v)} × {_fraction(factor)}"
            hit = hits(step.target, codes, kinds)
            text = f"max(0, {shown} - {money(work[0])})" if hit else "0"
            detail = (
                "step 2 (line minimums): tops up "
                + ", ".join(codes[i] for i in hit)
                + ", net of percentage discounts"
                if hit
                else "step 2 (line minimums): no such line on this invoice"
            )
        elif step.kind == "fixed":
            shown = money(v) if factor == ONE else f"{money(v)} × {_fraction(factor)}"
            text = f"-min({shown}, subtotal {money(work[0])})"
            detail = "step 3 (fixed discounts): never takes the invoice below zero"
        elif step.kind == "cap":
            net, excess = work
            text = f"-max(0, {money(net)} - {money(v)})"
            detail = (
                "step 4 (caps): on "
                + (", ".join(codes[i] for i in hits(step.target, codes, kinds)) or "no line")
                + " net of percentage discounts"
                + (", with line minimums' top-ups" if topped else "")
                + ("" if excess == ZERO else f"; {money(excess)} above the cap")
            )
        else:
            shown = money(v) if factor == ONE else f"{money(v)} × {_fraction(factor)}"
            text = f"max(0, {shown} - subtotal {money(work[0])})"
            detail = "step 5 (minimum): tops the subtotal up to the minimum"
        out.append(
            adjustment_line(
                step.code, step.description, amount, text, exact, (src(step.source),), detail
            )
        )
    return out


def adjustment_line(
    code: str,
    description: str,
    amount: Decimal,
    formula: str,
    exact: Decimal,
    sources: Sequence[str],
    detail: str,
) -> Line:
    """An adjustment line (quantity 1, no unit price, no service period) with its working."""
    return Line(
        code,
        description,
        ONE,
        "adjustment",
        None,
        amount,
        "adjustment",
        None,
        Explanation(formula, exact, tuple(sources), (detail,)),
    )


def _fraction(factor: Decimal) -> str:
    """A proration factor for people: `0.548387 of a month` (exact in the amount)."""
    return f"{decimal_text(quantity_text(factor))} of a month"


def _total(lines: list[Line]) -> Decimal:
    return sum((ln.amount for ln in lines), ZERO)


def _check_in_term(
    c: ResolvedContract, plan: RatingPlan, usage: Usage, period: Period | None
) -> None:
    term = plan.term
    if period is None and needs_period(plan):
        per = next(fee.per for fee in plan.fees if fee.per != "month")
        raise PricingError(
            Diagnostic(
                "E303",
                f"`{c.id}` has a fee billed per {per}, in the month each {per} starts, "
                "so the usage needs a period",
                usage.source,
                key="period",
                hint="add `period: YYYY-MM` to the usage",
            )
        )
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


def rate(
    c: ResolvedContract, usage: Usage, catalog: Catalog, plans: Plans | None = None
) -> Invoice:
    """All charges of one period: fees, usage and adjustments."""
    if plans is None:
        plans = Plans(c, catalog)
    with localcontext(EXACT), _too_many_digits(usage):
        period = usage.period
        key, fired = plans.select(usage.values, period, usage.source)
        plan = plans.for_key(key)
        _check_in_term(c, plan, usage, period)
        base, addons = _fee_lines(plan, period)
        lines = base + _usage_lines(plan, usage, period) + addons
        lines += _adjustments(plan, lines, fee_factor(period, plan.term)[0])
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


def issue_invoice(
    c: ResolvedContract,
    issue_date: date,
    usage: Usage,
    catalog: Catalog,
    plans: Plans | None = None,
) -> Invoice:
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
    if plans is None:
        plans = Plans(c, catalog)
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
        fee_key, fee_fired = plans.select(usage.values, fee_period, usage.source)
        use_key, use_fired = plans.select(usage.values, usage_period, usage.source)
        fee_plan = plans.for_key(fee_key)
        use_plan = plans.for_key(use_key)
        fee_term = fee_plan.term
        use_term = use_plan.term
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
            base, addons = _fee_lines(fee_plan, fee_period)
        used: list[Line] = []
        if usage_due:
            used = _usage_lines(use_plan, usage, usage_period)
        lines = base + used + addons
        adj_plan = fee_plan if fees_due else use_plan
        # Monthly minimums and fixed discounts follow the fees: prorated with
        # a partial month, and absent from the usage-only invoice after a term.
        factor = fee_factor(fee_period, fee_term)[0] if fees_due else ZERO
        steps, factors = issued_steps(
            catalog.meters, adj_plan, use_plan, factor, fee_factor(usage_period, use_term)[0]
        )
        lines += _adjustments(adj_plan, lines, factor, steps, factors)
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
