"""Syntax trees to resolved terms: every semantic rule of the language lives here.

The checker never stops at the first problem.  It collects a diagnostic for
each independent error (unknown names, unit mismatches, cycles...) and only
then decides whether the ruleset is usable.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from . import _ast as A
from ._currency import minor_units
from ._errors import Diagnostic, Span
from ._suggest import did_you_mean
from ._terms import (
    BUILTIN_METERS,
    FEE_INTERVALS,
    FIXED_PER,
    STANDARD,
    AddonInfo,
    AllowanceSpec,
    CommitmentSpec,
    Layer,
    MeterInfo,
    RateSpec,
    ResolvedContract,
    Sourced,
    TermKey,
    TierSpec,
)
from ._usage import (
    DATE_RANGE,
    FIRST_YEAR,
    LAST_YEAR,
    LIMIT_TEXT,
    MAX_PLACES,
    date_supported,
    within_limits,
)

__all__ = ["CheckResult", "check"]

ROUNDING_MODES = ("half_up", "half_even")
PRORATE_WHAT = ("allowances",)

# The FAQ's standard rates.  They are US dollar prices, so they only fill in
# for plans priced in USD; a plan in another currency must state its rates.
_STANDARD_USD: dict[str, Decimal] = {
    "mau": Decimal("0.12"),
    "concurrency": Decimal("1.00"),
    "voice": Decimal("0.001"),
    "video": Decimal("0.003"),
}
_STANDARD_CONCURRENCY_PERCENT = Decimal(5)

# Statements that may only appear directly in a plan or contract body.
_BODY_ONLY = (
    A.CurrencyStmt,
    A.RoundingStmt,
    A.TermStmt,
    A.ProrateStmt,
    A.FromBlock,
    A.WhenBlock,
    A.ApprovedStmt,
)
_WHAT = {
    A.ApprovedStmt: "`approved`",
    A.CurrencyStmt: "`currency`",
    A.RoundingStmt: "`rounding`",
    A.TermStmt: "`term`",
    A.ProrateStmt: "`prorate`",
    A.FromBlock: "a `from` block",
    A.WhenBlock: "a `when` block",
}

# Names a custom meter may not take: line codes, usage keys and group names
# would make two lines, or a discount target, mean two things.
_RESERVED = frozenset(
    {
        "base",
        "mau_overage",
        "concurrency_overage",
        "total",
        "usage",
        "addons",
        "addon",
        "discount",
        "cap",
        "minimum",
        "fixed",
        "period",
        "account",
        "contract",
        "peak_connections",
        "voice_minutes",
        "video_minutes",
    }
)


# Names that conditions may use, besides declared meters' usage keys.
_PERIOD_ATTRS = ("start", "end")


@dataclass(frozen=True, slots=True)
class CheckResult:
    contracts: Mapping[str, ResolvedContract]
    meters: tuple[MeterInfo, ...]
    addons: Mapping[str, AddonInfo]
    tests: tuple[A.TestDecl, ...]
    diagnostics: tuple[Diagnostic, ...]


@dataclass(slots=True)
class _FileInfo:
    currency: Sourced[str] | None = None
    rounding: Sourced[str] | None = None


@dataclass(slots=True)
class _Checker:
    files: list[A.File]
    diags: list[Diagnostic] = field(default_factory=list)
    file_info: dict[str, _FileInfo] = field(default_factory=dict)
    decls: dict[str, A.PlanDecl] = field(default_factory=dict)
    meters: dict[str, MeterInfo] = field(default_factory=dict)
    addons: dict[str, AddonInfo] = field(default_factory=dict)
    tests: list[A.TestDecl] = field(default_factory=list)
    resolved: dict[str, ResolvedContract] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    current_currency: str | None = None

    # ------------------------------------------------------------ reporting
    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diags.append(Diagnostic.at(code, message, span, hint=hint))

    # ------------------------------------------------------------ pass 1: names
    def collect(self) -> None:
        for m in BUILTIN_METERS:
            self.meters[m.id] = m
        first_seen: dict[str, Span] = {}
        for f in self.files:
            info = self.file_info.setdefault(f.path, _FileInfo())
            for decl in f.decls:
                if isinstance(decl, A.CurrencyStmt):
                    code = self.check_currency(decl.code)
                    info.currency = self.file_setting(info.currency, code, decl.span, "currency")
                elif isinstance(decl, A.RoundingStmt):
                    mode = self.check_rounding(decl)
                    info.rounding = self.file_setting(info.rounding, mode, decl.span, "rounding")
        # Catalogs and declarations, once every file's currency is known.
        for f in self.files:
            info = self.file_info[f.path]
            for decl in f.decls:
                if isinstance(decl, A.AddonStmt):
                    self.collect_addon(decl, info)
                elif isinstance(decl, A.MeterDecl):
                    self.collect_meter(decl)
                elif isinstance(decl, A.PlanDecl):
                    name = decl.id.text
                    if name in self.decls or name in first_seen:
                        prev = self.decls[name].id.span if name in self.decls else first_seen[name]
                        self.error(
                            "E202",
                            f"`{name}` is already defined at {prev}",
                            decl.id.span,
                            hint="give each plan and contract its own id",
                        )
                    else:
                        self.decls[name] = decl
                        first_seen[name] = decl.id.span
                elif isinstance(decl, A.TestDecl):
                    self.tests.append(decl)

    def file_setting(
        self, current: Sourced[str] | None, value: str | None, span: Span, what: str
    ) -> Sourced[str] | None:
        """A file-level `currency` or `rounding`: stated at most once per file."""
        if current is not None:
            self.error(
                "E212",
                f"this file already states its {what} (line {current.span.line})",
                span,
                hint=f"keep one `{what}` line per file",
            )
            return current
        return Sourced(value, span) if value is not None else None

    def collect_addon(self, decl: A.AddonStmt, info: _FileInfo) -> None:
        if decl.name is None:
            self.error(
                "E213",
                f"the catalog entry for add-on `{decl.id.text}` needs a display name",
                decl.id.span,
                hint=f'write `addon {decl.id.text} "Display name" {decl.price.text} per month`',
            )
            return
        self.check_price(decl.price, "an add-on price")
        self.check_interval(decl.unit, f"add-on `{decl.id.text}`")
        if decl.id.text in self.addons:
            prev = self.addons[decl.id.text].span
            self.error(
                "E202",
                f"add-on `{decl.id.text}` is already in the catalog at {prev}",
                decl.id.span,
                hint="list each add-on once; a plan or contract may override its price",
            )
            return
        currency = info.currency.value if info.currency else None
        per = decl.unit.text if decl.unit.text in FEE_INTERVALS else FIXED_PER
        self.addons[decl.id.text] = AddonInfo(
            decl.id.text, decl.name, decl.price.value, currency, decl.span, per
        )

    def collect_meter(self, decl: A.MeterDecl) -> None:
        ident = decl.id.text
        existing = self.meters.get(ident)
        if existing is not None:
            where = "is built in" if existing.builtin else f"is already declared at {existing.span}"
            self.error(
                "E202",
                f"meter `{ident}` {where}",
                decl.id.span,
                hint="choose another name for this meter",
            )
            return
        if ident in _RESERVED:
            self.error(
                "E202",
                f"`{ident}` is a reserved name (a line code or a word of the language)",
                decl.id.span,
                hint="choose another name for this meter",
            )
            return
        if any(m.usage_key == ident for m in self.meters.values()):
            self.error(
                "E202",
                f"`{ident}` is already a usage key",
                decl.id.span,
                hint="choose another name for this meter",
            )
            return
        self.meters[ident] = MeterInfo(
            ident, decl.name or ident, decl.unit.text, ident, ident, False, False, decl.span
        )

    # ------------------------------------------------------------ value checks
    def check_currency(self, word: A.Word) -> str | None:
        if minor_units(word.text) is not None:
            return word.text
        upper = word.text.upper()
        hint = (
            f"currency codes are upper case: `{upper}`"
            if minor_units(upper) is not None
            else "use a three-letter ISO 4217 code such as USD, EUR or JPY"
        )
        self.error("E200", f"`{word.text}` is not an ISO 4217 currency code", word.span, hint)
        return None

    def check_rounding(self, stmt: A.RoundingStmt) -> str | None:
        if stmt.mode.text in ROUNDING_MODES:
            return stmt.mode.text
        self.error(
            "E218",
            f"unknown rounding mode `{stmt.mode.text}`"
            + did_you_mean(stmt.mode.text, ROUNDING_MODES),
            stmt.mode.span,
            hint="use `rounding half_up` (the default) or `rounding half_even`",
        )
        return None

    def check_size(self, num: A.Number, what: str) -> bool:
        if within_limits(num.value):
            return True
        self.error(
            "E225",
            f"{what} is too large or has too many decimal places ({num.text})",
            num.span,
            hint=f"numbers must be below {LIMIT_TEXT} with at most {MAX_PLACES} decimal places",
        )
        return False

    def check_price(self, num: A.Number, what: str) -> bool:
        if not self.check_size(num, what):
            return False
        if num.value < 0:
            self.error(
                "E205",
                f"{what} cannot be negative ({num.text})",
                num.span,
                hint="prices are amounts charged; use a `discount` to take money off",
            )
            return False
        return True

    def check_percent(self, num: A.Number, what: str) -> bool:
        if not self.check_size(num, what):
            return False
        if num.value > 100:
            self.error(
                "E206",
                f"{what} cannot be above 100% ({num.text}%)",
                num.span,
                hint="a percentage is between 0% and 100%",
            )
            return False
        return True

    def check_unit(self, unit: A.Word, expected: str, what: str, plural_ok: bool = False) -> bool:
        if unit.text == expected or (plural_ok and unit.text == expected + "s"):
            return True
        self.error(
            "E204",
            f"{what} is priced per {expected}, not per {unit.text}"
            if not plural_ok
            else f"{what} is counted in {expected}s, not {unit.text}",
            unit.span,
            hint=f"write `per {expected}`" if not plural_ok else f"write `{expected}s`",
        )
        return False

    def check_interval(self, unit: A.Word, what: str) -> bool:
        """A fixed fee's billing interval: `month`, `quarter` or `year`."""
        if unit.text in FEE_INTERVALS:
            return True
        self.error(
            "E204",
            f"{what} is billed per month, quarter or year, not per {unit.text}",
            unit.span,
            hint="write `per month`, `per quarter` or `per year`",
        )
        return False

    def check_whole(self, num: A.Number, what: str) -> bool:
        if num.value != num.value.to_integral_value():
            self.error("E216", f"{what} must be a whole number ({num.text})", num.span)
            return False
        return True

    def check_date(self, d: A.DateLit) -> date | None:
        if d.value is None:
            self.error(
                "E217",
                f"`{d.text}` is not a real calendar date",
                d.span,
                hint="write dates as YYYY-MM-DD",
            )
        elif not date_supported(d.value):
            # Refused here so that no period or invoice built from it can fail later.
            self.error(
                "E232",
                f"`{d.text}` is outside the supported dates",
                d.span,
                hint=f"use a date from {DATE_RANGE}",
            )
            return None
        return d.value

    # ------------------------------------------------------------ statements
    def stmt_patch(
        self, stmt: A.Stmt, decl: A.PlanDecl, context: str
    ) -> list[tuple[TermKey, Sourced[Any]]]:
        """Validate one term statement; return the term values it sets."""
        if context != "body" and isinstance(stmt, _BODY_ONLY):
            self.error(
                "E214",
                f"{_WHAT[type(stmt)]} cannot be used inside a {context} block",
                stmt.span,
                hint=f"move it to the top level of `{decl.id.text}`",
            )
            return []
        if isinstance(stmt, A.CurrencyStmt):
            return []  # handled when the currency is resolved
        if isinstance(stmt, A.ApprovedStmt):
            return []  # an exception to a policy, not a term: checked by _policy
        if isinstance(stmt, A.RoundingStmt):
            mode = self.check_rounding(stmt)
            return [(("rounding",), Sourced(mode, stmt.span))] if mode else []
        if isinstance(stmt, A.BaseStmt):
            ok = self.check_price(stmt.price, "the base fee")
            ok &= self.check_interval(stmt.unit, "the base fee")
            if not ok:
                return []
            return [
                (("base",), Sourced(stmt.price.value, stmt.span)),
                (("base_per",), Sourced(stmt.unit.text, stmt.span)),
            ]
        if isinstance(stmt, A.MeterTerm):
            return self.meter_patch(stmt)
        if isinstance(stmt, A.AddonsStmt):
            ids: list[str] = []
            ok = True
            for w in stmt.ids:
                if w.text not in self.addons:
                    self.unknown_addon(w)
                    ok = False
                elif w.text in ids:
                    self.error(
                        "E202",
                        f"add-on `{w.text}` is listed twice",
                        w.span,
                        hint="list each add-on once",
                    )
                    ok = False
                else:
                    ids.append(w.text)
            return [(("addons",), Sourced(tuple(ids), stmt.span))] if ok else []
        if isinstance(stmt, A.AddonStmt):
            if stmt.id.text not in self.addons:
                self.unknown_addon(stmt.id)
                return []
            if stmt.name is not None:
                self.error(
                    "E213",
                    "an add-on's display name belongs in the catalog, not in a plan or contract",
                    stmt.span,
                    hint=f"write `addon {stmt.id.text} {stmt.price.text} per {stmt.unit.text}`",
                )
                return []
            ok = self.check_price(stmt.price, f"the price of add-on `{stmt.id.text}`")
            ok &= self.check_interval(stmt.unit, f"add-on `{stmt.id.text}`")
            if not ok:
                return []
            return [
                (("addon_price", stmt.id.text), Sourced(stmt.price.value, stmt.span)),
                (("addon_per", stmt.id.text), Sourced(stmt.unit.text, stmt.span)),
            ]
        if isinstance(stmt, A.TermStmt):
            start, end = self.check_date(stmt.start), self.check_date(stmt.end)
            if start is None or end is None:
                return []
            if end < start:
                self.error(
                    "E224",
                    "the term ends before it starts",
                    stmt.span,
                    hint="write `term START to END` with START on or before END",
                )
                return []
            return [(("term",), Sourced((start, end), stmt.span))]
        if isinstance(stmt, A.ProrateStmt):
            if stmt.what.text not in PRORATE_WHAT:
                self.error(
                    "E214",
                    f"cannot prorate `{stmt.what.text}`",
                    stmt.what.span,
                    hint="`prorate allowances` is the only form; fixed fees are always prorated",
                )
                return []
            return [(("prorate", "allowances"), Sourced(True, stmt.span))]
        if isinstance(stmt, (A.DiscountPercent, A.DiscountFixed)) and stmt.limit is not None:
            if context != "body":
                self.error(
                    "E214",
                    f"a time-limited discount cannot be used inside a {context} block",
                    stmt.limit.span,
                    hint=f"move it to the top level of `{decl.id.text}`",
                )
                return []
            if not self.check_time_limit(stmt.limit):
                return []
        if isinstance(stmt, A.DiscountPercent):
            if not self.check_percent(stmt.percent, "a discount"):
                return []
            out: list[tuple[TermKey, Sourced[Any]]] = []
            for w in stmt.targets:
                out.append((("discount_pct", w.text), Sourced((stmt.percent.value, w), stmt.span)))
            return out
        if isinstance(stmt, A.DiscountFixed):
            ok = self.check_price(stmt.amount, "a discount amount")
            ok &= self.check_amount_currency(stmt.currency, "the discount")
            ok &= self.check_unit(stmt.unit, FIXED_PER, "a fixed discount")
            if not ok:
                return []
            return [(("discount_fixed",), Sourced(stmt.amount.value, stmt.span))]
        if isinstance(stmt, A.CapStmt):
            ok = self.check_price(stmt.amount, "a cap")
            ok &= self.check_amount_currency(stmt.currency, "the cap")
            ok &= self.check_unit(stmt.unit, FIXED_PER, "a cap")
            if not ok:
                return []
            # Whether the contract has the target line is checked once it is resolved.
            return [(("cap", stmt.line.text), Sourced(stmt.amount.value, stmt.span))]
        if isinstance(stmt, A.MinimumStmt):
            ok = self.check_price(stmt.amount, "a minimum")
            ok &= self.check_amount_currency(stmt.currency, "the minimum")
            ok &= self.check_unit(stmt.unit, FIXED_PER, "a minimum")
            if not ok:
                return []
            if stmt.target is not None:
                key = ("line_minimum", stmt.target.text)
                return [(key, Sourced(stmt.amount.value, stmt.span))]
            return [(("minimum",), Sourced(stmt.amount.value, stmt.span))]
        if isinstance(stmt, A.CommitmentStmt):
            return self.commitment_patch(stmt, decl, context)
        raise AssertionError(f"unhandled statement {type(stmt).__name__}")

    # ------------------------------------------------ commitments and credits
    def commitment_patch(
        self, stmt: A.CommitmentStmt, decl: A.PlanDecl, context: str
    ) -> list[tuple[TermKey, Sourced[Any]]]:
        """``commit``, ``prepaid`` and ``credit``: contract-wide amounts, checked part by part."""
        kind = stmt.kind
        if context != "body":
            self.error(
                "E214",
                f"`{kind}` cannot be used inside a {context} block",
                stmt.span,
                hint=f"move it to the top level of `{decl.id.text}`: commitments and credits "
                "hold for the whole term",
            )
            return []
        ok = self.check_size(stmt.amount, f"the `{kind}` amount")
        if ok and stmt.amount.value < 0:
            self.error(
                "E205",
                f"a `{kind}` amount cannot be negative ({stmt.amount.text})",
                stmt.amount.span,
                hint="write the amount the customer commits to, prepays or is given, "
                "as a positive number",
            )
            ok = False
        ok &= self.check_amount_currency(stmt.currency, f"the `{kind}` amount")
        if kind == "credit":
            if stmt.unit is not None:
                self.error(
                    "E263",
                    f"a promotional `credit` is given once, not per {stmt.unit.text}",
                    stmt.unit.span,
                    hint=f"write `credit {stmt.amount.text}`; for credit every year, "
                    f"use `prepaid {stmt.amount.text} per year`",
                )
                ok = False
        elif stmt.unit is None:
            self.error(
                "E260",
                f"`{kind}` needs `per year`: it is an amount per contract year",
                stmt.span,
                hint=f"write `{kind} {stmt.amount.text} per year`",
            )
            ok = False
        elif stmt.unit.text != "year":
            self.error(
                "E204",
                f"a `{kind}` is an amount per contract year, not per {stmt.unit.text}",
                stmt.unit.span,
                hint="write `per year`; for a monthly floor use `minimum AMOUNT per month`"
                if kind == "commit"
                else "write `per year`",
            )
            ok = False
        if stmt.on is not None and (kind != "commit" or stmt.on.text != "usage"):
            self.error(
                "E262",
                f"`on {stmt.on.text}` does not fit a `{kind}`"
                if kind != "commit"
                else f"a commitment counts all lines or usage lines, not `{stmt.on.text}`",
                stmt.on.span,
                hint="only a commitment takes `on usage` (to count usage lines only)"
                if kind != "commit"
                else "write `on usage`, or nothing to count every line",
            )
            ok = False
        if stmt.rollover is not None and kind != "prepaid":
            self.error(
                "E261",
                f"`rollover` applies to prepaid credit, not to a `{kind}`",
                stmt.rollover.span,
                hint=f"remove `rollover`, or sell the credit in advance: "
                f"`prepaid {stmt.amount.text} per year rollover`",
            )
            ok = False
        if not ok:
            return []
        spec = CommitmentSpec(
            kind,
            stmt.amount.value,
            on_usage=stmt.on is not None,
            rollover=stmt.rollover is not None,
        )
        return [((kind,), Sourced(spec, stmt.span))]

    def check_commitment_term(self, decl: A.PlanDecl, c: ResolvedContract) -> None:
        """Contract years run from the term's start: a commitment or credit needs a term."""
        if ("term",) in c.static_terms:
            return
        for kind in ("commit", "prepaid", "credit"):
            found = c.static_terms.get((kind,))
            if found is not None and _within(found.span, decl):
                self.error(
                    "E264",
                    f"`{kind}` needs a contract term, and `{decl.id.text}` has none",
                    found.span,
                    hint="add `term START to END` (contract years run from START); "
                    "in a plan, state the commitment in the contracts that extend it instead",
                )

    def check_time_limit(self, limit: A.TimeLimit) -> bool:
        """`for N months` (N a whole number from 1) or `until` the last day of a month."""
        if limit.months is not None:
            n = limit.months
            ok = self.check_size(n, "the months of a discount")
            if ok and (n.value != n.value.to_integral_value() or n.value < 1):
                self.error(
                    "E251",
                    f"a discount lasts a whole number of months, 1 or more (not {n.text})",
                    n.span,
                    hint="write `for 3 months`, for example",
                )
                ok = False
            assert limit.unit is not None
            if limit.unit.text not in ("month", "months"):
                self.error(
                    "E204",
                    f"a discount's time limit is counted in months, not {limit.unit.text}",
                    limit.unit.span,
                    hint=f"write `for {n.text} months`, or `until DATE`",
                )
                ok = False
            return ok
        assert limit.until is not None
        until = self.check_date(limit.until)
        if until is None:
            return False
        last = calendar.monthrange(until.year, until.month)[1]
        if until.day != last:
            self.error(
                "E251",
                f"a discount runs until the last day of a month, not {limit.until.text}",
                limit.until.span,
                hint=f"write `until {until.replace(day=last).isoformat()}`, or the last day "
                "of an earlier month",
            )
            return False
        return True

    def check_amount_currency(self, word: A.Word | None, what: str) -> bool:
        if word is None:
            return True
        code = self.check_currency(word)
        if code is None:
            return False
        if self.current_currency is not None and code != self.current_currency:
            self.error(
                "E211",
                f"{what} is in {code}, but this contract is billed in {self.current_currency}",
                word.span,
                hint=f"state the amount in {self.current_currency}",
            )
            return False
        return True

    def unknown_addon(self, w: A.Word) -> None:
        self.error(
            "E207",
            f"unknown add-on `{w.text}`" + did_you_mean(w.text, self.addons),
            w.span,
            hint='add-ons must be in the catalog: `addon ID "Name" PRICE per month` '
            "at the top level of a file",
        )

    def meter_patch(self, stmt: A.MeterTerm) -> list[tuple[TermKey, Sourced[Any]]]:
        name = stmt.meter.text
        meter = self.meters.get(name)
        if meter is None:
            by_key = next((m for m in self.meters.values() if m.usage_key == name), None)
            hint = (
                f"in a plan, the meter is called `{by_key.id}`; `{name}` is its usage key"
                if by_key
                else f'declare custom meters at the top level: `meter {name} "Name" unit UNIT`'
            )
            keywords = (
                "base",
                "addons",
                "addon",
                "discount",
                "cap",
                "minimum",
                "term",
                "when",
                "from",
                "currency",
                "rounding",
                "prorate",
                "commit",
                "prepaid",
                "credit",
            )
            self.error(
                "E208",
                # Declared meters first: `sms_count` is more likely `sms` than `discount`.
                f"unknown meter or term `{name}`" + did_you_mean(name, self.meters, keywords),
                stmt.meter.span,
                hint=hint,
            )
            return []
        out: list[tuple[TermKey, Sourced[Any]]] = []
        ok = True
        if stmt.allowance is None and stmt.rate is None:
            self.error(
                "E214",
                f"`{name}` needs an allowance or a rate",
                stmt.span,
                hint=f"for example `{name} included 1000 overage 0.12 per {meter.unit}`",
            )
            return []
        if stmt.overage_keyword and stmt.rate is None:
            self.error(
                "E214",
                "`overage` needs a price after it",
                stmt.span,
                hint=f"for example `overage 0.12 per {meter.unit}`",
            )
            ok = False
        al = stmt.allowance
        if isinstance(al, A.PercentAllowance):
            if name != "concurrency":
                self.error(
                    "E214",
                    f"a percentage allowance only applies to concurrency, not to `{name}`",
                    al.span,
                    hint=f"write `{name} included N {meter.unit}s`",
                )
                ok = False
            elif self.check_percent(al.percent, "the concurrency allowance"):
                out.append(
                    (
                        ("meter", name, "allowance"),
                        Sourced(AllowanceSpec("percent", al.percent.value), al.span),
                    )
                )
            else:
                ok = False
        elif isinstance(al, A.Included):
            good = True
            if al.unit is not None:
                good &= self.check_unit(al.unit, meter.unit, f"`{name}`", plural_ok=True)
            good &= self.check_size(al.quantity, f"the {meter.unit}s included")
            if meter.whole:
                good &= self.check_whole(al.quantity, f"the {meter.unit}s included")
            if good:
                out.append(
                    (
                        ("meter", name, "allowance"),
                        Sourced(AllowanceSpec("included", al.quantity.value), al.span),
                    )
                )
            ok &= good
        rate = stmt.rate
        if isinstance(rate, A.FlatRate):
            good = self.check_price(rate.price, f"the `{name}` rate")
            unit_ok, block = self.check_block(rate.block, rate.rounded_down, rate.unit, meter)
            good &= unit_ok
            if good:
                spec = RateSpec("flat", rate.price.value, (), block, rate.rounded_down)
                out.append((("meter", name, "rate"), Sourced(spec, rate.span)))
            ok &= good
        elif isinstance(rate, A.TieredRate):
            tiered = self.check_tiers(rate, meter)
            if tiered is not None:
                out.append((("meter", name, "rate"), Sourced(tiered, rate.span)))
            else:
                ok = False
        return out if ok else []

    def check_block(
        self, block: A.Number | None, down: bool, unit: A.Word, meter: MeterInfo
    ) -> tuple[bool, Decimal | None]:
        """Whether the price's unit and block are right, and the block (None: per unit).

        `per minute rounded down` is a block of one minute: only whole minutes are billed.
        """
        what = f"`{meter.id}`"
        if block is None:
            ok = self.check_unit(unit, meter.unit, what)
            return ok, Decimal(1) if down else None
        ok = self.check_unit(unit, meter.unit, what, plural_ok=True)
        if not self.check_size(block, "a block size"):
            return False, None
        if block.value <= 0:
            self.error(
                "E250",
                f"a block must hold more than zero {meter.unit}s ({block.text})",
                block.span,
                hint=f"write a positive block size, such as `per 100 {meter.unit}s`",
            )
            return False, None
        if meter.whole and not self.check_whole(block, "a block of " + meter.unit + "s"):
            return False, None
        return ok, block.value

    def check_tiers(self, rate: A.TieredRate, meter: MeterInfo) -> RateSpec | None:
        ok = True
        tiers: list[TierSpec] = []
        last: A.Number | None = None
        if not rate.tiers:
            self.error(
                "E215",
                "a tier table needs at least one row",
                rate.span,
                hint=f"end the table with `above at PRICE per {meter.unit}`",
            )
            return None
        for i, t in enumerate(rate.tiers):
            ok &= self.check_price(t.price, "a tier price")
            unit_ok, block = self.check_block(t.block, t.rounded_down, t.unit, meter)
            ok &= unit_ok
            if t.fee is not None:
                ok &= self.check_price(t.fee, "a tier's flat fee")
            if t.up_to is None:
                if i != len(rate.tiers) - 1:
                    self.error(
                        "E215",
                        "`above` must be the last row of a tier table",
                        t.span,
                        hint="move the `above` row to the end",
                    )
                    ok = False
            else:
                ok &= self.check_size(t.up_to, "a tier bound")
                if meter.whole:
                    ok &= self.check_whole(t.up_to, "a tier bound")
                if last is not None and t.up_to.value <= last.value:
                    self.error(
                        "E215",
                        f"tier bounds must increase: {t.up_to.text} is not above {last.text}",
                        t.up_to.span,
                        hint="list the tiers from the smallest bound to the largest",
                    )
                    ok = False
                last = t.up_to
            tiers.append(
                TierSpec(
                    t.up_to.value if t.up_to else None,
                    t.price.value,
                    block,
                    t.rounded_down,
                    None if t.fee is None else t.fee.value,
                )
            )
        if rate.tiers[-1].up_to is not None:
            self.error(
                "E215",
                "the tier table has no final `above` row",
                rate.tiers[-1].span,
                hint=f"add `above at PRICE per {meter.unit}` as the last row, "
                "to price usage past the last bound",
            )
            ok = False
        return RateSpec(rate.mode, None, tuple(tiers)) if ok else None

    # ------------------------------------------------------------ conditions
    def check_expr(self, e: A.Expr) -> tuple[str, bool]:
        """Type of an expression: a unit name, "number", "date" or "bool"; and period use."""
        if isinstance(e, A.NumberExpr):
            return "number", False
        if isinstance(e, A.DateExpr):
            self.check_date(e.value)
            return "date", False
        if isinstance(e, A.RefExpr):
            keys = {m.usage_key: m for m in self.meters.values()}
            m = keys.get(e.name.text)
            if m is None:
                by_id = self.meters.get(e.name.text)
                hint = (
                    f"conditions use usage keys; write `{by_id.usage_key}`"
                    if by_id
                    else "conditions may use: " + ", ".join(keys) + ", period.start, period.end"
                )
                self.error(
                    "E220",
                    f"unknown meter `{e.name.text}` in a condition"
                    + ("" if by_id else did_you_mean(e.name.text, keys)),
                    e.span,
                    hint=hint,
                )
                return "error", False
            return m.unit, False
        if isinstance(e, A.AttrExpr):
            if e.obj.text != "period" or e.attr.text not in _PERIOD_ATTRS:
                self.error(
                    "E220",
                    f"unknown value `{e.obj.text}.{e.attr.text}` in a condition",
                    e.span,
                    hint="conditions may use `period.start` and `period.end`",
                )
                return "error", True
            return "date", True
        if isinstance(e, A.NotExpr):
            t, p = self.check_expr(e.operand)
            if t not in ("bool", "error"):
                self.type_error(e.operand, "`not` needs a condition", t)
            return "bool", p
        lt, lp = self.check_expr(e.left)
        rt, rp = self.check_expr(e.right)
        uses_period = lp or rp
        if "error" in (lt, rt):
            return ("bool" if e.op in ("and", "or") or e.op in "<>=!" else "error"), uses_period
        if e.op in ("and", "or"):
            for side, t in ((e.left, lt), (e.right, rt)):
                if t != "bool":
                    self.type_error(side, f"`{e.op}` joins conditions", t)
            return "bool", uses_period
        if e.op in ("<", "<=", ">", ">=", "==", "!="):
            if "bool" in (lt, rt) or not _compatible(lt, rt):
                self.error(
                    "E219",
                    f"cannot compare {_describe_type(lt)} with {_describe_type(rt)}",
                    e.span,
                    hint="compare a meter with a number or with a meter of the same unit, "
                    "and dates with dates",
                )
            return "bool", uses_period
        # Arithmetic.
        if "bool" in (lt, rt) or "date" in (lt, rt):
            self.error(
                "E219",
                f"cannot use `{e.op}` on {_describe_type(lt)} and {_describe_type(rt)}",
                e.span,
                hint="arithmetic works on meters and numbers",
            )
            return "error", uses_period
        if e.op in ("+", "-"):
            if not _compatible(lt, rt):
                self.error(
                    "E219",
                    f"cannot add or subtract {_describe_type(lt)} and {_describe_type(rt)}",
                    e.span,
                    hint="only quantities of the same unit add up",
                )
                return "error", uses_period
            return (lt if lt != "number" else rt), uses_period
        if e.op == "*":
            if lt != "number" and rt != "number":
                self.error(
                    "E219",
                    f"cannot multiply {_describe_type(lt)} by {_describe_type(rt)}",
                    e.span,
                    hint="multiply a meter by a plain number",
                )
                return "error", uses_period
            return (lt if lt != "number" else rt), uses_period
        # Division: by a number keeps the unit; by the same unit gives a ratio.
        if rt == "number":
            return lt, uses_period
        if lt == rt:
            return "number", uses_period
        self.error(
            "E219",
            f"cannot divide {_describe_type(lt)} by {_describe_type(rt)}",
            e.span,
            hint="divide by a plain number, or by a meter of the same unit",
        )
        return "error", uses_period

    def type_error(self, e: A.Expr, what: str, got: str) -> None:
        self.error(
            "E219",
            f"{what}, not {_describe_type(got)}",
            e.span,
            hint="write a comparison such as `mau > 150_000`",
        )

    # ------------------------------------------------------------ resolution
    def resolve_all(self) -> None:
        for name in self.decls:
            self.resolve(name, ())

    def resolve(self, name: str, visiting: tuple[str, ...]) -> ResolvedContract | None:
        if name in self.resolved:
            return self.resolved[name]
        if name in self.broken:
            return None
        decl = self.decls[name]
        parent: ResolvedContract | None = None
        if decl.parent is not None:
            pname = decl.parent.text
            if pname in visiting or pname == name:
                cycle = (
                    [*visiting[visiting.index(pname) :], name, pname]
                    if pname in visiting
                    else [name, name]
                )
                self.error(
                    "E203",
                    "`extends` goes round in a circle: " + " -> ".join(cycle),
                    decl.parent.span,
                    hint="a plan or contract cannot extend itself, directly or through others",
                )
                self.broken.add(name)
                self.check_body_only(decl)
                return None
            if pname not in self.decls:
                if pname not in self.broken:
                    self.error(
                        "E201",
                        f"`{name}` extends `{pname}`, which is not defined"
                        + did_you_mean(pname, self.decls),
                        decl.parent.span,
                        hint="extend one of: " + ", ".join(others)
                        if (others := sorted(n for n in self.decls if n != name))
                        else "define the plan first",
                    )
                self.broken.add(name)
                self.check_body_only(decl)
                return None
            pdecl = self.decls[pname]
            if decl.kind == "plan" and pdecl.kind == "contract":
                self.error(
                    "E209",
                    f"plan `{name}` cannot extend contract `{pname}`",
                    decl.parent.span,
                    hint="a plan extends a plan; a contract extends a plan or a contract",
                )
            parent = self.resolve(pname, (*visiting, name))
            if parent is None:
                self.broken.add(name)
                self.check_body_only(decl)
                return None
        elif decl.kind == "contract":
            others = sorted(n for n in self.decls if n != name)
            self.error(
                "E209",
                f"contract `{name}` must extend a plan or another contract",
                decl.id.span,
                hint=f"write `contract {name} extends PLAN {{ … }}`"
                + (f"; plans and contracts: {', '.join(others)}" if others else ""),
            )
            self.broken.add(name)
            self.check_body_only(decl)
            return None

        errors_before = len(self.diags)
        currency = self.resolve_currency(decl, parent)
        self.current_currency = currency
        layers: list[Layer] = list(parent.layers) if parent else [self.standard_layer(currency)]
        info = self.file_info.get(decl.span.path, _FileInfo())
        own: dict[TermKey, Sourced[Any]] = {}
        if info.rounding is not None:
            own[("rounding",)] = info.rounding
        whens: list[Layer] = []
        froms: list[tuple[date, Layer]] = []
        limited: list[tuple[A.Stmt, A.TimeLimit, dict[TermKey, Sourced[Any]]]] = []
        uses_period = parent.uses_period if parent else False
        seen_keys: dict[TermKey, Span] = {}
        for stmt in decl.body:
            if isinstance(stmt, A.WhenBlock):
                kind, p = self.check_expr(stmt.condition)
                if kind not in ("bool", "error"):
                    self.type_error(stmt.condition, "`when` needs a condition", kind)
                uses_period |= p
                patch = self.block_patch(stmt.body, decl, "when")
                whens.append(
                    Layer(
                        MappingProxyType(patch),
                        condition=stmt.condition,
                        label=f"when at {stmt.span}",
                        span=stmt.span,
                    )
                )
            elif isinstance(stmt, A.FromBlock):
                start = self.check_date(stmt.start)
                if start is None:
                    continue
                if start.day != 1:
                    self.error(
                        "E217",
                        f"a `from` date must be the first day of a month, not {stmt.start.text}",
                        stmt.start.span,
                        hint=f"write `from {start.replace(day=1).isoformat()}` or the first "
                        "day of a later month",
                    )
                    continue
                if any(d == start for d, _ in froms):
                    self.error(
                        "E202",
                        f"there is already a `from {stmt.start.text}` block",
                        stmt.start.span,
                        hint="merge the two blocks into one",
                    )
                    continue
                patch = self.block_patch(stmt.body, decl, "from")
                froms.append(
                    (
                        start,
                        Layer(
                            MappingProxyType(patch),
                            from_date=start,
                            label=f"from {start.isoformat()} at {stmt.span}",
                            span=stmt.span,
                        ),
                    )
                )
            elif isinstance(stmt, (A.DiscountPercent, A.DiscountFixed)) and stmt.limit:
                patch = dict(self.stmt_patch(stmt, decl, "body"))
                if patch:
                    limited.append((stmt, stmt.limit, patch))
            else:
                for key, value in self.stmt_patch(stmt, decl, "body"):
                    if key in seen_keys and key != ("rounding",):
                        pass  # a later statement wins; the linter warns about it
                    seen_keys[key] = value.span
                    own[key] = value
        if own:
            layers.append(Layer(MappingProxyType(own), label=f"{decl.kind} {name}", span=decl.span))
        if limited:
            term = own.get(("term",)) or (parent.static_terms.get(("term",)) if parent else None)
            windows = []
            for stmt, limit, patch in limited:
                layer = self.limited_layer(decl, stmt, limit, patch, term)
                if layer is not None:
                    windows.append(layer)
                    uses_period = True
            # Longest window first, so that while two apply the shorter one wins:
            # `50% for 3 months` then `20% until …` steps down from 50% to 20%.
            windows.sort(key=lambda la: la.until or date.max, reverse=True)
            layers.extend(windows)
        layers.extend(layer for _, layer in sorted(froms, key=lambda p: p[0]))
        layers.extend(whens)

        if len(self.diags) > errors_before or currency is None:
            self.check_adjustment_targets(decl, layers)
            self.broken.add(name)
            return None
        static: dict[TermKey, Sourced[Any]] = {}
        for layer in layers:
            if not layer.conditional:
                static.update(layer.patch)
        resolved = ResolvedContract(
            id=name,
            name=decl.name or name,
            kind=decl.kind,
            currency=currency,
            minor_units=minor_units(currency) or 0,
            chain=(name, *(parent.chain if parent else ())),
            layers=tuple(layers),
            span=decl.span,
            static_terms=MappingProxyType(static),
            has_conditions=any(layer.conditional for layer in layers),
            uses_period=uses_period,
        )
        self.check_complete(decl, resolved)
        self.check_adjustment_targets(decl, resolved.layers)
        self.check_cap_minimum(decl, resolved)
        self.check_fee_intervals(decl, resolved)
        self.check_discount_total(decl, resolved)
        self.check_commitment_term(decl, resolved)
        self.resolved[name] = resolved
        return resolved

    def limited_layer(
        self,
        decl: A.PlanDecl,
        stmt: A.Stmt,
        limit: A.TimeLimit,
        patch: dict[TermKey, Sourced[Any]],
        term: Sourced[Any] | None,
    ) -> Layer | None:
        """A time-limited discount as a layer that applies while `period.start <= LAST_DAY`.

        `for N months` counts calendar months of the term from its start (a
        partial first month counts as one), so it needs the term.
        """
        if limit.months is not None:
            if term is None:
                self.error(
                    "E252",
                    f"`for {limit.months.text} months` counts months of the contract term, "
                    f"but `{decl.id.text}` has no term",
                    limit.span,
                    hint="add `term START to END` to the contract, or write `until DATE`",
                )
                return None
            start: date = term.value[0]
            months = start.year * 12 + start.month - 1 + int(limit.months.value) - 1
            # Past the last supported date it simply never ends.
            year, month = divmod(min(months, 9000 * 12 + 11), 12)
            until = date(year, month + 1, calendar.monthrange(year, month + 1)[1])
            text = f"for {limit.months.text} months (to {until.isoformat()})"
        else:
            assert limit.until is not None and limit.until.value is not None
            until = limit.until.value
            text = f"until {until.isoformat()}"
        span = limit.span
        condition = A.BinaryExpr(
            "<=",
            A.AttrExpr(A.Word("period", span), A.Word("start", span), span),
            A.DateExpr(A.DateLit(until, until.isoformat(), span), span),
            span,
        )
        return Layer(
            MappingProxyType(patch),
            condition=condition,
            label=f"discount {text} at {stmt.span}",
            span=stmt.span,
            until=until,
        )

    def check_body_only(self, decl: A.PlanDecl) -> None:
        """Check a body whose parent failed, so its own independent errors still show."""
        self.current_currency = None
        for stmt in decl.body:
            if isinstance(stmt, A.WhenBlock):
                self.check_expr(stmt.condition)
                self.block_patch(stmt.body, decl, "when")
            elif isinstance(stmt, A.FromBlock):
                self.check_date(stmt.start)
                self.block_patch(stmt.body, decl, "from")
            else:
                self.stmt_patch(stmt, decl, "body")

    def block_patch(
        self, body: Iterable[A.Stmt], decl: A.PlanDecl, context: str
    ) -> dict[TermKey, Sourced[Any]]:
        patch: dict[TermKey, Sourced[Any]] = {}
        for stmt in body:
            for key, value in self.stmt_patch(stmt, decl, context):
                patch[key] = value
        return patch

    def standard_layer(self, currency: str | None) -> Layer:
        std: dict[TermKey, Sourced[Any]] = {
            ("rounding",): Sourced("half_up", STANDARD),
            ("meter", "concurrency", "allowance"): Sourced(
                AllowanceSpec("percent", _STANDARD_CONCURRENCY_PERCENT), STANDARD
            ),
            ("addons",): Sourced((), STANDARD),
        }
        if currency == "USD":
            for meter, price in _STANDARD_USD.items():
                std[("meter", meter, "rate")] = Sourced(RateSpec("flat", price), STANDARD)
        return Layer(MappingProxyType(std), label="standard rates", span=STANDARD)

    def resolve_currency(self, decl: A.PlanDecl, parent: ResolvedContract | None) -> str | None:
        stated: Sourced[str] | None = None
        for stmt in decl.body:
            if isinstance(stmt, A.CurrencyStmt):
                code = self.check_currency(stmt.code)
                if code is None:
                    return None
                if stated is not None and stated.value != code:
                    self.error("E212", "the currency is stated twice", stmt.span)
                stated = Sourced(code, stmt.span)
        info = self.file_info.get(decl.span.path, _FileInfo())
        if (
            decl.kind == "contract"
            and stated is not None
            and parent is not None
            and stated.value != parent.currency
        ):
            self.error(
                "E211",
                f"contract `{decl.id.text}` cannot change the currency to {stated.value}: "
                f"its plan `{parent.id}` is priced in {parent.currency}",
                stated.span,
                hint="a contract's currency is its plan's; extend a plan priced in "
                f"{stated.value} instead",
            )
            return None
        candidates = [c for c in (stated, info.currency) if c is not None]
        own = candidates[0] if candidates else None
        if parent is not None:
            if own is not None and own.value != parent.currency:
                self.error(
                    "E211",
                    f"`{decl.id.text}` is in {own.value} but extends `{parent.id}`, "
                    f"which is priced in {parent.currency}",
                    own.span if own is stated else decl.id.span,
                    hint="inherited prices keep their currency, so a plan or contract must use "
                    "its parent's currency"
                    + (
                        f" (this file says `currency {own.value}` at line {own.span.line})"
                        if own is not stated
                        else ""
                    ),
                )
                return None
            return parent.currency
        if own is None:
            self.error(
                "E210",
                f"`{decl.id.text}` has no currency",
                decl.id.span,
                hint="add `currency USD` (or another ISO 4217 code) at the top of the file "
                "or inside the plan",
            )
            return None
        return own.value

    def check_complete(self, decl: A.PlanDecl, c: ResolvedContract) -> None:
        terms = c.static_terms
        missing: list[str] = []
        for meter in ("mau", "concurrency", "voice", "video"):
            if ("meter", meter, "rate") not in terms:
                unit = next(m.unit for m in BUILTIN_METERS if m.id == meter)
                missing.append(
                    f"a `{meter}` rate (for example `{meter} … per {unit}`; the FAQ's "
                    f"standard rates apply only in USD)"
                )
        for key, value in terms.items():
            if key[0] == "addons":
                for addon_id in value.value:
                    self.check_addon_currency(decl, c, addon_id)
        if missing:
            self.error(
                "E210",
                f"{decl.kind} `{decl.id.text}` does not state " + "; nor ".join(missing),
                decl.id.span,
                hint="state it in this block or in a plan it extends",
            )
            self.broken.add(c.id)

    def check_addon_currency(self, decl: A.PlanDecl, c: ResolvedContract, addon_id: str) -> None:
        info = self.addons.get(addon_id)
        if info is None or info.currency is None or info.currency == c.currency:
            return
        if ("addon_price", addon_id) in c.static_terms:
            return
        self.error(
            "E211",
            f"add-on `{addon_id}` is priced in {info.currency} in the catalog, but "
            f"`{decl.id.text}` is billed in {c.currency}",
            decl.id.span,
            hint=f"override its price here: `addon {addon_id} PRICE per month`",
        )

    def check_discount_total(self, decl: A.PlanDecl, c: ResolvedContract) -> None:
        """Percentage discounts that can reach one line must not add up past 100%.

        Counted conservatively: each discount clause at the highest percentage
        any layer gives it, whether or not their `when` rules can hold together.
        """
        highest: dict[str, Sourced[Any]] = {}
        for layer in c.layers:
            for key, value in layer.patch.items():
                if key[0] == "discount_pct" and (
                    key[1] not in highest or value.value[0] > highest[key[1]].value[0]
                ):
                    highest[key[1]] = value
        if len(highest) < 2:
            return
        lines = possible_lines(c, self.meters)
        usage_codes = {m.line_code for m in self.meters.values()}
        for line in sorted(lines):
            groups = [
                line,
                "usage" if line in usage_codes else "",
                "addons" if line.startswith("addon.") else "",
            ]
            hits = [highest[g] for g in groups if g in highest]
            total = sum((h.value[0] for h in hits), Decimal(0))
            if total > 100 and any(_within(h.span, decl) for h in hits):
                self.error(
                    "E223",
                    f"the percentage discounts on `{line}` add up to {total}%, above 100%",
                    decl.id.span,
                    hint="lower them; discounts on a line and on its group "
                    "(`usage`, `addons`) add up",
                )

    def check_adjustment_targets(self, decl: A.PlanDecl, layers: Sequence[Layer]) -> None:
        """A discount, cap or line minimum must name a line that this contract can have."""
        lines = {"addons", "usage"}
        for layer in layers:
            for key, value in layer.patch.items():
                if key == ("base",):
                    lines.add("base")
                elif key[0] == "meter" and key[2] == "rate":
                    lines.add(self.meters[key[1]].line_code)
                elif key == ("addons",):
                    lines.update(f"addon.{a}" for a in value.value)
        own = decl.span
        for layer in layers:
            for key, value in layer.patch.items():
                # Report each clause once, in the block that wrote it.
                if key[0] not in _TARGETED or value.span.path != own.path:
                    continue
                if not own.line <= value.span.line <= own.end_line:
                    continue
                if key[1] in lines:
                    continue
                code, verb = _TARGETED[key[0]]
                self.error(
                    code,
                    f"`{decl.id.text}` has no `{key[1]}` line to {verb}"
                    + did_you_mean(key[1], lines),
                    value.value[1].span if key[0] == "discount_pct" else value.span,
                    hint=f"{verb} one of its lines (" + ", ".join(sorted(lines)) + ")",
                )

    def check_fee_intervals(self, decl: A.PlanDecl, c: ResolvedContract) -> None:
        """A `when` or `from` block may change a fee's price, not how often it is billed (E254).

        Billing a yearly fee from a later month on would leave months unbilled
        or bill them twice; a new interval is a new contract.
        """
        static = c.static_terms
        for layer in c.layers:
            if not layer.conditional:
                continue
            for key, value in layer.patch.items():
                if key[0] not in ("base_per", "addon_per") or not _within(value.span, decl):
                    continue
                before = static.get(key)
                if before is not None:
                    was = before.value
                elif key[0] == "addon_per" and key[1] in self.addons:
                    was = self.addons[key[1]].per
                else:
                    was = "month"
                if value.value == was:
                    continue
                self.error(
                    "E254",
                    f"a `when` or `from` block cannot change how often a fee is billed "
                    f"(per {was} to per {value.value})",
                    value.span,
                    hint=f"keep `per {was}` here and change only the price; bill per "
                    f"{value.value} in a new contract from that date",
                )

    def check_cap_minimum(self, decl: A.PlanDecl, c: ResolvedContract) -> None:
        """A cap below a line minimum on the same target could never be met (E253).

        Counted over every layer: the lowest cap any layer gives a target
        against the highest minimum any layer gives it.
        """
        caps: dict[str, Sourced[Any]] = {}
        minimums: dict[str, Sourced[Any]] = {}
        for layer in c.layers:
            for key, value in layer.patch.items():
                if key[0] == "cap" and (key[1] not in caps or value.value < caps[key[1]].value):
                    caps[key[1]] = value
                elif key[0] == "line_minimum" and (
                    key[1] not in minimums or value.value > minimums[key[1]].value
                ):
                    minimums[key[1]] = value
        for target, cap in caps.items():
            low = minimums.get(target)
            if low is None or cap.value >= low.value:
                continue
            if not (_within(cap.span, decl) or _within(low.span, decl)):
                continue
            self.error(
                "E253",
                f"the cap on `{target}` ({cap.value}) is below its minimum ({low.value}), "
                "so the line could never meet both",
                cap.span if _within(cap.span, decl) else low.span,
                hint=f"raise the cap to at least {low.value}, or lower the minimum",
            )


# Adjustments that name a target line: the code for a missing target, and the verb.
_TARGETED = {
    "discount_pct": ("E222", "discount"),
    "cap": ("E221", "cap"),
    "line_minimum": ("E221", "top up"),
}


def _within(span: Span, decl: A.PlanDecl) -> bool:
    """Whether ``span`` lies in the lines of ``decl`` (the checker and the linter use it)."""
    return span.path == decl.span.path and decl.span.line <= span.line <= decl.span.end_line


def _compatible(a: str, b: str) -> bool:
    return (
        a == b
        or (a == "number" and b not in ("date", "bool"))
        or (b == "number" and a not in ("date", "bool"))
    )


def _describe_type(t: str) -> str:
    return {
        "number": "a number",
        "date": "a date",
        "bool": "a condition",
        "error": "an invalid value",
    }.get(t, f"{t}s")


def possible_lines(c: ResolvedContract, meters: Mapping[str, MeterInfo]) -> set[str]:
    """Every line code this contract can produce, under any condition."""
    lines: set[str] = set()
    for layer in c.layers:
        for key, value in layer.patch.items():
            if key == ("base",):
                lines.add("base")
            elif key[0] == "meter" and key[2] == "rate":
                lines.add(meters[key[1]].line_code)
            elif key == ("addons",):
                lines.update(f"addon.{a}" for a in value.value)
            elif key[0] == "discount_pct":
                lines.add(f"discount.{key[1]}")
            elif key == ("discount_fixed",):
                lines.add("discount.fixed")
            elif key[0] == "cap":
                lines.add(f"cap.{key[1]}")
            elif key[0] == "line_minimum":
                lines.add(f"minimum.{key[1]}")
            elif key == ("minimum",):
                lines.add("minimum")
    return lines


def check_tests(
    rules_tests: Iterable[A.TestDecl], known: dict[str, set[str]], usage_keys: set[str]
) -> list[Diagnostic]:
    """Static checks of test blocks: known contracts, lines and usage keys."""
    from ._usage import Period

    diags: list[Diagnostic] = []
    names: dict[str, A.TestDecl] = {}
    for t in rules_tests:
        if t.name in names:
            diags.append(
                Diagnostic.at(
                    "E230",
                    f'there is already a test named "{t.name}"',
                    t.span,
                    hint="give each test its own name",
                )
            )
        names[t.name] = t
        if t.contract is None:
            diags.append(
                Diagnostic.at(
                    "E230",
                    f'test "{t.name}" names no contract',
                    t.span,
                    hint="add `contract ID` to the test",
                )
            )
            continue
        lines = known.get(t.contract.text)
        if lines is None:
            diags.append(
                Diagnostic.at(
                    "E230",
                    f"test names an unknown contract `{t.contract.text}`"
                    + did_you_mean(t.contract.text, known),
                    t.contract.span,
                )
            )
            continue
        if t.period is not None:
            # The grammar makes the text YYYY-MM or YYYY-MM-DD..YYYY-MM-DD.
            years = [int(part[:4]) for part in t.period.text.split("..")]
            if not all(FIRST_YEAR <= y <= LAST_YEAR for y in years):
                diags.append(
                    Diagnostic.at(
                        "E232",
                        f"`{t.period.text}` is outside the supported dates",
                        t.period.span,
                        hint=f"use a period within {DATE_RANGE}",
                    )
                )
            else:
                try:
                    Period.parse(t.period.text)
                except ValueError:
                    diags.append(
                        Diagnostic.at(
                            "E217",
                            f"`{t.period.text}` is not a valid period",
                            t.period.span,
                            hint="write YYYY-MM",
                        )
                    )
        for key, _num in t.usage:
            if key.text not in usage_keys:
                diags.append(
                    Diagnostic.at(
                        "E231",
                        f"unknown usage key `{key.text}`" + did_you_mean(key.text, usage_keys),
                        key.span,
                        hint="usage keys are: " + ", ".join(sorted(usage_keys)),
                    )
                )
        for exp in t.expectations:
            code = exp.target.text
            if exp.field == "error" or code == "total" or code in lines:
                continue
            diags.append(
                Diagnostic.at(
                    "E231",
                    f"`{t.contract.text}` has no `{code}` line" + did_you_mean(code, lines),
                    exp.target.span,
                    hint="its lines are: " + ", ".join(sorted(lines)),
                )
            )
    return diags


def check(files: list[A.File]) -> CheckResult:
    """Resolve and validate parsed files that share one namespace."""
    c = _Checker(files)
    c.collect()
    c.resolve_all()
    known = {cid: possible_lines(rc, c.meters) for cid, rc in c.resolved.items()}
    # A test of a contract that failed to resolve is reported through that failure.
    for name in c.broken | set(c.decls):
        known.setdefault(name, set())
    tests = [t for t in c.tests if t.contract is None or t.contract.text not in c.broken]
    c.diags.extend(check_tests(tests, known, {m.usage_key for m in c.meters.values()}))
    return CheckResult(
        contracts=MappingProxyType(dict(c.resolved)),
        meters=tuple(c.meters.values()),
        addons=MappingProxyType(dict(c.addons)),
        tests=tuple(c.tests),
        diagnostics=tuple(c.diags),
    )
