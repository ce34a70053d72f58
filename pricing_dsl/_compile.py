"""The per-account fast path: generated Python, one function per plan shape.

The interpreter (:mod:`._rating`) is the reference.  This module translates
a :class:`~._plan.RatingPlan` -- the fee lines, the meter charges as pieces
or volume tiers, the adjustments -- into straight-line Python.  The source
depends only on the plan's shape; the plan's numbers are passed in as
arguments of a closure, so every contract of one shape shares one compiled
function, and a contract rated for the first time costs a plan and a
closure, not a compilation.  Anything unusual (a partial period, usage that
is not plainly valid) goes to the interpreter, which also builds each line's
explanation when someone asks for ``Invoice.lines``.

Tests check that both engines give identical lines on generated contracts
and usage.
"""

from __future__ import annotations

import math
import operator
import re
import threading
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, localcontext
from numbers import Integral
from typing import Any

from ._decimal import CONTEXT, EXACT, ROUNDING
from ._invoice import Invoice, Item, Line, canonical
from ._plan import (
    Fee,
    LayerKey,
    MeterCharge,
    Plans,
    RatingPlan,
    apply_adjustments,
    fee_share,
    needs_period,
    usage_refs,
)
from ._rating import quantity_text as _quantity
from ._rating import rate
from ._usage import LIMIT, USAGE_PLACES, Period, Usage

__all__ = ["CompiledContract", "Shapes"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_MISSING = object()
_MONTH = re.compile(r"\A[0-9]{4}-(0[1-9]|1[0-2])\Z")
_COUNT = re.compile(r"[0-9]+\Z")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?\Z")

# A variant rates usage straight into an Invoice; None means "use the interpreter".
Variant = Callable[[Mapping[str, Any], Period | None, tuple[str, ...]], Invoice | None]


def _exact(x: Any, whole: bool) -> int | Decimal | None:
    """A usage value of another type as an int or Decimal, or None for the interpreter.

    Decimal strings (the schema's forms), integers of other types (numpy's,
    say) and floats whose binary value is the number they print as are
    converted as the interpreter converts them; anything else, and every
    value out of range, is left to the interpreter, which refuses it in words.
    """
    if type(x) is str:
        if not (_COUNT if whole else _QUANTITY).match(x):
            return None
        # Plain digits: the places are counted on the text itself.
        dot = x.find(".")
        if dot >= 0 and len(x) - dot - 1 > USAGE_PLACES:
            return None
        d = Decimal(x)
        return d if d < LIMIT else None
    if isinstance(x, bool):
        return None
    if isinstance(x, Integral):
        try:
            n = operator.index(x)  # numpy's timedelta64 is an Integral without an index
        except Exception:
            return None
        return n if 0 <= n < LIMIT else None
    if isinstance(x, float):
        f = float(x)  # a numpy float64 prints as np.float64(...): take the float itself
        if not math.isfinite(f) or f < 0:
            return None
        text = Decimal(repr(f))
        if Decimal(f) != text or not text < LIMIT or (whole and text != text.to_integral_value()):
            return None
        exponent = text.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -USAGE_PLACES:
            return None
        return text
    return None


# ------------------------------------------------------------ generation


class _Source:
    """Generated lines, and the constants they name (the closure's arguments)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: list[Any] = []

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"k{len(self.consts) - 1}"

    def emit(self, line: str) -> None:
        self.lines.append("     " + line)


def _valid(var: str, whole: bool) -> list[str]:
    """Code that checks one usage value is a non-negative exact number, converting others."""
    lines = [
        f"if type({var}) is int:",
        # An int bound for ints: comparing an int with a Decimal costs more.
        f"  if not 0 <= {var} < INT_LIMIT: return None",
        f"elif type({var}) is DECIMAL:",
        # Negative zero, NaN, infinities and values past the limits all go to
        # the interpreter, which refuses or normalises them.  NaN makes the
        # comparison raise; products trap Inexact, so a value with too many
        # digits to multiply exactly also falls back.
        f"  if {var}.is_signed() or not {var} < LIMIT: return None",
        # Finer than the usage bound: the interpreter refuses it, in words.
        # Reading the exponent (as_tuple) costs more than rating the line, so
        # it is read only where the short text form cannot vouch for it:
        # plain text of at most 40 characters has at most 40 places.
        f"  w = STR({var})",
        "  if len(w) > 40 or 'E' in w:",
        f"    if {var}.as_tuple().exponent < MIN_EXPONENT: return None",
    ]
    if whole:
        lines.append(f"  if {var} != {var}.to_integral_value(): return None")
    lines += [
        "else:",
        f"  {var} = EXACT_VALUE({var}, {whole})",
        f"  if {var} is None: return None",
    ]
    return lines


def _meter(src: _Source, n: int, charge: MeterCharge, plan: RatingPlan) -> str:
    """Code for one meter charge; returns the name of its amount."""
    meter = charge.meter
    u, q, a = f"u{n}", f"q{n}", f"a{n}"
    src.emit(f"{u} = v.get({meter.usage_key!r}, 0)")
    for line in _valid(u, meter.whole):
        src.emit(line)
    free = charge.allowance.free()
    quantum = Decimal(1).scaleb(-plan.minor_units)

    def rounded(expr: str) -> str:
        return f"{expr}.quantize(QUANTUM, MODE, CTX)"

    if not charge.simple:
        # Blocks and tier fees: the plan's own arithmetic, rounded once.
        c, f = src.const(charge), src.const(free)
        src.emit("with LOCAL(CTX):")
        src.emit(f"  {a} = ROUND({c}.rate(DECIMAL({u}), {f}).exact)")
        return a
    if charge.allowance.kind == "none":
        # Usage is validated non-negative, so nothing to subtract or clamp.
        src.emit(f"{q} = {u}")
    elif free == free.to_integral_value():
        # A whole allowance stays an int, so int usage subtracts as int.
        k = src.const(int(free))
        src.emit(f"{q} = {u} - {k} if type({u}) is int else sub({u}, {k})")
        src.emit(f"if {q} < 0: {q} = 0")
    else:
        # Decimal arithmetic in our own context, never the caller's.
        src.emit(f"{q} = sub({u}, {src.const(free)})")
        src.emit(f"if {q} < 0: {q} = 0")
    if charge.mode == "volume":
        first = True
        for up_to, price in zip(charge.bounds, charge.prices, strict=True):
            amount = rounded(f"mul({q}, {src.const(price)})")
            if up_to is None:
                src.emit(f"{'if True' if first else 'else'}: {a} = {amount}")
                break
            src.emit(f"{'if' if first else 'elif'} {u} <= {src.const(up_to)}: {a} = {amount}")
            first = False
        return a
    pieces = charge.pieces(free)
    if len(pieces) == 1 and charge.mode == "flat":
        price = pieces[0].price
        exponent = price.as_tuple().exponent
        if meter.whole and isinstance(exponent, int) and exponent >= -plan.minor_units:
            # An int count times a price rescaled to exactly the currency's
            # digits is already exact to the minor unit, so rounding it would
            # change nothing: skip it for the common int case.
            src.emit(f"{a} = mul({q}, {src.const(price.quantize(quantum))})")
            src.emit(f"if type({q}) is not int: {a} = {rounded(a)}")
        else:
            src.emit(f"{a} = {rounded(f'mul({q}, {src.const(price)})')}")
        return a
    x = f"x{n}"
    src.emit(f"{x} = 0")
    for piece in pieces:
        lo, p = src.const(piece.lower), src.const(piece.price)
        if piece.upper is None:
            src.emit(f"if {u} > {lo}: {x} = add({x}, mul(sub({u}, {lo}), {p}))")
        else:
            # Units of this tier beyond the free ones: min(u, upper) - lower, if any.
            hi = src.const(piece.upper)
            src.emit(f"if {u} > {lo}:")
            src.emit(f"  t = {u} if {u} < {hi} else {hi}")
            src.emit(f"  if t > {lo}: {x} = add({x}, mul(sub(t, {lo}), {p}))")
    src.emit(f"{a} = {rounded(f'add({x}, 0)')}")
    return a


def generate(plan: RatingPlan) -> tuple[str, tuple[Any, ...]]:
    """The source of ``make(k0, k1, ...)``, which returns a variant, and its arguments.

    The source depends on the plan's shape, never on its numbers, which are
    the arguments: ``ALLOWED``, ``META``, ``CODES``, ``LINES``, ``STEPS``
    and ``REACHED`` first, then the prices, bounds and free units.
    """
    src = _Source()
    fixed = _ZERO
    amounts: list[str] = []
    # Quarterly and yearly fees depend on the period: the plan works them out
    # (cached per period); a whole month's monthly fee is its price, rounded.
    dated = needs_period(plan)
    if dated:
        src.emit("if period is None: return None")
        src.emit(f"fa = {src.const(plan.fee_amounts)}(period)")
    fees = iter(range(len(plan.fees)))

    def fee_amount(fee: Fee) -> str:
        nonlocal fixed
        j = next(fees)
        if dated:
            return f"fa[{j}]"
        amount = plan.round(fee.price)
        fixed = EXACT.add(fixed, amount)
        return src.const(amount)

    if plan.base is not None:
        amounts.append(fee_amount(plan.base))
    meters = [_meter(src, n, charge, plan) for n, charge in enumerate(plan.meters)]
    amounts += meters
    amounts += [fee_amount(fee) for fee in plan.addons]
    body = [
        " def variant(v, period, fired):",
        "  try:",
        "     if not v.keys() <= ALLOWED: return None",
        # No account is fine; one that is not plain text is for the interpreter to refuse.
        "     account = v.get('account', MISSING)",
        "     if account is MISSING: account = None",
        "     elif type(account) is not str or not account: return None",
        "     contract = v.get('contract', MISSING)",
        "     if contract is not MISSING and (type(contract) is not str or not contract):",
        "       return None",
    ]
    body += src.lines
    body.append("     amounts = (" + "".join(f"{x}, " for x in amounts) + ")")
    # Fixed lines are constants: their sum is one too.
    running = src.const(fixed)
    for x in amounts:
        if not x.startswith("k"):
            running = f"add({running}, {x})"
    body.append(f"     t = {running}")
    if plan.adjustments:
        body += [
            "     with LOCAL(CTX):",
            "       adj = APPLY(STEPS, REACHED, amounts, ROUND)",
            "     amounts = amounts + tuple(r[0] for r in adj)",
            "     for r in adj: t = add(t, r[0])",
        ]
    # The lines are built later from the values as rated (a tuple, in the
    # plan's meter order), never from the caller's dict, which it may reuse.
    values = "(" + "".join(f"u{n}, " for n in range(len(plan.meters))) + ")"
    body += [
        # The Invoice is built here, slot by slot: a call fewer per account, which shows next
        # to a hand-written rater (benchmarks/bench_contracts.py).
        "     inv = NEW(INVOICE)",
        "     inv._meta = META",
        "     inv._ctx = (period, account, None, fired)",
        "     inv._lines = None",
        "     inv._codes = CODES",
        "     inv._amounts = amounts",
        "     inv._total = t",
        f"     inv._build = (LINES, {values}, period, account)",
        "     return inv",
        "  except ArithmeticError:",
        "     return None",
        " return variant",
    ]
    head = ("ALLOWED", "META", "CODES", "LINES", "STEPS", "REACHED", "QUANTUM", "MODE", "ROUND")
    names = [*head, *(f"k{i}" for i in range(len(src.consts)))]
    return "def make(" + ", ".join(names) + "):\n" + "\n".join(body), tuple(src.consts)


_GLOBALS: dict[str, Any] = {
    "mul": EXACT.multiply,
    "add": EXACT.add,
    "sub": EXACT.subtract,
    "DECIMAL": Decimal,
    "LIMIT": LIMIT,
    "INT_LIMIT": int(LIMIT),
    "MIN_EXPONENT": -USAGE_PLACES,
    "STR": str,
    "MISSING": _MISSING,
    "EXACT_VALUE": _exact,
    "NEW": object.__new__,
    "INVOICE": Invoice,
    "APPLY": apply_adjustments,
    "LOCAL": localcontext,
    "CTX": CONTEXT,
}


class Shapes:
    """Compiled code by shape, shared by every contract of a ruleset.

    Keyed by the generated source itself, so two plans share a function
    exactly when their code is the same.  Only ever added to; a race can at
    worst compile one source twice.
    """

    __slots__ = ("lock", "makers")

    def __init__(self) -> None:
        self.makers: dict[str, Callable[..., Variant]] = {}
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.makers)

    def __reduce__(self) -> tuple[type[Shapes], tuple[()]]:
        # Compiled code stays in its process: a pickled ruleset gets an empty cache.
        return Shapes, ()

    def maker(self, source: str) -> Callable[..., Variant]:
        found = self.makers.get(source)
        if found is None:
            namespace = dict(_GLOBALS)
            exec(compile(source, "<pricing shape>", "exec"), namespace)
            found = namespace["make"]
            with self.lock:
                found = self.makers.setdefault(source, found)
        return found


# ------------------------------------------------------------------ lines


class _Lines:
    """A fast-path invoice's lines: in full (through the interpreter) or plain.

    ``items`` gives what a billing run writes -- code, description, quantity,
    unit, unit price, amount -- from the plan, without the interpreter and its
    explanations; tests hold it to the interpreter's lines.
    """

    __slots__ = ("contract", "plan")

    def __init__(self, contract: CompiledContract, plan: RatingPlan) -> None:
        self.contract = contract
        self.plan = plan

    def lines(
        self, values: tuple[int | Decimal, ...], period: Period | None, account: str | None
    ) -> tuple[Line, ...]:
        """The interpreter's lines, with explanations, for the values the fast path rated."""
        usage = {
            c.meter.usage_key: Decimal(u) for c, u in zip(self.plan.meters, values, strict=True)
        }
        return self.contract.reference(usage, period, account).lines

    def items(
        self,
        values: tuple[int | Decimal, ...],
        amounts: tuple[Decimal, ...],
        period: Period | None,
    ) -> tuple[Item, ...]:
        plan = self.plan

        def fee(f: Fee) -> tuple[str, str, Decimal, str, Decimal | None]:
            # A whole month within the term: a monthly fee's quantity is 1.
            share = _ONE if f.per == "month" else fee_share(f.per, period, plan.term)[0]
            return (f.code, f.description, _quantity(share), f.per, f.price)

        head: list[tuple[str, str, Decimal, str, Decimal | None]] = []
        if plan.base is not None:
            head.append(fee(plan.base))
        for charge, value in zip(plan.meters, values, strict=True):
            meter = charge.meter
            used = Decimal(value)
            billable = max(_ZERO, CONTEXT.subtract(used, charge.allowance.free()))
            price: Decimal | None = None
            if not charge.simple:
                price = charge.rate(used, charge.allowance.free()).unit_price
            elif charge.mode == "flat":
                price = charge.prices[0]
            elif charge.mode == "volume":
                price = charge.prices[charge.volume_tier(used)]
            head.append((meter.line_code, meter.name, canonical(billable), meter.unit, price))
        head += [fee(f) for f in plan.addons]
        head += [(s.code, s.description, _ONE, "adjustment", None) for s in plan.adjustments]
        return tuple((*h, amount) for h, amount in zip(head, amounts, strict=True))


# --------------------------------------------------------------- contract


def _period(x: Any, periods: dict[str, Period]) -> Any:
    """The Period for a usage `period` value, None for none, _MISSING if not plain."""
    if x is None:
        return None
    if type(x) is not str:
        return _MISSING
    period = periods.get(x)
    if period is None:
        if not _MONTH.match(x):
            return _MISSING
        try:
            period = periods.setdefault(x, Period.parse(x))
        except ValueError:
            return _MISSING  # e.g. year 0: the interpreter says why
    return period


def _allowed_keys(plan: RatingPlan) -> frozenset[str]:
    # Usage of meters this plan does not price goes to the interpreter (one
    # subset test refuses those and unknown keys alike).
    return frozenset(m.meter.usage_key for m in plan.meters) | {"period", "account", "contract"}


class CompiledContract:
    """One contract's fast rater.  Safe to share between threads."""

    def __init__(self, plans: Plans, shapes: Shapes) -> None:
        self.plans = plans
        self.c = plans.contract
        self.catalog = plans.catalog
        self.shapes = shapes
        c = self.c
        term = c.static_terms.get(("term",))
        self.term: tuple[date, date] | None = None if term is None else term.value
        self.needs_period = (
            bool(self.term)
            or any(from_date is not None for from_date, _, _ in plans.tests)
            or c.uses_period
        )
        self.meta = (c.id, c.name, c.currency, c.minor_units)
        self.wholes = {m.usage_key: m.whole for m in self.catalog.meters}
        self.variants: dict[LayerKey, Variant] = {}
        # Conditions on the period alone (a time-limited discount's) do not read usage.
        self.conditions = any(
            layer.condition is not None and usage_refs(layer.condition) for layer in c.layers
        )
        # Without `when` layers that read usage the variant depends on the period alone.
        self.by_period: dict[str | None, Any] | None = None if self.conditions else {}

    def variant(self, key: LayerKey) -> Variant:
        """The compiled rater of the plan for ``key``."""
        found = self.variants.get(key)
        if found is None:
            plan = self.plans.for_key(key)
            source, consts = generate(plan)
            make = self.shapes.maker(source)
            found = make(
                _allowed_keys(plan),
                self.meta,
                plan.codes,
                _Lines(self, plan),
                plan.adjustments,
                plan.reached,
                Decimal(1).scaleb(-plan.minor_units),
                ROUNDING[plan.rounding],
                plan.round,
                *consts,
            )
            found = self.variants.setdefault(key, found)
        return found

    def rate(self, data: Mapping[str, Any], periods: dict[str, Period]) -> Invoice | None:
        """Rate plain, valid usage; None means "use the interpreter" (which reports errors)."""
        if type(data) is not dict:
            return None
        x = data.get("period", _MISSING)
        if x is _MISSING:
            x = None
        elif type(x) is not str:
            return None  # a date range, or something odd: the interpreter decides
        if self.by_period is not None:
            found = self.by_period.get(x, _MISSING)
            if found is _MISSING:
                period = _period(x, periods)
                found = None if period is _MISSING else self._for_period(period, data)
                self.by_period[x] = found
        else:
            # Conditions read the values, so they see them validated and exact.
            values = self._values(data)
            if values is None:
                return None
            period = _period(x, periods)
            found = None if period is _MISSING else self._for_period(period, values)
        if found is None:
            return None
        period, variant, fired = found
        # The variant validates each value as it reads it (and the account and
        # contract), and reads only known keys, so it can take the mapping as it is.
        invoice: Invoice | None = variant(data, period, fired)
        return invoice

    def _values(self, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The usage values as ints and Decimals, or None where the interpreter must judge."""
        out: dict[str, Any] | None = None
        for key, x in data.items():
            whole = self.wholes.get(key)
            if whole is None:
                if key in ("period", "account", "contract"):
                    continue
                return None
            t = type(x)
            if t is int:
                if x < 0:
                    return None
                continue
            if t is Decimal:
                try:
                    if x.is_signed() or not x < LIMIT or (whole and x != x.to_integral_value()):
                        return None
                    text = str(x)  # see _valid: the exponent only where text cannot vouch
                    if (len(text) > 40 or "E" in text) and x.as_tuple().exponent < -USAGE_PLACES:
                        return None
                except ArithmeticError:
                    return None
                continue
            value = _exact(x, whole)
            if value is None:
                return None
            if out is None:
                out = dict(data)
            out[key] = value
        return data if out is None else out

    def _for_period(
        self, period: Period | None, values: Mapping[str, Any]
    ) -> tuple[Period | None, Variant, tuple[str, ...]] | None:
        """The variant for this usage, or None where only the interpreter will do."""
        if self.needs_period:
            if period is None:
                return None
            term = self.term
            if term is not None and not (term[0] <= period.start and period.end <= term[1]):
                return None  # partial or outside the term: the interpreter handles it
        try:
            key, fired = self.plans.select(values, period)
        except Exception:
            return None  # the interpreter meets it again, and says what is wrong
        return period, self.variant(key), fired

    def reference(
        self, data: Mapping[str, Any], period: Period | None, account: str | None
    ) -> Invoice:
        """The interpreter's invoice for usage the fast path rated (for its lines)."""
        return rate(self.c, Usage(data, period, None, account), self.catalog, self.plans)
