"""Statements: the invoices of a term in order, with commitments, credits and their ledger.

`Ruleset.invoice` rates one invoice with no memory of the ones before it.  A
contract with ``commit``, ``prepaid`` or ``credit`` needs that memory: a
balance drawn down from invoice to invoice, and a year's spend measured
against its commitment.  This module builds that on top of
:func:`._rating.issue_invoice`, without changing it: each invoice of a
statement is the issued invoice, plus (after its adjustment lines)

* ``prepaid``: the year's prepaid credit, billed in advance on the invoice
  that bills the fees of the contract year's first month;
* ``credit.applied``: what the balances pay of the invoice's usage lines
  after discounts (promotional credit first, then prepaid, oldest first);
* ``commit.true_up``: on the invoice that bills the usage of a contract
  year's last month, the commitment less the year's committed spend, when
  that is positive.

Contract years run from the term's start, on its anniversaries; the last is
cut short by the term's end.  A calendar month belongs to the contract year
in which it starts, counting the month of an anniversary as the new year's
first month (so a term that starts on 2026-07-15 has years of months
2026-07..2027-06, 2027-07..2028-06, ...), and the term's last month belongs
to the last year.  docs/language.md ("Commitments and credits") has the
rules and the decisions.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any

from ._decimal import CONTEXT, EXACT, ROUNDING
from ._errors import Diagnostic, PricingError
from ._invoice import Explanation, Invoice, Line, decimal_text
from ._plan import QUANTUM, Catalog, Plans, src
from ._rating import adjustment_line, issue_invoice, quantity_text
from ._terms import CommitmentSpec, ResolvedContract, Sourced
from ._usage import Period, Usage

__all__ = [
    "ContractYear",
    "LedgerEntry",
    "Statement",
    "YearSummary",
    "build_statement",
    "commitments_of",
    "contract_years",
    "has_commitments",
]

ZERO = Decimal(0)
ONE = Decimal(1)
KINDS = ("commit", "prepaid", "credit")

# Ledger reasons, in the order they can happen on one invoice.
REASONS = (
    "credit.applied",
    "rollover.applied",
    "prepaid.applied",
    "rollover.expired",
    "prepaid.rolled_over",
    "prepaid.expired",
    "credit.expired",
    "rollover.granted",
    "credit.granted",
    "prepaid.granted",
)


def has_commitments(c: ResolvedContract) -> bool:
    """Whether the contract states ``commit``, ``prepaid`` or ``credit``."""
    return any((kind,) in c.static_terms for kind in KINDS)


def commitments_of(c: ResolvedContract) -> dict[str, Sourced[CommitmentSpec]]:
    """The contract's commitment terms by kind (only those it has)."""
    found: dict[str, Sourced[CommitmentSpec]] = {}
    for kind in KINDS:
        term = c.static_terms.get((kind,))
        if term is not None:
            found[kind] = term
    return found


# ------------------------------------------------------------ contract years


def _month(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=1) + timedelta(days=32)).replace(day=1)


def _anniversary(start: date, years: int) -> date:
    """``start`` plus whole years; 29 February falls on 28 February in common years."""
    year = start.year + years
    day = min(start.day, calendar.monthrange(year, start.month)[1])
    return date(year, start.month, day)


@dataclass(frozen=True, slots=True)
class ContractYear:
    """One contract year: its days (cut short by the term's end) and its months.

    ``first_month`` and ``last_month`` are the first days of the calendar
    months whose fees and usage count for this year.  ``factor`` is the
    share of a whole year's days the year has: 1, or for a year cut short by
    the term's end, its days over the days of the whole year (365 or 366).
    """

    number: int
    start: date
    end: date
    first_month: date
    last_month: date
    factor: Decimal

    @property
    def period(self) -> Period:
        return Period(self.start, self.end)


def contract_years(term: Period) -> tuple[ContractYear, ...]:
    """The contract years of a term, in order."""
    years: list[ContractYear] = []
    n = 0
    while True:
        start = _anniversary(term.start, n)
        if start > term.end:
            break
        whole_end = _anniversary(term.start, n + 1) - timedelta(days=1)
        end = min(whole_end, term.end)
        factor = (
            ONE
            if end == whole_end
            else CONTEXT.divide(
                Decimal((end - start).days + 1), Decimal((whole_end - start).days + 1)
            )
        )
        years.append(ContractYear(n + 1, start, end, _month(start), _month(start), factor))
        n += 1
    # A year's months run up to the month before the next year's first month;
    # the last year's up to the term's last month.
    out = []
    for i, y in enumerate(years):
        last = (
            _month(term.end)
            if i == len(years) - 1
            else _month(years[i + 1].first_month - timedelta(days=1))
        )
        out.append(ContractYear(y.number, y.start, y.end, y.first_month, last, y.factor))
    return tuple(out)


def _year_of(years: Sequence[ContractYear], month: date) -> ContractYear | None:
    for y in years:
        if y.first_month <= month <= y.last_month:
            return y
    return None


# ------------------------------------------------------------------ output


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One movement of a credit balance.

    ``date`` is the issue date of the invoice it belongs to; ``amount`` is
    signed (grants are positive, what is applied or expires is negative);
    ``balance`` is the sum of every balance after it.  ``year`` is the
    contract year whose usage the balance may pay (None for promotional
    credit, which pays any month of the term).
    """

    date: date
    reason: str
    amount: Decimal
    balance: Decimal
    year: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "reason": self.reason,
            "amount": decimal_text(self.amount),
            "balance": decimal_text(self.balance),
            "year": self.year,
        }


@dataclass(frozen=True, slots=True)
class YearSummary:
    """A contract year's commitment, its committed spend and its true-up."""

    number: int
    start: date
    end: date
    commitment: Decimal | None  # None without `commit`
    committed_spend: Decimal
    true_up: Decimal | None  # None until the year's last usage month is billed
    settled_on: date | None  # the issue date of the invoice carrying the true-up

    def to_dict(self) -> dict[str, Any]:
        return {
            "year": self.number,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "commitment": None if self.commitment is None else decimal_text(self.commitment),
            "committed_spend": decimal_text(self.committed_spend),
            "true_up": None if self.true_up is None else decimal_text(self.true_up),
            "settled_on": None if self.settled_on is None else self.settled_on.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Statement:
    """The invoices of a contract's term in issue order, and the ledger of its balances.

    Each invoice is what ``Ruleset.invoice`` issues for its date given the
    usage before it.  ``balance`` is the credit left after the last invoice.
    """

    contract: str
    contract_name: str
    account: str | None
    currency: str
    invoices: tuple[Invoice, ...]
    ledger: tuple[LedgerEntry, ...]
    years: tuple[YearSummary, ...]

    @property
    def balance(self) -> Decimal:
        """The credit left, in the currency's minor units (0.00 with no credit at all)."""
        if self.ledger:
            return self.ledger[-1].balance
        places = self.invoices[0].minor_units if self.invoices else 0
        return ZERO.scaleb(-places)

    @property
    def total(self) -> Decimal:
        """The sum of the invoices' totals."""
        return sum((inv.total for inv in self.invoices), ZERO)

    def to_dict(self, explain: bool = True) -> dict[str, Any]:
        """JSON-ready data matching ``schemas/statement.schema.json``."""
        return {
            "contract": self.contract,
            "contract_name": self.contract_name,
            "account": self.account,
            "currency": self.currency,
            "invoices": [inv.to_dict(explain) for inv in self.invoices],
            "ledger": [e.to_dict() for e in self.ledger],
            "years": [y.to_dict() for y in self.years],
            "balance": decimal_text(self.balance),
            "total": decimal_text(self.total),
        }


# ----------------------------------------------------------------- inputs


def _usage_error(message: str, source: str, hint: str) -> PricingError:
    return PricingError(Diagnostic("E306", message, source, key="period", hint=hint))


def _months_of_usage(
    records: Iterable[tuple[Period | None, Usage]],
) -> dict[date, Usage]:
    """Usage by month (first day), each a whole calendar month, each month once."""
    out: dict[date, Usage] = {}
    for key, usage in records:
        period = usage.period if usage.period is not None else key
        if key is not None and usage.period is not None and key != usage.period:
            raise _usage_error(
                f"this usage is for {usage.period} but is given for {key}",
                usage.source,
                "give each month's usage under its own month",
            )
        if period is None:
            raise _usage_error(
                "a statement's usage needs a period, to know which invoice bills it",
                usage.source,
                "add `period: YYYY-MM` to every usage record",
            )
        if not period.is_calendar_month:
            raise _usage_error(
                f"a statement bills usage by calendar month, not for {period}",
                usage.source,
                "give one record per month, with `period: YYYY-MM`",
            )
        month = period.start
        accounts = {u.account for u in out.values()} | {usage.account}
        if len(accounts - {None}) > 1:
            raise _usage_error(
                "a statement is one account's, but the usage names "
                + " and ".join(f"`{a}`" for a in sorted(a for a in accounts if a is not None)),
                usage.source,
                "give the usage of one account (`pricing statement --account ID` picks one)",
            )
        if month in out:
            raise _usage_error(
                f"there are two usage records for {period} "
                f"({out[month].source} and {usage.source})",
                usage.source,
                "give each month's usage once",
            )
        out[month] = usage
    return out


# --------------------------------------------------------------- the run


@dataclass(slots=True)
class _Bucket:
    """A balance and the contract year whose usage it may pay (None: any year)."""

    kind: str  # "credit", "rollover" or "prepaid"
    year: int | None
    left: Decimal


def _oldest_first(b: _Bucket) -> tuple[bool, bool]:
    # Promotional credit, then credit rolled over from the year before, then the year's own.
    return (b.year is not None, b.kind != "rollover")


@dataclass(slots=True)
class Balances:
    """A contract's credit balances and their movements: the one ledger arithmetic.

    Statements (per issued invoice) and batch runs (per rated month) both
    move balances through these methods, in the same order, so the two
    cannot disagree on what a balance pays.  ``when`` dates each movement.
    """

    buckets: list[_Bucket] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    balance: Decimal = ZERO

    def _move(self, when: date, reason: str, amount: Decimal, year: int | None) -> None:
        self.balance += amount
        self.entries.append(LedgerEntry(when, reason, amount, self.balance, year))

    def available(self, year: int | None) -> Decimal:
        """What may pay the usage of contract year ``year`` (None: no year, nothing)."""
        return sum(
            (b.left for b in self.buckets if year is not None and b.year in (None, year)), ZERO
        )

    def pay(self, when: date, year: int | None, payable: Decimal) -> tuple[Decimal, list[str]]:
        """Pay up to ``payable`` of year ``year``'s usage, oldest balance first."""
        applied = ZERO
        parts: list[str] = []
        if year is None:
            return applied, parts
        for b in self.buckets:
            if payable == ZERO:
                break
            if b.year not in (None, year):
                continue
            take = min(b.left, payable)
            if take == ZERO:
                continue
            b.left -= take
            payable -= take
            applied += take
            self._move(when, f"{b.kind}.applied", -take, b.year)
            parts.append(f"{b.kind} {decimal_text(take)}")
        self._tidy()
        return applied, parts

    def close_year(self, when: date, year: int, next_year: int | None, rollover: bool) -> None:
        """A year's balances end: its own prepaid credit rolls over once, the rest expires."""
        for b in list(self.buckets):
            if b.year != year or b.left == ZERO:
                continue
            if b.kind == "prepaid" and rollover and next_year is not None:
                self._move(when, "prepaid.rolled_over", -b.left, year)
                self._move(when, "rollover.granted", b.left, next_year)
                self.buckets.append(_Bucket("rollover", next_year, b.left))
            else:
                self._move(when, f"{b.kind}.expired", -b.left, year)
            b.left = ZERO
        self._tidy()

    def expire_promotional(self, when: date) -> None:
        for b in self.buckets:
            if b.year is None and b.left > ZERO:
                self._move(when, "credit.expired", -b.left, None)
                b.left = ZERO
        self._tidy()

    def grant(self, when: date, kind: str, year: int | None, amount: Decimal) -> None:
        """Promotional (``credit``, year None) or ``prepaid`` credit comes into being."""
        if amount <= ZERO:
            return
        self.buckets.append(_Bucket(kind, year, amount))
        self._move(when, f"{kind}.granted", amount, year)
        self._tidy()

    def _tidy(self) -> None:
        self.buckets = sorted((b for b in self.buckets if b.left > ZERO), key=_oldest_first)

    def state(self) -> list[tuple[str, int | None, Decimal]]:
        """(kind, year, amount) of every balance left, oldest first."""
        return [(b.kind, b.year, b.left) for b in self.buckets]

    @classmethod
    def from_state(cls, state: Iterable[tuple[str, int | None, Decimal]]) -> Balances:
        """Balances carried over (from a batch ledger file); their movements start afresh."""
        out = cls([_Bucket(kind, year, amount) for kind, year, amount in state])
        out.balance = sum((b.left for b in out.buckets), ZERO)
        out._tidy()
        return out


def line_kind(code: str, usage_codes: frozenset[str]) -> str:
    """A line's kind from its code alone, for rows that carry no kind (batch output)."""
    if code in usage_codes:
        return "usage"
    if code == "base" or code.startswith("addon."):
        return "fee"
    return "adjustment"


def on_usage_side(code: str, kind: str, usage_codes: frozenset[str], has_fees: bool) -> bool:
    """Whether a line counts with its invoice's usage (True) or with its fees (False).

    Usage lines, caps and the percentage discounts of usage lines or of
    `usage` go with the usage; fee lines and their discounts with the fees;
    the fixed discount and the minimum with the fees, or with the usage on
    an invoice that bills no fees.
    """
    if kind == "usage":
        return True
    if kind == "fee":
        return False
    side = _usage_side(code, usage_codes)
    return (not has_fees) if side is None else side


def _adjustment_line(
    code: str, description: str, amount: Decimal, formula: str, sources: Sequence[str], detail: str
) -> Line:
    return adjustment_line(code, description, amount, formula, amount, sources, detail)


def _money(d: Decimal) -> str:
    return decimal_text(d)


def _usage_side(code: str, usage_codes: frozenset[str]) -> bool | None:
    """Whether an issued invoice's adjustment line counts with its usage (True) or fees (False).

    A percentage discount, a cap or a line minimum (`discount.T`, `cap.T`,
    `minimum.T`) goes with the usage when its target T is a usage line or
    `usage`, else (`base`, `addons`, an add-on) with the fees.  The fixed
    discount and the invoice minimum follow the fees (None: the caller
    decides by the invoice).
    """
    if code in ("discount.fixed", "minimum"):
        return None
    for prefix in ("discount.", "cap.", "minimum."):
        if code.startswith(prefix):
            target = code.removeprefix(prefix)
            return target == "usage" or target in usage_codes
    return None


def build_statement(
    c: ResolvedContract,
    usages: Mapping[date, Usage],
    catalog: Catalog,
    plans: Plans | None = None,
    through: date | None = None,
) -> Statement:
    """Every invoice of the term issued up to ``through`` (default: the last), and the ledger.

    ``usages`` maps the first day of a month to that month's usage; a month
    without usage is billed as none.  ``through`` is an issue date (the
    first of a month).
    """
    term_s = c.static_terms.get(("term",))
    if term_s is None:
        raise PricingError(
            Diagnostic(
                "E307",
                f"`{c.id}` has no term, so it has no statement",
                hint="a statement runs over a contract's term: add `term START to END`",
                key="contract",
            )
        )
    term = Period(term_s.value[0], term_s.value[1])
    if plans is None:
        plans = Plans(c, catalog)
    first_issue = _month(term.start)
    last_issue = _next_month(term.end)
    if through is None:
        through = last_issue
    if through.day != 1 or not first_issue <= through <= last_issue:
        raise PricingError(
            Diagnostic(
                "E308",
                f"the statement of `{c.id}` cannot run through {through}: its invoices are "
                f"issued from {first_issue} to {last_issue}",
                key="through",
                hint=f"give a month from {first_issue:%Y-%m} to {last_issue:%Y-%m}",
            )
        )
    for month, usage in usages.items():
        if not _month(term.start) <= month <= _month(term.end):
            raise _usage_error(
                f"usage for {month:%Y-%m} is outside the term of `{c.id}` "
                f"({term.start} to {term.end})",
                usage.source,
                f"give usage for the months {term.start:%Y-%m} to {term.end:%Y-%m}",
            )
    terms = commitments_of(c)
    years = contract_years(term)
    usage_codes = frozenset(m.line_code for m in catalog.meters)
    rounding = ROUNDING[c.static_terms[("rounding",)].value]

    def rnd(d: Decimal) -> Decimal:
        return d.quantize(QUANTUM[c.minor_units], rounding, CONTEXT)

    commit = terms.get("commit")
    prepaid = terms.get("prepaid")
    promo = terms.get("credit")
    has_credit = prepaid is not None or promo is not None
    balances = Balances()
    spend: dict[int, Decimal] = {y.number: ZERO for y in years}
    settled: dict[int, tuple[Decimal, date]] = {}
    invoices: list[Invoice] = []
    empty: dict[str, Any] = {}
    issue = first_issue
    with localcontext(EXACT):
        while issue <= through:
            fee_month = issue
            use_month = _month(issue - timedelta(days=1))
            usage = usages.get(use_month) or Usage.from_mapping(
                empty, meters=catalog.meters, source=f"<no usage for {use_month:%Y-%m}>"
            )
            inv = issue_invoice(c, issue, usage, catalog, plans)
            fee_year = _year_of(years, fee_month) if fee_month <= term.end else None
            use_year = _year_of(years, use_month) if use_month >= _month(term.start) else None
            has_fees = any(ln.kind == "fee" for ln in inv.lines)
            # Committed spend, by the contract year of each line's service month.
            usage_net = ZERO
            for ln in inv.lines:
                side = on_usage_side(ln.code, ln.kind, usage_codes, has_fees)
                year = use_year if side else fee_year
                if side:
                    usage_net += ln.amount
                if year is not None and (side or commit is None or not commit.value.on_usage):
                    spend[year.number] += ln.amount
            usage_net = max(usage_net, ZERO)
            extra: list[Line] = []
            # 1. Credits pay the usage lines after discounts, never more than the invoice.
            if has_credit:
                payable = min(usage_net, max(inv.total, ZERO)) if use_year else ZERO
                use_n = None if use_year is None else use_year.number
                valid = balances.available(use_n)
                applied, parts = balances.pay(issue, use_n, payable)
                sources = [src(t) for t in (promo, prepaid) if t is not None]
                extra.append(
                    _adjustment_line(
                        "credit.applied",
                        "Credit applied",
                        rnd(-applied) + ZERO,
                        f"-min(balance {_money(rnd(valid))}, usage after discounts "
                        f"{_money(rnd(usage_net))}, invoice {_money(rnd(max(inv.total, ZERO)))})",
                        sources,
                        "paid from: " + ", ".join(parts)
                        if parts
                        else "no credit applied: no usage, or no balance for this month",
                    )
                )
            # 2. The true-up, on the invoice that bills a year's last usage month.
            if use_year is not None and use_month == use_year.last_month:
                n = use_year.number
                if commit is not None:
                    amount = rnd(CONTEXT.multiply(commit.value.amount, use_year.factor))
                    true_up = rnd(max(ZERO, amount - spend[n]))
                    settled[n] = (true_up, issue)
                    shown = (
                        _money(commit.value.amount)
                        if use_year.factor == ONE
                        else f"{_money(commit.value.amount)} × {use_year.factor:.6f} "
                        f"= {_money(amount)}"
                    )
                    counted = "usage lines" if commit.value.on_usage else "lines"
                    extra.append(
                        _adjustment_line(
                            "commit.true_up",
                            f"Commitment true-up, year {n} ({use_year.start} to {use_year.end})",
                            true_up,
                            f"max(0, {shown} - committed spend {_money(spend[n])})",
                            [src(commit)],
                            f"committed spend: the year's {counted} after discounts",
                        )
                    )
                # 3. The year's balances expire, or roll over once.
                nxt = _year_of(years, _next_month(use_year.last_month))
                balances.close_year(
                    issue,
                    n,
                    None if nxt is None else nxt.number,
                    prepaid is not None and prepaid.value.rollover,
                )
            if use_month == _month(term.end) and use_year is not None:
                balances.expire_promotional(issue)
            # 4. Grants: promotional credit with the first invoice, prepaid at each year's start.
            if promo is not None and issue == first_issue:
                balances.grant(issue, "credit", None, promo.value.amount)
            if prepaid is not None and fee_year is not None and fee_month == fee_year.first_month:
                amount = rnd(CONTEXT.multiply(prepaid.value.amount, fee_year.factor))
                extra.insert(
                    0,
                    Line(
                        "prepaid",
                        f"Prepaid credit, year {fee_year.number}",
                        quantity_text(fee_year.factor),
                        "year",
                        prepaid.value.amount,
                        amount,
                        "fee",
                        fee_year.period,
                        Explanation(
                            f"{_money(prepaid.value.amount)} per year"
                            + ("" if fee_year.factor == ONE else f" × {fee_year.factor:.6f}"),
                            CONTEXT.multiply(prepaid.value.amount, fee_year.factor),
                            (src(prepaid),),
                            (
                                f"billed in advance for year {fee_year.number} "
                                f"({fee_year.start} to {fee_year.end}); becomes its balance",
                            ),
                        ),
                    ),
                )
                balances.grant(issue, "prepaid", fee_year.number, amount)
            lines = (*inv.lines, *extra)
            invoices.append(
                Invoice(
                    inv.contract,
                    inv.contract_name,
                    inv.currency,
                    inv.minor_units,
                    None,
                    lines,
                    sum((ln.amount for ln in lines), ZERO),
                    account=inv.account,
                    issue_date=issue,
                    rules_applied=inv.rules_applied,
                )
            )
            issue = _next_month(issue)
    summaries = tuple(
        YearSummary(
            y.number,
            y.start,
            y.end,
            None if commit is None else rnd(CONTEXT.multiply(commit.value.amount, y.factor)),
            spend[y.number],
            settled[y.number][0] if y.number in settled else None,
            settled[y.number][1] if y.number in settled else None,
        )
        for y in years
        if y.first_month <= through
    )
    return Statement(
        c.id,
        c.name,
        next((u.account for u in usages.values() if u.account is not None), None),
        c.currency,
        tuple(invoices),
        tuple(balances.entries),
        summaries,
    )


# ------------------------------------------------------------------- text


def _group(d: Decimal, places: int) -> str:
    return f"{d:,.{places}f}"


def _table(rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def fmt(r: list[str]) -> str:
        cells = [f"{c:<{widths[i]}}" if i < left else f"{c:>{widths[i]}}" for i, c in enumerate(r)]
        return ("  " + "  ".join(cells)).rstrip()

    rule = "  " + "-" * (sum(widths) + 2 * (len(widths) - 1))
    return [fmt(rows[0]), rule, *(fmt(r) for r in rows[1:])]


def statement_text(st: Statement, explain: bool = False) -> str:
    """Every invoice as `pricing invoice` prints it, then the ledger and the contract years."""
    from ._output import invoice_text

    places = next((inv.minor_units for inv in st.invoices), 2)
    head = [f"Statement for {st.contract_name} ({st.contract})"]
    meta = [f"account {st.account}"] if st.account else []
    if st.invoices:
        first, last = st.invoices[0].issue_date, st.invoices[-1].issue_date
        n = len(st.invoices)
        meta.append(f"{n} invoice{'s' if n != 1 else ''} issued {first} to {last}")
    meta.append(f"currency {st.currency}")
    head.append(", ".join(meta))
    parts = ["\n".join(head) + "\n"]
    parts.extend(invoice_text(inv, explain) for inv in st.invoices)
    ledger = ["Ledger"]
    if st.ledger:
        rows = [["Date", "Movement", "Year", "Amount", "Balance"]]
        for e in st.ledger:
            rows.append(
                [
                    e.date.isoformat(),
                    e.reason,
                    "" if e.year is None else str(e.year),
                    _group(e.amount, places),
                    _group(e.balance, places),
                ]
            )
        ledger.extend(_table(rows, 2))
    else:
        ledger.append("  no credit balance moved")
    parts.append("\n".join(ledger) + "\n")
    if any(y.commitment is not None for y in st.years):
        rows = [["Year", "From", "To", "Commitment", "Committed spend", "True-up", "Settled on"]]
        for y in st.years:
            rows.append(
                [
                    str(y.number),
                    y.start.isoformat(),
                    y.end.isoformat(),
                    "" if y.commitment is None else _group(y.commitment, places),
                    _group(y.committed_spend, places),
                    "" if y.true_up is None else _group(y.true_up, places),
                    "" if y.settled_on is None else y.settled_on.isoformat(),
                ]
            )
        parts.append("\n".join(["Contract years", *_table(rows, 3)]) + "\n")
    parts.append(
        f"Total of the invoices: {st.currency} {_group(st.total, places)}; "
        f"credit left: {st.currency} {_group(st.balance, places)}\n"
    )
    return "\n".join(parts)
