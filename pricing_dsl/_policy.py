"""Finance guardrails: policies that limit what contracts may grant, and recorded approvals.

A ``policy "NAME" { … }`` lists limits (a net price floor, an allowance
floor or ceiling, a maximum discount, a maximum term).  Every *contract* of
the ruleset is held to every policy, over the terms in force under every
combination of its layers -- its own clauses, what it inherits, each `from`
block and each `when` rule, whether or not usage ever triggers it.  A contract
that goes past a limit is an error, unless an ``approved "REF" for TERM``
clause of that contract records the exception; then it is listed by
``pricing check --approvals``.

This runs after the checker, on resolved contracts (``ResolvedContract.layers``),
and never changes what rating computes.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from itertools import product
from typing import Any

from . import _ast as A
from ._checker import CheckResult, possible_lines
from ._decimal import CONTEXT
from ._errors import Diagnostic, Span
from ._suggest import did_you_mean
from ._terms import AllowanceSpec, Layer, MeterInfo, RateSpec, ResolvedContract, Sourced, TermKey

__all__ = ["Approval", "Finding", "Policy", "PolicyLimit", "PolicyResult", "check_policies"]

HUNDRED = Decimal(100)
_MONTH_UNITS = ("month", "months")


# ------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class PolicyLimit:
    """One checked limit of a policy."""

    policy: str
    kind: str  # "floor" | "percent" | "included" | "discount" | "term"
    subject: str  # as written: "mau overage", "voice", "mau included", "discount", "term"
    meter: str | None
    value: Decimal
    text: str  # the limit in words: "at least 0.08 per user"
    unit: str  # "user", "month"…; "" for percentages
    targets: tuple[str, ...]  # discount limits only
    currency: str | None  # price floors bind only contracts in this currency (None: all)
    span: Span

    @property
    def where(self) -> str:
        return f"{self.policy}, {self.span.path}:{self.span.line}"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    limits: tuple[PolicyLimit, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Approval:
    """``approved "REF" for SUBJECT [down to …|up to …]`` in one contract."""

    contract: str
    reference: str
    subject: str  # as written: "mau overage", "mau", "mau included", "discount", "term"
    meter: str | None
    aspect: str  # "meter" | "rate" | "included" | "discount" | "term"
    bound: Decimal | None  # the approved limit, if any
    bound_kind: str | None  # the limit kind the bound fits: "floor", "percent", …
    bound_text: str  # "down to 0.045 per user"; "" without a bound
    span: Span

    def covers(self, limit: PolicyLimit) -> bool:
        """Whether this approval names the term ``limit`` is about."""
        if self.bound_kind is not None and self.bound_kind != limit.kind:
            return False
        if self.aspect in ("discount", "term"):
            return limit.kind == self.aspect
        if limit.meter != self.meter:
            return False
        if self.aspect == "rate":
            return limit.kind == "floor"
        if self.aspect == "included":
            return limit.kind == "included"
        return limit.kind in ("floor", "percent")


@dataclass(frozen=True, slots=True)
class Finding:
    """A contract going past a policy limit, in one combination of its layers."""

    contract: str
    limit: PolicyLimit
    effective: str  # the effective value in words: "0.079 per user"
    value: Decimal  # the number compared with the limit (and with an approval's bound)
    detail: str  # the sentence the diagnostic says
    clause: Span  # the clause that sets the value past the limit
    span: Span  # where the diagnostic points: the clause, or the contract's `extends`
    inherited: bool

    @property
    def term(self) -> str:
        return self.limit.subject


@dataclass(frozen=True, slots=True)
class RecordedException:
    """A finding an approval turned into a recorded exception."""

    finding: Finding
    approval: Approval

    def to_dict(self) -> dict[str, Any]:
        f, a = self.finding, self.approval
        return {
            "contract": f.contract,
            "term": f.term,
            "policy": f.limit.policy,
            "limit": f.limit.text,
            "effective": f.effective,
            "reference": a.reference,
            "approved_limit": a.bound_text or None,
            "clause": f"{f.clause.path}:{f.clause.line}:{f.clause.column}",
            "policy_clause": f"{f.limit.span.path}:{f.limit.span.line}:{f.limit.span.column}",
            "approval": f"{a.span.path}:{a.span.line}:{a.span.column}",
        }


@dataclass(frozen=True, slots=True)
class PolicyResult:
    policies: tuple[Policy, ...] = ()
    approvals: Mapping[str, tuple[Approval, ...]] = field(default_factory=dict)
    exceptions: tuple[RecordedException, ...] = ()
    errors: tuple[Diagnostic, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()


# ------------------------------------------------------------ helpers


def _num(d: Decimal) -> str:
    """A number in plain digits, without trailing fractional zeros (0.0790 -> 0.079)."""
    text = f"{d:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit + "s"


def _add_months(d: date, n: int) -> date:
    month = d.month - 1 + n
    year = d.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def term_months(start: date, end: date) -> int:
    """How many months a term runs, a part month counting as a whole one.

    ``2026-07-15 to 2027-07-14`` runs 12 months; a day more makes it 13.
    """
    n = (end.year - start.year) * 12 + end.month - start.month
    n = max(n, 0)
    while _add_months(start, n) <= end:
        n += 1
    while n > 0 and _add_months(start, n - 1) > end:
        n -= 1
    return n


def _within(span: Span, decl: A.PlanDecl) -> bool:
    return span.path == decl.span.path and decl.span.line <= span.line <= decl.span.end_line


def combinations(
    c: ResolvedContract, keys: Sequence[TermKey]
) -> Iterator[dict[TermKey, Sourced[Any]]]:
    """Every set of values ``keys`` can have in force together, under any choice of layers.

    Unconditional layers always apply; any set of `when` rules may hold
    together (their conditions are not solved), and a `from` block brings
    every earlier `from` block with it.  For each key the value in force is
    the last applying layer's.  Each distinct combination is yielded once.
    """
    layers = c.layers
    setters = [[i for i, layer in enumerate(layers) if k in layer.patch] for k in keys]
    always = {i for i, layer in enumerate(layers) if not layer.conditional}
    seen: set[tuple[int | None, ...]] = set()
    for choice in product(*([None, *s] for s in setters)):
        active = set(always)
        active.update(i for i in choice if i is not None)
        dates = [layers[i].from_date for i in active if layers[i].from_date is not None]
        if dates:
            latest = max(d for d in dates if d is not None)
            active.update(
                i
                for i, layer in enumerate(layers)
                if layer.from_date is not None and layer.from_date <= latest
            )
        in_force = tuple(max((i for i in s if i in active), default=None) for s in setters)
        if in_force != choice or choice in seen:
            continue
        seen.add(choice)
        yield {k: layers[i].patch[k] for k, i in zip(keys, choice, strict=True) if i is not None}


def _layer_of(c: ResolvedContract, value: Sourced[Any]) -> Layer | None:
    for layer in c.layers:
        if any(v is value for v in layer.patch.values()):
            return layer
    return None


# ------------------------------------------------------------ the checker


@dataclass(slots=True)
class _PolicyChecker:
    files: Sequence[A.File]
    result: CheckResult
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    decls: dict[str, A.PlanDecl] = field(default_factory=dict)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.errors.append(Diagnostic.at(code, message, span, hint=hint))

    @property
    def meters(self) -> dict[str, MeterInfo]:
        return {m.id: m for m in self.result.meters}

    # -- policies
    def policies(self) -> tuple[Policy, ...]:
        out: list[Policy] = []
        names: dict[str, Span] = {}
        for f in self.files:
            currency = next((d.code.text for d in f.decls if isinstance(d, A.CurrencyStmt)), None)
            for decl in f.decls:
                if isinstance(decl, A.PlanDecl):
                    self.decls.setdefault(decl.id.text, decl)
                if not isinstance(decl, A.PolicyDecl):
                    continue
                if decl.name in names:
                    self.error(
                        "E240",
                        f'there is already a policy named "{decl.name}" (at {names[decl.name]})',
                        decl.name_span,
                        hint="give each policy its own name, or merge the two",
                    )
                    continue
                names[decl.name] = decl.name_span
                limits = [self.limit(decl, lim, currency) for lim in decl.limits]
                out.append(Policy(decl.name, tuple(x for x in limits if x is not None), decl.span))
        return tuple(out)

    def meter_of(self, word: A.Word) -> MeterInfo | None:
        meter = self.meters.get(word.text)
        if meter is None:
            self.error(
                "E240",
                f"a policy limits `{word.text}`, which is not a meter"
                + did_you_mean(word.text, self.meters),
                word.span,
                hint="limit one of the meters: " + ", ".join(self.meters),
            )
        return meter

    def limit(
        self, decl: A.PolicyDecl, lim: A.PolicyLimit, currency: str | None
    ) -> PolicyLimit | None:
        if lim.kind in ("floor", "percent", "included"):
            assert lim.meter is not None
            meter = self.meter_of(lim.meter)
            if meter is None:
                return None
            if lim.kind == "floor":
                assert lim.unit is not None
                if lim.value.value < 0:
                    self.error("E240", "a price floor cannot be negative", lim.value.span)
                    return None
                if lim.unit.text != meter.unit:
                    self.error(
                        "E240",
                        f"`{meter.id}` is priced per {meter.unit}, not per {lim.unit.text}",
                        lim.unit.span,
                        hint=f"write `{meter.id}{' overage' if lim.overage else ''} at least "
                        f"{lim.value.text} per {meter.unit}`",
                    )
                    return None
                subject = meter.id + (" overage" if lim.overage else "")
                return PolicyLimit(
                    decl.name,
                    "floor",
                    subject,
                    meter.id,
                    lim.value.value,
                    f"at least {lim.value.text} per {meter.unit}",
                    meter.unit,
                    (),
                    currency,
                    lim.span,
                )
            if lim.kind == "percent":
                if meter.id != "concurrency":
                    self.error(
                        "E240",
                        f"`{meter.id}` has no percentage allowance to limit; only `concurrency` "
                        "does",
                        lim.value.span,
                        hint=f"limit a price (`{meter.id} at least PRICE per {meter.unit}`) or "
                        f"an allowance (`{meter.id} included at most N`)",
                    )
                    return None
                if lim.value.value > HUNDRED:
                    self.error("E240", f"{lim.value.text}% is above 100%", lim.value.span)
                    return None
                return PolicyLimit(
                    decl.name,
                    "percent",
                    meter.id,
                    meter.id,
                    lim.value.value,
                    f"at least {lim.value.text}%",
                    "",
                    (),
                    None,
                    lim.span,
                )
            if lim.unit is not None and lim.unit.text not in (meter.unit, _plural(meter.unit)):
                self.error(
                    "E240",
                    f"`{meter.id}` counts {_plural(meter.unit)}, not {lim.unit.text}",
                    lim.unit.span,
                    hint=f"write `{meter.id} included at most {lim.value.text} "
                    f"{_plural(meter.unit)}`",
                )
                return None
            return PolicyLimit(
                decl.name,
                "included",
                f"{meter.id} included",
                meter.id,
                lim.value.value,
                f"at most {lim.value.text} {_plural(meter.unit)}",
                meter.unit,
                (),
                None,
                lim.span,
            )
        if lim.kind == "discount":
            if lim.value.value > HUNDRED:
                self.error("E240", f"{lim.value.text}% is above 100%", lim.value.span)
                return None
            known = {"usage", "addons", "base"}
            known.update(m.line_code for m in self.result.meters)
            known.update(f"addon.{a}" for a in self.result.addons)
            ok = True
            for w in lim.targets:
                if w.text not in known:
                    self.error(
                        "E240",
                        f"a policy limits discounts on `{w.text}`, which is not a line or a group"
                        + did_you_mean(w.text, known),
                        w.span,
                        hint="name `usage`, `addons`, `base`, a usage line or `addon.ID`",
                    )
                    ok = False
            if not ok:
                return None
            targets = tuple(w.text for w in lim.targets)
            return PolicyLimit(
                decl.name,
                "discount",
                "discount",
                None,
                lim.value.value,
                f"at most {lim.value.text}% on {', '.join(targets)}",
                "",
                targets,
                None,
                lim.span,
            )
        assert lim.unit is not None
        if lim.unit.text not in _MONTH_UNITS or lim.value.value != lim.value.value.to_integral():
            self.error(
                "E240",
                f"a term limit is a whole number of months, not `{lim.value.text} {lim.unit.text}`",
                lim.span,
                hint="write `term at most 36 months`",
            )
            return None
        return PolicyLimit(
            decl.name,
            "term",
            "term",
            None,
            lim.value.value,
            f"at most {lim.value.text} months",
            "month",
            (),
            None,
            lim.span,
        )

    # -- approvals
    def approvals(self) -> dict[str, tuple[Approval, ...]]:
        out: dict[str, tuple[Approval, ...]] = {}
        for f in self.files:
            for decl in f.decls:
                if not isinstance(decl, A.PlanDecl):
                    continue
                found: list[Approval] = []
                subjects: dict[tuple[str | None, str], Span] = {}
                for stmt in decl.body:
                    if not isinstance(stmt, A.ApprovedStmt):
                        continue
                    if decl.kind != "contract":
                        self.error(
                            "E246",
                            f"plan `{decl.id.text}` cannot carry an approval; approvals "
                            "belong in contracts",
                            stmt.span,
                            hint="policies bind contracts: record the approval in each contract "
                            "that needs it",
                        )
                        continue
                    approval = self.approval(decl, stmt)
                    if approval is None:
                        continue
                    key = (approval.meter, approval.aspect)
                    if key in subjects:
                        self.error(
                            "E246",
                            f"`{approval.subject}` is already approved in `{decl.id.text}` "
                            f"(at {subjects[key]})",
                            stmt.span,
                            hint="keep one approval per term",
                        )
                        continue
                    subjects[key] = stmt.span
                    found.append(approval)
                if found and decl.id.text in self.result.contracts:
                    out[decl.id.text] = tuple(found)
        return out

    def approval(self, decl: A.PlanDecl, stmt: A.ApprovedStmt) -> Approval | None:
        meter: MeterInfo | None = None
        if stmt.meter is not None:
            meter = self.meters.get(stmt.meter.text)
            if meter is None:
                self.error(
                    "E246",
                    f"`{stmt.meter.text}` is not a meter"
                    + did_you_mean(stmt.meter.text, self.meters),
                    stmt.meter.span,
                    hint="approve a meter's price (`mau overage`), its allowance "
                    "(`mau included`), `discount` or `term`",
                )
                return None
        subject = {
            "meter": meter.id if meter else "",
            "rate": f"{meter.id if meter else ''} overage",
            "included": f"{meter.id if meter else ''} included",
            "discount": "discount",
            "term": "term",
        }[stmt.aspect]
        bound: Decimal | None = None
        bound_kind: str | None = None
        bound_text = ""
        lim = stmt.limit
        if lim is not None:
            bound = lim.value.value
            fits: set[str] = set()
            if lim.direction == "down" and not lim.percent and meter is not None:
                fits = {"floor"} if stmt.aspect in ("meter", "rate") else set()
                assert lim.unit is not None
                if fits and lim.unit.text != meter.unit:
                    self.error(
                        "E246",
                        f"`{meter.id}` is priced per {meter.unit}, not per {lim.unit.text}",
                        lim.unit.span,
                        hint=f"write `down to {lim.value.text} per {meter.unit}`",
                    )
                    return None
                bound_kind = "floor"
                bound_text = f"down to {lim.value.text} per {meter.unit}"
            elif lim.direction == "down" and lim.percent and meter is not None:
                fits = {"percent"} if stmt.aspect == "meter" else set()
                bound_kind = "percent"
                bound_text = f"down to {lim.value.text}%"
            elif lim.direction == "up" and lim.percent:
                fits = {"discount"} if stmt.aspect == "discount" else set()
                bound_kind = "discount"
                bound_text = f"up to {lim.value.text}%"
            elif lim.direction == "up" and not lim.percent:
                if stmt.aspect == "term":
                    if lim.unit is None or lim.unit.text not in _MONTH_UNITS:
                        fits = set()
                    else:
                        fits = {"term"}
                    bound_kind = "term"
                    bound_text = f"up to {lim.value.text} months"
                elif stmt.aspect == "included" and meter is not None:
                    unit_ok = lim.unit is None or lim.unit.text in (meter.unit, _plural(meter.unit))
                    fits = {"included"} if unit_ok else set()
                    bound_kind = "included"
                    bound_text = f"up to {lim.value.text} {_plural(meter.unit)}"
            if not fits:
                self.error(
                    "E246",
                    f"`{lim_text(lim)}` is not a limit for `{subject}`",
                    lim.span,
                    hint=_bound_hint(stmt.aspect, meter),
                )
                return None
        return Approval(
            decl.id.text,
            stmt.reference,
            subject,
            meter.id if meter else None,
            stmt.aspect,
            bound,
            bound_kind,
            bound_text,
            stmt.span,
        )

    # -- findings
    def findings(self, c: ResolvedContract, policies: Sequence[Policy]) -> list[Finding]:
        decl = self.decls[c.id]
        out: dict[tuple[Any, ...], Finding] = {}
        for policy in policies:
            for limit in policy.limits:
                for f in self.limit_findings(c, decl, limit):
                    # One finding per limit and clause: the furthest past the limit.
                    key = (limit.span, f.clause)
                    worse = limit.kind in ("floor", "percent")
                    old = out.get(key)
                    if old is None or (f.value < old.value if worse else f.value > old.value):
                        out[key] = f
        return list(out.values())

    def limit_findings(
        self, c: ResolvedContract, decl: A.PlanDecl, limit: PolicyLimit
    ) -> Iterator[Finding]:
        if limit.kind == "floor":
            if limit.currency is not None and limit.currency != c.currency:
                return
            assert limit.meter is not None
            meter = self.meters[limit.meter]
            keys: list[TermKey] = [
                ("meter", meter.id, "rate"),
                ("discount_pct", meter.line_code),
                ("discount_pct", "usage"),
            ]
            for terms in combinations(c, keys):
                rate = terms.get(keys[0])
                if rate is None:
                    continue
                yield from self.floor(
                    c, decl, limit, meter, rate, [terms[k] for k in keys[1:] if k in terms]
                )
        elif limit.kind in ("percent", "included"):
            assert limit.meter is not None
            meter = self.meters[limit.meter]
            akey: TermKey = ("meter", meter.id, "allowance")
            mkey: TermKey = ("meter", "mau", "allowance")
            for terms in combinations(c, [akey, mkey]):
                spec_s = terms.get(akey)
                if spec_s is None:
                    continue
                spec: AllowanceSpec = spec_s.value
                if limit.kind == "percent":
                    if spec.kind != "percent" or spec.value >= limit.value:
                        continue
                    effective = f"{_num(spec.value)}%"
                    detail = (
                        f"the {meter.id} allowance {effective} of the MAU allowance is below the "
                        f"policy floor {_num(limit.value)}% ({limit.where})"
                    )
                    yield self.finding(c, decl, limit, effective, spec.value, detail, spec_s)
                    continue
                free = spec.value
                how = ""
                if spec.kind == "percent":
                    mau_s = terms.get(mkey)
                    if mau_s is None:
                        continue
                    mau = mau_s.value.value
                    free = (mau * spec.value / HUNDRED).to_integral_value(ROUND_FLOOR)
                    how = f" (floor({_num(mau)} × {_num(spec.value)}%))"
                if free <= limit.value:
                    continue
                units = _plural(meter.unit)
                effective = f"{_num(free)} {units}"
                detail = (
                    f"the {meter.id} allowance {effective}{how} is above the policy maximum "
                    f"{_num(limit.value)} {units} ({limit.where})"
                )
                yield self.finding(c, decl, limit, effective, free, detail, spec_s)
        elif limit.kind == "discount":
            yield from self.discounts(c, decl, limit)
        else:
            for terms in combinations(c, [("term",)]):
                term_s = terms.get(("term",))
                if term_s is None:
                    continue
                start, end = term_s.value
                months = term_months(start, end)
                if months <= limit.value:
                    continue
                effective = f"{start.isoformat()} to {end.isoformat()} ({months} months)"
                detail = (
                    f"the term {start.isoformat()} to {end.isoformat()} runs {months} months, "
                    f"above the policy maximum {_num(limit.value)} months ({limit.where})"
                )
                yield self.finding(c, decl, limit, effective, Decimal(months), detail, term_s)

    def floor(
        self,
        c: ResolvedContract,
        decl: A.PlanDecl,
        limit: PolicyLimit,
        meter: MeterInfo,
        rate: Sourced[Any],
        discounts: list[Sourced[Any]],
    ) -> Iterator[Finding]:
        spec: RateSpec = rate.value
        total = sum((d.value[0] for d in discounts), Decimal(0))
        # A price per block of N units is price / N per unit.
        if spec.mode == "flat":
            assert spec.price is not None
            prices: list[tuple[Decimal, str]] = [(_per_unit(spec.price, spec.block), "")]
        else:
            prices = [
                (
                    _per_unit(t.price, t.block),
                    " in the tier "
                    + ("above the last bound" if t.up_to is None else f"up to {_num(t.up_to)}"),
                )
                for t in spec.tiers
            ]
        label = {"mau": "MAU overage", "concurrency": "concurrency overage"}.get(
            meter.id, f"{meter.id} rate"
        )
        for price, tier in prices:
            # Discounts of one line add up (they do not compound); see language.md.
            # CONTEXT, not EXACT: a price per block can be a repeating decimal per unit.
            net = CONTEXT.divide(CONTEXT.multiply(price, HUNDRED - total), HUNDRED)
            if net >= limit.value:
                continue
            if discounts:
                parts = " + ".join(f"{_num(d.value[0])}%" for d in discounts)
                less = f"{_num(total)}%" if len(discounts) == 1 else f"{_num(total)}% ({parts})"
                detail = f"net {label} {_num(net)} per {meter.unit}{tier} ({price:f} less {less})"
            else:
                detail = f"the {label} {_num(net)} per {meter.unit}{tier}"
            detail += f" is below the policy floor {limit.value:f} per {meter.unit} ({limit.where})"
            # Blame the rate when it is below the floor by itself, else the deepest discount.
            blamed = rate
            if price >= limit.value and discounts:
                blamed = max(reversed(discounts), key=lambda d: d.value[0])
            yield self.finding(c, decl, limit, f"{_num(net)} per {meter.unit}", net, detail, blamed)

    def discounts(
        self, c: ResolvedContract, decl: A.PlanDecl, limit: PolicyLimit
    ) -> Iterator[Finding]:
        meters = self.meters
        usage_codes = {m.line_code for m in meters.values()}
        lines = sorted(
            line
            for line in possible_lines(c, meters)
            if line in usage_codes or line == "base" or line.startswith("addon.")
        )
        for line in lines:
            groups = [line]
            if line in usage_codes:
                groups.append("usage")
            if line.startswith("addon."):
                groups.append("addons")
            if not any(
                t == line
                or (t == "usage" and line in usage_codes)
                or (t == "addons" and line.startswith("addon."))
                for t in limit.targets
            ):
                continue
            keys: list[TermKey] = [("discount_pct", g) for g in groups]
            for terms in combinations(c, keys):
                found = [terms[k] for k in keys if k in terms]
                total = sum((d.value[0] for d in found), Decimal(0))
                if total <= limit.value:
                    continue
                parts = " + ".join(f"{_num(d.value[0])}% on {d.value[1].text}" for d in found)
                detail = (
                    f"the percentage discounts reaching `{line}` add up to {_num(total)}% "
                    f"({parts}), above the policy maximum {_num(limit.value)}% ({limit.where})"
                )
                blamed = max(reversed(found), key=lambda d: d.value[0])
                yield self.finding(
                    c, decl, limit, f"{_num(total)}% on {line}", total, detail, blamed
                )

    def finding(
        self,
        c: ResolvedContract,
        decl: A.PlanDecl,
        limit: PolicyLimit,
        effective: str,
        value: Decimal,
        detail: str,
        blamed: Sourced[Any],
    ) -> Finding:
        inherited = not _within(blamed.span, decl)
        span = blamed.span
        if inherited:
            span = decl.parent.span if decl.parent is not None else decl.id.span
        return Finding(c.id, limit, effective, value, detail, blamed.span, span, inherited)


def lim_text(lim: A.ApprovalLimit) -> str:
    if lim.percent:
        return f"{lim.direction} to {lim.value.text}%"
    if lim.direction == "down":
        return f"down to {lim.value.text} per {lim.unit.text if lim.unit else ''}"
    return f"up to {lim.value.text}" + (f" {lim.unit.text}" if lim.unit else "")


def _bound_hint(aspect: str, meter: MeterInfo | None) -> str:
    if aspect in ("meter", "rate") and meter is not None:
        extra = (
            " or `down to P%` for its allowance"
            if aspect == "meter" and meter.id == "concurrency"
            else ""
        )
        return f"a price floor is approved `down to PRICE per {meter.unit}`{extra}"
    if aspect == "included" and meter is not None:
        return f"an allowance is approved `up to N {_plural(meter.unit)}`"
    if aspect == "discount":
        return "a discount is approved `up to P%`"
    return "a term is approved `up to N months`"


def _code(limit: PolicyLimit) -> str:
    return {
        "floor": "E241",
        "percent": "E242",
        "included": "E242",
        "discount": "E243",
        "term": "E244",
    }[limit.kind]


def _beyond(f: Finding, a: Approval) -> bool:
    """Whether the finding goes past the approval's own bound."""
    if a.bound is None:
        return False
    if f.limit.kind in ("floor", "percent"):
        return f.value < a.bound
    return f.value > a.bound


def check_policies(files: Sequence[A.File], result: CheckResult) -> PolicyResult:
    """Hold every contract to every policy; turn approved findings into recorded exceptions."""
    pc = _PolicyChecker(files, result)
    policies = pc.policies()
    approvals = pc.approvals()
    exceptions: list[RecordedException] = []
    used: set[int] = set()
    if not pc.errors:
        for cid, c in result.contracts.items():
            if c.kind != "contract" or cid not in pc.decls:
                continue
            own = approvals.get(cid, ())
            for f in pc.findings(c, policies):
                matching = [a for a in own if a.covers(f.limit)]
                used.update(id(a) for a in matching)
                within = [a for a in matching if not _beyond(f, a)]
                inherited = (
                    f" (set at {f.clause.path}:{f.clause.line}, inherited by `{cid}`)"
                    if f.inherited
                    else ""
                )
                if within:
                    exceptions.append(RecordedException(f, within[0]))
                elif matching:
                    a = matching[0]
                    pc.error(
                        "E245",
                        f"{f.detail}, and past the approved limit `{a.bound_text}` "
                        f'("{a.reference}", {a.span.path}:{a.span.line}){inherited}',
                        f.span,
                        hint=f"bring it back within `{a.bound_text}`, or record a new approval "
                        "with finance",
                    )
                else:
                    pc.error(
                        _code(f.limit),
                        f"{f.detail}{inherited}",
                        f.span,
                        hint=f"stay within `{f.limit.subject} {f.limit.text}`, or record the "
                        f'approved exception in `{cid}`: `approved "REF" for {f.term}`',
                    )
        for cid, found in approvals.items():
            for a in found:
                if id(a) not in used:
                    pc.warnings.append(
                        Diagnostic.at(
                            "W110",
                            f'approval "{a.reference}" for `{a.subject}` matches no policy '
                            f"violation in `{cid}`",
                            a.span,
                            hint="the contract is within every policy limit for this term: "
                            "remove the stale approval",
                            severity="warning",
                        )
                    )
    exceptions.sort(key=lambda e: (e.finding.contract, e.finding.term, e.finding.limit.policy))
    return PolicyResult(
        policies, approvals, tuple(exceptions), tuple(pc.errors), tuple(pc.warnings)
    )


def _per_unit(price: Decimal, block: Decimal | None) -> Decimal:
    """The price of one unit, for a price per unit or per block of units."""
    return price if block is None else CONTEXT.divide(price, block)
