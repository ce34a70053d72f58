"""Resolved, validated terms: what the checker hands to the rating engine.

A contract resolves to an ordered tuple of :class:`Layer` values: the
standard defaults, then each ancestor's clauses, then its own.  A layer is a
patch of term values; conditional layers (``when``, ``from``) apply only to
the usage and periods they match.  Folding the layers that apply, in order,
gives the terms in force.  Every value keeps the span of the clause that set
it, so an invoice line can say where its rate came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar

from . import _ast as A
from ._errors import Span

T = TypeVar("T")

# Synthetic location for the FAQ's standard rates and allowances.
STANDARD = Span("<standard rates>", 0, 0, 0, 0)

FIXED_PER = "month"
# How often a fixed fee may be billed, and the months in each interval.
FEE_INTERVALS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True, slots=True)
class Sourced(Generic[T]):
    value: T
    span: Span


@dataclass(frozen=True, slots=True)
class TierSpec:
    up_to: Decimal | None  # None: the final `above` tier
    price: Decimal
    block: Decimal | None = None  # the price is per block of this many units
    down: bool = False  # `rounded down`: only whole blocks are billed
    fee: Decimal | None = None  # the row's flat fee (`plus 50.00`)


@dataclass(frozen=True, slots=True)
class RateSpec:
    mode: str  # "flat" | "graduated" | "volume"
    price: Decimal | None  # flat only
    tiers: tuple[TierSpec, ...] = ()
    block: Decimal | None = None  # flat only, as TierSpec.block
    down: bool = False  # flat only, as TierSpec.down


@dataclass(frozen=True, slots=True)
class AllowanceSpec:
    kind: str  # "included" | "percent"
    value: Decimal


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """A metered dimension: built in (mau, concurrency, voice, video) or declared."""

    id: str
    name: str
    unit: str
    usage_key: str
    line_code: str
    whole: bool  # quantities must be whole numbers (users, connections)
    builtin: bool
    span: Span


BUILTIN_METERS: tuple[MeterInfo, ...] = (
    MeterInfo("mau", "MAU overage", "user", "mau", "mau_overage", True, True, STANDARD),
    MeterInfo(
        "concurrency",
        "Concurrency overage",
        "connection",
        "peak_connections",
        "concurrency_overage",
        True,
        True,
        STANDARD,
    ),
    MeterInfo("voice", "Voice minutes", "minute", "voice_minutes", "voice", False, True, STANDARD),
    MeterInfo("video", "Video minutes", "minute", "video_minutes", "video", False, True, STANDARD),
)


@dataclass(frozen=True, slots=True)
class AddonInfo:
    id: str
    name: str
    price: Decimal
    currency: str | None
    span: Span
    per: str = "month"  # how often it is billed: "month", "quarter" or "year"


# A term key names one term: ("base",), ("meter", "mau", "rate"),
# ("addon_price", "hipaa"), ("addons",), ("discount_pct", "video"), ...
TermKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Layer:
    """A patch of terms, with the condition under which it applies."""

    patch: Mapping[TermKey, Sourced[Any]]
    condition: A.Expr | None = None
    from_date: date | None = None
    label: str = ""
    span: Span = STANDARD
    # A time-limited discount's last day; its `condition` says the same as
    # `period.start <= until`, which is what selection evaluates.
    until: date | None = None

    @property
    def conditional(self) -> bool:
        return self.condition is not None or self.from_date is not None


@dataclass(frozen=True, slots=True)
class ResolvedContract:
    """A plan or contract, resolved through its ``extends`` chain."""

    id: str
    name: str
    kind: str  # "plan" | "contract"
    currency: str
    minor_units: int
    chain: tuple[str, ...]  # itself first, then its ancestors
    layers: tuple[Layer, ...]
    span: Span
    # Terms folded from the unconditional layers, computed once at load time.
    static_terms: Mapping[TermKey, Sourced[Any]] = field(default_factory=dict)
    has_conditions: bool = False
    uses_period: bool = False


@dataclass(frozen=True, slots=True)
class CommitmentSpec:
    """A commitment or credit: ``commit``, ``prepaid`` or ``credit`` (see ``_statement.py``).

    ``amount`` is per contract year for ``commit`` and ``prepaid``, once for
    ``credit``; ``on_usage`` is ``commit … on usage``; ``rollover`` is
    ``prepaid … rollover``.
    """

    kind: str  # "commit" | "prepaid" | "credit"
    amount: Decimal
    on_usage: bool = False
    rollover: bool = False
