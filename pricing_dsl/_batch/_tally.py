"""What a batch run counted: records, outcomes, totals per currency, errors."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from .._decimal import CONTEXT
from .._errors import Diagnostic, PricingError
from ._records import Outcome

__all__ = ["BatchError", "CannotReadInPlace", "Tally"]


class BatchError(PricingError):
    """The run could not complete (a file cannot be written, a package is missing): E620.

    A :class:`~pricing_dsl.PricingError` like every error of the package;
    ``message`` is the plain sentence, without the code.
    """

    code = "E620"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(Diagnostic(self.code, message))

    def __str__(self) -> str:
        return self.message


class CannotReadInPlace(Exception):
    """The DuckDB engine cannot rate this file exactly as Python would; the python engine does.

    The message says why: the file cannot be split into Python's lines or
    records in place, or this DuckDB computes differently.
    """


class Tally:
    """Counts and sums kept while a run goes; both engines fill one."""

    def __init__(self) -> None:
        self.records = 0  # records read (blank lines are not records)
        self.rated = 0  # records with line items written
        self.interpreted = 0  # of those, rated by the interpreter rather than by SQL
        self.reasons: Counter[str] = Counter()
        self.totals: dict[str, Decimal] = {}
        self.lines = 0
        self.errors: list[tuple[int, Diagnostic]] = []
        self.failed_records = 0
        self.notes: list[str] = []

    def outcome(self, line: int, outcome: Outcome, reason: str | None) -> None:
        """One record rated (or not) by the interpreter."""
        self.records += 1
        if outcome.errors:
            self.failed_records += 1
            self.errors.extend((line, d) for d in outcome.errors)
            return
        self.rated += 1
        if reason is not None:
            self.interpreted += 1
            self.reasons[reason] += 1
        self.lines += len(outcome.rows)
        for row in outcome.rows:
            self.add(row[3], Decimal(row[9]))

    def add(self, currency: str, amount: Decimal) -> None:
        self.totals[currency] = CONTEXT.add(self.totals.get(currency, Decimal(0)), amount)
