"""Contracts compiled to DuckDB SQL over exact DECIMAL columns.

Like :mod:`pricing_dsl._compile`, a contract becomes one *variant* per
combination of its `when` and `from` layers; each variant is the contract's
terms folded for that combination, turned into SQL expressions in which
every price, allowance and tier bound is a constant.  A record picks its
variant by the bits of its layers' conditions, evaluated in SQL.

Exactness: every value is a DuckDB ``DECIMAL(38, s)``.  Each expression
carries a bound on its integer digits and its scale, and anything that
could need more than 38 digits is refused at compile time, so DuckDB never
rounds, overflows or falls back to floating point.  Meter values reach the
SQL only when they have at most 12 integer digits and 6 decimals (others go
to the interpreter).  Lines are rounded once, as the interpreter does, with
``round`` (half away from zero, which is Python's ROUND_HALF_UP), corrected
on exact ties for ROUND_HALF_EVEN; adjustments follow ``apply_adjustments`` step by
step.  Division only compiles where it is exact or compared directly, where
cross-multiplication gives the interpreter's answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from .. import _ast as A
from .._decimal import CONTEXT, ROUNDING
from .._invoice import decimal_text
from .._plan import Catalog, allowance_of
from .._plan import adjustments_of as adjustment_plan
from .._plan import hits as _hit
from .._sqlquote import sql_string as sql_string  # re-exported: _duck and _python use it
from .._terms import RateSpec, ResolvedContract, Sourced, TermKey

__all__ = [
    "METER_DIGITS",
    "METER_SCALE",
    "CompiledContract",
    "NotCompilable",
    "Num",
    "SqlLine",
    "Text",
    "Variant",
    "compile_contract",
    "sql_string",
]

WIDTH = 38
METER_DIGITS = 12
METER_SCALE = 6
MAX_LAYERS = 8  # conditional layers compiled per contract: 2**8 variants at most
_ZERO = Decimal(0)


class NotCompilable(Exception):
    """Why a contract (or a variant) cannot be rated in SQL."""


# ------------------------------------------------------------- numbers


@dataclass(frozen=True, slots=True)
class Num:
    """A DECIMAL(38, scale) SQL expression with |value| < 10**digits."""

    sql: str
    digits: int
    scale: int
    value: Decimal | None = None  # the value, when known at compile time

    def __post_init__(self) -> None:
        if self.digits + self.scale > WIDTH:
            raise NotCompilable(
                f"an amount could need more than {WIDTH} digits ({self.digits} before and "
                f"{self.scale} after the decimal point)"
            )


def _scale(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    return max(0, -exp)


def lit(d: Decimal) -> Num:
    """A constant, exactly."""
    if not d.is_finite():
        raise NotCompilable(f"{d} is not a finite number")
    scale = _scale(d)
    text = decimal_text(d)
    digits = len(str(int(abs(d))))
    return Num(f"CAST({sql_string(text)} AS DECIMAL({WIDTH},{scale}))", digits, scale, d)


def col(name: str, digits: int, scale: int) -> Num:
    return Num(name, digits, scale)


def _fold(op: Callable[[Decimal, Decimal], Decimal], a: Num, b: Num) -> Num | None:
    if a.value is None or b.value is None:
        return None
    with localcontext(CONTEXT):
        return lit(op(a.value, b.value))


def add(a: Num, b: Num) -> Num:
    folded = _fold(lambda x, y: x + y, a, b)
    if folded is not None:
        return folded
    if a.value == 0:
        return b
    if b.value == 0:
        return a
    return Num(f"({a.sql} + {b.sql})", max(a.digits, b.digits) + 1, max(a.scale, b.scale))


def sub(a: Num, b: Num) -> Num:
    folded = _fold(lambda x, y: x - y, a, b)
    if folded is not None:
        return folded
    if b.value == 0:
        return a
    return Num(f"({a.sql} - {b.sql})", max(a.digits, b.digits) + 1, max(a.scale, b.scale))


def mul(a: Num, b: Num) -> Num:
    folded = _fold(lambda x, y: x * y, a, b)
    if folded is not None:
        return folded
    if a.value == 1:
        return b
    if b.value == 1:
        return a
    return Num(f"({a.sql} * {b.sql})", a.digits + b.digits, a.scale + b.scale)


def neg(a: Num) -> Num:
    if a.value is not None:
        return lit(-a.value)
    return Num(f"(-{a.sql})", a.digits, a.scale)


def total(nums: Sequence[Num]) -> Num:
    """The sum of several numbers, with a bound that grows by the number of terms."""
    consts = [n.value for n in nums if n.value is not None]
    rest = [n for n in nums if n.value is None]
    with localcontext(CONTEXT):
        fixed = lit(sum(consts, _ZERO))
    if not rest:
        return fixed
    terms = rest if fixed.value == 0 else [*rest, fixed]
    if len(terms) == 1:
        return terms[0]
    digits = max(t.digits for t in terms) + math.ceil(math.log10(len(terms)))
    return Num("(" + " + ".join(t.sql for t in terms) + ")", digits, max(t.scale for t in terms))


def _pick(fn: str, a: Num, b: Num) -> Num:
    if a.value is not None and b.value is not None:
        return lit(max(a.value, b.value) if fn == "greatest" else min(a.value, b.value))
    scale = max(a.scale, b.scale)
    # Both sides at one type: DuckDB then compares and returns them exactly.
    Num("", max(a.digits, b.digits), scale)  # bound check
    cast = f"AS DECIMAL({WIDTH},{scale})"
    return Num(
        f"{fn}(CAST({a.sql} {cast}), CAST({b.sql} {cast}))",
        max(a.digits, b.digits),
        scale,
    )


def greatest(a: Num, b: Num) -> Num:
    return _pick("greatest", a, b)


def least(a: Num, b: Num) -> Num:
    return _pick("least", a, b)


def rounded(x: Num, places: int, mode: str) -> Num:
    """Round once to ``places`` decimals: half_up or half_even, as the interpreter does.

    DuckDB's ``round`` on a DECIMAL rounds half away from zero, which is
    ROUND_HALF_UP.  Half-even is that, moved back one unit where the value
    was exactly halfway and the rounded last digit is odd (``round_even`` is
    not used: some DuckDB versions get DECIMAL ties wrong).
    """
    if x.value is not None:
        q = Decimal(1).scaleb(-places)
        # + 0 turns -0.00 into 0.00, as apply_adjustments does.
        return lit(CONTEXT.add(x.value.quantize(q, ROUNDING[mode], CONTEXT), _ZERO))
    if x.scale <= places:
        return Num(f"CAST({x.sql} AS DECIMAL({WIDTH},{places}))", x.digits, places)
    up = Num(f"CAST(round({x.sql}, {places}) AS DECIMAL({WIDTH},{places}))", x.digits + 1, places)
    if mode == "half_up":
        return up
    unit = lit(Decimal(1).scaleb(-places))
    half = lit(Decimal(5).scaleb(-places - 1))
    Num("", up.digits + places, places)  # the rounded value in minor units fits
    tie = f"abs({x.sql} - {up.sql}) = {half.sql}"
    odd = f"CAST({up.sql} * {10**places} AS HUGEINT) % 2 <> 0"
    return Num(
        f"(CASE WHEN {tie} AND {odd} THEN CASE WHEN {x.sql} < 0 THEN {up.sql} + {unit.sql} "
        f"ELSE {up.sql} - {unit.sql} END ELSE {up.sql} END)",
        up.digits,
        places,
    )


def rounding_self_check() -> tuple[str, list[tuple[str, str, list[str]]]]:
    """A query that rounds known ties with the generated SQL, and what Python says.

    Returns the SQL (one row: a list of texts per case) and, per case,
    (mode, places, expected texts).  The DuckDB engine runs it first: a
    DuckDB that rounds differently is not used.
    """
    values = [
        "0.005",
        "-0.005",
        "0.015",
        "-0.015",
        "1.005",
        "-1.005",
        "2.675",
        "0.0049",
        "0",
        "-2.5",
        "3.5",
        "0.5",
    ]
    cases: list[tuple[str, str, list[str]]] = []
    selects = []
    for mode in ("half_up", "half_even"):
        for places in (0, 2):
            x = Num("x", 2, 4)
            expr = rounded(x, places, mode)
            selects.append(
                f"[CAST({expr.sql} AS VARCHAR) FOR x IN "
                f"[{', '.join(f'CAST({sql_string(v)} AS DECIMAL({WIDTH},4))' for v in values)}]]"
            )
            q = Decimal(1).scaleb(-places)
            cases.append(
                (
                    mode,
                    str(places),
                    [decimal_text(Decimal(v).quantize(q, ROUNDING[mode]) + 0) for v in values],
                )
            )
    return "SELECT " + ", ".join(selects), cases


ZERO = lit(_ZERO)


# ---------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class Text:
    """Text computed in SQL (a VARCHAR expression that never needs escaping)."""

    sql: str


def canon_sql(q: Num) -> Text:
    """A quantity as plain text without trailing zeros, like ``_rows.canon``."""
    if q.value is not None:
        from ._rows import canon

        return Text(sql_string(canon(q.value)))
    text = f"CAST({q.sql} AS VARCHAR)"
    if q.scale == 0:
        return Text(text)
    return Text(f"rtrim(rtrim({text}, '0'), '.')")


def amount_sql(a: Num) -> Text:
    if a.value is not None:
        return Text(sql_string(decimal_text(a.value)))
    return Text(f"CAST({a.sql} AS VARCHAR)")


@dataclass(frozen=True, slots=True)
class SqlLine:
    """One invoice line of a variant: constants from the terms, SQL for the rest."""

    code: str
    description: str
    unit: str
    quantity: str | Text
    unit_price: str | Text | None
    amount: Num


@dataclass(frozen=True, slots=True)
class Variant:
    """A contract's lines for one combination of its conditional layers.

    ``columns`` are computed one group after another (each group may use the
    columns of earlier groups); the lines and the total refer to them.
    """

    contract: str
    key: int
    columns: tuple[tuple[tuple[str, Num], ...], ...]
    lines: tuple[SqlLine, ...]
    total: Num
    minor_units: int


# ------------------------------------------------------------ conditions


_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NULL = object()  # a value of None in the interpreter (a division by zero)


def _terminating(d: Decimal) -> Decimal | None:
    """1/d when it is a terminating decimal of reasonable length, else None."""
    frac = Fraction(1) / Fraction(d)
    den = frac.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1 or max(twos, fives) > 20:
        return None
    places = max(twos, fives)
    with localcontext(CONTEXT):
        return Decimal(frac.numerator * 10**places // frac.denominator).scaleb(-places)


class _Conditions:
    """`when` conditions as SQL booleans that are never NULL, with the interpreter's meaning."""

    def __init__(self, meters: Mapping[str, Num]) -> None:
        self.meters = meters

    def boolean(self, e: A.Expr) -> str:
        if isinstance(e, A.NotExpr):
            return f"(NOT {self.boolean(e.operand)})"
        if isinstance(e, A.BinaryExpr) and e.op in ("and", "or"):
            return f"({self.boolean(e.left)} {e.op.upper()} {self.boolean(e.right)})"
        if isinstance(e, A.BinaryExpr) and e.op in _COMPARE:
            return self.compare(e)
        raise NotCompilable("a condition that is not a comparison")

    def compare(self, e: A.BinaryExpr) -> str:
        op = "=" if e.op == "==" else ("<>" if e.op == "!=" else e.op)
        if self.is_date(e.left) or self.is_date(e.right):
            return f"({self.date(e.left)} {op} {self.date(e.right)})"
        left, right = self.side(e.left), self.side(e.right)
        if left is _NULL or right is _NULL:
            return "FALSE"  # a comparison with None is false
        assert isinstance(left, tuple) and isinstance(right, tuple)
        (a, b), (c, d) = left, right
        if b is None and d is None:
            Num("", max(a.digits, c.digits), max(a.scale, c.scale))  # bound check
            return f"({a.sql} {op} {c.sql})"
        # a/b op c/d  <=>  a*d op c*b when b*d > 0, c*b op a*d when b*d < 0.
        lhs = a if d is None else mul(a, d)
        rhs = c if b is None else mul(c, b)
        scale = max(lhs.scale, rhs.scale)
        Num("", max(lhs.digits, rhs.digits), scale)
        self.python_rounding_is_harmless(a, b, c, d, scale)
        flipped = "=" if op == "=" else ("<>" if op == "<>" else _FLIP[op])
        dens = [x for x in (b, d) if x is not None]
        nonzero = " AND ".join(f"{x.sql} <> 0" for x in dens if x.value is None) or "TRUE"
        if any(x.value == 0 for x in dens):
            return "FALSE"
        if all(x.value is not None for x in dens):
            positive = all(x.value is not None and x.value > 0 for x in dens) or all(
                x.value is not None and x.value < 0 for x in dens
            )
            return f"({lhs.sql} {op if positive else flipped} {rhs.sql})"
        sign = (
            " = ".join(f"({x.sql} > 0)" for x in dens) if len(dens) == 2 else f"({dens[0].sql} > 0)"
        )
        return (
            f"(CASE WHEN NOT ({nonzero}) THEN FALSE WHEN {sign} THEN {lhs.sql} {op} {rhs.sql} "
            f"ELSE {lhs.sql} {flipped} {rhs.sql} END)"
        )

    @staticmethod
    def python_rounding_is_harmless(
        a: Num, b: Num | None, c: Num, d: Num | None, scale: int
    ) -> None:
        """The interpreter divides with 100 significant digits; make sure that cannot matter.

        A nonzero difference a/b - c/d is at least 10**-scale / |b*d|, while
        rounding a quotient to 100 digits moves it by at most |quotient| * 1e-99.
        """
        q1 = a.digits + (b.scale if b is not None else 0)
        q2 = c.digits + (d.scale if d is not None else 0)
        dens = (b.digits if b is not None else 1) + (d.digits if d is not None else 1)
        if max(q1, q2) + scale + dens >= 95:
            raise NotCompilable("a condition divides numbers too large to compare exactly")

    @staticmethod
    def is_date(e: A.Expr) -> bool:
        return isinstance(e, (A.DateExpr, A.AttrExpr))

    @staticmethod
    def date(e: A.Expr) -> str:
        if isinstance(e, A.DateExpr):
            if e.value.value is None:
                raise NotCompilable("a condition has an invalid date")
            return f"DATE '{e.value.value.isoformat()}'"
        if isinstance(e, A.AttrExpr):
            return "pstart" if e.attr.text == "start" else "pend"
        raise NotCompilable("a condition compares a date with a number")

    def side(self, e: A.Expr) -> tuple[Num, Num | None] | object:
        """One side of a comparison: a number, or a quotient a/b (b may be zero at run time)."""
        if isinstance(e, A.BinaryExpr) and e.op == "/":
            right = self.num(e.right)
            if isinstance(right, Num) and right.value is not None:
                if right.value == 0:
                    return _NULL
                if _terminating(right.value) is not None:
                    value = self.num(e)
                    return _NULL if value is _NULL else (value, None)
            left = self.num(e.left)
            if left is _NULL or right is _NULL:
                return _NULL
            assert isinstance(left, Num) and isinstance(right, Num)
            return left, right
        value = self.num(e)
        return _NULL if value is _NULL else (value, None)

    def num(self, e: A.Expr) -> Num | object:
        if isinstance(e, A.NumberExpr):
            return lit(e.value.value)
        if isinstance(e, A.RefExpr):
            found = self.meters.get(e.name.text)
            if found is None:
                raise NotCompilable(f"a condition uses the unknown meter `{e.name.text}`")
            return found
        if isinstance(e, A.BinaryExpr) and e.op in ("+", "-", "*", "/"):
            left, right = self.num(e.left), self.num(e.right)
            if left is _NULL or right is _NULL:
                return _NULL
            assert isinstance(left, Num) and isinstance(right, Num)
            if e.op == "+":
                return add(left, right)
            if e.op == "-":
                return sub(left, right)
            if e.op == "*":
                return mul(left, right)
            if right.value is None:
                raise NotCompilable(
                    "a condition divides by a meter inside other arithmetic; only "
                    "`a / b` compared directly compiles"
                )
            if right.value == 0:
                return _NULL
            inverse = _terminating(right.value)
            if inverse is None:
                raise NotCompilable(
                    f"a condition divides by {right.value} inside other arithmetic, which "
                    "has no exact decimal result"
                )
            return mul(left, lit(inverse))
        raise NotCompilable("a condition uses a date in arithmetic")


# -------------------------------------------------------------- variants


def _meter_amount(
    spec: RateSpec,
    used: Num,
    free: Decimal,
    places: int,
    mode: str,
) -> tuple[Num, Num, str | Text | None]:
    """(billable quantity, amount, unit price) of a usage line, as the interpreter rates it."""
    billable = used if free == 0 else greatest(sub(used, lit(free)), ZERO)
    if spec.mode == "flat":
        assert spec.price is not None
        return (
            billable,
            rounded(mul(billable, lit(spec.price)), places, mode),
            decimal_text(spec.price),
        )
    if spec.mode == "graduated":
        terms: list[Num] = []
        lower = _ZERO
        for tier in spec.tiers:
            start = max(lower, free)
            if tier.up_to is None:
                terms.append(mul(greatest(sub(used, lit(start)), ZERO), lit(tier.price)))
                break
            if tier.up_to > start:
                top = least(used, lit(tier.up_to))
                terms.append(mul(greatest(sub(top, lit(start)), ZERO), lit(tier.price)))
            lower = tier.up_to
        return billable, rounded(total(terms), places, mode), None
    # Volume: the tier that holds all of the usage prices every billable unit.
    amounts = [rounded(mul(billable, lit(t.price)), places, mode) for t in spec.tiers]
    bounds = [t.up_to for t in spec.tiers]
    digits = max(a.digits for a in amounts)
    amount_case = ["CASE"]
    price_case = ["CASE"]
    for bound, amount, tier in zip(bounds, amounts, spec.tiers, strict=True):
        if bound is None:
            amount_case.append(f"ELSE {amount.sql} END")
            price_case.append(f"ELSE {sql_string(decimal_text(tier.price))} END")
            break
        cond = f"WHEN {used.sql} <= {lit(bound).sql}"
        amount_case.append(f"{cond} THEN {amount.sql}")
        price_case.append(f"{cond} THEN {sql_string(decimal_text(tier.price))}")
    return billable, Num(" ".join(amount_case), digits, places), Text(" ".join(price_case))


def compile_variant(
    c: ResolvedContract,
    terms: Mapping[TermKey, Sourced[Any]],
    catalog: Catalog,
    meters: Mapping[str, Num],
    key: int,
    prefix: str,
) -> Variant:
    """The SQL of one variant.  Column names start with ``prefix``."""
    places = c.minor_units
    mode = terms[("rounding",)].value
    if mode not in ROUNDING:
        raise NotCompilable(f"the rounding mode `{mode}` is unknown")
    lines: list[SqlLine] = []
    first: list[tuple[str, Num]] = []

    def column(expr: Num) -> Num:
        if expr.value is not None:
            return expr
        name = f"{prefix}_{len(first)}"
        first.append((name, expr))
        return col(name, expr.digits, expr.scale)

    base = terms.get(("base",))
    kinds: list[str] = []
    if base is not None:
        lines.append(
            SqlLine(
                "base",
                f"Base fee ({c.name})",
                "month",
                "1",
                decimal_text(base.value),
                rounded(lit(base.value), places, mode),
            )
        )
        kinds.append("fee")
    for meter in catalog.meters:
        rate_s = terms.get(("meter", meter.id, "rate"))
        if rate_s is None:
            continue
        used = meters[meter.usage_key]
        free = allowance_of(meter, terms).free()
        billable, amount, unit_price = _meter_amount(rate_s.value, used, free, places, mode)
        quantity = column(billable)
        lines.append(
            SqlLine(
                meter.line_code,
                meter.name,
                meter.unit,
                canon_sql(quantity),
                unit_price,
                column(amount),
            )
        )
        kinds.append("usage")
    for addon_id in terms[("addons",)].value:
        override = terms.get(("addon_price", addon_id))
        price = override.value if override is not None else catalog.addons[addon_id].price
        lines.append(
            SqlLine(
                f"addon.{addon_id}",
                catalog.addons[addon_id].name,
                "month",
                "1",
                decimal_text(price),
                rounded(lit(price), places, mode),
            )
        )
        kinds.append("fee")
    groups: list[tuple[tuple[str, Num], ...]] = [tuple(first)]
    amounts = [ln.amount for ln in lines]
    codes = [ln.code for ln in lines]
    running = total(amounts)
    taken: dict[int, Num] = {}
    for n, step in enumerate(adjustment_plan(terms)):
        v = step.value
        if step.kind == "pct":
            hit = _hit(step.target, codes, kinds)
            with localcontext(CONTEXT):
                share = lit(v / 100)
            exact = neg(mul(total([amounts[i] for i in hit]), share))
            desc = f"{v}% discount on {step.target}"
        elif step.kind == "fixed":
            hit = ()
            exact = neg(least(lit(v), greatest(running, ZERO)))
            desc = f"{decimal_text(v)} discount"
        elif step.kind == "cap":
            hit = _hit(step.target, codes, kinds)
            net = add(amounts[hit[0]], taken.get(hit[0], ZERO)) if hit else ZERO
            excess = greatest(ZERO, sub(net, lit(v)))
            exact = neg(least(excess, greatest(running, ZERO)))
            desc = f"{step.target} capped at {decimal_text(v)}"
        else:
            hit = ()
            exact = greatest(ZERO, sub(lit(v), running))
            desc = f"Minimum commitment true-up ({decimal_text(v)})"
        amount = rounded(exact, places, mode)
        if amount.value is None:
            name = f"{prefix}_s{n}"
            groups.append(((name, amount),))
            amount = col(name, amount.digits, amount.scale)
        if step.kind == "pct":
            if len(hit) == 1:
                taken[hit[0]] = add(taken.get(hit[0], ZERO), amount)
            else:
                for i in hit:
                    taken[i] = sub(taken.get(i, ZERO), mul(amounts[i], share))
        running = add(running, amount)
        lines.append(SqlLine(step.code, desc, "adjustment", "1", None, amount))
    grand = total([ln.amount for ln in lines])
    Num("", grand.digits + places, places)  # the total in integer minor units fits too
    return Variant(c.id, key, tuple(g for g in groups if g), tuple(lines), grand, places)


# -------------------------------------------------------------- contracts


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """What the SQL needs of one contract: its layer conditions, term, and variants."""

    contract: ResolvedContract
    conditions: tuple[str, ...]  # one SQL boolean per conditional layer, bit n = layer n
    term: tuple[date, date] | None

    def terms(self, key: int) -> dict[TermKey, Sourced[Any]]:
        folded: dict[TermKey, Sourced[Any]] = {}
        bit = 0
        for layer in self.contract.layers:
            if layer.conditional:
                applies = bool(key >> bit & 1)
                bit += 1
                if not applies:
                    continue
            folded.update(layer.patch)
        return folded


def meter_columns(catalog: Catalog) -> dict[str, Num]:
    """The SQL column of each usage key: m0, m1, ... as DECIMAL(38, 6)."""
    return {
        m.usage_key: col(f"m{i}", METER_DIGITS, METER_SCALE) for i, m in enumerate(catalog.meters)
    }


def compile_contract(c: ResolvedContract, catalog: Catalog) -> CompiledContract:
    """Check that every variant of a contract compiles; NotCompilable says why not."""
    conditional = [layer for layer in c.layers if layer.conditional]
    if len(conditional) > MAX_LAYERS:
        raise NotCompilable(
            f"it has {len(conditional)} `when`/`from` blocks; SQL is generated for at most "
            f"{MAX_LAYERS}"
        )
    for layer in conditional:
        if ("term",) in layer.patch:
            raise NotCompilable("its term is set inside a `when` or `from` block")
    meters = meter_columns(catalog)
    cond = _Conditions(meters)
    conditions = []
    for layer in conditional:
        parts = []
        if layer.from_date is not None:
            parts.append(f"(pstart >= DATE '{layer.from_date.isoformat()}')")
        if layer.condition is not None:
            parts.append(cond.boolean(layer.condition))
        conditions.append("(" + " AND ".join(parts) + ")")
    term = c.static_terms.get(("term",))
    compiled = CompiledContract(c, tuple(conditions), None if term is None else term.value)
    for key in range(2 ** len(conditional)):
        compile_variant(c, compiled.terms(key), catalog, meters, key, "v")
    return compiled
