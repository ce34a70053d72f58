"""Rating plans compiled to DuckDB SQL over exact DECIMAL columns, one SQL per plan shape.

Like :mod:`pricing_dsl._compile`, the SQL is derived from the contracts'
:class:`~pricing_dsl._plan.RatingPlan` -- one per combination of a
contract's `when` and `from` layers and time-limited discounts (a
*variant*) -- and its text depends only on the plan's shape
(:func:`shape_key`): the meter charges as ``MeterCharge.rate`` computes
them (pieces or volume tiers, per unit or per block, with tier flat fees),
the adjustments in the order and with the bookkeeping of
``apply_adjustments`` (percentage discounts, line minimums, the fixed
discount, caps on lines and groups, the minimum), what each adjustment
reaches.  Every constant -- price, tier bound, piece lower bound, block
size, tier fee, free units, discount share, cap, minimum, some texts -- is
read from a slot column of the terms table (``<prefix>k<i>`` numbers,
``<prefix>x<i>`` texts).  A quarterly or yearly fee depends on the period
too: its amount and quantity are read from columns (``<prefix>f<j>``,
``<prefix>q<j>``) the engine joins per plan and period, worked out by the
plan itself (``ShapeSql.dated``).  Generation records how to read each
slot from any plan of the shape, so :class:`ShapeCache` generates each
shape once and reads the constants of every other plan cheaply.  A record
picks its variant by the bits of its layers, evaluated in SQL
(:class:`CompiledContract`).

Exactness: every value is a DuckDB ``DECIMAL(38, s)``.  Each expression
carries a bound on its integer digits and its scale, and anything that
could need more than 38 digits is refused at compile time (NotCompilable),
so DuckDB never rounds, overflows or falls back to floating point.  A
shape's slots are typed with the most digits and decimals over its plans;
where that would not fit, the plans are split into shapes that do.  Meter
values reach the SQL only when they have at most 12 integer digits and 6
decimals (others go to the interpreter).  Lines are rounded once, as the
interpreter does, with ``round`` (half away from zero, which is Python's
ROUND_HALF_UP), corrected on exact ties for ROUND_HALF_EVEN.  Division
only compiles where it is exact or compared directly, where
cross-multiplication gives the interpreter's answer; blocks are counted by
integer division of exactly scaled HUGEINTs (:func:`blocks`).  The
adjustments share one proven digit bound (:func:`_adjustment_digits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import partial
from typing import Any

from .. import _ast as A
from .._decimal import CONTEXT, ROUNDING
from .._invoice import decimal_text
from .._plan import Catalog, Fee, Piece, Plans, RatingPlan, blocks_of
from .._sqlquote import sql_string as sql_string  # re-exported: _duck and _python use it
from .._terms import ResolvedContract

__all__ = [
    "METER_DIGITS",
    "METER_SCALE",
    "CompiledContract",
    "Member",
    "NotCompilable",
    "Num",
    "Shape",
    "ShapeCache",
    "ShapeSql",
    "SqlLine",
    "Text",
    "compile_contract",
    "generate",
    "line_texts",
    "meter_columns",
    "shape_key",
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


def blocks(units: Num, block: Num, down: bool) -> Num:
    """``_plan.blocks_of``: the started blocks of ``block`` in ``units`` (whole ones with ``down``).

    Both are nonnegative and the block positive.  DECIMAL division in DuckDB
    goes through floating point, so the division is done on integers: both
    values scaled by 10**s (s the larger scale) are exact HUGEINTs, and
    integer division of nonnegative integers is the floor; the ceiling is
    ``(u + b - 1) // b``.
    """
    if units.value is not None and block.value is not None:
        return lit(blocks_of(units.value, block.value, down))
    s = max(units.scale, block.scale)
    # Each value, cast to DECIMAL(38, s) and multiplied by 10**s, is held as
    # value * 10**(2s) internally: that must fit too.
    Num("", max(units.digits, block.digits) + s, s)

    def whole(x: Num) -> str:
        if s == 0:
            return f"CAST({x.sql} AS HUGEINT)"
        return f"CAST(CAST({x.sql} AS DECIMAL({WIDTH},{s})) * {10**s} AS HUGEINT)"

    u, b = whole(units), whole(block)
    expr = f"{u} // {b}" if down else f"({u} + {b} - 1) // {b}"
    # At most units / 10**-block.scale blocks, plus one started block.
    return Num(f"CAST({expr} AS DECIMAL({WIDTH},0))", units.digits + block.scale + 1, 0)


def priced(units: Num, price: Num, block: Num | None, down: bool) -> Num:
    """``_plan.priced``: units at a unit price, or per block of ``block`` units."""
    if block is None:
        return mul(units, price)
    return mul(blocks(units, block, down), price)


def when_above(x: Num, bound: Num, then: Num) -> Num:
    """``then`` when ``x`` is above ``bound``, else zero (at ``then``'s type)."""
    Num("", max(x.digits, bound.digits), max(x.scale, bound.scale))  # compared exactly
    # Slots and literals are DECIMAL(38, scale): both branches have one type.
    zero = f"CAST(0 AS DECIMAL({WIDTH},{then.scale}))"
    return Num(
        f"(CASE WHEN {x.sql} > {bound.sql} THEN {then.sql} ELSE {zero} END)",
        then.digits,
        then.scale,
    )


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
_NULL_TEXT = "CAST(NULL AS VARCHAR)"


# ---------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class Text:
    """Text computed in SQL (a VARCHAR expression that never needs escaping).

    ``nullable``: it may be NULL (a unit price that some rows do not have).
    """

    sql: str
    nullable: bool = False


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
    """One invoice line of a plan: SQL for what is computed, text for what is not.

    The texts (``code``, ``description``, a flat rate's ``unit_price``,
    ``amount_text``) are the plan's own; contracts of one shape may differ
    in them, and the engine moves the ones that do into the terms table.
    ``amount_text`` is set where the amount is a constant of the plan (fees).
    """

    code: str
    description: str
    unit: str
    quantity: str | Text
    unit_price: str | Text | None
    amount: Num
    amount_text: str | None = None


# A constant of a plan, read from any plan of the same shape.
Getter = Callable[[RatingPlan], Any]


@dataclass(frozen=True, slots=True)
class ShapeSql:
    """The SQL of one plan shape, with constants read from slot columns.

    ``columns`` are computed one group after another (each group may use the
    columns of earlier groups); the lines and the total refer to them.  Slot
    ``<prefix>k<i>`` holds number ``numbers[i]`` as DECIMAL(38, scale), typed
    ``types[i]`` (digits, scale); slot ``<prefix>x<i>`` holds text
    ``texts[i]``.  Each getter reads its constant from any plan of the shape.
    The lines' plain texts are those of the plan the SQL was generated from.
    ``dated`` are the fee lines (indices into ``RatingPlan.fees``) billed per
    quarter or year: fee ``j``'s amount for the record's plan and period is
    read from column ``<prefix>f<j>`` (DECIMAL(38, minor units)) and its
    quantity text from ``<prefix>q<j>``, which the engine joins.
    """

    columns: tuple[tuple[tuple[str, Num], ...], ...]
    lines: tuple[SqlLine, ...]
    total: Num
    minor_units: int
    numbers: tuple[Getter, ...]
    texts: tuple[Getter, ...]
    types: tuple[tuple[int, int], ...]
    dated: tuple[int, ...] = ()


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


# ----------------------------------------------------------------- slots


def num_type(d: Decimal) -> tuple[int, int]:
    """The (digits, scale) a constant needs: digits before the point, decimals after."""
    if not d.is_finite():
        raise NotCompilable(f"{d} is not a finite number")
    return len(str(int(abs(d)))), _scale(d)


class Slots:
    """The constants the generator reads, as slot columns, and how to read each one.

    With ``types`` None each number slot is typed by its value in ``plan``;
    a shape shared by several plans passes the widest type of each slot.
    """

    __slots__ = ("numbers", "plan", "prefix", "texts", "typed", "types")

    def __init__(
        self, plan: RatingPlan, prefix: str, types: Sequence[tuple[int, int]] | None
    ) -> None:
        self.plan = plan
        self.prefix = prefix
        self.types = types
        self.numbers: list[Getter] = []
        self.typed: list[tuple[int, int]] = []
        self.texts: list[Getter] = []

    def num(self, get: Getter) -> Num:
        i = len(self.numbers)
        self.numbers.append(get)
        digits, scale = num_type(get(self.plan)) if self.types is None else self.types[i]
        self.typed.append((digits, scale))
        return Num(f"{self.prefix}k{i}", digits, scale)

    def text(self, get: Getter) -> Text:
        self.texts.append(get)
        return Text(f"{self.prefix}x{len(self.texts) - 1}")


def shape_key(plan: RatingPlan) -> tuple[Any, ...]:
    """What the generated SQL depends on: the plan's shape."""
    return plan.shape


# ------------------------------------------------------------------ plans

# A line's texts that are the plan's own: code, description, unit price, amount.
LineTexts = tuple[str, str, str | None, str | None]


def line_texts(plan: RatingPlan) -> list[LineTexts]:
    """Each line's code, description, unit price (flat rates and fees) and amount (fees).

    The texts of a plan that are not computed from usage.  A fee's amount is
    a whole month's: its price rounded once (a quarterly or yearly fee's is
    joined per period instead).  A flat rate priced per block has no unit
    price, as in ``MeterCharge.rate``.
    """

    def fee(f: Fee) -> LineTexts:
        return f.code, f.description, decimal_text(f.price), decimal_text(plan.round(f.price))

    out = [] if plan.base is None else [fee(plan.base)]
    for m in plan.meters:
        price = decimal_text(m.prices[0]) if m.mode == "flat" and m.simple else None
        out.append((m.meter.line_code, m.meter.name, price, None))
    out += [fee(f) for f in plan.addons]
    out += [(a.code, a.description, None, None) for a in plan.adjustments]
    return out


# Getters: how to read each constant from any plan of a shape (see Slots).


def _free(n: int, p: RatingPlan) -> Decimal:
    return p.meters[n].allowance.free()


def _price(n: int, k: int, p: RatingPlan) -> Decimal:
    return p.meters[n].prices[k]


def _price_text(n: int, k: int, p: RatingPlan) -> str:
    return decimal_text(p.meters[n].prices[k])


def _bound(n: int, k: int, p: RatingPlan) -> Decimal | None:
    return p.meters[n].bounds[k]


def _piece(n: int, k: int, field: str, p: RatingPlan) -> Decimal | None:
    charge = p.meters[n]
    piece: Piece = charge.pieces(charge.allowance.free())[k]
    value: Decimal | None = getattr(piece, field)
    return value


def _share(n: int, p: RatingPlan) -> Decimal:
    with localcontext(CONTEXT):
        return p.adjustments[n].value / 100


def _value(n: int, p: RatingPlan) -> Decimal:
    return p.adjustments[n].value


def _base(p: RatingPlan) -> Fee:
    assert p.base is not None
    return p.base


def _addon(j: int, p: RatingPlan) -> Fee:
    return p.addons[j]


def _fee_amount(get: Callable[[RatingPlan], Fee], p: RatingPlan) -> Decimal:
    """A whole month's fee: its price rounded once."""
    return p.round(get(p).price)


def _block(n: int, k: int, p: RatingPlan) -> Decimal | None:
    return p.meters[n].block(k)[0]


def _tier_fee(n: int, k: int, p: RatingPlan) -> Decimal | None:
    return p.meters[n].fee(k)


def _meter_line(
    n: int,
    used: Num,
    texts: LineTexts,
    slots: Slots,
    column: Callable[[Num], Num],
) -> SqlLine:
    """Usage line ``n``: ``MeterCharge.rate`` (pieces, or the volume tier) as SQL."""
    plan = slots.plan
    places, mode = plan.minor_units, plan.rounding
    charge = plan.meters[n]
    meter = charge.meter
    if charge.allowance.kind == "none":
        billable = used  # usage is never negative: nothing to subtract or clamp
    else:
        free = slots.num(partial(_free, n))
        billable = greatest(sub(used, free), ZERO)
    unit_price: str | Text | None
    tiers = range(len(charge.bounds))
    if charge.mode == "volume":
        # The tier that holds all of the usage prices every billable unit (per
        # block at that tier's block size) and adds that tier's flat fee.
        amounts = []
        prices: list[Text | None] = []
        for k in tiers:
            size, down = charge.block(k)
            block = None if size is None else slots.num(partial(_block, n, k))
            exact = priced(billable, slots.num(partial(_price, n, k)), block, down)
            if charge.fee(k) is not None:
                exact = add(exact, slots.num(partial(_tier_fee, n, k)))
            amounts.append(rounded(exact, places, mode))
            # The unit price is shown only where the amount is billable x price.
            per_unit = size is None and charge.fee(k) is None
            prices.append(slots.text(partial(_price_text, n, k)) if per_unit else None)
        tests = [
            (k, f"{used.sql} <= {slots.num(partial(_bound, n, k)).sql}")
            for k in tiers[:-1]
            if charge.bounds[k] is not None
        ]

        def price_sql(t: Text | None) -> str:
            return _NULL_TEXT if t is None else t.sql

        if tests:
            whens = " ".join(f"WHEN {t} THEN {amounts[k].sql}" for k, t in tests)
            amount = Num(
                f"CASE {whens} ELSE {amounts[-1].sql} END",
                max(a.digits for a in amounts),
                places,
            )
            if all(t is None for t in prices):
                unit_price = None
            else:
                whens = " ".join(f"WHEN {t} THEN {price_sql(prices[k])}" for k, t in tests)
                unit_price = Text(
                    f"CASE {whens} ELSE {price_sql(prices[-1])} END",
                    any(t is None for t in prices),
                )
        else:
            amount, unit_price = amounts[0], prices[0]
    elif charge.mode == "flat":
        # A flat rate is one open-ended piece from the free units: billable x price.
        price = slots.num(partial(_piece, n, 0, "price"))
        size, down = charge.block(0)
        block = None if size is None else slots.num(partial(_block, n, 0))
        exact = priced(billable, price, block, down)
        if charge.fee(0) is not None:
            exact = add(exact, slots.num(partial(_tier_fee, n, 0)))
        amount = rounded(exact, places, mode)
        unit_price = texts[2]  # None when priced per block (see line_texts)
    else:
        terms = []
        for k, piece in enumerate(charge.pieces(charge.allowance.free())):
            # max(0, min(used, upper) - lower) * price, lower already past the free units;
            # per block when the tier has one.
            top = used
            if piece.upper is not None:
                top = least(used, slots.num(partial(_piece, n, k, "upper")))
            lower = slots.num(partial(_piece, n, k, "lower"))
            price = slots.num(partial(_piece, n, k, "price"))
            block = None if piece.block is None else slots.num(partial(_piece, n, k, "block"))
            terms.append(priced(greatest(sub(top, lower), ZERO), price, block, piece.down))
            if piece.fee is not None:
                # Each tier the usage reaches adds its flat fee: the first at zero,
                # a later one when the usage is above the bound before it.
                fee = slots.num(partial(_piece, n, k, "fee"))
                if piece.reach is None:
                    terms.append(fee)
                else:
                    terms.append(when_above(used, slots.num(partial(_piece, n, k, "reach")), fee))
        amount = rounded(total(terms), places, mode)
        unit_price = None
    return SqlLine(
        meter.line_code,
        texts[1],
        meter.unit,
        canon_sql(column(billable)),
        unit_price,
        column(amount),
    )


def _adjustment_digits(lines: int, values: int, steps: int, count: int) -> int:
    """Digits enough for every amount of the adjustments (a bound, proven here).

    Each of ``count`` lines is at least 0 (prices, fees and usage are) and
    their sum A is below 10**lines; each adjustment value (a cap, minimum or
    fixed discount; at least 0) is below 10**values; a share is at most 1; a
    rounded amount is within 1 of its exact amount.  Let K = 10**lines +
    10**values, n = ``steps``, m = ``count``.  Then, as apply_adjustments
    computes them:

    * a percentage discount is at most A + 1 <= 2K, so what discounts took
      off a line is at most 2nK, and a net of lines at most K(1 + 2mn);
    * a line minimum's top-up is at most value + net + 1 <= K(3 + 2mn), so
      the top-ups sum to at most nK(3 + 2mn), and a cap's net and excess to
      at most K(n + 1)(3 + 2mn);
    * the subtotal starts at A >= 0 and never goes below -3nK: percentage
      discounts take at most 2K each, caps and the fixed discount at most
      what is above zero (give or take their rounding, 1); so a fixed
      discount is at most 2K, a cap at most its excess plus 1, the
      minimum's true-up at most K(3n + 2): every step is at most
      Q = K(n + 2)(3 + 2mn), and the subtotal at most A + nQ < (n + 1)Q.

    So every value, and every difference the SQL forms on the way (value
    minus net, net minus value), is below K(n + 2)**2 (3 + 2mn).
    """
    factor = (steps + 2) ** 2 * (3 + 2 * count * steps)
    return max(lines, values) + 1 + math.ceil(math.log10(factor))


def generate(
    plan: RatingPlan,
    meters: Mapping[str, Num],
    prefix: str,
    types: Sequence[tuple[int, int]] | None = None,
) -> ShapeSql:
    """The SQL of a plan for a whole month within its term, constants read from slots.

    The SQL text depends only on :func:`shape_key`, ``prefix`` and ``types``
    (the slots' types; None: those of this plan's own numbers), so every plan
    of one shape shares it.  Column and slot names start with ``prefix``.
    Raises NotCompilable when an amount could need more than 38 digits.
    """
    places = plan.minor_units
    mode = plan.rounding
    if mode not in ROUNDING:
        raise NotCompilable(f"the rounding mode `{mode}` is unknown")
    slots = Slots(plan, prefix, types)
    texts = line_texts(plan)
    first: list[tuple[str, Num]] = []

    def column(expr: Num) -> Num:
        if expr.value is not None:
            return expr
        name = f"{prefix}c{len(first)}"
        first.append((name, expr))
        return col(name, expr.digits, expr.scale)

    lines: list[SqlLine] = []
    dated: list[int] = []
    fees: list[Callable[[RatingPlan], Fee]] = [] if plan.base is None else [_base]
    fees += [partial(_addon, j) for j in range(len(plan.addons))]
    fee_lines = []
    for j, get in enumerate(fees):
        t = texts[0 if j == 0 and plan.base is not None else j + len(plan.meters)]
        price = slots.num(partial(_fee_amount, get))  # a whole month's fee: its price, rounded
        per = get(plan).per
        if per == "month":
            fee_lines.append(
                SqlLine(t[0], t[1], per, "1", t[2], rounded(price, places, mode), t[3])
            )
            continue
        # A quarterly or yearly fee depends on the period: the engine joins its
        # amount and quantity, worked out by RatingPlan.fee_amounts and
        # fee_share for each plan and period, as columns f<j> and q<j>.  At
        # most one interval starts in a month, so it is at most the price.
        dated.append(j)
        amount = col(f"{prefix}f{j}", price.digits, places)
        fee_lines.append(SqlLine(t[0], t[1], per, Text(f"{prefix}q{j}"), t[2], amount))
    if plan.base is not None:
        lines.append(fee_lines[0])
    for n, charge in enumerate(plan.meters):
        used = meters[charge.meter.usage_key]
        lines.append(_meter_line(n, used, texts[len(lines)], slots, column))
    lines += fee_lines[0 if plan.base is None else 1 :]
    groups: list[tuple[tuple[str, Num], ...]] = [tuple(first)]
    amounts = [ln.amount for ln in lines]
    # _plan.apply_adjustments, step for step, at a fee factor of 1.
    values = {
        n: slots.num(partial(_value, n))
        for n, step in enumerate(plan.adjustments)
        if step.kind != "pct"
    }
    bound = _adjustment_digits(
        total(amounts).digits,
        max((v.digits for v in values.values()), default=0),
        len(plan.adjustments),
        len(amounts),
    )

    def within(x: Num) -> Num:
        """``x`` with the adjustments' bound (see _adjustment_digits), if lower."""
        return x if x.digits <= bound else Num(x.sql, bound, x.scale, x.value)

    # The subtotal as one flat sum of the lines so far.
    so_far = list(amounts)
    running = within(total(so_far))
    # What percentage discounts took off each line (a discount of one line by
    # its rounded line, a group discount by each line's exact share), and the
    # line minimums' top-ups with the lines they reach.
    taken: dict[int, Num] = {}
    topups: list[tuple[frozenset[int], Num]] = []

    def net_of(hit: Sequence[int]) -> Num:
        return within(total([within(add(amounts[i], taken.get(i, ZERO))) for i in hit]))

    for n, (step, hit) in enumerate(zip(plan.adjustments, plan.reached, strict=True)):
        if step.kind == "pct":
            share = slots.num(partial(_share, n))
            exact = neg(mul(total([amounts[i] for i in hit]), share))
        elif step.kind == "line_min":
            # Nothing when the invoice has none of its lines.
            exact = ZERO
            if hit:
                exact = greatest(ZERO, sub(values[n], net_of(hit)))
        elif step.kind == "fixed":
            exact = neg(least(values[n], greatest(running, ZERO)))
        elif step.kind == "cap":
            if hit:
                # Net of discounts, plus the top-ups of minimums on lines all within the cap's.
                lines_hit = frozenset(hit)
                net = within(total([net_of(hit), *(t for h, t in topups if h <= lines_hit)]))
                excess = within(greatest(ZERO, sub(net, values[n])))
                exact = neg(least(excess, greatest(running, ZERO)))
            else:
                exact = ZERO  # caps are never negative: no lines, no excess
        else:
            exact = greatest(ZERO, sub(values[n], running))
        # Rounded once; DuckDB has no negative zero, so -0 is 0 as in apply_adjustments.
        amount = within(rounded(within(exact), places, mode))
        if amount.value is None:
            name = f"{prefix}s{n}"
            groups.append(((name, amount),))
            amount = col(name, amount.digits, amount.scale)
        if step.kind == "pct":
            if len(hit) == 1:
                taken[hit[0]] = within(add(taken.get(hit[0], ZERO), amount))
            else:
                for i in hit:
                    taken[i] = within(sub(taken.get(i, ZERO), mul(amounts[i], share)))
        elif step.kind == "line_min" and hit:
            topups.append((frozenset(hit), amount))
        so_far.append(amount)
        running = within(total(so_far))
        t = texts[len(lines)]
        lines.append(SqlLine(t[0], t[1], "adjustment", "1", None, amount))
    grand = running  # every line, adjustments included
    Num("", grand.digits + places, places)  # the total in integer minor units fits too
    return ShapeSql(
        tuple(g for g in groups if g),
        tuple(lines),
        grand,
        places,
        tuple(slots.numbers),
        tuple(slots.texts),
        tuple(slots.typed),
        tuple(dated),
    )


@dataclass(frozen=True, slots=True)
class Member:
    """One plan of a shape: the caller's id for it and its constants."""

    ident: Any
    numbers: tuple[Decimal, ...]
    texts: tuple[str, ...]
    lines: tuple[LineTexts, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """SQL shared by plans of one shape (``sql``), and each plan's constants."""

    sid: int
    sql: ShapeSql
    members: tuple[Member, ...]


# What ShapeCache.read finds of a plan: its shape key, its numbers' types, its constants.
Read = tuple[Any, tuple[tuple[int, int], ...], Member]


class ShapeCache:
    """Generated SQL by shape and slot types, so each is generated once.

    Also remembers which (shape, types) do not compile.  Use one per ruleset.
    """

    def __init__(self, meters: Mapping[str, Num]) -> None:
        self.meters = meters
        self.reader: dict[Any, ShapeSql] = {}
        self.sql: dict[tuple[Any, ...], ShapeSql | NotCompilable] = {}
        self.plans: dict[int, tuple[RatingPlan, Read]] = {}

    def read(self, plan: RatingPlan) -> Read:
        """A plan's shape key, the types of its numbers, and its constants (``ident`` None)."""
        found = self.plans.get(id(plan))
        if found is not None and found[0] is plan:
            return found[1]
        key = shape_key(plan)
        reader = self.reader.get(key)
        if reader is None:
            # Any plan of the shape names the slots; typed as each needs, so
            # a plan whose own numbers are too long fails here as it would alone.
            reader = self.reader.setdefault(key, generate(plan, self.meters, "v_"))
        numbers = tuple(get(plan) for get in reader.numbers)
        texts = tuple(get(plan) for get in reader.texts)
        read = (
            key,
            tuple(num_type(d) for d in numbers),
            Member(None, numbers, texts, tuple(line_texts(plan))),
        )
        # Keyed by identity, with the plan kept so that its id is not reused.
        self.plans[id(plan)] = (plan, read)
        return read

    def generate(
        self, plan: RatingPlan, prefix: str, types: tuple[tuple[int, int], ...]
    ) -> ShapeSql:
        """``generate(plan, ..., prefix, types)``, once per shape, prefix and types."""
        key = (self.read(plan)[0], prefix, types)
        found = self.sql.get(key)
        if found is None:
            try:
                found = generate(plan, self.meters, prefix, types)
            except NotCompilable as exc:
                found = exc
            self.sql[key] = found
        if isinstance(found, NotCompilable):
            raise found
        return found

    def check(self, plan: RatingPlan) -> None:
        """Raise NotCompilable if the plan, typed by its own numbers, does not compile."""
        self.generate(plan, "v_", self.read(plan)[1])

    def shapes(self, plans: Sequence[tuple[Any, RatingPlan]]) -> list[Shape]:
        """Plans grouped by shape, each group's SQL typed by the widest of each slot.

        If the widest types would need more than 38 digits somewhere, the group
        is split into groups that fit (each plan alone is known to compile).
        """
        by_key: dict[Any, list[tuple[RatingPlan, tuple[tuple[int, int], ...], Member]]] = {}
        for ident, plan in plans:
            key, typed, member = self.read(plan)
            by_key.setdefault(key, []).append((plan, typed, replace(member, ident=ident)))
        out: list[Shape] = []
        for members in by_key.values():
            groups = [(_widest([typed for _, typed, _ in members]), members)]
            if not self.fits(members[0][0], groups[0][0]):
                # Greedily: each plan joins the first group it fits in when typed together.
                groups = []
                for plan, typed, member in members:
                    for n, (types, part) in enumerate(groups):
                        wider = _widest([types, typed])
                        if self.fits(plan, wider):
                            groups[n] = (wider, [*part, (plan, typed, member)])
                            break
                    else:
                        groups.append((typed, [(plan, typed, member)]))
            for types, part in groups:
                sid = len(out)
                sql = self.generate(part[0][0], f"s{sid}_", types)
                out.append(Shape(sid, sql, tuple(m for _, _, m in part)))
        return out

    def fits(self, plan: RatingPlan, types: tuple[tuple[int, int], ...]) -> bool:
        """Whether the plan's shape compiles with slots of these types."""
        try:
            self.generate(plan, "v_", types)
        except NotCompilable:
            return False
        return True


def _widest(types: Sequence[tuple[tuple[int, int], ...]]) -> tuple[tuple[int, int], ...]:
    """Per slot, the most digits and the most decimals of any of ``types``."""
    return tuple(
        (max(t[0] for t in slot), max(t[1] for t in slot)) for slot in zip(*types, strict=True)
    )


# -------------------------------------------------------------- contracts


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """What the SQL needs of one contract: its layers, its term, and its plans.

    Layer n sets bit n of a record's variant key.  A layer with a `when`
    condition has its SQL boolean in ``conditions[n]`` (its `from` date
    included); a layer with only a `from` date has that date in
    ``from_dates[n]``, and a time-limited discount (`for N months`, `until`)
    its last day in ``until_dates[n]``: the engine compares those in joined
    columns, so they are data, not SQL of their own contract.
    """

    contract: ResolvedContract
    plans: Plans
    conditions: tuple[str | None, ...]
    from_dates: tuple[date | None, ...]
    term: tuple[date, date] | None
    until_dates: tuple[date | None, ...] = ()

    def plan(self, key: int) -> RatingPlan:
        """The plan of variant key ``key`` (bit n: conditional layer n applies)."""
        return self.plans.for_key(tuple(bool(key >> n & 1) for n in range(len(self.conditions))))


def meter_columns(catalog: Catalog) -> dict[str, Num]:
    """The SQL column of each usage key: m0, m1, ... (12 digits, 6 decimals at most)."""
    return {
        m.usage_key: col(f"m{i}", METER_DIGITS, METER_SCALE) for i, m in enumerate(catalog.meters)
    }


def compile_contract(
    c: ResolvedContract,
    catalog: Catalog,
    plans: Plans | None = None,
    cache: ShapeCache | None = None,
) -> CompiledContract:
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
    if cache is None:
        cache = ShapeCache(meter_columns(catalog))
    cond = _Conditions(cache.meters)
    conditions: list[str | None] = []
    from_dates: list[date | None] = []
    until_dates: list[date | None] = []
    for layer in conditional:
        if layer.until is not None and layer.from_date is None:
            # A time-limited discount: its condition is `period.start <= until`.
            conditions.append(None)
            from_dates.append(None)
            until_dates.append(layer.until)
            continue
        until_dates.append(None)
        if layer.condition is None:
            conditions.append(None)
            from_dates.append(layer.from_date)
            continue
        parts = []
        if layer.from_date is not None:
            parts.append(f"(pstart >= DATE '{layer.from_date.isoformat()}')")
        parts.append(cond.boolean(layer.condition))
        conditions.append("(" + " AND ".join(parts) + ")")
        from_dates.append(None)
    term = c.static_terms.get(("term",))
    compiled = CompiledContract(
        c,
        plans if plans is not None else Plans(c, catalog),
        tuple(conditions),
        tuple(from_dates),
        None if term is None else term.value,
        tuple(until_dates),
    )
    for key in range(2 ** len(conditional)):
        cache.check(compiled.plan(key))
    return compiled
