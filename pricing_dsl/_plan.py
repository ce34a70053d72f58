"""The rating plan: a contract's resolved terms, as the lines, tiers and adjustments to compute.

Every pricing rule is written once, here:

* which layers of a contract apply to a usage record and period
  (:func:`select_layers`, :meth:`Plans.for_key`);
* what each line is -- a monthly fee, or a meter charge with its
  allowance and tier table reduced to *pieces* -- and the arithmetic that
  prices it (:meth:`MeterCharge.rate`, :func:`fee_factor`);
* the adjustments, in their fixed order, and how each one is applied
  (:func:`apply_adjustments`).

The engines derive from a plan: the interpreter (:mod:`._rating`) adds the
explanations, the per-account fast path (:mod:`._compile`) and the SQL
generator (:mod:`._batch._sql`) translate the same pieces into Python and
SQL.  A plan separates its *shape* (which lines exist, how many tiers, which
adjustments reach which lines, the rounding) from its *constants* (prices,
bounds, allowances, percentages), so generated code is shared by every
contract of one shape and the numbers travel as data.
"""

from __future__ import annotations

import calendar
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any

from . import _ast as A
from ._conditions import compiled
from ._decimal import CONTEXT, ROUNDING
from ._errors import Diagnostic, PricingError
from ._invoice import decimal_text
from ._terms import (
    FEE_INTERVALS,
    STANDARD,
    AddonInfo,
    AllowanceSpec,
    MeterInfo,
    RateSpec,
    ResolvedContract,
    Sourced,
    TermKey,
)
from ._usage import Period

__all__ = [
    "Adjustment",
    "Allowance",
    "Catalog",
    "Charge",
    "Fee",
    "MeterCharge",
    "Piece",
    "Plans",
    "RatingPlan",
    "apply_adjustments",
    "fee_factor",
    "select_layers",
]

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
QUANTUM = {n: Decimal(1).scaleb(-n) for n in range(0, 5)}

LayerKey = tuple[bool, ...]


def src(span_holder: Sourced[Any]) -> str:
    """Where a term was set, for an explanation: ``file:line`` or the standard rates."""
    s = span_holder.span
    if s is STANDARD or s.line == 0:
        return "standard rate (billing FAQ)"
    return f"{s.path}:{s.line}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """What rating needs besides the contract: the meters and the add-on catalog."""

    meters: tuple[MeterInfo, ...]
    addons: Mapping[str, AddonInfo]


# --------------------------------------------------------------- layers


def _needs_period(message: str, source: str) -> PricingError:
    return PricingError(
        Diagnostic("E303", message, source, key="period", hint="add `period: YYYY-MM` to the usage")
    )


# A conditional layer as selection tests it: its `from` date and its compiled condition.
LayerTest = tuple[Any, Callable[[Mapping[str, Any], Period | None], Any] | None, str]


def layer_tests(c: ResolvedContract) -> tuple[LayerTest, ...]:
    """The test of each conditional layer, in order (built once per contract)."""
    return tuple(
        (
            layer.from_date,
            None if layer.condition is None else compiled(layer.condition),
            layer.label,
        )
        for layer in c.layers
        if layer.conditional
    )


def usage_refs(e: A.Expr) -> set[str]:
    """The usage keys a condition reads (none: it depends on the period alone)."""
    if isinstance(e, A.RefExpr):
        return {e.name.text}
    if isinstance(e, A.BinaryExpr):
        return usage_refs(e.left) | usage_refs(e.right)
    if isinstance(e, A.NotExpr):
        return usage_refs(e.operand)
    return set()


def select_layers(
    c: ResolvedContract,
    tests: Sequence[LayerTest],
    values: Mapping[str, Any],
    period: Period | None,
    source: str = "<usage>",
) -> tuple[LayerKey, tuple[str, ...]]:
    """Which conditional layers apply to this usage and period, and the labels that fired.

    The one place that decides it.  ``values`` are usage values (ints or
    Decimals); a `from` block applies from the period's first day on; a
    `when` block applies when its condition is true (a condition that
    divides by zero is not).  Raises E303 when a layer needs a period and
    the usage has none.
    """
    if not tests:
        return (), ()
    if c.uses_period and period is None:
        # Decided before evaluating anything, so whether a period is needed
        # never depends on which way a condition happens to short-circuit.
        limited = next((la for la in c.layers if la.until is not None), None)
        raise _needs_period(
            f"`{c.id}` has a time-limited discount (to {limited.until.isoformat()}), "
            "so the usage needs a period"
            if limited is not None and limited.until is not None
            else f"a `when` rule of `{c.id}` depends on the period, but the usage has none",
            source,
        )
    key: list[bool] = []
    fired: list[str] = []
    for from_date, condition, label in tests:
        ok = True
        if from_date is not None:
            if period is None:
                raise _needs_period(
                    f"`{c.id}` has prices that change on {from_date.isoformat()}, so "
                    "the usage needs a period",
                    source,
                )
            ok = period.start >= from_date
            if ok:
                fired.append(label)
        if ok and condition is not None:
            ok = condition(values, period) is True
            if ok:
                fired.append(label)
        key.append(ok)
    return tuple(key), tuple(fired)


def fold(c: ResolvedContract, key: LayerKey) -> Mapping[TermKey, Sourced[Any]]:
    """The terms in force when the conditional layers in ``key`` apply."""
    if not c.has_conditions:
        return c.static_terms
    terms: dict[TermKey, Sourced[Any]] = {}
    bits = iter(key)
    for layer in c.layers:
        if not layer.conditional or next(bits):
            terms.update(layer.patch)
    return terms


# ------------------------------------------------------------ proration


def _days_in_month(d: Any) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def fee_factor(period: Period | None, term: Period | None) -> tuple[Decimal, str | None]:
    """Months of fixed fees owed for a period: 1 for a whole month, days/days-in-month otherwise.

    The second value describes a partial factor (``17/31 of a month``); None for 1.
    """
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


def allowance_factor(period: Period | None, term: Period | None) -> Decimal:
    """The share of a period's days inside the term (1 without a term or a period)."""
    if period is None or term is None:
        return ONE
    covered = period.intersect(term)
    if covered is None:
        return ZERO
    return CONTEXT.divide(Decimal(covered.days), Decimal(period.days))


def _add_months(d: date, months: int) -> date:
    """``d`` plus whole months, the day kept or clamped to the month's last day."""
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


# Without a term, quarters and years follow the calendar: 1900-01-01 starts both.
_CALENDAR = date(1900, 1, 1)


@dataclass(frozen=True, slots=True)
class Interval:
    """One billing interval of a quarterly or yearly fee that starts in a period.

    ``billed`` is the share of the interval the fee is charged for: 1, or
    days in the term / days in the interval when the term ends inside it.
    """

    start: date
    end: date
    last: date  # the interval's last day within the term
    billed: Decimal
    note: str | None  # e.g. "261/365 of a year (the term ends 2027-03-31)"


@lru_cache(maxsize=4096)
def intervals(per: str, covered: Period, term: Period | None) -> tuple[Interval, ...]:
    """The intervals of a `per quarter` / `per year` fee that start within ``covered``.

    Intervals run from the term's start, on its anniversaries (or every three
    months from it); without a term they follow the calendar year or quarter.
    A term that ends inside an interval bills that interval by days.
    """
    months = FEE_INTERVALS[per]
    anchor = term.start if term is not None else _CALENDAR

    def start_of(k: int) -> date | None:
        """Interval k's first day; None when it would start on a term's last day
        only because its day was moved back to a shorter month's end (a term
        from 2028-02-29 to 2033-02-28 is five years, not five and a day)."""
        d = _add_months(anchor, k * months)
        if k and term is not None and d == term.end and d.day != anchor.day:
            return None
        return d

    elapsed = (covered.start.year - anchor.year) * 12 + covered.start.month - anchor.month
    k = max(0, elapsed // months - 1)
    out = []
    while True:
        start = start_of(k)
        if start is None or start > covered.end:
            break
        k += 1
        if start < covered.start:
            continue
        following = start_of(k)
        if following is None:  # the term's last day joins this interval
            assert term is not None
            end = term.end
        else:
            end = following - timedelta(days=1)
        last = end if term is None else min(end, term.end)
        billed, note = ONE, None
        if last < end:
            used, days = (last - start).days + 1, (end - start).days + 1
            billed = CONTEXT.divide(Decimal(used), Decimal(days))
            note = f"{used}/{days} of a {per} (the term ends {last.isoformat()})"
        out.append(Interval(start, end, last, billed, note))
    return tuple(out)


def proration_details(note: str | None, term: Period | None) -> tuple[str, ...]:
    """A monthly fee's proration as the explanation shows it (none for a whole month)."""
    if note is None:
        return ()
    return (f"prorated: {note}" + (" in the term" if term else ""),)


def fee_share(
    per: str, period: Period | None, term: Period | None
) -> tuple[Decimal, tuple[str, ...]]:
    """How many of a fee's intervals a period bills, and the working.

    A monthly fee: :func:`fee_factor`.  A quarterly or yearly fee is billed in
    full, in advance, in the period in which each of its intervals starts
    (within the term), prorated by days when the term ends inside the interval.
    Without a period, a quarterly or yearly fee bills nothing (the caller
    refuses to rate such a contract without a period).
    """
    if per == "month":
        factor, note = fee_factor(period, term)
        return factor, proration_details(note, term)
    if period is None:
        return ZERO, ()
    covered = period if term is None else period.intersect(term)
    if covered is None:
        return ZERO, ()
    found = intervals(per, covered, term)
    if not found:
        return ZERO, (f"no {per}ly interval starts in {covered}",)
    total = ZERO
    notes = []
    for iv in found:
        total = CONTEXT.add(total, iv.billed)
        notes.append(
            f"{per}ly interval {iv.start.isoformat()} to {iv.end.isoformat()} starts in "
            "this period: billed in advance" + (f", prorated {iv.note}" if iv.note else "")
        )
    return total, tuple(notes)


def needs_period(plan: RatingPlan) -> bool:
    """Whether the plan's fees depend on the period (a quarterly or yearly fee)."""
    return any(fee.per != "month" for fee in plan.fees)


def prorate_units(n: Decimal, factor: Decimal) -> Decimal:
    """``n`` free units times ``factor``, rounded down to the precision ``n`` is written in.

    Whole allowances stay whole (floor), and ``voice included 100.5`` stays
    100.5 at factor 1 and becomes 99.8 at 0.9935: the same rule at every factor.
    """
    if factor == ONE:
        return n
    exponent = n.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return CONTEXT.multiply(n, factor).quantize(
        QUANTUM.get(places) or Decimal(1).scaleb(-places), ROUND_FLOOR, CONTEXT
    )


# ---------------------------------------------------------------- lines


@dataclass(frozen=True, slots=True)
class Fee:
    """A fixed fee line: the base fee or an add-on, billed per month, quarter or year."""

    code: str
    description: str
    price: Decimal
    sources: tuple[str, ...]
    per: str = "month"


@dataclass(frozen=True, slots=True)
class Allowance:
    """A meter's free units: none, ``included N``, or a percentage of the MAU allowance."""

    kind: str  # "none" | "included" | "percent"
    units: Decimal  # included units; for "percent", the MAU allowance it is a share of
    percent: Decimal  # "percent" only
    sources: tuple[str, ...]

    def free(self, factor: Decimal = ONE) -> Decimal:
        """Free units at a proration factor (1: the whole allowance)."""
        if self.kind == "none":
            return ZERO
        units = prorate_units(self.units, factor)
        if self.kind == "percent":
            return CONTEXT.divide(CONTEXT.multiply(units, self.percent), HUNDRED).to_integral_value(
                ROUND_FLOOR, CONTEXT
            )
        return units

    def describe(self, factor: Decimal, unit: str) -> str:
        """The allowance as the explanation shows it."""
        if self.kind == "none":
            return ""
        free = self.free(factor)
        note = "" if factor == ONE else " (prorated)"
        if self.kind == "percent":
            mau = prorate_units(self.units, factor)
            return (
                f"allowance floor({decimal_text(mau)} MAU{note} × {self.percent}%) = "
                f"{decimal_text(free)} {unit}s"
            )
        return f"{decimal_text(free)} {unit}s included{note}"


@dataclass(frozen=True, slots=True)
class Piece:
    """``max(0, min(used, upper) - lower) * price``: one tier's share of a graduated charge.

    ``lower`` already accounts for the free units; ``upper`` None is open-ended.
    With a ``block``, the tier's units are cut into blocks first (partial
    blocks round up, or down with ``down``) and the price is per block.
    ``reach`` is the usage above which the tier's flat ``fee`` applies (None:
    the first tier, reached at zero).
    """

    lower: Decimal
    upper: Decimal | None
    price: Decimal
    block: Decimal | None = None
    down: bool = False
    fee: Decimal | None = None
    reach: Decimal | None = None


def blocks_of(units: Decimal, block: Decimal, down: bool) -> Decimal:
    """The blocks ``units`` make: started blocks (round up), or whole ones with ``down``."""
    whole = CONTEXT.divide_int(units, block)
    if not down and CONTEXT.remainder(units, block) != 0:
        whole += 1
    return whole


def priced(units: Decimal, price: Decimal, block: Decimal | None, down: bool) -> Decimal:
    """``units`` at ``price`` per unit, or per block of ``block`` units (exact)."""
    if block is None:
        return CONTEXT.multiply(units, price)
    return CONTEXT.multiply(blocks_of(units, block, down), price)


@dataclass(frozen=True, slots=True)
class Charge:
    """A meter charge worked out: what the interpreter explains and every engine computes."""

    used: Decimal
    free: Decimal
    billable: Decimal
    exact: Decimal  # before rounding
    unit_price: Decimal | None  # None unless the amount is billable x one unit price
    quantities: tuple[Decimal, ...]  # graduated: units in each tier reached; volume: ()
    chosen: int  # volume: the index of the tier that prices every unit
    blocks: tuple[Decimal | None, ...] = ()  # blocks billed per tier reached (None: per unit)
    fees: tuple[Decimal | None, ...] = ()  # flat fee charged per tier reached


@dataclass(frozen=True, slots=True)
class MeterCharge:
    """A usage line: a meter, its allowance, and its rate as flat, graduated or volume tiers.

    A flat rate is one open-ended tier.  For graduated tables the tiers'
    lower bounds are raised to the free units (the allowance comes off the
    first units); a volume table prices every billable unit at the tier that
    holds the whole usage.
    """

    meter: MeterInfo
    mode: str  # "flat" | "graduated" | "volume"
    bounds: tuple[Decimal | None, ...]  # each tier's `up to`; None for `above`
    prices: tuple[Decimal, ...]
    allowance: Allowance
    sources: tuple[str, ...]
    blocks: tuple[Decimal | None, ...] = ()  # per tier: the block its price is for
    down: tuple[bool, ...] = ()  # per tier: whole blocks only
    fees: tuple[Decimal | None, ...] = ()  # per tier: its flat fee

    def block(self, k: int) -> tuple[Decimal | None, bool]:
        """Tier ``k``'s block size (None: priced per unit) and whether it rounds down."""
        if not self.blocks:
            return None, False
        return self.blocks[k], self.down[k]

    def fee(self, k: int) -> Decimal | None:
        """Tier ``k``'s flat fee, if it has one."""
        return self.fees[k] if self.fees else None

    @property
    def simple(self) -> bool:
        """No blocks and no tier fees: every unit at a unit price."""
        return not any(b is not None for b in self.blocks) and not any(
            f is not None for f in self.fees
        )

    def pieces(self, free: Decimal) -> tuple[Piece, ...]:
        """The graduated (or flat) charge as pieces, given the free units."""
        out = []
        lower = ZERO
        for k, (up_to, price) in enumerate(zip(self.bounds, self.prices, strict=True)):
            block, down = self.block(k)
            out.append(
                Piece(
                    max(lower, free),
                    up_to,
                    price,
                    block,
                    down,
                    self.fee(k),
                    None if k == 0 else lower,
                )
            )
            if up_to is None:
                break
            lower = up_to
        return tuple(out)

    def volume_tier(self, used: Decimal) -> int:
        """The index of the volume tier that holds ``used``."""
        for i, up_to in enumerate(self.bounds):
            if up_to is not None and used <= up_to:
                return i
        return len(self.bounds) - 1

    def rate(self, used: Decimal, free: Decimal) -> Charge:
        """The reference arithmetic of this line (exact; the caller rounds it once).

        Blocks: the units a tier prices (all billable units for a volume
        table) are cut into blocks of the tier's size, rounded up (down with
        `rounded down`), and priced per block.  Flat fees: in a graduated
        table each tier the usage reaches adds its fee, the first tier at
        zero usage too; a tier past the first is reached when the usage is
        above the previous bound.  In a volume table only the chosen tier's
        fee applies.
        """
        billable = max(ZERO, used - free)
        if self.mode == "volume":
            i = self.volume_tier(used)
            block, down = self.block(i)
            fee = self.fee(i)
            exact = priced(billable, self.prices[i], block, down)
            if fee is not None:
                exact += fee
            unit_price = self.prices[i] if block is None and fee is None else None
            counted = None if block is None else blocks_of(billable, block, down)
            return Charge(used, free, billable, exact, unit_price, (), i, (counted,), (fee,))
        exact = ZERO
        quantities = []
        counts: list[Decimal | None] = []
        fees: list[Decimal | None] = []
        for piece in self.pieces(free):
            top = used if piece.upper is None else min(used, piece.upper)
            qty = max(ZERO, top - piece.lower)
            exact += priced(qty, piece.price, piece.block, piece.down)
            counts.append(None if piece.block is None else blocks_of(qty, piece.block, piece.down))
            reached = piece.reach is None or used > piece.reach
            fee = piece.fee if reached else None
            if fee is not None:
                exact += fee
            fees.append(fee)
            quantities.append(qty)
            if piece.upper is None or used <= piece.upper:
                break
        unit_price = self.prices[0] if self.mode == "flat" and self.simple else None
        return Charge(
            used,
            free,
            billable,
            exact,
            unit_price,
            tuple(quantities),
            -1,
            tuple(counts),
            tuple(fees),
        )


# ---------------------------------------------------------- adjustments


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One adjustment clause, in application order."""

    code: str
    kind: str  # "pct" | "line_min" | "fixed" | "cap" | "minimum"
    value: Decimal  # the percentage, or the amount
    target: str  # discount, line minimum or cap target; "" otherwise
    source: Sourced[Any]

    @property
    def description(self) -> str:
        v = self.value
        if self.kind == "pct":
            return f"{v}% discount on {self.target}"
        if self.kind == "fixed":
            return f"{decimal_text(v)} discount"
        if self.kind == "cap":
            return f"{self.target} capped at {decimal_text(v)}"
        if self.kind == "line_min":
            return f"{self.target} minimum ({decimal_text(v)})"
        return f"Minimum commitment true-up ({decimal_text(v)})"


# The fixed order of adjustment kinds, and each step's number in explanations.
ORDER = ("pct", "line_min", "fixed", "cap", "minimum")


def adjustments_of(terms: Mapping[TermKey, Sourced[Any]]) -> tuple[Adjustment, ...]:
    """Percentage discounts, line minimums, the fixed discount, caps, the minimum true-up."""
    line_min = [
        Adjustment(f"minimum.{k[1]}", "line_min", v.value, k[1], v)
        for k, v in terms.items()
        if k[0] == "line_minimum"
    ]
    pct = [
        Adjustment(f"discount.{k[1]}", "pct", v.value[0], k[1], v)
        for k, v in terms.items()
        if k[0] == "discount_pct"
    ]
    fixed = [
        Adjustment("discount.fixed", "fixed", v.value, "", v)
        for k, v in terms.items()
        if k == ("discount_fixed",)
    ]
    caps = [
        Adjustment(f"cap.{k[1]}", "cap", v.value, k[1], v)
        for k, v in terms.items()
        if k[0] == "cap"
    ]
    minimum = [
        Adjustment("minimum", "minimum", v.value, "", v)
        for k, v in terms.items()
        if k == ("minimum",)
    ]
    return (*pct, *line_min, *fixed, *caps, *minimum)


def hits(target: str, codes: Sequence[str], kinds: Sequence[str]) -> tuple[int, ...]:
    """The lines an adjustment target reaches: `addons`, `usage`, or one line code."""
    if target == "addons":
        return tuple(i for i, c in enumerate(codes) if c.startswith("addon."))
    if target == "usage":
        return tuple(i for i, k in enumerate(kinds) if k == "usage")
    return tuple(i for i, c in enumerate(codes) if c == target)


def usage_target(target: str, meters: Sequence[MeterInfo]) -> bool:
    """Whether an adjustment's target is usage lines (`usage` or a meter's line code).

    Every target reaches lines of one kind only: usage lines, or fee lines
    (`base`, `addons`, `addon.<id>`); the fixed discount and the invoice
    minimum (target "") reach the whole invoice.
    """
    return target == "usage" or any(m.line_code == target for m in meters)


def apply_adjustments(
    steps: Sequence[Adjustment],
    reached: Sequence[tuple[int, ...]],
    amounts: Sequence[Decimal],
    rnd: Callable[[Decimal], Decimal],
    factor: Decimal = ONE,
    factors: Sequence[Decimal] | None = None,
) -> list[tuple[Decimal, Decimal, tuple[Any, ...]]]:
    """Amount, exact amount and working of each step.  Every engine's adjustments.

    ``reached[n]`` are the lines step n reaches (see :func:`hits`).
    ``factor`` is the share of a month the invoice bills fixed fees for: the
    fixed discount and the minimums are monthly amounts and are prorated by
    it (0 on an invoice that bills no fees).  ``factors``, if given, is the
    factor of each step instead (an issued invoice prorates a minimum on
    usage lines by the usage month).  Must run in CONTEXT.

    1. A percentage discount takes its share of the lines it reaches.
    2. A line minimum tops its lines, net of their percentage discounts, up
       to its amount (nothing when the invoice has none of its lines).
    3. A fixed discount takes its amount, never the subtotal below zero.
    4. A cap takes what its lines exceed it by: net of their percentage
       discounts, plus the top-ups of line minimums whose lines it all reaches.
    5. The minimum tops the subtotal up to its amount.
    """
    out: list[tuple[Decimal, Decimal, tuple[Any, ...]]] = []
    running = sum(amounts, ZERO)
    # What percentage discounts took off each line: a discount of that line
    # alone counts as its rounded line, a group discount by its exact share.
    taken: dict[int, Decimal] = {}
    topups: list[tuple[frozenset[int], Decimal]] = []
    for n, (step, hit) in enumerate(zip(steps, reached, strict=True)):
        if factors is not None:
            factor = factors[n]
        if step.kind == "pct":
            base = sum((amounts[i] for i in hit), ZERO)
            exact = -(base * step.value / HUNDRED)
            work: tuple[Any, ...] = (hit,)
        elif step.kind == "line_min":
            net = _net(hit, amounts, taken)
            exact = (
                max(ZERO, CONTEXT.subtract(CONTEXT.multiply(step.value, factor), net))
                if hit
                else ZERO
            )
            work = (net,)
        elif step.kind == "fixed":
            exact = -min(CONTEXT.multiply(step.value, factor), max(running, ZERO))
            work = (running,)
        elif step.kind == "cap":
            net = _net(hit, amounts, taken)
            if topups:
                lines = frozenset(hit)
                net += sum((t for h, t in topups if h <= lines), ZERO)
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
        elif step.kind == "line_min" and hit:
            topups.append((frozenset(hit), amount))
        running += amount
        out.append((amount, exact, work))
    return out


def _net(hit: Sequence[int], amounts: Sequence[Decimal], taken: Mapping[int, Decimal]) -> Decimal:
    """The lines ``hit`` reaches, net of what percentage discounts took off them."""
    if len(hit) == 1:
        i = hit[0]
        return amounts[i] + taken.get(i, ZERO)
    return sum((amounts[i] + taken.get(i, ZERO) for i in hit), ZERO)


def issued_steps(
    meters: Sequence[MeterInfo],
    adj_plan: RatingPlan,
    use_plan: RatingPlan,
    fee_share_: Decimal,
    usage_share: Decimal,
) -> tuple[list[Adjustment], list[Decimal]]:
    """The adjustments of an issued invoice, and the proration factor of each.

    An adjustment aimed at usage lines (`usage`, a meter's line) is taken from
    the terms of the usage month M, and a minimum on them is prorated by M's
    share of the term: usage is billed at M's terms.  The others follow the
    fees (M+1): adjustments aimed at fee lines, the fixed discount and the
    invoice minimum.  Kept in the fixed order of kinds, each kind in the
    order its clauses were written.
    """
    # (kind's place, place in its plan's list, adjustment, factor): with one
    # plan for both months this is exactly that plan's order.
    chosen = [
        (ORDER.index(a.kind), n, a, fee_share_)
        for n, a in enumerate(adj_plan.adjustments)
        if not (a.target and usage_target(a.target, meters))
    ]
    chosen += [
        (ORDER.index(a.kind), n, a, usage_share if a.kind == "line_min" else fee_share_)
        for n, a in enumerate(use_plan.adjustments)
        if a.target and usage_target(a.target, meters)
    ]
    chosen.sort(key=lambda item: item[:2])
    return [a for _, _, a, _ in chosen], [f for _, _, _, f in chosen]


# ----------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class RatingPlan:
    """What to compute for one contract with one combination of its layers applied.

    Lines come in invoice order: the base fee, the meter charges (in the
    catalog's meter order), the add-ons; then the adjustments.
    """

    contract: str
    name: str
    currency: str
    minor_units: int
    rounding: str
    term: Period | None
    prorate_allowances: bool
    base: Fee | None
    meters: tuple[MeterCharge, ...]
    addons: tuple[Fee, ...]
    adjustments: tuple[Adjustment, ...]
    reached: tuple[tuple[int, ...], ...]  # the lines each adjustment reaches

    @property
    def codes(self) -> tuple[str, ...]:
        """The line codes, in order, adjustments included."""
        head = () if self.base is None else (self.base.code,)
        return (
            *head,
            *(m.meter.line_code for m in self.meters),
            *(a.code for a in self.addons),
            *(a.code for a in self.adjustments),
        )

    @property
    def fees(self) -> tuple[Fee, ...]:
        """The fixed fee lines: the base fee, then the add-ons."""
        return self.addons if self.base is None else (self.base, *self.addons)

    def fee_amounts(self, period: Period | None) -> tuple[Decimal, ...]:
        """Each fee line's amount for a period, rounded once (see :func:`fee_share`)."""
        return _fee_amounts(self.fees, period, self.term, self.minor_units, self.rounding)

    def round(self, d: Decimal) -> Decimal:
        """Round an exact amount once, to the currency's minor unit, in the plan's mode."""
        return d.quantize(QUANTUM[self.minor_units], ROUNDING[self.rounding], CONTEXT)

    @property
    def shape(self) -> tuple[Any, ...]:
        """The plan's structure without its numbers: contracts of one shape share code."""
        return (
            self.minor_units,
            self.rounding,
            self.base is not None,
            # Each tier table by its tiers, which of them is open-ended (`above`),
            # and which are priced per block (rounding up or down) or have a flat fee.
            tuple(
                (
                    m.meter.usage_key,
                    m.meter.whole,
                    m.mode,
                    tuple(b is None for b in m.bounds),
                    m.allowance.kind,
                    tuple(
                        (m.block(k)[0] is not None, m.block(k)[1], m.fee(k) is not None)
                        for k in range(len(m.bounds))
                    ),
                )
                for m in self.meters
            ),
            len(self.addons),
            tuple(f.per for f in self.fees),
            tuple((a.kind, hit) for a, hit in zip(self.adjustments, self.reached, strict=True)),
        )


@lru_cache(maxsize=4096)
def _fee_amounts(
    fees: tuple[Fee, ...], period: Period | None, term: Period | None, places: int, mode: str
) -> tuple[Decimal, ...]:
    quantum = QUANTUM[places]
    out = []
    for fee in fees:
        share = fee_share(fee.per, period, term)[0]
        out.append(CONTEXT.multiply(fee.price, share).quantize(quantum, ROUNDING[mode], CONTEXT))
    return tuple(out)


def _rounding(terms: Mapping[TermKey, Sourced[Any]]) -> str:
    mode: str = terms[("rounding",)].value
    return mode


def allowance_of(meter: MeterInfo, terms: Mapping[TermKey, Sourced[Any]]) -> Allowance:
    spec_s = terms.get(("meter", meter.id, "allowance"))
    if spec_s is None:
        return Allowance("none", ZERO, ZERO, ())
    spec: AllowanceSpec = spec_s.value
    if spec.kind == "percent":
        # A plan that includes no MAU allows no connections either.
        mau_s = terms.get(("meter", "mau", "allowance"))
        if mau_s is None:
            return Allowance("percent", ZERO, spec.value, (src(spec_s),))
        return Allowance("percent", mau_s.value.value, spec.value, (src(spec_s), src(mau_s)))
    return Allowance("included", spec.value, ZERO, (src(spec_s),))


def build_plan(
    c: ResolvedContract, terms: Mapping[TermKey, Sourced[Any]], catalog: Catalog
) -> RatingPlan:
    """The plan for one set of terms in force (one combination of layers)."""
    t = terms.get(("term",))
    term = None if t is None else Period(t.value[0], t.value[1])
    base_s = terms.get(("base",))
    per_s = terms.get(("base_per",))
    base = (
        None
        if base_s is None
        else Fee(
            "base",
            f"Base fee ({c.name})",
            base_s.value,
            (src(base_s),),
            "month" if per_s is None else per_s.value,
        )
    )
    charges = []
    for meter in catalog.meters:
        rate_s = terms.get(("meter", meter.id, "rate"))
        if rate_s is None:
            continue
        spec: RateSpec = rate_s.value
        if spec.mode == "flat":
            assert spec.price is not None
            bounds: tuple[Decimal | None, ...] = (None,)
            prices: tuple[Decimal, ...] = (spec.price,)
            blocks: tuple[Decimal | None, ...] = (spec.block,)
            down: tuple[bool, ...] = (spec.down,)
            tier_fees: tuple[Decimal | None, ...] = (None,)
        else:
            bounds = tuple(tier.up_to for tier in spec.tiers)
            prices = tuple(tier.price for tier in spec.tiers)
            blocks = tuple(tier.block for tier in spec.tiers)
            down = tuple(tier.down for tier in spec.tiers)
            tier_fees = tuple(tier.fee for tier in spec.tiers)
        if all(b is None for b in blocks) and all(f is None for f in tier_fees):
            blocks, down, tier_fees = (), (), ()  # the common case: priced per unit
        allowance = allowance_of(meter, terms)
        charges.append(
            MeterCharge(
                meter,
                spec.mode,
                bounds,
                prices,
                allowance,
                (*allowance.sources, src(rate_s)),
                blocks,
                down,
                tier_fees,
            )
        )
    listed = terms[("addons",)]
    fees = []
    for addon_id in listed.value:
        info = catalog.addons[addon_id]
        override = terms.get(("addon_price", addon_id))
        price = override.value if override is not None else info.price
        where = src(override) if override else f"{info.span.path}:{info.span.line}"
        per_s = terms.get(("addon_per", addon_id))
        per = info.per if per_s is None else per_s.value
        fees.append(Fee(f"addon.{addon_id}", info.name, price, (src(listed), where), per))
    steps = adjustments_of(terms)
    codes = [
        *([] if base is None else ["base"]),
        *(m.meter.line_code for m in charges),
        *(f.code for f in fees),
    ]
    kinds = [
        *([] if base is None else ["fee"]),
        *(["usage"] * len(charges)),
        *(["fee"] * len(fees)),
    ]
    return RatingPlan(
        c.id,
        c.name,
        c.currency,
        c.minor_units,
        _rounding(terms),
        term,
        ("prorate", "allowances") in terms,
        base,
        tuple(charges),
        tuple(fees),
        steps,
        tuple(hits(s.target, codes, kinds) for s in steps),
    )


class Plans:
    """A contract's plans, one per combination of its layers, built on first use.

    Safe to share between threads: plans are immutable, and a race can at
    worst build one twice.
    """

    __slots__ = ("catalog", "contract", "lock", "plans", "tests")

    def __init__(self, c: ResolvedContract, catalog: Catalog) -> None:
        self.contract = c
        self.catalog = catalog
        self.tests = layer_tests(c)
        self.plans: dict[LayerKey, RatingPlan] = {}
        self.lock = threading.Lock()

    def select(
        self, values: Mapping[str, Any], period: Period | None, source: str = "<usage>"
    ) -> tuple[LayerKey, tuple[str, ...]]:
        """See :func:`select_layers`."""
        return select_layers(self.contract, self.tests, values, period, source)

    def for_key(self, key: LayerKey) -> RatingPlan:
        """The plan with the layers of ``key`` applied."""
        found = self.plans.get(key)
        if found is None:
            found = build_plan(self.contract, fold(self.contract, key), self.catalog)
            with self.lock:
                found = self.plans.setdefault(key, found)
        return found
