"""Text to syntax tree.

Lark does the parsing; this module turns its tree into :mod:`._ast` nodes and
its exceptions into :class:`Diagnostic` values with plain-words messages.
Nothing here judges meaning: the checker does that in a separate pass, so the
Transformer never raises (Lark would wrap the exception in ``VisitError``).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternStr

from . import _ast as A
from ._errors import Diagnostic, PricingError, Span
from ._suggest import suggest

__all__ = ["parse", "split_comment"]

# How many syntax errors one file may report before we stop looking.
_MAX_SYNTAX_ERRORS = 20


def _cache_path(grammar: str) -> str | None:
    """A per-user file for Lark's built parser, or None where none can be made.

    Building the LALR tables takes about a quarter of a second; loading them
    takes a few milliseconds.  The file lives in the user's own cache folder
    (mode 0700), never in a shared temporary folder, because Lark stores it
    as a pickle and a planted pickle would run code.
    """
    import hashlib
    import os
    from pathlib import Path

    import lark

    if os.environ.get("PRICING_DSL_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "pricing-dsl"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_uid != os.getuid() or not os.access(folder, os.W_OK):
            return None
    except (OSError, AttributeError):
        return None
    digest = hashlib.sha256(grammar.encode()).hexdigest()[:16]
    return str(folder / f"parser-{lark.__version__}-{digest}.pickle")


@cache
def _lark() -> Lark:
    # Built once per process and never mutated afterwards, so sharing it
    # between threads is safe (Lark's LALR parse keeps its state per call).
    grammar = resources.files("pricing_dsl").joinpath("pricing.lark").read_text("utf-8")
    options: dict[str, Any] = {
        "parser": "lalr",
        "strict": True,
        "propagate_positions": True,
        "maybe_placeholders": True,
    }
    path = _cache_path(grammar)
    if path is not None:
        try:
            return Lark(grammar, cache=path, **options)
        except Exception:
            # A stale or unreadable cache must never stop parsing: build afresh.
            pass
    return Lark(grammar, **options)


# ------------------------------------------------------------------ AST build


def _num(tok: Token) -> Decimal:
    return Decimal(str(tok).rstrip("%").replace("_", ""))


class _Builder(Transformer[Token, Any]):
    """Lark tree -> AST.  Must never raise: invalid values are kept for the checker.

    The method for rule ``r`` is ``on_r(meta, children)``.  No method has a
    rule's own name, so Lark hands every node to ``__default__``, which finds
    the method in a table: the same calls as ``@v_args(meta=True)`` methods
    named after their rules, without the wrapper Lark rebuilds (through
    ``functools.update_wrapper``) at every node, and without a call per token
    (``visit_tokens=False``; tokens are passed through as they are).  On the
    100,000-line benchmark ruleset the builder takes a quarter less time.
    """

    def __init__(self, path: str) -> None:
        super().__init__(visit_tokens=False)
        self.path = path

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        build = _RULES.get(data)
        if build is None:
            return Tree(data, children, meta)  # Lark's default for a rule with no method
        try:
            return build(self, meta, children)
        except Exception as exc:
            # What Lark does with an exception from a rule's method (its
            # constructor is untyped).
            raise VisitError(str(data), Tree(data, children, meta), exc) from exc  # type: ignore[no-untyped-call]

    # -- helpers
    def _tspan(self, tok: Token) -> Span:
        return Span(
            self.path,
            tok.line or 0,
            tok.column or 0,
            tok.end_line or tok.line or 0,
            tok.end_column or (tok.column or 0) + len(tok),
        )

    def _mspan(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 0, 0, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _word(self, tok: Token) -> A.Word:
        return A.Word(str(tok), self._tspan(tok))

    def _opt_word(self, tok: Token | None) -> A.Word | None:
        return None if tok is None else self._word(tok)

    def _number(self, tok: Token) -> A.Number:
        return A.Number(_num(tok), str(tok), self._tspan(tok))

    def _percent(self, tok: Token) -> A.Number:
        """A percentage; ``text`` is the number without its `%` sign."""
        return A.Number(_num(tok), str(tok)[:-1], self._tspan(tok))

    def _date(self, tok: Token) -> A.DateLit:
        try:
            value: date | None = date.fromisoformat(str(tok))
        except ValueError:
            value = None
        return A.DateLit(value, str(tok), self._tspan(tok))

    @staticmethod
    def _string(tok: Token | None) -> str | None:
        if tok is None:
            return None
        body = str(tok)[1:-1]
        return re.sub(r"\\(.)", r"\1", body)

    # -- top level
    def on_start(self, meta: Any, c: list[Any]) -> list[Any]:
        return c

    def on_currency_stmt(self, meta: Any, c: list[Token]) -> A.CurrencyStmt:
        return A.CurrencyStmt(self._word(c[0]), self._mspan(meta))

    def on_rounding_stmt(self, meta: Any, c: list[Token]) -> A.RoundingStmt:
        return A.RoundingStmt(self._word(c[0]), self._mspan(meta))

    def on_addon(self, meta: Any, c: list[Any]) -> A.AddonStmt:
        ident, name, price, unit = c
        return A.AddonStmt(
            self._word(ident), self._string(name), price, self._word(unit), self._mspan(meta)
        )

    def on_meter_decl(self, meta: Any, c: list[Any]) -> A.MeterDecl:
        ident, name, unit = c
        return A.MeterDecl(
            self._word(ident), self._string(name), self._word(unit), self._mspan(meta)
        )

    def _plan(self, kind: str, meta: Any, c: list[Any]) -> A.PlanDecl:
        ident, name, parent, body = c
        return A.PlanDecl(
            kind, self._word(ident), self._string(name), parent, body, self._mspan(meta)
        )

    def on_plan(self, meta: Any, c: list[Any]) -> A.PlanDecl:
        return self._plan("plan", meta, c)

    def on_contract(self, meta: Any, c: list[Any]) -> A.PlanDecl:
        return self._plan("contract", meta, c)

    def on_extends(self, meta: Any, c: list[Token]) -> A.Word:
        return self._word(c[0])

    def on_block(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        return tuple(c)

    # -- terms
    def on_money(self, meta: Any, c: list[Any]) -> A.Number:
        sign, tok = c
        value = _num(tok)
        if sign is not None:
            return A.Number(-value, "-" + str(tok), self._mspan(meta))
        return A.Number(value, str(tok), self._mspan(meta))

    def on_base_stmt(self, meta: Any, c: list[Any]) -> A.BaseStmt:
        return A.BaseStmt(c[0], self._word(c[1]), self._mspan(meta))

    def on_addons_stmt(self, meta: Any, c: list[Token]) -> A.AddonsStmt:
        return A.AddonsStmt(tuple(self._word(t) for t in c), self._mspan(meta))

    def on_meter_term(self, meta: Any, c: list[Any]) -> A.MeterTerm:
        meter, allowance, overage, rate = c
        return A.MeterTerm(
            self._word(meter), allowance, overage is not None, rate, self._mspan(meta)
        )

    def on_included(self, meta: Any, c: list[Any]) -> A.Included:
        qty, unit = c
        return A.Included(
            self._number(qty), self._word(unit) if unit is not None else None, self._mspan(meta)
        )

    def on_percent(self, meta: Any, c: list[Token]) -> A.PercentAllowance:
        return A.PercentAllowance(self._percent(c[0]), self._mspan(meta))

    def on_unit_price(self, meta: Any, c: list[Any]) -> tuple[Any, ...]:
        price, block, unit, rounded = c
        return (
            price,
            None if block is None else self._number(block),
            self._word(unit),
            rounded is not None,
        )

    def on_flat_rate(self, meta: Any, c: list[Any]) -> A.FlatRate:
        price, block, unit, down = c[0]
        return A.FlatRate(price, unit, self._mspan(meta), block, down)

    def on_tiered_rate(self, meta: Any, c: list[Any]) -> A.TieredRate:
        return A.TieredRate(str(c[0]), c[1], self._mspan(meta))

    def on_tiers(self, meta: Any, c: list[A.Tier]) -> tuple[A.Tier, ...]:
        return tuple(c)

    def on_tier_upto(self, meta: Any, c: list[Any]) -> A.Tier:
        (price, block, unit, down), fee = c[1], c[2]
        return A.Tier(self._number(c[0]), price, unit, self._mspan(meta), block, down, fee)

    def on_tier_above(self, meta: Any, c: list[Any]) -> A.Tier:
        (price, block, unit, down), fee = c[0], c[1]
        return A.Tier(None, price, unit, self._mspan(meta), block, down, fee)

    def on_when_block(self, meta: Any, c: list[Any]) -> A.WhenBlock:
        return A.WhenBlock(c[0], c[1], self._mspan(meta))

    def on_from_block(self, meta: Any, c: list[Any]) -> A.FromBlock:
        return A.FromBlock(self._date(c[0]), c[1], self._mspan(meta))

    def on_term_stmt(self, meta: Any, c: list[Token]) -> A.TermStmt:
        return A.TermStmt(self._date(c[0]), self._date(c[1]), self._mspan(meta))

    def on_prorate_stmt(self, meta: Any, c: list[Token]) -> A.ProrateStmt:
        return A.ProrateStmt(self._word(c[0]), self._mspan(meta))

    def on_discount_percent(self, meta: Any, c: list[Any]) -> A.DiscountPercent:
        return A.DiscountPercent(self._percent(c[0]), tuple(c[1:-1]), self._mspan(meta), c[-1])

    def on_discount_fixed(self, meta: Any, c: list[Any]) -> A.DiscountFixed:
        return A.DiscountFixed(
            c[0], self._opt_word(c[1]), self._word(c[2]), self._mspan(meta), c[3]
        )

    def on_for_months(self, meta: Any, c: list[Any]) -> A.TimeLimit:
        return A.TimeLimit(self._number(c[0]), self._word(c[1]), None, self._mspan(meta))

    def on_until_date(self, meta: Any, c: list[Any]) -> A.TimeLimit:
        return A.TimeLimit(None, None, self._date(c[0]), self._mspan(meta))

    def on_cap(self, meta: Any, c: list[Any]) -> A.CapStmt:
        return A.CapStmt(c[0], c[1], self._opt_word(c[2]), self._word(c[3]), self._mspan(meta))

    def on_minimum(self, meta: Any, c: list[Any]) -> A.MinimumStmt:
        target, amount, currency, unit = c
        return A.MinimumStmt(
            amount, self._opt_word(currency), self._word(unit), self._mspan(meta), target
        )

    # -- commitments and credits
    def _commitment(self, kind: str, meta: Any, c: list[Any]) -> A.CommitmentStmt:
        amount, currency, unit, on, rollover = c
        return A.CommitmentStmt(
            kind,
            amount,
            self._opt_word(currency),
            self._opt_word(unit),
            self._opt_word(on),
            self._opt_word(rollover),
            self._mspan(meta),
        )

    def on_commit_stmt(self, meta: Any, c: list[Any]) -> A.CommitmentStmt:
        return self._commitment("commit", meta, c)

    def on_prepaid_stmt(self, meta: Any, c: list[Any]) -> A.CommitmentStmt:
        return self._commitment("prepaid", meta, c)

    def on_credit_stmt(self, meta: Any, c: list[Any]) -> A.CommitmentStmt:
        return self._commitment("credit", meta, c)

    # -- policies and approvals
    def on_policy(self, meta: Any, c: list[Any]) -> A.PolicyDecl:
        return A.PolicyDecl(
            self._string(c[0]) or "", self._tspan(c[0]), tuple(c[1:]), self._mspan(meta)
        )

    def on_limit_floor(self, meta: Any, c: list[Any]) -> A.PolicyLimit:
        meter, overage, price, unit = c
        return A.PolicyLimit(
            "floor",
            self._word(meter),
            overage is not None,
            price,
            self._word(unit),
            (),
            self._mspan(meta),
        )

    def on_limit_percent(self, meta: Any, c: list[Token]) -> A.PolicyLimit:
        return A.PolicyLimit(
            "percent", self._word(c[0]), False, self._percent(c[1]), None, (), self._mspan(meta)
        )

    def on_limit_included(self, meta: Any, c: list[Any]) -> A.PolicyLimit:
        meter, qty, unit = c
        return A.PolicyLimit(
            "included",
            self._word(meter),
            False,
            self._number(qty),
            self._opt_word(unit),
            (),
            self._mspan(meta),
        )

    def on_limit_discount(self, meta: Any, c: list[Any]) -> A.PolicyLimit:
        return A.PolicyLimit(
            "discount", None, False, self._percent(c[0]), None, tuple(c[1:]), self._mspan(meta)
        )

    def on_limit_term(self, meta: Any, c: list[Token]) -> A.PolicyLimit:
        return A.PolicyLimit(
            "term", None, False, self._number(c[0]), self._word(c[1]), (), self._mspan(meta)
        )

    def on_approved_stmt(self, meta: Any, c: list[Any]) -> A.ApprovedStmt:
        ref, (meter, aspect, subject_span), limit = c
        return A.ApprovedStmt(
            self._string(ref) or "",
            self._tspan(ref),
            meter,
            aspect,
            subject_span,
            limit,
            self._mspan(meta),
        )

    def on_subject_meter(self, meta: Any, c: list[Any]) -> tuple[A.Word, str, Span]:
        return (self._word(c[0]), "meter" if c[1] is None else "rate", self._mspan(meta))

    def on_subject_included(self, meta: Any, c: list[Token]) -> tuple[A.Word, str, Span]:
        return (self._word(c[0]), "included", self._mspan(meta))

    def on_subject_discount(self, meta: Any, c: list[Any]) -> tuple[None, str, Span]:
        return (None, "discount", self._mspan(meta))

    def on_subject_term(self, meta: Any, c: list[Any]) -> tuple[None, str, Span]:
        return (None, "term", self._mspan(meta))

    def on_down_to_price(self, meta: Any, c: list[Any]) -> A.ApprovalLimit:
        return A.ApprovalLimit("down", c[0], False, self._word(c[1]), self._mspan(meta))

    def on_down_to_percent(self, meta: Any, c: list[Token]) -> A.ApprovalLimit:
        return A.ApprovalLimit("down", self._percent(c[0]), True, None, self._mspan(meta))

    def on_up_to_number(self, meta: Any, c: list[Any]) -> A.ApprovalLimit:
        return A.ApprovalLimit(
            "up", self._number(c[0]), False, self._opt_word(c[1]), self._mspan(meta)
        )

    def on_up_to_percent(self, meta: Any, c: list[Token]) -> A.ApprovalLimit:
        return A.ApprovalLimit("up", self._percent(c[0]), True, None, self._mspan(meta))

    # -- expressions
    def on_number(self, meta: Any, c: list[Token]) -> A.NumberExpr:
        return A.NumberExpr(self._number(c[0]), self._mspan(meta))

    def on_date(self, meta: Any, c: list[Token]) -> A.DateExpr:
        return A.DateExpr(self._date(c[0]), self._mspan(meta))

    def on_ref(self, meta: Any, c: list[Token]) -> A.RefExpr:
        return A.RefExpr(self._word(c[0]), self._mspan(meta))

    def on_attr(self, meta: Any, c: list[Token]) -> A.AttrExpr:
        return A.AttrExpr(self._word(c[0]), self._word(c[1]), self._mspan(meta))

    def on_arith(self, meta: Any, c: list[Any]) -> A.BinaryExpr:
        return A.BinaryExpr(str(c[1]), c[0], c[2], self._mspan(meta))

    def on_compare(self, meta: Any, c: list[Any]) -> A.BinaryExpr:
        return A.BinaryExpr(str(c[1]), c[0], c[2], self._mspan(meta))

    def on_or_(self, meta: Any, c: list[Any]) -> A.BinaryExpr:
        return A.BinaryExpr("or", c[0], c[1], self._mspan(meta))

    def on_and_(self, meta: Any, c: list[Any]) -> A.BinaryExpr:
        return A.BinaryExpr("and", c[0], c[1], self._mspan(meta))

    def on_not_(self, meta: Any, c: list[Any]) -> A.NotExpr:
        return A.NotExpr(c[0], self._mspan(meta))

    # -- tests
    def on_test(self, meta: Any, c: list[Any]) -> A.TestDecl:
        name = self._string(c[0]) or ""
        contract = period = None
        usage: tuple[tuple[A.Word, A.Number], ...] = ()
        expectations: list[A.Expectation] = []
        for item in c[1:]:
            tag = item[0]
            if tag == "contract":
                contract = item[1]
            elif tag == "period":
                period = item[1]
            elif tag == "usage":
                usage = usage + item[1]
            else:
                expectations.append(item[1])
        return A.TestDecl(name, contract, period, usage, tuple(expectations), self._mspan(meta))

    def on_test_contract(self, meta: Any, c: list[Token]) -> tuple[str, A.Word]:
        return ("contract", self._word(c[0]))

    def on_test_period(self, meta: Any, c: list[Token]) -> tuple[str, A.Word]:
        return ("period", self._word(c[0]))

    def on_test_usage(
        self, meta: Any, c: list[tuple[A.Word, A.Number]]
    ) -> tuple[str, tuple[Any, ...]]:
        return ("usage", tuple(c))

    def on_usage_entry(self, meta: Any, c: list[Token]) -> tuple[A.Word, A.Number]:
        return (self._word(c[0]), self._number(c[1]))

    def on_expect_value(self, meta: Any, c: list[Any]) -> tuple[str, A.Expectation]:
        code, field, value = c
        return (
            "expect",
            A.Expectation(
                code, str(field) if field is not None else "amount", value, self._mspan(meta)
            ),
        )

    def on_expect_field(self, meta: Any, c: list[Token]) -> str:
        return str(c[0])

    def on_expect_error(self, meta: Any, c: list[Token]) -> tuple[str, A.Expectation]:
        return ("expect", A.Expectation(self._word(c[0]), "error", None, self._mspan(meta)))

    def on_line_code(self, meta: Any, c: list[Token]) -> A.Word:
        return A.Word(".".join(str(t) for t in c), self._mspan(meta))


# Rule name -> its builder method (see _Builder).
_RULES: dict[str, Any] = {
    name.removeprefix("on_"): method
    for name, method in vars(_Builder).items()
    if name.startswith("on_")
}


# --------------------------------------------------------------- error words

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "PERCENT": "a percentage such as 5%",
    "STRING": 'a quoted name such as "Pro"',
    "DATE": "a date such as 2026-08-01",
    "PERIOD_TEXT": "a period such as 2026-08",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "COMPARE": "a comparison such as > or <=",
}

# Curated messages for the slips people actually make.  Each label maps to
# snippets that fail in the same parser state as the slip.
_SLIPS: dict[str, list[str]] = {
    "missing-per": [
        "plan p {\n  mau included 1 overage 0.12\n}",
        "plan p {\n  voice 0.001\n}",
        "plan p {\n  base 99\n}",
        'addon x "X" 5\n',
        "plan p {\n  addon x 5\n}",
        "plan p {\n  mau overage graduated {\n up to 5 at 0.1\n}\n}",
        "plan p {\n  discount 5\n}",
        "plan p {\n  minimum 5\n}",
        "plan p {\n  cap x 5\n}",
    ],
    "missing-percent": [
        "plan p {\n  concurrency 5 overage 1 per connection\n}",
        "plan p {\n  concurrency 5\n}",
        "plan p {\n  discount 10 on voice\n}",
    ],
    "rounded-up": [
        "plan p {\n  voice 1 per 60 minutes rounded up\n}",
        "plan p {\n  voice graduated {\n  above at 1 per 60 minutes rounded up\n}\n}",
    ],
    "plus-on-a-flat-rate": [
        "plan p {\n  mau 0.10 per user plus 5\n}",
        "plan p {\n  sms 1 per 100 messages plus 5\n}",
        "plan p {\n  voice 1 per 60 minutes rounded down plus 5\n}",
    ],
}

_SLIP_MESSAGES = {
    "missing-per": (
        "this price has no unit",
        "write the unit after the price, for example `0.12 per user`, `0.001 per minute` "
        "or `99.00 per month`",
    ),
    "missing-percent": (
        "this number needs a `%` sign or a unit",
        "write a percentage as `5%`, or give a price with its unit such as `1.00 per connection`",
    ),
    "rounded-up": (
        "blocks are `rounded down` or, by default, rounded up",
        "drop `rounded up`: every started block is billed unless the price says `rounded down`",
    ),
    "plus-on-a-flat-rate": (
        "a flat fee (`plus AMOUNT`) belongs to a row of a tier table",
        "write the rate as a table, e.g. `graduated {` … `above at 0.10 per user plus 5.00` … `}`,"
        " or bill the fee as an add-on",
    ),
}


@cache
def _slip_table() -> dict[tuple[int, str], str]:
    """Parser state and offending token type of each curated example slip.

    This is Lark's ``match_examples`` idea, keyed on the LALR state number
    alone: the stack depth differs with nesting, the state does not.
    """
    table: dict[tuple[int, str], str] = {}
    for label, examples in _SLIPS.items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedToken as e:
                table.setdefault((e.state.position, e.token.type), label)
    return table


def _match_slip(err: UnexpectedToken) -> str | None:
    position = getattr(err.state, "position", None)
    if position is None:
        return None
    return _slip_table().get((position, err.token.type))


def _concurrency_number(err: UnexpectedInput) -> str | None:
    """The number of a `concurrency NUMBER` that the parser cannot go on from.

    The parser's stack then ends with the meter's name and the number: no
    `included` and no `overage` came between them.
    """
    values = getattr(err.state, "value_stack", None) or []
    if len(values) < 2:
        return None
    name, number = values[-2], values[-1]
    if not (isinstance(name, Token) and name.type == "NAME" and name == "concurrency"):
        return None
    if isinstance(number, Tree) and number.data == "money" and number.children[0] is None:
        number = number.children[1]
    return str(number) if isinstance(number, Token) and number.type == "NUMBER" else None


def _describe_expected(names: set[str]) -> str:
    lark = _lark()
    words = []
    for name in sorted(names):
        if name in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[name])
            continue
        try:
            term = lark.get_terminal(name)
        except KeyError:
            words.append(name.lower())
            continue
        if isinstance(term.pattern, PatternStr):
            words.append(f"`{term.pattern.value}`")
        else:
            words.append(name.lower())
    words = sorted(set(words))
    if len(words) == 1:
        return words[0]
    if len(words) > 8:
        return ", ".join(words[:8]) + " or something else that fits"
    return ", ".join(words[:-1]) + " or " + words[-1]


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of the file"
    if tok.type == "_NL":
        return "end of the line"
    text = str(tok)
    return f"`{text[:40]}…`" if len(text) > 40 else f"`{text}`"


@cache
def _lexemes() -> re.Pattern[str]:
    """Strings, comments, braces and exponent numbers, read as the parser reads them.

    The one scanner for jobs that need to know what is code before parsing
    (exponents), beside the parser (which `{` is never closed), or without it
    (the formatter's comments).  Strings and comments use the patterns of the
    grammar's own STRING and COMMENT terminals, so a `#` or a `\\"` inside a
    string can never be read differently here than by the parser.
    """
    lark = _lark()
    string = lark.get_terminal("STRING").pattern.to_regexp()
    comment = lark.get_terminal("COMMENT").pattern.to_regexp()
    return re.compile(
        rf"(?P<string>{string})|(?P<comment>{comment})|(?P<brace>[{{}}])"
        rf"|(?P<exponent>{_EXPONENT.pattern})"
    )


def split_comment(line: str) -> tuple[str, str | None]:
    """A line's code and its comment (from the `#` on), or None if it has none."""
    for m in _lexemes().finditer(line):
        if m.lastgroup == "comment":
            return line[: m.start()], line[m.start() :]
    return line, None


def _open_braces(
    text: str, start: int = 0, end: int | None = None, opened: list[int] | None = None
) -> list[int]:
    """Offsets of the `{` in ``text[start:end]`` left open, after those in ``opened``.

    A `}` with nothing open is passed over, as the parser reports it on its own
    (E104).  ``start`` must not be inside a string or a comment: the start
    or the end of a line is safe.
    """
    stack = [] if opened is None else opened
    for m in _lexemes().finditer(text, start, len(text) if end is None else end):
        if m.lastgroup == "brace":
            if m.group() == "{":
                stack.append(m.start())
            elif stack:
                stack.pop()
    return stack


def _unclosed_brace(text: str, end: int | None = None) -> tuple[int, int] | None:
    """Line and column of the last `{` before ``end`` that has no matching `}`."""
    stack = _open_braces(text, 0, end)
    if not stack:
        return None
    pos = stack[-1]
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


_COMMA_NUMBER = re.compile(r"\d,\d{3}")
_SPACED_PERCENT = re.compile(r"(?<![\w.])(\d[\d_]*(?:\.\d[\d_]*)?)[ \t]+\Z")
# Currency signs people type before a price, and the code each most often means.
_CURRENCY_SIGNS = {"$": "USD", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a5": "JPY"}
_AMOUNT = re.compile(r"[ \t]*(\d[\d_]*(\.\d[\d_]*)?)")


def _currency_sign_hint(ch: str, text: str, pos: int) -> str | None:
    """How to write a price typed with a currency sign, such as `$50`."""
    code = _CURRENCY_SIGNS.get(ch)
    if code is None:
        return None
    amount = _AMOUNT.match(text, pos + 1)
    written = (
        f"write {amount[1]}{'' if amount[2] else '.00'} without the `{ch}`"
        if amount
        else f"remove the `{ch}`"
    )
    return (
        f"{written}; prices carry no currency sign, as the currency is set once, "
        f"with a line such as `currency {code}`"
    )


_CURLY = "\u201c\u201d\u2018\u2019"


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line = err.line if err.line and err.line > 0 else max(text.count("\n"), 1)
    col = err.column if err.column and err.column > 0 else 1
    src_lines = text.splitlines()
    src = src_lines[line - 1] if 0 < line <= len(src_lines) else ""

    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        span = Span.point(path, line, col)
        if ch == '"' and '"' not in src[col:]:
            return Diagnostic.at(
                "E107",
                "this quoted name is never closed",
                span,
                hint='end it with a straight double quote on the same line: "Name"',
            )
        if ch in _CURLY:
            return Diagnostic.at(
                "E101",
                "curly quote; names must use straight double quotes",
                span,
                hint='replace the curly quotes with straight ones: "Name" '
                "(this often happens when text is pasted from a document)",
            )
        if ch == "," and _COMMA_NUMBER.search(src[max(col - 6, 0) : col + 4]):
            return Diagnostic.at(
                "E102",
                "numbers cannot contain commas",
                span,
                hint="write 1000 or 1_000 instead of 1,000 (an underscore may separate digits)",
            )
        spaced = _SPACED_PERCENT.search(src[: col - 1]) if ch == "%" else None
        if spaced is not None:
            return Diagnostic.at(
                "E100",
                "unexpected space before `%`",
                span,
                hint=f"write the `%` right after the number: `{spaced[1]}%`",
            )
        allowed = _describe_expected(set(err.allowed or ()))
        shown = repr(ch)[1:-1] if ch.isprintable() else f"U+{ord(ch):04X}" if ch else "?"
        return Diagnostic.at(
            "E100",
            f"unexpected character `{shown}`; expected {allowed}",
            span,
            hint=_currency_sign_hint(ch, text, pos),
        )

    assert isinstance(err, (UnexpectedToken, UnexpectedEOF))
    tok: Token = err.token
    width = len(str(tok)) if tok.type not in ("$END", "_NL") else 1
    span = Span.point(path, line, col, width)
    names = err.expected if isinstance(err, UnexpectedEOF) else (err.accepts or err.expected)
    expected: set[str] = {str(n) for n in names}

    if tok.type == "$END" or (tok.type == "_NL" and err.line == -1):
        opened = _unclosed_brace(text)
        if "RBRACE" in expected and opened:
            return Diagnostic.at(
                "E103",
                f"the block opened on line {opened[0]} is never closed",
                Span.point(path, opened[0], opened[1]),
                hint="add a `}` on its own line at the end of the block",
            )
    if (
        tok.type == "RBRACE"
        and "RBRACE" not in expected
        and _unclosed_brace(text, err.pos_in_stream) is None
    ):
        return Diagnostic.at(
            "E104",
            "this `}` has no matching `{`",
            span,
            hint="remove the extra `}`",
        )
    if tok.type == "COMMA" and _COMMA_NUMBER.search(src[max(col - 6, 0) : col + 4]):
        return Diagnostic.at(
            "E102",
            "numbers cannot contain commas",
            span,
            hint="write 1000 or 1_000 instead of 1,000 (an underscore may separate digits)",
        )
    label = _match_slip(err) if isinstance(err, UnexpectedToken) else None
    allowance = _concurrency_number(err) if label is not None else None
    if allowance is not None:
        # `concurrency 6` is most likely a forgotten `%`: `6 per connection`
        # is a price, and a number alone is neither.
        hint = f"write `{allowance}%` for an allowance of {allowance}% of the included users"
        if str(tok) != "overage":
            hint += f", or `{allowance} per connection` for a price per connection"
        return Diagnostic.at("E106", _SLIP_MESSAGES["missing-percent"][0], span, hint=hint)
    if label is not None:
        message, hint = _SLIP_MESSAGES[label]
        return Diagnostic.at("E106", message, span, hint=hint)

    keyword_hint: str | None = None
    if tok.type == "NAME":
        # A misspelt keyword (`pln`, `extend`): suggest the keyword that fits here.
        best = suggest(str(tok), [w for w in (_keyword(n) for n in expected) if w])
        keyword_hint = f"did you mean `{best}`?" if best else None
    return Diagnostic.at(
        "E100",
        f"unexpected {_describe_token(tok)}; expected {_describe_expected(expected)}",
        span,
        hint=keyword_hint,
    )


def _keyword(name: str) -> str | None:
    try:
        term = _lark().get_terminal(name)
    except KeyError:
        return None
    value = term.pattern.value if isinstance(term.pattern, PatternStr) else None
    return value if value and value.isalpha() else None


_EXPONENT = re.compile(r"(?<![\w.])(?P<mantissa>\d[\d_]*(?:\.\d[\d_]*)?)(?P<power>[eE][+-]?\d+)")


def _exponents(text: str, path: str) -> tuple[str, list[Diagnostic]]:
    """Numbers written with exponents (`1e5`), which the grammar would split oddly.

    Each gets E105 at its own position, and is blanked out so the rest of
    the file can still be checked for other errors.  One inside a string or
    a comment is not a number, and is left alone.
    """
    # One search over the text rules out the usual case without scanning it.
    if _EXPONENT.search(text) is None:
        return text, []
    diags = []
    pieces = []
    done = 0
    for m in _lexemes().finditer(text):
        if m.lastgroup != "exponent":
            continue
        start = m.start()
        line = text.count("\n", 0, start) + 1
        column = start - text.rfind("\n", 0, start)
        diags.append(
            Diagnostic.at(
                "E105",
                "numbers cannot use exponents",
                Span(path, line, column, line, column + len(m.group())),
                hint="write the number out in full, for example 100000 instead of 1e5",
            )
        )
        power = m.start("power")
        pieces += [text[done:power], " " * (m.end() - power)]
        done = m.end()
    pieces.append(text[done:])
    return "".join(pieces), diags


def _too_deep(path: str) -> Diagnostic:
    return Diagnostic(
        "E108",
        "this file nests too deeply to read (a condition or block inside hundreds of others)",
        path,
        hint="split long conditions into several `when` blocks",
    )


# Stand-ins fed to the parser for a bad line that opens a block, so that the
# block's own lines and its `}` are read as they would be inside it, not as
# further (bogus) errors.  Tried in order; the first the parser accepts there
# is used.
_OPENERS: dict[str, tuple[tuple[str, str], ...]] = {
    "tiers": (("NAME", "_recovered"), ("GRADUATED", "graduated"), ("LBRACE", "{")),
    "test": (("TEST", "test"), ("STRING", '""'), ("LBRACE", "{")),
    "usage": (("USAGE", "usage"), ("LBRACE", "{")),
    "plan": (("PLAN", "plan"), ("NAME", "_recovered"), ("LBRACE", "{")),
    "when": (("WHEN", "when"), ("NUMBER", "1"), ("COMPARE", ">"), ("NUMBER", "0"), ("LBRACE", "{")),
}
_CLOSER = (("RBRACE", "}"),)
# What a line break may be followed by before the next statement.
_BLANK = re.compile(r"(?:\s|#[^\n]*)*")


def _start_line(value: Any) -> int | None:
    """The line a value on the parser's stack starts on, if it has a position."""
    if isinstance(value, Token):
        return value.line
    meta = getattr(value, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return None
    line: int = meta.line
    return line


class _Recovery:
    """Lark's ``on_error`` handler: records each syntax error and skips its line.

    Parsing goes on in the same pass from the next line, as if the bad line
    held only its braces: the parser's stack is cut back to where the line
    began, a stand-in opener or `}` keeps the nesting the text has at the end
    of the line, and the lexer resumes at the line break.  Each error costs
    a few stack operations instead of a parse of the whole file.
    """

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self.last_line = 0
        # The `{` left open up to the end of the last bad line, found by
        # scanning on from there: each error scans only the text since the last.
        self.scanned = 0
        self.opened: list[int] = []

    def __call__(self, err: UnexpectedInput) -> bool:
        line = err.line
        at_end = isinstance(err, UnexpectedToken) and err.token.type == "$END"
        if line <= self.last_line and not at_end:
            return False  # no progress since the last error: stop here
        self.diagnostics.append(_syntax_diagnostic(err, self.text, self.path))
        self.last_line = line
        if (
            at_end
            or line < 1
            or self.diagnostics[-1].code == "E103"
            or len(self.diagnostics) >= _MAX_SYNTAX_ERRORS
        ):
            return False
        try:
            return self._skip_line(err, line)
        except UnexpectedInput:
            return False  # the stand-ins did not fit: report what was found so far

    def _skip_line(self, err: UnexpectedInput, line: int) -> bool:
        ip = err.interactive_parser
        state = ip.parser_state
        values, states = state.value_stack, state.state_stack
        while values and (_start_line(values[-1]) or 0) >= line:
            values.pop()
            states.pop()
        lexer = ip.lexer_thread.state
        assert lexer is not None
        pos = lexer.line_ctr.char_pos
        where: Token | None = err.token if isinstance(err, UnexpectedToken) else None
        at_break = where is not None and where.type == "_NL"
        if where is not None and at_break:
            line_end = where.start_pos if where.start_pos is not None else pos
        else:
            line_end = self.text.find("\n", pos)
            line_end = len(self.text) if line_end < 0 else line_end
            if self.text[line_end - 1 : line_end] == "\r" and line_end - 1 >= pos:
                line_end -= 1
        self.opened = _open_braces(self.text, self.scanned, line_end, self.opened)
        self.scanned = line_end
        depth = sum(1 for v in values if isinstance(v, Token) and v.type == "LBRACE")
        if len(self.opened) > depth:
            bad = split_comment(self.text[self.text.rfind("\n", 0, line_end) + 1 : line_end])[0]
            words = bad.split()
            order = ["plan", "when", "tiers", "test", "usage"]
            if "graduated" in words or "volume" in words:
                order.insert(0, "tiers")
            elif words and words[0] in ("test", "usage"):
                order.insert(0, words[0])
            for _ in range(len(self.opened) - depth):
                for kind in order:
                    if self._fits(state, _OPENERS[kind], where, line):
                        self._feed(state, _OPENERS[kind], where, line)
                        break
        elif len(self.opened) < depth:
            for _ in range(depth - len(self.opened)):
                if not self._fits(state, _CLOSER, where, line):
                    break
                self._feed(state, _CLOSER, where, line)
        elif values and isinstance(values[-1], Tree) and values[-1].data == "_sep":
            # The line breaks before the bad line were already taken as one
            # separator, which takes no more: let the breaks after it make it anew.
            values.pop()
            states.pop()
        # The line break: fed as usual, or passed over, with any blank and
        # comment lines after it, where the parser is already past one.
        fits = self._fits(state, (("_NL", "\n"),), where, line)
        if where is not None and at_break:
            if fits:
                state.feed_token(where)
                return True
            line_end = pos
        skip = line_end
        if not fits:
            blank = _BLANK.match(self.text, line_end)
            skip = blank.end() if blank else line_end
        lexer.line_ctr.feed(self.text[pos:skip])
        return True

    def _fits(
        self, state: Any, tokens: tuple[tuple[str, str], ...], where: Token | None, line: int
    ) -> bool:
        try:
            self._feed(state.copy(deepcopy_values=False), tokens, where, line)
        except UnexpectedInput:
            return False
        return True

    @staticmethod
    def _feed(
        state: Any, tokens: tuple[tuple[str, str], ...], where: Token | None, line: int
    ) -> None:
        for kind, value in tokens:
            if where is not None:
                state.feed_token(Token.new_borrow_pos(kind, value, where))
            else:
                state.feed_token(
                    Token(kind, value, line=line, column=1, end_line=line, end_column=1)
                )


def parse(text: str, path: str = "<string>") -> tuple[A.File | None, list[Diagnostic]]:
    """Parse one file.  Returns the AST, or None with every syntax error found.

    Syntax errors are all found in one parse: after each, :class:`_Recovery`
    skips the bad line and parsing goes on (up to 20 errors a file).
    """
    lark = _lark()
    # A final newline lets the last statement end the same way as the others.
    source = text if text.endswith("\n") else text + "\n"
    source, exponent_errors = _exponents(source, path)
    if exponent_errors:
        _, others = parse(source, path)
        return None, exponent_errors + others
    recovery = _Recovery(source, path)
    try:
        tree = lark.parse(source, on_error=recovery)
    except UnexpectedInput as err:
        if not recovery.diagnostics:  # pragma: no cover - the handler saw every error
            recovery.diagnostics.append(_syntax_diagnostic(err, source, path))
    if recovery.diagnostics:
        return None, recovery.diagnostics
    try:
        decls = _Builder(path).transform(tree)
    except (RecursionError, VisitError) as exc:
        if isinstance(exc, RecursionError) or isinstance(exc.orig_exc, RecursionError):
            return None, [_too_deep(path)]  # pragma: no cover - a bug in the builder, not bad input
        raise PricingError(
            Diagnostic(
                "E000",
                f"internal error while reading this file: {exc.orig_exc!r}; please report it",
                path,
            )
        ) from exc
    return A.File(path, tuple(decls)), []
