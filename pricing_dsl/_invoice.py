"""Invoices and their line items, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal
from operator import attrgetter
from typing import Any

from ._usage import Period

__all__ = ["Explanation", "Invoice", "Line", "canonical", "decimal_text"]

# Wide enough for any quantity rating accepts (below 10**15, few digits).
_WIDE = Context(prec=100)


def decimal_text(d: Decimal) -> str:
    """Plain decimal text, never scientific notation."""
    return f"{d:f}"


_UNIT = Decimal(1)


def canonical(d: Decimal) -> Decimal:
    """A quantity as every engine writes it: exact, without trailing fractional zeros.

    ``182000.50`` becomes ``182000.5`` and ``1E+3`` becomes ``1000``, so a
    line reads the same whether the interpreter, the fast path or SQL (which
    keeps no trailing zeros) rated it.
    """
    if d == d.to_integral_value():
        return d.quantize(_UNIT, context=_WIDE)
    return d.normalize(_WIDE)


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
            "service_period": None
            if self.service_period is None
            else self.service_period.to_json(),
        }
        if explain and self.explanation is not None:
            out["explanation"] = self.explanation.to_dict()
        return out


# code, description, quantity, unit, unit price (None for tiers and adjustments), amount
Item = tuple[str, str, Decimal, str, "Decimal | None", Decimal]


class Invoice:
    """Rated charges for one contract.  ``total`` is the sum of the rounded lines.

    Read-only.  ``amounts`` maps each line code to its amount; ``lines`` holds
    the full :class:`Line` items with their explanations.  An invoice from the
    compiled fast path builds ``lines`` on first access, so a billing run
    that only needs amounts never pays for the derivation trace.
    """

    # Few slots, packed in tuples: the compiled path builds one invoice per
    # account, and every attribute set shows up in a billing run.
    __slots__ = ("_amounts", "_build", "_codes", "_ctx", "_lines", "_meta", "_total")

    def __init__(
        self,
        contract: str,
        contract_name: str,
        currency: str,
        minor_units: int,
        period: Period | None,
        lines: tuple[Line, ...],
        total: Decimal,
        account: str | None = None,
        issue_date: date | None = None,
        rules_applied: tuple[str, ...] = (),
    ) -> None:
        self._meta = (contract, contract_name, currency, minor_units)
        # (period, account, issue date, rules applied)
        self._ctx: tuple[Any, ...] = (period, account, issue_date, rules_applied)
        self._lines: tuple[Line, ...] | None = lines
        self._codes = tuple(ln.code for ln in lines)
        self._amounts = tuple(ln.amount for ln in lines)
        self._total = total
        # (builder, *arguments) whose ``lines`` builds the lines, for lazily built
        # invoices: the fast path (_compile.py) sets every slot itself, as here.
        self._build: tuple[Any, ...] | None = None

    contract = property(lambda self: self._meta[0], doc="The plan or contract id.")
    contract_name = property(lambda self: self._meta[1])
    currency = property(lambda self: self._meta[2], doc="ISO 4217 code.")
    minor_units = property(lambda self: self._meta[3], doc="Digits after the decimal point.")
    period = property(lambda self: self._ctx[0], doc="The rated period, if any.")
    # A C-level getter: a billing run reads the total of every invoice.
    total = property(attrgetter("_total"), doc="Sum of the rounded line amounts.")
    account = property(lambda self: self._ctx[1])
    issue_date = property(lambda self: self._ctx[2])
    rules_applied = property(
        lambda self: self._ctx[3],
        doc="Labels of the `when` and `from` blocks whose terms applied.",
    )

    @property
    def lines(self) -> tuple[Line, ...]:
        """Every line item, in invoice order, with its explanation."""
        if self._lines is None:
            assert self._build is not None
            # Building twice from two threads is harmless: the result is the same.
            builder, *args = self._build
            self._lines = builder.lines(*args)
        return self._lines

    def _items(self) -> tuple[Item, ...]:
        """(code, description, quantity, unit, unit price, amount) of every line.

        What a billing run writes.  A fast-path invoice computes these from its
        contract's terms without building the lines' explanations.
        """
        if self._lines is None and self._build is not None:
            items: tuple[Item, ...] = self._build[0].items(
                self._build[1], self._amounts, self._build[2]
            )
            return items
        return tuple(
            (ln.code, ln.description, ln.quantity, ln.unit, ln.unit_price, ln.amount)
            for ln in self.lines
        )

    @property
    def amounts(self) -> dict[str, Decimal]:
        """Line code -> rounded amount, in invoice order."""
        return dict(zip(self._codes, self._amounts, strict=False))

    @property
    def codes(self) -> list[str]:
        """The line codes, in invoice order."""
        return list(self._codes)

    def __repr__(self) -> str:
        return (
            f"Invoice(contract={self.contract!r}, currency={self.currency!r}, "
            f"period={self.period!s}, total={self._total}, lines={len(self._codes)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Invoice):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def line(self, code: str) -> Line:
        """The line with this code; KeyError if there is none."""
        for ln in self.lines:
            if ln.code == code:
                return ln
        raise KeyError(code)

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
