"""The syntax tree: what a ruleset file says, before any meaning is checked.

Every node is a frozen, slotted dataclass carrying the :class:`Span` of the
text it came from, so later passes can point at the exact clause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ._errors import Span


@dataclass(frozen=True, slots=True)
class Word:
    """An identifier or keyword-like word (a unit, a currency code...)."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal literal. ``text`` keeps the author's spelling (``10_000``)."""

    value: Decimal
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class DateLit:
    value: date | None  # None when the text is not a real calendar date
    text: str
    span: Span


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class CurrencyStmt:
    code: Word
    span: Span


@dataclass(frozen=True, slots=True)
class RoundingStmt:
    mode: Word
    span: Span


@dataclass(frozen=True, slots=True)
class AddonStmt:
    """``addon ID ["Name"] PRICE per month``: a catalog entry, or a price override."""

    id: Word
    name: str | None
    price: Number
    unit: Word
    span: Span


@dataclass(frozen=True, slots=True)
class MeterDecl:
    id: Word
    name: str | None
    unit: Word
    span: Span


@dataclass(frozen=True, slots=True)
class BaseStmt:
    price: Number
    unit: Word
    span: Span


@dataclass(frozen=True, slots=True)
class Included:
    quantity: Number
    unit: Word | None
    span: Span


@dataclass(frozen=True, slots=True)
class PercentAllowance:
    percent: Number
    span: Span


@dataclass(frozen=True, slots=True)
class FlatRate:
    """``PRICE per [BLOCK] UNIT [rounded down]``: a flat rate, per unit or per block of units."""

    price: Number
    unit: Word
    span: Span
    block: Number | None = None  # `per 1_000 messages`: the price is for each block
    rounded_down: bool = False  # `rounded down`: only whole blocks are billed


@dataclass(frozen=True, slots=True)
class Tier:
    """One row of a tier table; ``up_to`` is None for the final ``above`` row.

    ``block`` and ``rounded_down`` as for :class:`FlatRate`; ``fee`` is the
    row's flat fee (``plus 50.00``).
    """

    up_to: Number | None
    price: Number
    unit: Word
    span: Span
    block: Number | None = None
    rounded_down: bool = False
    fee: Number | None = None


@dataclass(frozen=True, slots=True)
class TieredRate:
    mode: str  # "graduated" | "volume"
    tiers: tuple[Tier, ...]
    span: Span


Rate = FlatRate | TieredRate
Allowance = Included | PercentAllowance


@dataclass(frozen=True, slots=True)
class MeterTerm:
    """``METER [allowance] [overage] [rate]``, e.g. ``mau included 1000 overage 0.12 per user``."""

    meter: Word
    allowance: Allowance | None
    overage_keyword: bool
    rate: Rate | None
    span: Span


@dataclass(frozen=True, slots=True)
class AddonsStmt:
    ids: tuple[Word, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class TermStmt:
    start: DateLit
    end: DateLit
    span: Span


@dataclass(frozen=True, slots=True)
class ProrateStmt:
    what: Word
    span: Span


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """``for N months`` (``months``) or ``until DATE`` (``until``) after a discount."""

    months: Number | None
    unit: Word | None  # the word after N: `months`
    until: DateLit | None
    span: Span


@dataclass(frozen=True, slots=True)
class DiscountPercent:
    percent: Number
    targets: tuple[Word, ...]
    span: Span
    limit: TimeLimit | None = None


@dataclass(frozen=True, slots=True)
class DiscountFixed:
    amount: Number
    currency: Word | None
    unit: Word
    span: Span
    limit: TimeLimit | None = None


@dataclass(frozen=True, slots=True)
class CapStmt:
    """``cap TARGET AMOUNT per month``: a line code, ``usage`` or ``addons``."""

    line: Word
    amount: Number
    currency: Word | None
    unit: Word
    span: Span


@dataclass(frozen=True, slots=True)
class MinimumStmt:
    """``minimum [TARGET] AMOUNT per month``: the invoice's minimum, or a line's (``target``)."""

    amount: Number
    currency: Word | None
    unit: Word
    span: Span
    target: Word | None = None


# --------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class NumberExpr:
    value: Number
    span: Span


@dataclass(frozen=True, slots=True)
class DateExpr:
    value: DateLit
    span: Span


@dataclass(frozen=True, slots=True)
class RefExpr:
    """A meter, such as ``mau`` or ``video_minutes``."""

    name: Word
    span: Span


@dataclass(frozen=True, slots=True)
class AttrExpr:
    """``period.start`` / ``period.end``."""

    obj: Word
    attr: Word
    span: Span


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    op: str  # + - * / < <= > >= == != and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class NotExpr:
    operand: Expr
    span: Span


Expr = NumberExpr | DateExpr | RefExpr | AttrExpr | BinaryExpr | NotExpr


@dataclass(frozen=True, slots=True)
class WhenBlock:
    condition: Expr
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class FromBlock:
    start: DateLit
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovalLimit:
    """How far an approval goes.

    ``down to PRICE per UNIT``, ``down to P%``, ``up to N [UNIT]`` or ``up to P%``.
    """

    direction: str  # "down" | "up"
    value: Number
    percent: bool
    unit: Word | None
    span: Span


@dataclass(frozen=True, slots=True)
class ApprovedStmt:
    """``approved "REF" for SUBJECT [LIMIT]``: a recorded exception to a policy limit.

    ``aspect`` is what the subject names: ``"meter"`` (``mau``), ``"rate"``
    (``mau overage``), ``"included"`` (``mau included``), ``"discount"`` or ``"term"``;
    ``meter`` is None for the last two.
    """

    reference: str
    reference_span: Span
    meter: Word | None
    aspect: str
    subject_span: Span
    limit: ApprovalLimit | None
    span: Span


# ------------------------------------------------ commitments and credits


@dataclass(frozen=True, slots=True)
class CommitmentStmt:
    """``commit AMOUNT [CODE] per year [on usage]``, ``prepaid AMOUNT [CODE] per year
    [rollover]`` or ``credit AMOUNT [CODE]``.

    ``kind`` is ``"commit"``, ``"prepaid"`` or ``"credit"``.  Every optional
    part is kept whatever the kind, so the checker can word a misplaced one.
    """

    kind: str
    amount: Number
    currency: Word | None
    unit: Word | None
    on: Word | None
    rollover: Word | None
    span: Span


Stmt = (
    CurrencyStmt
    | RoundingStmt
    | BaseStmt
    | MeterTerm
    | AddonsStmt
    | AddonStmt
    | WhenBlock
    | FromBlock
    | TermStmt
    | ProrateStmt
    | DiscountPercent
    | DiscountFixed
    | CapStmt
    | MinimumStmt
    | ApprovedStmt
    | CommitmentStmt
)


@dataclass(frozen=True, slots=True)
class PlanDecl:
    """A ``plan`` or ``contract`` block."""

    kind: str  # "plan" | "contract"
    id: Word
    name: str | None
    parent: Word | None
    body: tuple[Stmt, ...]
    span: Span


# --------------------------------------------------------------------- tests


@dataclass(frozen=True, slots=True)
class Expectation:
    """``expect LINE [quantity|amount] VALUE``, ``expect total VALUE`` or ``expect error CODE``."""

    target: Word  # line code, "total", or for errors the code
    field: str  # "amount" | "quantity" | "error"
    value: Number | None
    span: Span


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: str
    contract: Word | None
    period: Word | None
    usage: tuple[tuple[Word, Number], ...]
    expectations: tuple[Expectation, ...]
    span: Span


# ------------------------------------------------------------------ policies


@dataclass(frozen=True, slots=True)
class PolicyLimit:
    """One limit of a policy.

    ``kind`` is ``"floor"`` (``METER [overage] at least PRICE per UNIT``),
    ``"percent"`` (``METER at least P%``), ``"included"`` (``METER included at
    most N [UNIT]``), ``"discount"`` (``discount at most P% on TARGET, …``) or
    ``"term"`` (``term at most N months``).
    """

    kind: str
    meter: Word | None
    overage: bool
    value: Number
    unit: Word | None
    targets: tuple[Word, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PolicyDecl:
    """``policy "NAME" { limits }``: limits every contract of the ruleset is held to."""

    name: str
    name_span: Span
    limits: tuple[PolicyLimit, ...]
    span: Span


Decl = CurrencyStmt | RoundingStmt | AddonStmt | MeterDecl | PlanDecl | PolicyDecl | TestDecl


@dataclass(frozen=True, slots=True)
class File:
    path: str
    decls: tuple[Decl, ...]
