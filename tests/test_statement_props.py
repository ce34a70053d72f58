"""Statements against invoices issued one month at a time, with the ledger carried by hand.

The test keeps its own small ledger, written from docs/language.md
("Commitments and credits") rather than from `_statement.py`: contract years
by counting anniversaries, balances in plain dictionaries.  Each month it
asks `Ruleset.invoice` for the invoice of a twin contract without
commitments (the same terms otherwise), adds the lines the ledger says, and
compares with the statement's invoice.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl

CENT = Decimal("0.01")
ZERO = Decimal(0)


def _anniv(start: date, k: int) -> date:
    y = start.year + k
    return date(y, start.month, min(start.day, calendar.monthrange(y, start.month)[1]))


def _month(d: date) -> date:
    return d.replace(day=1)


def _next(d: date) -> date:
    return (d.replace(day=1) + timedelta(days=31)).replace(day=1)


def _prev(d: date) -> date:
    return (d.replace(day=1) - timedelta(days=1)).replace(day=1)


def _money(d: Decimal) -> Decimal:
    return d.quantize(CENT, ROUND_HALF_UP)


@st.composite
def deals(draw: st.DrawFn) -> dict[str, Any]:
    start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 400)))
    end = start + timedelta(days=draw(st.integers(20, 900)))
    money = st.integers(0, 400_000).map(lambda n: Decimal(n) / 100)
    deal: dict[str, Any] = {
        "start": start,
        "end": end,
        "base": draw(money),
        "overage": draw(st.sampled_from(["0.10", "0.05", "0.013"])),
        "discount": draw(st.sampled_from([None, "10", "12.5"])),
        "minimum": draw(st.one_of(st.none(), money)),
        "cap": draw(st.one_of(st.none(), money)),
        "commit": draw(st.one_of(st.none(), st.integers(0, 10_000_000).map(Decimal))),
        "on_usage": draw(st.booleans()),
        "prepaid": draw(st.one_of(st.none(), st.integers(0, 3_000_000).map(Decimal))),
        "rollover": draw(st.booleans()),
        "credit": draw(st.one_of(st.none(), money)),
    }
    months = []
    m = _month(start)
    while m <= end:
        months.append(m)
        m = _next(m)
    deal["usage"] = {
        f"{m:%Y-%m}": {"mau": mau}
        for m in months
        if (mau := draw(st.one_of(st.none(), st.integers(0, 60_000)))) is not None
    }
    return deal


def _ruleset(deal: dict[str, Any]) -> pricing_dsl.Ruleset:
    common = [
        f"term {deal['start']} to {deal['end']}",
        f"base {deal['base']} per month",
        f"mau included 1000 overage {deal['overage']} per user",
    ]
    if deal["discount"]:
        common.append(f"discount {deal['discount']}% on usage")
    if deal["minimum"] is not None:
        common.append(f"minimum {deal['minimum']} per month")
    if deal["cap"] is not None:
        common.append(f"cap mau_overage {deal['cap']} per month")
    extra = []
    if deal["commit"] is not None:
        extra.append(
            f"commit {deal['commit']} per year" + (" on usage" if deal["on_usage"] else "")
        )
    if deal["prepaid"] is not None:
        extra.append(
            f"prepaid {deal['prepaid']} per year" + (" rollover" if deal["rollover"] else "")
        )
    if deal["credit"] is not None:
        extra.append(f"credit {deal['credit']}")
    body = "\n  ".join(common)
    # A contract body may not be empty: restate the base fee when there is nothing else.
    own = "\n  ".join(extra) or f"base {deal['base']} per month"
    text = (
        'currency USD\nplan p "P" {\n  mau included 1000\n}\n'
        f'contract twin "Twin" extends p {{\n  {body}\n}}\n'
        f'contract deal "Deal" extends twin {{\n  {own}\n}}\n'
    )
    return pricing_dsl.loads(text, "deal.pricing")


def _by_hand(rules: pricing_dsl.Ruleset, deal: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """Each invoice's (issue date, {code: amount}, total), and the ledger's moves."""
    start, end = deal["start"], deal["end"]
    last_k = 0
    while _anniv(start, last_k + 1) <= end:
        last_k += 1

    def year(month: date) -> int:
        k = 0
        while k < last_k and _month(_anniv(start, k + 1)) <= month:
            k += 1
        return k

    def factor(k: int) -> Decimal:
        whole = (_anniv(start, k + 1) - _anniv(start, k)).days
        days = (min(_anniv(start, k + 1) - timedelta(days=1), end) - _anniv(start, k)).days + 1
        return Decimal(days) / Decimal(whole)

    def last_month(k: int) -> date:
        return _month(end) if k == last_k else _prev(_month(_anniv(start, k + 1)))

    usage_codes = {"discount.usage", "cap.mau_overage"}
    promo = ZERO
    prepaid: dict[int, Decimal] = {}
    rolled: dict[int, Decimal] = {}
    spend: dict[int, Decimal] = {}
    moves: list[Any] = []
    invoices: list[Any] = []
    issue = _month(start)
    while issue <= _next(end):
        use = _prev(issue)
        used_in_term = use >= _month(start)
        fees_in_term = issue <= end
        usage = deal["usage"].get(f"{use:%Y-%m}", {}) if used_in_term else {}
        twin = rules.invoice("twin", issue, usage)
        fy = year(issue) if fees_in_term else None
        uy = year(use) if used_in_term else None
        lines = dict(twin.amounts)
        usage_net = ZERO
        for ln in twin.lines:
            on_usage = ln.kind == "usage" or ln.code in usage_codes
            if ln.kind == "adjustment" and ln.code in ("minimum", "discount.fixed"):
                on_usage = not fees_in_term
            if on_usage:
                usage_net += ln.amount
            k = uy if on_usage else fy
            if k is not None and (on_usage or not deal["on_usage"] or deal["commit"] is None):
                spend[k] = spend.get(k, ZERO) + ln.amount
        if fy is not None and deal["prepaid"] is not None and issue == _month(_anniv(start, fy)):
            lines["prepaid"] = _money(deal["prepaid"] * factor(fy))
        if deal["prepaid"] is not None or deal["credit"] is not None:
            payable = min(max(usage_net, ZERO), max(twin.total, ZERO)) if uy is not None else ZERO
            paid = ZERO
            for name, pot, key in (
                ("credit", None, None),
                ("rollover", rolled, uy),
                ("prepaid", prepaid, uy),
            ):
                left = promo if pot is None else pot.get(key, ZERO)  # type: ignore[arg-type]
                take = min(left, payable)
                if take > 0:
                    payable -= take
                    paid += take
                    if pot is None:
                        promo -= take
                    else:
                        pot[key] = left - take  # type: ignore[index]
                    moves.append((issue, f"{name}.applied", -take))
            lines["credit.applied"] = _money(-paid)
        if uy is not None and use == last_month(uy):
            if deal["commit"] is not None:
                owed = _money(deal["commit"] * factor(uy))
                lines["commit.true_up"] = _money(max(ZERO, owed - spend.get(uy, ZERO)))
            if rolled.get(uy, ZERO) > 0:
                moves.append((issue, "rollover.expired", -rolled[uy]))
                rolled[uy] = ZERO
            left = prepaid.get(uy, ZERO)
            if left > 0:
                if deal["rollover"] and uy < last_k:
                    moves.append((issue, "prepaid.rolled_over", -left))
                    moves.append((issue, "rollover.granted", left))
                    rolled[uy + 1] = left
                else:
                    moves.append((issue, "prepaid.expired", -left))
                prepaid[uy] = ZERO
        if used_in_term and use == _month(end) and promo > 0:
            moves.append((issue, "credit.expired", -promo))
            promo = ZERO
        if issue == _month(start) and deal["credit"]:
            promo = deal["credit"]
            moves.append((issue, "credit.granted", promo))
        if "prepaid" in lines and lines["prepaid"] > 0:
            assert fy is not None
            prepaid[fy] = lines["prepaid"]
            moves.append((issue, "prepaid.granted", lines["prepaid"]))
        invoices.append((issue, lines, sum(lines.values(), ZERO)))
        issue = _next(issue)
    return invoices, moves


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deals())
def test_statement_equals_invoices_issued_month_by_month(deal: dict[str, Any]) -> None:
    rules = _ruleset(deal)
    st_ = rules.statement("deal", deal["usage"])
    invoices, moves = _by_hand(rules, deal)
    got = [(inv.issue_date, inv.amounts, inv.total) for inv in st_.invoices]
    assert got == invoices
    assert [(e.date, e.reason, e.amount) for e in st_.ledger] == moves
    balance = ZERO
    for e in st_.ledger:
        balance += e.amount
        assert e.balance == balance
        assert e.balance >= 0
