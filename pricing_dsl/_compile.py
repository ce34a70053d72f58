"""The specialised fast path: each contract compiled once to straight-line Python.

The interpreter (:mod:`._rating`) is the reference.  This module turns the
terms a contract can be in -- one *variant* per combination of its `when`
and `from` layers -- into generated Python functions in which every price,
allowance and tier bound is a constant, so rating one account does only the
arithmetic its invoice needs.  Variants are compiled on first use and
cached.  Anything unusual (a partial period, usage that is not plainly
valid) goes to the interpreter, which also builds each line's explanation
when someone asks for ``Invoice.lines``.

Tests check that both engines give identical amounts on generated
contracts and usage.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import date
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

from ._conditions import compiled
from ._decimal import CONTEXT, EXACT, ROUNDING
from ._invoice import Invoice, Item, Line
from ._rating import (
    Catalog,
    adjustment_description,
    adjustment_plan,
    apply_adjustments,
    rate,
)
from ._terms import AllowanceSpec, RateSpec, ResolvedContract, Sourced, TermKey
from ._usage import LIMIT, Period, Usage

__all__ = ["CompiledContract"]

_ZERO = Decimal(0)
_INFINITY = Decimal("Infinity")
_MISSING = object()
_MONTH = re.compile(r"\A[0-9]{4}-(0[1-9]|1[0-2])\Z")
# Products and sums trap Inexact: should a value ever carry more digits than
# the context holds, the variant gives up (ArithmeticError) and the
# interpreter reports it, instead of rounding silently.
_mul = EXACT.multiply
_add = EXACT.add
_sub = EXACT.subtract
_div = CONTEXT.divide

# A variant rates usage straight into an Invoice; None means "use the interpreter".
Variant = Callable[[Mapping[str, Any], Period | None, tuple[str, ...]], Invoice | None]
# Builds an invoice's lines (with explanations) when someone reads them.
LineBuilder = Callable[[Mapping[str, Any], Period | None, str | None], tuple[Line, ...]]
# How a line's quantity and unit price follow from the usage, in a variant:
# ("fixed", price) for fees, ("adjustment",), or ("meter", usage key, free
# units, rate) for a meter's line.
Shape = tuple[str, str, str, tuple[Any, ...]]  # code, description, unit, how
_ONE = Decimal(1)


class _Lines:
    """A fast-path invoice's lines: in full (through the interpreter) or plain.

    ``items`` gives what a billing run writes -- code, description, quantity,
    unit, unit price, amount -- from the variant's own terms, without the
    interpreter and its explanations; tests hold it to the interpreter's lines.
    """

    __slots__ = ("full", "shapes")

    def __init__(self, full: LineBuilder, shapes: tuple[Shape, ...]) -> None:
        self.full = full
        self.shapes = shapes

    def lines(
        self, data: Mapping[str, Any], period: Period | None, account: str | None
    ) -> tuple[Line, ...]:
        return self.full(data, period, account)

    def items(self, data: Mapping[str, Any], amounts: tuple[Decimal, ...]) -> tuple[Item, ...]:
        out: list[Item] = []
        for (code, description, unit, how), amount in zip(self.shapes, amounts, strict=True):
            if how[0] == "fixed":
                out.append((code, description, _ONE, unit, how[1], amount))
            elif how[0] == "adjustment":
                out.append((code, description, _ONE, unit, None, amount))
            else:
                _, key, free, spec = how
                used = Decimal(data.get(key, 0))
                billable = max(_ZERO, CONTEXT.subtract(used, free))
                out.append((code, description, billable, unit, _unit_price(spec, used), amount))
        return tuple(out)


def _unit_price(spec: RateSpec, used: Decimal) -> Decimal | None:
    """The unit price a meter's line shows, as the interpreter shows it."""
    if spec.mode == "flat":
        return spec.price
    if spec.mode == "graduated":
        return None
    for tier in spec.tiers:
        if tier.up_to is None or used <= tier.up_to:
            return tier.price
    return spec.tiers[-1].price


# ---------------------------------------------------------------- conditions


# ------------------------------------------------------------------ variants


class _Source:
    """Accumulates generated code and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)


def _allowance(terms: Mapping[TermKey, Sourced[Any]], meter: str) -> Decimal:
    spec_s = terms.get(("meter", meter, "allowance"))
    if spec_s is None:
        return _ZERO
    spec: AllowanceSpec = spec_s.value
    if spec.kind == "percent":
        mau = terms[("meter", "mau", "allowance")].value.value
        return _div(_mul(mau, spec.value), Decimal(100)).to_integral_value(ROUND_FLOOR)
    return spec.value


def _compile_variant(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    catalog: Catalog,
    meta: tuple[str, str, str, int],
    lines: LineBuilder,
) -> Variant:
    shapes: list[Shape] = []
    src = _Source()
    quantum = src.const(Decimal(1).scaleb(-c.minor_units))
    mode = src.const(ROUNDING[terms[("rounding",)].value])
    ctx = src.const(CONTEXT)
    codes: list[str] = []
    kinds: list[str] = []
    amounts: list[str] = []

    def rounded(expr: str) -> str:
        return f"{expr}.quantize({quantum}, {mode}, {ctx})"

    base = terms.get(("base",))
    if base is not None:
        codes.append("base")
        kinds.append("fee")
        shapes.append(("base", f"Base fee ({c.name})", "month", ("fixed", base.value)))
        amounts.append(
            src.const(
                base.value.quantize(
                    Decimal(1).scaleb(-c.minor_units), ROUNDING[terms[("rounding",)].value], CONTEXT
                )
            )
        )
    for n, meter in enumerate(catalog.meters):
        rate_s = terms.get(("meter", meter.id, "rate"))
        if rate_s is None:
            continue
        spec: RateSpec = rate_s.value
        free = _allowance(terms, meter.id)
        u, q, a = f"u{n}", f"q{n}", f"a{n}"
        src.emit(f"{u} = v.get({meter.usage_key!r}, 0)")
        # Validated as it is read: anything unusual goes back to the interpreter.
        src.lines.extend(_valid(u, meter.whole, "return None", "    "))
        if free == 0:
            # Usage is validated non-negative, so nothing to subtract or clamp.
            src.emit(f"{q} = {u}")
        else:
            # A whole allowance stays an int, so int usage subtracts as int.
            k = int(free) if free == free.to_integral_value() else free
            # Int usage stays int (exact, and fast); Decimal usage subtracts in
            # our own context, never the caller's.
            src.emit(
                f"{q} = {u} - {src.const(k)} if type({u}) is int else sub({u}, {src.const(k)})"
            )
            src.emit(f"if {q} < 0: {q} = 0")
        if spec.mode == "flat":
            assert spec.price is not None
            exponent = spec.price.as_tuple().exponent
            if meter.whole and isinstance(exponent, int) and exponent >= -c.minor_units:
                # An int count times a price rescaled to exactly the currency's
                # digits is already exact to the minor unit, so rounding it would
                # change nothing: skip it for the common int case.
                price = src.const(spec.price.quantize(Decimal(1).scaleb(-c.minor_units)))
                src.emit(f"{a} = mul({q}, {price})")
                src.emit(f"if type({q}) is not int: {a} = {rounded(a)}")
            else:
                src.emit(f"{a} = {rounded(f'mul({q}, {src.const(spec.price)})')}")
        elif spec.mode == "graduated":
            src.emit(f"x{n} = 0")
            lower = _ZERO
            for tier in spec.tiers:
                # Units of this tier beyond the free ones: (min(u, top) - start), if any.
                start = max(lower, free)
                if tier.up_to is None or tier.up_to > start:
                    top = u if tier.up_to is None else src.const(tier.up_to)
                    upper = u if tier.up_to is None else f"{u} if {u} < {top} else {top}"
                    src.emit(
                        f"if {u} > {src.const(start)}: x{n} = add(x{n}, mul("
                        f"sub({upper}, {src.const(start)}), {src.const(tier.price)}))"
                    )
                if tier.up_to is None:
                    break
                lower = tier.up_to
            src.emit(f"{a} = {rounded(f'add(x{n}, 0)')}")
        else:
            first = True
            for tier in spec.tiers:
                price = src.const(tier.price)
                if tier.up_to is None:
                    src.emit(
                        f"{'else' if not first else 'if True'}: "
                        f"{a} = {rounded(f'mul({q}, {price})')}"
                    )
                    break
                src.emit(
                    f"{'if' if first else 'elif'} {u} <= {src.const(tier.up_to)}: "
                    f"{a} = {rounded(f'mul({q}, {price})')}"
                )
                first = False
        codes.append(meter.line_code)
        kinds.append("usage")
        shapes.append(
            (meter.line_code, meter.name, meter.unit, ("meter", meter.usage_key, free, spec))
        )
        amounts.append(a)
    listed = terms[("addons",)].value
    for addon_id in listed:
        override = terms.get(("addon_price", addon_id))
        addon_price: Decimal = (
            override.value if override is not None else catalog.addons[addon_id].price
        )
        codes.append(f"addon.{addon_id}")
        kinds.append("fee")
        shapes.append(
            (f"addon.{addon_id}", catalog.addons[addon_id].name, "month", ("fixed", addon_price))
        )
        amounts.append(
            src.const(
                addon_price.quantize(
                    Decimal(1).scaleb(-c.minor_units), ROUNDING[terms[("rounding",)].value], CONTEXT
                )
            )
        )
    plan = adjustment_plan(terms)
    # One subset test refuses unknown keys, and also usage of meters this
    # variant does not price: those rare records go to the interpreter.
    unread = {m.usage_key for m in catalog.meters if ("meter", m.id, "rate") not in terms}
    checks = [
        "    if not v.keys() <= ALLOWED: return None",
        # No account is fine; one that is not plain text is for the interpreter to refuse.
        "    account = v.get('account', MISSING)",
        "    if account is MISSING: account = None",
        "    elif type(account) is not str or not account: return None",
        "    contract = v.get('contract', MISSING)",
        "    if contract is not MISSING and (type(contract) is not str or not contract):",
        "      return None",
    ]
    src.consts.update(ALLOWED=_allowed_keys(catalog) - unread, **_VALIDATION_NAMES)
    body = ["def variant(v, period, fired):", " try:", *checks, *src.lines]
    tuple_expr = "(" + "".join(f"{x}, " for x in amounts) + ")"
    if plan:
        src.consts.update(
            PLAN=plan,
            CODES=tuple(codes),
            KINDS=tuple(kinds),
            APPLY=apply_adjustments,
            LOCAL=localcontext,
        )
        body.append(f"    amounts = {tuple_expr}")
        body.append(f"    with LOCAL({ctx}):")
        body.append(f"        adj = APPLY(PLAN, CODES, KINDS, amounts, lambda d: {rounded('d')})")
        body.append("    amounts = amounts + tuple(r[0] for r in adj)")
        codes.extend(step.code for step in plan)
        shapes.extend(
            (step.code, adjustment_description(step), "adjustment", ("adjustment",))
            for step in plan
        )
    else:
        body.append(f"    amounts = {tuple_expr}")
    # Fixed lines are constants: add them up once, here, not per account.
    fixed = [src.consts[x] for x in amounts if x in src.consts]
    fixed_sum = _ZERO
    for x in fixed:
        fixed_sum = _add(fixed_sum, x)
    running = src.const(fixed_sum)
    for x in amounts:
        if x not in src.consts:
            running = f"add({running}, {x})"
    body.append(f"    t = {running}")
    if plan:
        body.append("    for r in adj: t = add(t, r[0])")
    # Built here rather than by the caller: one call per account fewer, which
    # is measurable next to a hand-written function (benchmarks/bench_rate.py).
    # The usage is copied: the caller may reuse its dict for the next account.
    body.append(
        "    return LAZY(META, period, LINE_CODES, amounts, t, account, fired,"
        " (LINES, v.copy(), period, account))"
    )
    body.append(" except ArithmeticError:")
    body.append("    return None")
    src.consts.update(
        LAZY=Invoice._lazy, META=meta, LINE_CODES=tuple(codes), LINES=_Lines(lines, tuple(shapes))
    )
    namespace: dict[str, Any] = {"mul": _mul, "add": _add, "sub": _sub, **src.consts}
    code = "\n".join(body)
    exec(compile(code, f"<pricing variant {c.id}>", "exec"), namespace)
    variant: Variant = namespace["variant"]
    variant.source = code  # type: ignore[attr-defined]  # for debugging and the docs
    return variant


# ------------------------------------------------------------------ contract


def _valid(var: str, whole: bool, fail: str, indent: str) -> list[str]:
    """Code that checks one usage value is a non-negative int or finite Decimal."""
    lines = [
        f"{indent}if type({var}) is int:",
        # An int bound for ints: comparing an int with a Decimal costs more.
        f"{indent}  if not 0 <= {var} < INT_LIMIT: {fail}",
        f"{indent}elif type({var}) is DECIMAL:",
        # Negative zero, NaN, infinities and values past the limits all go to
        # the interpreter, which refuses or normalises them.
        # NaN makes the comparison raise; the products below trap Inexact, so a
        # value with too many digits to multiply exactly also falls back.
        f"{indent}  if {var}.is_signed() or not {var} < LIMIT: {fail}",
    ]
    if whole:
        lines.append(f"{indent}  if {var} != {var}.to_integral_value(): {fail}")
    lines.append(f"{indent}else: {fail}")
    return lines


_VALIDATION_NAMES = {
    "DECIMAL": Decimal,
    "ZERO": _ZERO,
    "LIMIT": LIMIT,
    "INT_LIMIT": int(LIMIT),
    "MISSING": _MISSING,
}


def _allowed_keys(catalog: Catalog) -> frozenset[str]:
    return frozenset(m.usage_key for m in catalog.meters) | {"period", "account", "contract"}


def _checker(catalog: Catalog) -> Callable[[Mapping[str, Any]], bool]:
    """Straight-line validation of plain usage: known keys, non-negative exact numbers.

    It only needs to recognise the common, valid case; anything it refuses is
    validated again, with full messages, by the schema-based loader.
    """
    body = ["def check(v):", "  if not v.keys() <= ALLOWED: return False", "  try:"]
    for m in catalog.meters:
        body += [f"    x = v.get({m.usage_key!r}, MISSING)", "    if x is not MISSING:"]
        body += _valid("x", m.whole, "return False", "      ")
    body += ["  except ArithmeticError:", "    return False", "  return True"]
    namespace: dict[str, Any] = {"ALLOWED": _allowed_keys(catalog), **_VALIDATION_NAMES}
    exec(compile("\n".join(body), "<pricing usage check>", "exec"), namespace)
    check: Callable[[Mapping[str, Any]], bool] = namespace["check"]
    return check


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


class CompiledContract:
    """One contract's fast rater.  Safe to share between threads."""

    def __init__(self, c: ResolvedContract, catalog: Catalog) -> None:
        self.c = c
        self.catalog = catalog
        self.conditional = [
            (layer, compiled(layer.condition) if layer.condition is not None else None)
            for layer in c.layers
            if layer.conditional
        ]
        term = c.static_terms.get(("term",))
        self.term: tuple[date, date] | None = None if term is None else term.value
        self.needs_period = (
            bool(self.term)
            or any(la.from_date is not None for la, _ in self.conditional)
            or c.uses_period
        )
        self.meta = (c.id, c.name, c.currency, c.minor_units)
        self.keys = frozenset(m.usage_key for m in catalog.meters)
        self.check = _checker(catalog)
        self.variants: dict[tuple[bool, ...], Variant] = {}
        self.lock = threading.Lock()
        self.by_period: dict[str | None, Any] | None = (
            None if any(la.condition is not None for la, _ in self.conditional) else {}
        )

    def _variant(self, key: tuple[bool, ...]) -> Variant:
        found = self.variants.get(key)
        if found is not None:
            return found
        with self.lock:
            found = self.variants.get(key)
            if found is None:
                terms: dict[TermKey, Sourced[Any]] = {}
                fired = iter(key)
                for layer in self.c.layers:
                    if not layer.conditional or next(fired):
                        terms.update(layer.patch)
                found = _compile_variant(self.c, terms, self.catalog, self.meta, self._lines)
                self.variants[key] = found
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
            # No `when` layers: the variant depends on the period alone, so one
            # lookup by the period's text finds the period and its variant.
            found = self.by_period.get(x, _MISSING)
            if found is _MISSING:
                period = _period(x, periods)
                found = None if period is _MISSING else self._for_period(period, data)
                self.by_period[x] = found
            if found is None:
                return None
            period, variant, fired = found
        else:
            # Conditions read the values, so validate them all first.
            if not self.check(data):
                return None
            period = _period(x, periods)
            if period is _MISSING:
                return None
            found = self._for_period(period, data)
            if found is None:
                return None
            period, variant, fired = found
        # The variant validates each value as it reads it (and the account and
        # contract), and reads only known keys, so it can take the mapping as it is.
        invoice: Invoice | None = variant(data, period, fired)
        return invoice

    def _for_period(
        self, period: Period | None, data: Mapping[str, Any]
    ) -> tuple[Period | None, Variant, tuple[str, ...]] | None:
        """The variant for this usage, or None where only the interpreter will do."""
        if self.needs_period:
            if period is None:
                return None
            term = self.term
            if term is not None and not (term[0] <= period.start and period.end <= term[1]):
                return None  # partial or outside the term: the interpreter handles it
        key = []
        names = []
        for layer, cond in self.conditional:
            if cond is None:
                assert layer.from_date is not None and period is not None
                ok = period.start >= layer.from_date
            else:
                ok = cond(data, period) is True
            key.append(ok)
            if ok:
                names.append(layer.label)
        return period, self._variant(tuple(key)), tuple(names)

    def _lines(
        self, data: Mapping[str, Any], period: Period | None, account: str | None
    ) -> tuple[Line, ...]:
        values = {k: Decimal(x) for k, x in data.items() if k in self.keys}
        return rate(self.c, Usage(values, period, None, account), self.catalog).lines
