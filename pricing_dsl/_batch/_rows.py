"""Output rows of a batch run and their exact text in each output format.

Both engines produce the same rows, and both format them through the
rules here: the python engine with these functions, the DuckDB engine with
SQL that this module's constants and tests keep in step (the parts that
come from the ruleset are formatted here, by Python, and pasted into the
SQL).  So the two engines write the same bytes for JSON Lines and CSV.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal

from .._invoice import Invoice, decimal_text

__all__ = [
    "COLUMNS",
    "CSV_HEADER",
    "Row",
    "canon",
    "csv_field",
    "csv_line",
    "invoice_rows",
    "json_line",
    "json_str",
]

COLUMNS = (
    "account",
    "contract",
    "period",
    "currency",
    "code",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
)
CSV_HEADER = ",".join(COLUMNS)

# account, contract, period, currency, code, description, quantity, unit, unit_price, amount.
Row = tuple[str | None, str, str | None, str, str, str, str, str, str | None, str]


def canon(q: Decimal) -> str:
    """A quantity as plain decimal text without trailing zeros: 1250, 96500.5, 0."""
    text = decimal_text(q)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def invoice_rows(inv: Invoice) -> list[Row]:
    """One row per line item, in invoice order (no explanations are built)."""
    head = (
        inv.account,
        inv.contract,
        None if inv.period is None else str(inv.period),
        inv.currency,
    )
    return [
        (
            *head,
            code,
            description,
            canon(quantity),
            unit,
            None if unit_price is None else decimal_text(unit_price),
            decimal_text(amount),
        )
        for code, description, quantity, unit, unit_price, amount in inv._items()
    ]


def json_str(value: str | None) -> str:
    """A JSON value as this module writes it: UTF-8 kept, only what JSON requires escaped."""
    return json.dumps(value, ensure_ascii=False)


def json_line(row: Sequence[str | None]) -> str:
    """One JSON object on one line, keys in COLUMNS order, no spaces."""
    return json.dumps(
        dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False, separators=(",", ":")
    )


def csv_field(value: str | None) -> str:
    """A field as Python's csv writer writes it inside a row (minimal quoting)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if value is None else value, ""])
    return buf.getvalue()[:-2]  # drop the empty second field's "," and the "\n"


def csv_line(row: Sequence[str | None]) -> str:
    """One CSV record without its line terminator, as Python's csv writer writes it."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in row])
    return buf.getvalue()[:-1]
