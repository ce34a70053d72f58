"""Warnings: things that are legal but probably not what the author meant.

Runs only on rulesets that checked clean, so every name here resolves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from . import _ast as A
from ._checker import CheckResult, _within
from ._decimal import CONTEXT
from ._errors import Diagnostic, PricingError, Span
from ._invoice import decimal_text
from ._plan import Catalog, Plans, fee_factor, usage_refs
from ._rating import rate
from ._terms import STANDARD, AllowanceSpec, MeterInfo, RateSpec, ResolvedContract, Sourced, TermKey
from ._usage import Period, Usage

__all__ = ["lint"]

_INF = Decimal("Infinity")


def _warn(code: str, message: str, span: Span, hint: str | None = None) -> Diagnostic:
    return Diagnostic.at(code, message, span, hint=hint, severity="warning")


def _describe(key: TermKey) -> str:
    if key[0] == "meter":
        return f"`{key[1]}` {key[2]}"
    if key[0] == "addon_price":
        return f"the price of add-on `{key[1]}`"
    if key[0] == "discount_pct":
        limited = f" ({key[3]})" if len(key) > 3 else ""
        return f"the discount on `{key[1]}`{limited}"
    if key[0] == "discount_fixed":
        return "the fixed discount" + (f" ({key[2]})" if len(key) > 2 else "")
    if key[0] == "line_minimum":
        return f"the minimum of `{key[1]}`"
    if key[0] == "cap":
        return f"the cap on `{key[1]}`"
    return f"`{' '.join(key)}`"


def _stmt_keys(stmt: A.Stmt, meters: Mapping[str, MeterInfo]) -> list[TermKey]:
    """The term keys a statement sets (mirrors the checker, without validation)."""
    if isinstance(stmt, A.BaseStmt):
        return [("base",)]
    if isinstance(stmt, A.MeterTerm):
        keys: list[TermKey] = []
        if stmt.allowance is not None:
            keys.append(("meter", stmt.meter.text, "allowance"))
        if stmt.rate is not None:
            keys.append(("meter", stmt.meter.text, "rate"))
        return keys
    if isinstance(stmt, A.AddonsStmt):
        return [("addons",)]
    if isinstance(stmt, A.AddonStmt):
        return [("addon_price", stmt.id.text)]
    if isinstance(stmt, A.DiscountPercent):
        # A time-limited discount is a layer of its own, not a restatement;
        # two with different windows are a step-down, not a repeat.
        limited = ("limited", _limit_text(stmt.limit)) if stmt.limit else ()
        return [("discount_pct", w.text, *limited) for w in stmt.targets]
    if isinstance(stmt, A.DiscountFixed):
        return [("discount_fixed", *((_limit_text(stmt.limit),) if stmt.limit else ()))]
    if isinstance(stmt, A.CapStmt):
        return [("cap", stmt.line.text)]
    if isinstance(stmt, A.MinimumStmt):
        return [("minimum",)] if stmt.target is None else [("line_minimum", stmt.target.text)]
    if isinstance(stmt, A.RoundingStmt):
        return [("rounding",)]
    if isinstance(stmt, A.TermStmt):
        return [("term",)]
    if isinstance(stmt, A.CommitmentStmt):
        return [(stmt.kind,)]
    return []


def _limit_text(limit: A.TimeLimit) -> str:
    if limit.months is not None:
        return f"for {limit.months.text} months"
    assert limit.until is not None
    return f"until {limit.until.text}"


def _twice_in_block(body: Iterable[A.Stmt], meters: Mapping[str, MeterInfo]) -> list[Diagnostic]:
    out = []
    seen: dict[TermKey, Span] = {}
    for stmt in body:
        for key in _stmt_keys(stmt, meters):
            if key in seen:
                out.append(
                    _warn(
                        "W102",
                        f"{_describe(key)} is already set in this block, on line {seen[key].line}; "
                        "this later value wins",
                        stmt.span,
                        hint="keep one of the two",
                    )
                )
            seen[key] = stmt.span
        if isinstance(stmt, (A.WhenBlock, A.FromBlock)):
            out.extend(_twice_in_block(stmt.body, meters))
    return out


# ------------------------------------------------------------ unreachable `when`


def _interval(e: A.Expr) -> dict[str, tuple[Decimal, Decimal]] | None:
    """For a conjunction of `meter OP number` comparisons: the bounds it implies per meter."""
    if isinstance(e, A.BinaryExpr) and e.op == "and":
        left, right = _interval(e.left), _interval(e.right)
        if left is None or right is None:
            return left or right or None
        merged = dict(left)
        for k, (lo, hi) in right.items():
            plo, phi = merged.get(k, (Decimal(0), _INF))
            merged[k] = (max(lo, plo), min(hi, phi))
        return merged
    if not isinstance(e, A.BinaryExpr) or e.op not in ("<", "<=", ">", ">=", "=="):
        return None
    ref, num, op = e.left, e.right, e.op
    if isinstance(ref, A.NumberExpr) and isinstance(num, A.RefExpr):
        ref, num = num, ref
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[op]
    if not (isinstance(ref, A.RefExpr) and isinstance(num, A.NumberExpr)):
        return None
    v = num.value.value
    # Meters are never negative; strict bounds are nudged by a tiny step so
    # `mau > 5 and mau < 5` is empty while `mau > 5 and mau < 6` is not.
    eps = Decimal("1e-12")
    lo, hi = {
        "<": (Decimal(0), v - eps),
        "<=": (Decimal(0), v),
        ">": (v + eps, _INF),
        ">=": (v, _INF),
        "==": (v, v),
    }[op]
    return {ref.name.text: (max(lo, Decimal(0)), hi)}


def _never_holds(e: A.Expr) -> bool:
    if isinstance(e, A.BinaryExpr) and e.op == "or":
        return _never_holds(e.left) and _never_holds(e.right)
    if (
        isinstance(e, A.BinaryExpr)
        and isinstance(e.left, A.NumberExpr)
        and isinstance(e.right, A.NumberExpr)
    ):
        a, b = e.left.value.value, e.right.value.value
        return not {
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
            "==": a == b,
            "!=": a != b,
        }.get(e.op, True)
    bounds = _interval(e)
    return bounds is not None and any(lo > hi for lo, hi in bounds.values())


def _unreachable_whens(decl: A.PlanDecl) -> list[Diagnostic]:
    return [
        _warn(
            "W103",
            "this `when` condition can never hold, so its terms never apply",
            stmt.condition.span,
            hint="check the comparison; meters are never negative",
        )
        for stmt in decl.body
        if isinstance(stmt, A.WhenBlock) and _never_holds(stmt.condition)
    ]


# ------------------------------------------------------------ terms of a contract


def _allowance_units(
    c: ResolvedContract, meter: str, terms: Mapping[TermKey, Sourced[Any]]
) -> Decimal:
    spec_s = terms.get(("meter", meter, "allowance"))
    if spec_s is None:
        return Decimal(0)
    spec: AllowanceSpec = spec_s.value
    if spec.kind == "percent":
        mau = terms[("meter", "mau", "allowance")].value.value
        return Decimal(int(mau * spec.value / 100))
    return spec.value


def _dead_tiers(decl: A.PlanDecl, c: ResolvedContract) -> list[Diagnostic]:
    out = []
    for key, value in c.static_terms.items():
        if key[0] != "meter" or key[2] != "rate":
            continue
        spec: RateSpec = value.value
        if spec.mode == "flat":
            continue
        free = _allowance_units(c, key[1], c.static_terms)
        allowance = c.static_terms.get(("meter", key[1], "allowance"))
        where = value.span
        if not _within(where, decl):
            if allowance is None or not _within(allowance.span, decl):
                continue
            where = allowance.span
        for tier in spec.tiers:
            # A tier with a flat fee still bills it when reached, units free or not.
            if tier.up_to is not None and tier.up_to <= free and tier.fee is None:
                out.append(
                    _warn(
                        "W104",
                        f"the tier up to {decimal_text(tier.up_to)} lies inside the "
                        f"{decimal_text(free)} included units of `{key[1]}`, so it never prices "
                        "anything",
                        where,
                        hint="remove the tier, or lower the included amount",
                    )
                )
    return out


def _free_addons(decl: A.PlanDecl, c: ResolvedContract, catalog: Catalog) -> list[Diagnostic]:
    listed = c.static_terms.get(("addons",))
    if listed is None or listed.span is STANDARD:
        return []
    out = []
    for addon in listed.value:
        price_s = c.static_terms.get(("addon_price", addon))
        price = price_s.value if price_s else catalog.addons[addon].price
        span = price_s.span if price_s else listed.span
        if price == 0 and (_within(span, decl) or _within(listed.span, decl)):
            out.append(
                _warn(
                    "W105",
                    f"add-on `{addon}` is billed but priced at zero",
                    span,
                    hint="if it is included for free, say so in a comment; otherwise set its price",
                )
            )
    return out


def _probe_points(c: ResolvedContract, meter: MeterInfo) -> list[Decimal]:
    points = {Decimal(0), Decimal(1)}
    for layer in c.layers:
        for key, value in layer.patch.items():
            if key[:2] == ("meter", meter.id) or (
                meter.id == "concurrency" and key[1:2] == ("mau",)
            ):
                v = value.value
                if isinstance(v, RateSpec):
                    for t in v.tiers:
                        if t.up_to is not None:
                            points.update({t.up_to - 1, t.up_to, t.up_to + 1})
                elif isinstance(v, AllowanceSpec):
                    base = v.value
                    if v.kind == "percent":
                        mau = c.static_terms.get(("meter", "mau", "allowance"))
                        base = Decimal(int(mau.value.value * v.value / 100)) if mau else base
                    points.update({base - 1, base, base + 1})
        if layer.condition is not None and meter.usage_key in usage_refs(layer.condition):
            for n in _numbers(layer.condition):
                points.update({n - 1, n, n + 1})
    top = max(points)
    points.update({top * 2, top * 10 + 1000})
    return sorted(p for p in points if p >= 0)


def _numbers(e: A.Expr) -> list[Decimal]:
    if isinstance(e, A.NumberExpr):
        return [e.value.value]
    if isinstance(e, A.BinaryExpr):
        return _numbers(e.left) + _numbers(e.right)
    if isinstance(e, A.NotExpr):
        return _numbers(e.operand)
    return []


def _probe_periods(c: ResolvedContract) -> list[Period | None]:
    periods: list[Period | None] = []
    term = c.static_terms.get(("term",))
    if term is not None:
        start = term.value[0]
        periods.append(Period.month(start.year, start.month))
    for layer in c.layers:
        if layer.from_date is not None:
            periods.append(Period.month(layer.from_date.year, layer.from_date.month))
    if not periods:
        periods.append(None if not c.uses_period else Period.month(2026, 1))
    return periods


def _price_drops(decl: A.PlanDecl, c: ResolvedContract, catalog: Catalog) -> list[Diagnostic]:
    out = []
    # Flat and graduated rates, allowances and every adjustment only ever add
    # as usage grows; a total can fall only through a volume tier or a `when`
    # rule.  So only meters with a volume tier, or named in a condition, are
    # probed, and only for contracts that wrote such a clause themselves.
    # (Rounding can still cost a cent here and there: see the walk below.)
    conditioned: set[str] = set()
    own_clause = False
    for layer in c.layers:
        if layer.condition is not None:
            conditioned.update(usage_refs(layer.condition))
            own_clause |= _within(layer.span, decl)
    for meter in catalog.meters:
        key = ("meter", meter.id, "rate")
        own_volume = any(
            key in layer.patch
            and layer.patch[key].value.mode == "volume"
            and _within(layer.patch[key].span, decl)
            for layer in c.layers
        )
        if not (own_volume or (own_clause and meter.usage_key in conditioned)):
            continue
        points = _probe_points(c, meter)
        for period in _probe_periods(c):
            ended, drop = _first_drop(c, meter, period, points, catalog)
            if drop is not None:
                before_q, before, q, total = drop
                out.append(
                    _warn(
                        "W106",
                        f"the total goes down as `{meter.usage_key}` goes up: "
                        f"{decimal_text(before)} at {decimal_text(before_q)}, but "
                        f"{decimal_text(total)} at {decimal_text(q)}",
                        decl.id.span,
                        hint="a volume tier or a `when` rule makes more usage cheaper; "
                        "graduated tiers avoid the cliff",
                    )
                )
            if ended:
                # After a drop (only the first is reported) or a rating error
                # (the same at every point), this meter is done.
                break
    return out


# ------------------------------------------------------------ probing, pruned
#
# The W106 check compares the totals at consecutive probe points and reports
# the first pair where the total falls.  Rating is what costs (a full invoice
# with explanations, about 60 microseconds), so the walk rates only the
# points whose total can matter and skips the rest, with the same result.
#
# Why skipping is safe.  For one period, the terms in force at a usage value
# depend only on which layers apply (the `from` layers on the period, the
# `when` layers on their conditions): call that the signature of the point.
# For fixed terms, the total is a non-decreasing function of the probed
# meter's usage q when `_monotone` says so:
#
# - fee lines and the other meters' lines do not depend on q (their usage is
#   0 in every probe, and allowances depend on terms, not on usage);
# - the probed meter's line is round(f(q)) with f non-decreasing for a flat
#   or graduated rate (not for a volume table), as prices, like every amount
#   in a checked ruleset, are never negative (E205); rounding to the minor
#   unit is non-decreasing too;
# - adjustments run on the running subtotal R, which is always a multiple of
#   the minor unit (a sum of rounded amounts):
#   * percentage discounts that do not reach the line are constants; one
#     that does adds round(-B*p) to B = the line plus constants, and
#     B + round(-B*p) is a nearest multiple of the minor unit to B*(1-p),
#     which is non-decreasing in B for 0 <= p <= 1.  Two such discounts are
#     not: each rounds on its own, and 0.01 - 0.00 - 0.00 > 0.02 - 0.01 - 0.01
#     at 45% each, so then every point is rated;
#   * a fixed discount and caps on other lines subtract min(E, max(R, 0))
#     rounded, with E >= 0 constant: R for R < 0, 0 up to E, then R plus a
#     constant -- non-decreasing in R;
#   * a cap on the probed line is not modelled (its net amount and the
#     subtotal move together, with separate roundings), so every point is
#     rated;
#   * the minimum true-up gives max(R, M) when M (the prorated minimum) is a
#     multiple of the minor unit; otherwise a tie in rounding M - R could
#     depend on R, so every point is rated.
#
# So within a run of consecutive points with the same signature and monotone
# terms, no pair can show a drop: only the last point before a change of
# signature and the first point after it are compared, and both are rated.
# Points in runs that are not monotone are all rated, as before.
#
# Rating errors: those that do not depend on the usage value (a period
# outside the term, a period the contract needs) are raised at every point,
# so the first rated point finds them and the walk stops, as before.  The
# only value-dependent error is a product too long to be exact (E401); with
# every probe point below 10**20 and at most 12 decimal places, and every
# ruleset number checked below 10**15 with at most 9 (E225), no product or
# sum comes near the 100 digits rating computes with.  Larger points (a
# `when` threshold is not size-checked) turn pruning off for the walk.

_SMALL = Decimal(10) ** 20
_FINEST = -12


def _first_drop(
    c: ResolvedContract,
    meter: MeterInfo,
    period: Period | None,
    points: list[Decimal],
    catalog: Catalog,
) -> tuple[bool, tuple[Decimal, Decimal, Decimal, Decimal] | None]:
    """Whether the walk ended early, and the first fall: (q0, total0, q1, total1).

    It ends early at the first fall, or when rating raises, which ends the
    probing of this meter exactly as an exhaustive walk would.
    """
    previous: tuple[Decimal, Decimal] | None = None
    try:
        plans = Plans(c, catalog)
    except Exception:
        # Compiling a condition failed (a RecursionError, say): rate through
        # the interpreter alone, which meets the failure where it did before.
        plans = None
    for q, needed in zip(points, _points_to_rate(plans, meter, period, points), strict=True):
        if not needed:
            continue
        try:
            total = rate(c, Usage({meter.usage_key: q}, period), catalog, plans).total
        except PricingError:
            return True, None
        if previous is not None and total < previous[1]:
            return True, (previous[0], previous[1], q, total)
        previous = (q, total)
    return False, None


def _points_to_rate(
    plans: Plans | None, meter: MeterInfo, period: Period | None, points: list[Decimal]
) -> list[bool]:
    """Which probe points the walk must rate (see the comment above)."""
    n = len(points)
    if plans is None or not all(q < _SMALL and _exponent(q) >= _FINEST for q in points):
        return [True] * n
    sigs = [_signature(plans, {meter.usage_key: q}, period) for q in points]
    monotone: dict[tuple[bool, ...] | None, bool] = {None: False}
    for sig in sigs:
        if sig is not None and sig not in monotone:
            monotone[sig] = _monotone(plans, sig, meter, period)
    needed = []
    for j, sig in enumerate(sigs):
        starts_run = j > 0 and sigs[j - 1] != sig
        ends_run = j < n - 1 and sigs[j + 1] != sig
        needed.append(not monotone[sig] or starts_run or ends_run)
    if n and not any(needed):
        # One monotone run: no drop is possible, but rate one point so that
        # an error is found (and ends the probing) exactly as before.
        needed[0] = True
    return needed


def _exponent(q: Decimal) -> int:
    exponent = q.as_tuple().exponent
    return exponent if isinstance(exponent, int) else _FINEST - 1


def _signature(
    plans: Plans, values: Mapping[str, Decimal], period: Period | None
) -> tuple[bool, ...] | None:
    """Which layers apply, decided as rating decides it; None if that fails.

    A point whose signature cannot be worked out (it would raise) is rated,
    so the interpreter meets it, and reports it, exactly as before.
    """
    try:
        return plans.select(values, period)[0]
    except Exception:
        return None


def _monotone(plans: Plans, sig: tuple[bool, ...], meter: MeterInfo, period: Period | None) -> bool:
    """Whether, with these layers applied, the total cannot fall as the meter's usage rises."""
    plan = plans.for_key(sig)
    if any(m.meter.id == meter.id and m.mode == "volume" for m in plan.meters):
        return False
    reaching = 0
    for step in plan.adjustments:
        # `usage` reaches every usage line; a line code reaches that line only.
        reaches = step.target in (meter.line_code, "usage")
        if step.kind == "pct" and reaches:
            reaching += 1
            if not 0 <= step.value <= 100:
                return False
        elif step.kind in ("cap", "line_min") and (reaches or step.target not in ("addons",)):
            return False
        elif step.kind == "minimum":
            factor = fee_factor(period, plan.term)[0]
            amount = CONTEXT.multiply(step.value, factor)
            grid = Decimal(1).scaleb(-plan.minor_units)
            if amount != amount.quantize(grid, context=CONTEXT):
                return False
    return reaching <= 1


def lint(files: Iterable[A.File], result: CheckResult) -> list[Diagnostic]:
    """Every warning for a ruleset that checked clean."""
    catalog = Catalog(result.meters, result.addons)
    meters = {m.id: m for m in result.meters}
    out: list[Diagnostic] = []
    for f in files:
        for decl in f.decls:
            if not isinstance(decl, A.PlanDecl):
                continue
            c = result.contracts.get(decl.id.text)
            if c is None or c.span != decl.span:
                continue
            out.extend(_twice_in_block(decl.body, meters))
            out.extend(_repeats_parent(decl, c, result))
            out.extend(_unreachable_whens(decl))
            out.extend(_dead_tiers(decl, c))
            out.extend(_free_addons(decl, c, catalog))
            out.extend(_price_drops(decl, c, catalog))
    return out


def _value(s: Sourced[Any] | None) -> Any:
    return None if s is None else s.value


def _repeats_parent(decl: A.PlanDecl, c: ResolvedContract, result: CheckResult) -> list[Diagnostic]:
    if decl.parent is None:
        return []
    parent = result.contracts.get(decl.parent.text)
    if parent is None:
        return []
    own = next((la for la in c.layers if la.label == f"{decl.kind} {decl.id.text}"), None)
    if own is None:
        return []
    out = []
    for key, value in own.patch.items():
        if key[0] in ("discount_pct", "rounding", "base_per", "addon_per"):
            continue
        inherited = parent.static_terms.get(key)
        # A fee repeats its parent's only at the same price billed as often.
        per = {"base": ("base_per",), "addon_price": ("addon_per", *key[1:])}.get(key[0])
        if per is not None and _value(own.patch.get(per)) != _value(parent.static_terms.get(per)):
            continue
        if inherited is not None and inherited.value == value.value:
            out.append(
                _warn(
                    "W101",
                    f"{_describe(key)} repeats the value inherited from `{parent.id}`",
                    value.span,
                    hint="remove this line; the value is inherited",
                )
            )
    return out
