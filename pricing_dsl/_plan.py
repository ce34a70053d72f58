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
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ._conditions import compiled
from ._decimal import CONTEXT, ROUNDING
from ._errors import Diagnostic, PricingError
from ._invoice import decimal_text
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
        raise _needs_period(
            f"a `when` rule of `{c.id}` depends on the period, but the usage has none", source
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
    """A monthly fee line: the base fee or an add-on."""

    code: str
    description: str
    price: Decimal
    sources: tuple[str, ...]


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
    """

    lower: Decimal
    upper: Decimal | None
    price: Decimal


@dataclass(frozen=True, slots=True)
class Charge:
    """A meter charge worked out: what the interpreter explains and every engine computes."""

    used: Decimal
    free: Decimal
    billable: Decimal
    exact: Decimal  # before rounding
    unit_price: Decimal | None  # None for graduated tables
    quantities: tuple[Decimal, ...]  # graduated: units in each tier reached; volume: ()
    chosen: int  # volume: the index of the tier that prices every unit


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

    def pieces(self, free: Decimal) -> tuple[Piece, ...]:
        """The graduated (or flat) charge as pieces, given the free units."""
        out = []
        lower = ZERO
        for up_to, price in zip(self.bounds, self.prices, strict=True):
            out.append(Piece(max(lower, free), up_to, price))
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
        """The reference arithmetic of this line (exact; the caller rounds it once)."""
        billable = max(ZERO, used - free)
        if self.mode == "volume":
            i = self.volume_tier(used)
            return Charge(used, free, billable, billable * self.prices[i], self.prices[i], (), i)
        exact = ZERO
        quantities = []
        for piece in self.pieces(free):
            top = used if piece.upper is None else min(used, piece.upper)
            qty = max(ZERO, top - piece.lower)
            exact += qty * piece.price
            quantities.append(qty)
            if piece.upper is None or used <= piece.upper:
                break
        unit_price = self.prices[0] if self.mode == "flat" else None
        return Charge(used, free, billable, exact, unit_price, tuple(quantities), -1)


# ---------------------------------------------------------- adjustments


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One adjustment clause, in application order."""

    code: str
    kind: str  # "pct" | "fixed" | "cap" | "minimum"
    value: Decimal  # the percentage, or the amount
    target: str  # discount target or capped line; "" otherwise
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
        return f"Minimum commitment true-up ({decimal_text(v)})"


def adjustments_of(terms: Mapping[TermKey, Sourced[Any]]) -> tuple[Adjustment, ...]:
    """Percentage discounts, then fixed discounts, then caps, then the minimum true-up."""
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
    return (*pct, *fixed, *caps, *minimum)


def hits(target: str, codes: Sequence[str], kinds: Sequence[str]) -> tuple[int, ...]:
    """The lines an adjustment target reaches: `addons`, `usage`, or one line code."""
    if target == "addons":
        return tuple(i for i, c in enumerate(codes) if c.startswith("addon."))
    if target == "usage":
        return tuple(i for i, k in enumerate(kinds) if k == "usage")
    return tuple(i for i, c in enumerate(codes) if c == target)


def apply_adjustments(
    steps: Sequence[Adjustment],
    reached: Sequence[tuple[int, ...]],
    amounts: Sequence[Decimal],
    rnd: Callable[[Decimal], Decimal],
    factor: Decimal = ONE,
) -> list[tuple[Decimal, Decimal, tuple[Any, ...]]]:
    """Amount, exact amount and working of each step.  Every engine's adjustments.

    ``reached[n]`` are the lines step n reaches (see :func:`hits`).
    ``factor`` is the share of a month the invoice bills fixed fees for: the
    fixed discount and the minimum are monthly amounts and are prorated by
    it (0 on an invoice that bills no fees).  Must run in CONTEXT.

    1. A percentage discount takes its share of the lines it reaches.
    2. A fixed discount takes its amount, never the subtotal below zero.
    3. A cap takes what its line, net of percentage discounts, exceeds it by.
    4. The minimum tops the subtotal up to its amount.
    """
    out: list[tuple[Decimal, Decimal, tuple[Any, ...]]] = []
    running = sum(amounts, ZERO)
    # What percentage discounts took off each line: a discount of that line
    # alone counts as its rounded line, a group discount by its exact share.
    taken: dict[int, Decimal] = {}
    for step, hit in zip(steps, reached, strict=True):
        if step.kind == "pct":
            base = sum((amounts[i] for i in hit), ZERO)
            exact = -(base * step.value / HUNDRED)
            work: tuple[Any, ...] = (hit,)
        elif step.kind == "fixed":
            exact = -min(CONTEXT.multiply(step.value, factor), max(running, ZERO))
            work = (running,)
        elif step.kind == "cap":
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
            # Each tier table by its tiers, and which of them is open-ended (`above`).
            tuple(
                (
                    m.meter.usage_key,
                    m.meter.whole,
                    m.mode,
                    tuple(b is None for b in m.bounds),
                    m.allowance.kind,
                )
                for m in self.meters
            ),
            len(self.addons),
            tuple((a.kind, hit) for a, hit in zip(self.adjustments, self.reached, strict=True)),
        )


def _rounding(terms: Mapping[TermKey, Sourced[Any]]) -> str:
    mode: str = terms[("rounding",)].value
    return mode


def allowance_of(meter: MeterInfo, terms: Mapping[TermKey, Sourced[Any]]) -> Allowance:
    spec_s = terms.get(("meter", meter.id, "allowance"))
    if spec_s is None:
        return Allowance("none", ZERO, ZERO, ())
    spec: AllowanceSpec = spec_s.value
    if spec.kind == "percent":
        mau_s = terms[("meter", "mau", "allowance")]
        return Allowance("percent", mau_s.value.value, spec.value, (src(spec_s), src(mau_s)))
    return Allowance("included", spec.value, ZERO, (src(spec_s),))


def build_plan(
    c: ResolvedContract, terms: Mapping[TermKey, Sourced[Any]], catalog: Catalog
) -> RatingPlan:
    """The plan for one set of terms in force (one combination of layers)."""
    t = terms.get(("term",))
    term = None if t is None else Period(t.value[0], t.value[1])
    base_s = terms.get(("base",))
    base = (
        None
        if base_s is None
        else Fee("base", f"Base fee ({c.name})", base_s.value, (src(base_s),))
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
        else:
            bounds = tuple(tier.up_to for tier in spec.tiers)
            prices = tuple(tier.price for tier in spec.tiers)
        allowance = allowance_of(meter, terms)
        charges.append(
            MeterCharge(
                meter, spec.mode, bounds, prices, allowance, (*allowance.sources, src(rate_s))
            )
        )
    listed = terms[("addons",)]
    fees = []
    for addon_id in listed.value:
        info = catalog.addons[addon_id]
        override = terms.get(("addon_price", addon_id))
        price = override.value if override is not None else info.price
        where = src(override) if override else f"{info.span.path}:{info.span.line}"
        fees.append(Fee(f"addon.{addon_id}", info.name, price, (src(listed), where)))
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
