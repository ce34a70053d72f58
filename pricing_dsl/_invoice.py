"""Invoices and their line items, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ._usage import Period

__all__ = ["Explanation", "Invoice", "Line", "decimal_text"]


def decimal_text(d: Decimal) -> str:
    """Plain decimal text, never scientific notation."""
    return f"{d:f}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a line's amount was derived.

    ``formula`` shows the arithmetic with its numbers, ``exact`` the amount
    before rounding, ``sources`` the file:line of every clause used, and
    ``details`` the tier split, allowance consumed, proration factor or
    adjustment step.
    """

    formula: str
    exact: Decimal
    sources: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The same clause often sets two terms (`mau included 10 overage 0.1 per user`).
        object.__setattr__(self, "sources", tuple(dict.fromkeys(self.sources)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": self.formula,
            "exact_amount": decimal_text(self.exact),
            "sources": list(self.sources),
            "details": list(self.details),
        }


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line item.  ``amount`` is rounded to the currency's minor unit."""

    code: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal | None  # None for tiered lines and adjustments
    amount: Decimal
    kind: str  # "fee" | "usage" | "adjustment"
    service_period: Period | None = None
    explanation: Explanation | None = None

    def to_dict(self, explain: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "description": self.description,
            "kind": self.kind,
            "quantity": decimal_text(self.quantity),
            "unit": self.unit,
            "unit_price": None if self.unit_price is None else decimal_text(self.unit_price),
            "amount": decimal_text(self.amount),
            "service_period": None if self.service_period is None
            else self.service_period.to_json(),
        }
        if explain and self.explanation is not None:
            out["explanation"] = self.explanation.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Invoice:
    """Rated charges for one contract.  ``total`` is the sum of the rounded lines."""

    contract: str
    contract_name: str
    currency: str
    minor_units: int
    period: Period | None
    lines: tuple[Line, ...]
    total: Decimal
    account: str | None = None
    issue_date: date | None = None
    # Labels of the `when` and `from` blocks whose terms applied.
    rules_applied: tuple[str, ...] = ()

    def line(self, code: str) -> Line:
        """The line with this code; KeyError if there is none."""
        for ln in self.lines:
            if ln.code == code:
                return ln
        raise KeyError(code)

    @property
    def codes(self) -> list[str]:
        return [ln.code for ln in self.lines]

    def to_dict(self, explain: bool = True) -> dict[str, Any]:
        """The invoice as JSON-ready data matching ``schemas/invoice.schema.json``."""
        out: dict[str, Any] = {
            "contract": self.contract,
            "contract_name": self.contract_name,
            "account": self.account,
            "currency": self.currency,
            "period": None if self.period is None else self.period.to_json(),
        }
        if self.issue_date is not None:
            out["issue_date"] = self.issue_date.isoformat()
        out["lines"] = [ln.to_dict(explain) for ln in self.lines]
        if explain:
            out["rules_applied"] = list(self.rules_applied)
        out["total"] = decimal_text(self.total)
        return out
