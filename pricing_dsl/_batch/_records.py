"""Usage records read with the standard library, and one record rated in Python.

This is the python engine's reader and rater, and the DuckDB engine's
fallback: every record the SQL cannot prove plain and valid is read back and
rated here, so both engines report the same errors in the same words.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._errors import Diagnostic, PricingError
from .._ruleset import Ruleset
from .._sqlquote import sql_string
from .._usage import _read_json
from ._rows import Row, invoice_rows

__all__ = [
    "BOM",
    "FORMATS",
    "Outcome",
    "Record",
    "csv_header",
    "file_format",
    "flat_period",
    "parquet_rows",
    "rate_record",
    "read_csv",
    "read_jsonl",
    "record_from_cells",
    "record_from_csv_text",
    "record_from_json_text",
]

BOM = b"\xef\xbb\xbf"
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_DIGITS = re.compile(r"[0-9]+\Z")
# A date range as the output's `period` column writes it (`str(Period)`).
_RANGE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\.\.([0-9]{4}-[0-9]{2}-[0-9]{2})\Z")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+\Z")


def file_format(path: str | Path) -> str | None:
    """``jsonl``, ``csv`` or ``parquet`` from a file name, or None."""
    return FORMATS.get(Path(path).suffix.lower())


@dataclass(frozen=True, slots=True)
class Record:
    """One input record: its line (row number for Parquet) and its data, or why it is unreadable."""

    line: int
    data: Any = None
    error: Diagnostic | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rated record's rows, or the diagnostics of a record that failed."""

    rows: tuple[Row, ...] = ()
    errors: tuple[Diagnostic, ...] = ()
    contract: str | None = None


# ---------------------------------------------------------------- reading


def record_from_json_text(line: int, text: str) -> Record:
    try:
        return Record(line, _read_json(text, ""))
    except PricingError as exc:
        return Record(line, error=exc.diagnostics[0])


def _not_utf8(line: int, exc: UnicodeDecodeError, bad_line: int | None = None) -> Record:
    where = "this line" if bad_line in (None, line) else f"line {bad_line} of this record"
    return Record(
        line,
        error=Diagnostic("E400", f"{where} is not UTF-8 text (byte {exc.start + 1})"),
    )


def jsonl_record(line: int, raw: bytes) -> Record | None:
    """Line ``line`` of a JSON Lines file (``raw``, without its ``\\n``); None if blank.

    The one reading of a line, for the python engine and the Spark executors.
    """
    if line == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.strip(b" \t"):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _not_utf8(line, exc)
    return record_from_json_text(line, text)


def read_jsonl(path: str | Path) -> Iterator[Record]:
    """Records of a JSON Lines file; blank lines are skipped but counted."""
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            record = jsonl_record(n, raw[:-1] if raw.endswith(b"\n") else raw)
            if record is not None:
                yield record


class _Lines:
    """Text lines of a file for the csv module, noting lines that are not UTF-8."""

    def __init__(self, path: str | Path) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.n = 0
        self.bad: dict[int, UnicodeDecodeError] = {}

    def __iter__(self) -> Iterator[str]:
        for raw in self.fh:
            self.n += 1
            if self.n == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad[self.n] = exc
                yield raw.decode("utf-8", "replace")

    def close(self) -> None:
        self.fh.close()


def csv_header(row: list[str], path: str) -> tuple[str, ...]:
    """Validate a CSV header: every column named once."""
    seen: set[str] = set()
    for name in row:
        if name in seen:
            raise PricingError(
                Diagnostic(
                    "E400",
                    f"the column `{name}` appears twice in the header",
                    path,
                    1,
                    hint="name each column once",
                )
            )
        seen.add(name)
    return tuple(row)


def record_from_cells(line: int, header: tuple[str, ...], row: list[str]) -> Record:
    if len(row) != len(header):
        return Record(
            line,
            error=Diagnostic(
                "E400",
                f"this row has {len(row)} field{'s' if len(row) != 1 else ''}, but the header "
                f"has {len(header)} column{'s' if len(header) != 1 else ''}",
            ),
        )
    # An empty cell is a missing value.
    return Record(line, flat_period({k: v for k, v in zip(header, row, strict=True) if v != ""}))


def flat_period(data: dict[str, Any]) -> dict[str, Any]:
    """A record of a flat format (CSV, Parquet) with a `start..end` period as a date range.

    A cell cannot hold the usage format's ``{start, end}`` mapping, so CSV
    and Parquet inputs take a date range as the output's `period` column
    writes it, ``2026-08-01..2026-08-15``; the dates are then checked as in
    a usage file.
    """
    period = data.get("period")
    if type(period) is str:
        m = _RANGE.match(period)
        if m is not None:
            return {**data, "period": {"start": m.group(1), "end": m.group(2)}}
    return data


def record_from_csv_text(line: int, header: tuple[str, ...], text: str) -> Record:
    """A record from one line of CSV (a line that is a whole record)."""
    try:
        row = next(csv.reader([text]), [])
    except csv.Error as exc:
        return Record(line, error=Diagnostic("E400", f"this CSV line cannot be read: {exc}"))
    return record_from_cells(line, header, row)


def read_csv(path: str | Path) -> Iterator[Record]:
    """Records of a CSV file with a header line; each at the line where it starts."""
    lines = _Lines(path)
    try:
        reader = csv.reader(lines)
        try:
            first = next(reader, None)
        except csv.Error as exc:
            raise PricingError(
                Diagnostic("E400", f"the header line cannot be read: {exc}", str(path), 1)
            ) from None
        if first is None:
            return
        if 1 in lines.bad:
            raise PricingError(
                Diagnostic("E400", "the header line is not UTF-8 text", str(path), 1)
            )
        if not first:
            raise PricingError(
                Diagnostic(
                    "E400",
                    "the first line is blank; a CSV file starts with its header",
                    str(path),
                    1,
                    hint="put the column names (contract, account, period, meters) on line 1",
                )
            )
        header = csv_header(first, str(path))
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader, None)
            except csv.Error as exc:
                yield Record(
                    start, error=Diagnostic("E400", f"this CSV line cannot be read: {exc}")
                )
                continue
            if row is None:
                return
            if not row:
                continue
            bad = [n for n in range(start, reader.line_num + 1) if n in lines.bad]
            if bad:
                yield _not_utf8(start, lines.bad[bad[0]], bad[0])
                continue
            yield record_from_cells(start, header, row)
    finally:
        lines.close()


def parquet_rows(con: Any, path: str, wanted: str | None = None) -> Iterator[Record]:
    """Records of a Parquet file read through DuckDB; ``line`` is the 1-based row number.

    ``wanted``, if given, is SQL that selects the 0-based row numbers to read.
    A null is a missing value.
    """
    source = f"read_parquet({sql_string(path)}, file_row_number = true)"
    where = "" if wanted is None else f" WHERE file_row_number IN ({wanted})"
    cur = con.execute(f"SELECT * FROM {source}{where} ORDER BY file_row_number")
    names = [d[0] for d in cur.description]
    pos = names.index("file_row_number")
    while True:
        batch = cur.fetchmany(10_000)
        if not batch:
            return
        for values in batch:
            data = {
                k: v
                for i, (k, v) in enumerate(zip(names, values, strict=True))
                if i != pos and v is not None
            }
            yield Record(int(values[pos]) + 1, flat_period(data))


# ----------------------------------------------------------------- rating


def _normalise(data: dict[str, Any], whole: Mapping[str, bool]) -> dict[str, Any]:
    """Decimal strings of meters as numbers: the same values, and Ruleset.rate's fast path.

    Only strings the usage schema accepts are converted, into the number it
    would read them as; anything else is left for validation to report.
    """
    out = data
    for key, value in data.items():
        if type(value) is str and key in whole:
            if _DIGITS.match(value):
                new: int | Decimal = int(value)
            elif not whole[key] and _DECIMAL.match(value):
                new = Decimal(value)
            else:
                continue
            if out is data:
                out = dict(data)
            out[key] = new
    return out


def _bad_text(data: Mapping[str, Any]) -> Diagnostic | None:
    for key in ("account", "contract", "period"):
        value = data.get(key)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return Diagnostic(
                    "E401",
                    f"`{key}` is not valid text (it holds an unpaired UTF-16 surrogate)",
                    key=key,
                )
    return None


def rate_record(rules: Ruleset, data: Any, whole: Mapping[str, bool]) -> Outcome:
    """Rate one record with the interpreter; the rows, or the diagnostics of its errors.

    ``whole`` maps each usage key to whether it counts whole units.  The
    contract comes from the record's ``contract``.
    """
    try:
        if not isinstance(data, dict):
            rules.usage(data)  # raises: usage must be a mapping
            raise PricingError(Diagnostic("E400", "usage must be a mapping of keys to values"))
        bad = _bad_text(data)
        if bad is not None:
            return Outcome(errors=(bad,))
        data = _normalise(data, whole)
        cid = data.get("contract")
        if type(cid) is str and cid in rules.contracts:
            try:
                inv = rules.rate(cid, data)
                rows = invoice_rows(inv)
            except (ArithmeticError, ValueError):
                # The fast path may trip over a value the interpreter reports properly.
                inv = rules.rate_reference(cid, data)
                rows = invoice_rows(inv)
            return Outcome(tuple(rows), contract=cid)
        rules.usage(data)  # reports bad values, and a contract that is not text
        if cid is None:
            raise PricingError(
                Diagnostic(
                    "E404",
                    "this usage record names no contract",
                    key="contract",
                    hint="give every record a `contract`",
                )
            )
        rules.contract(str(cid))  # raises: no such plan or contract
        raise PricingError(Diagnostic("E301", f"no plan or contract `{cid}`", key="contract"))
    except PricingError as exc:
        return Outcome(errors=exc.diagnostics)
    except (ArithmeticError, ValueError) as exc:
        return Outcome(
            errors=(
                Diagnostic(
                    "E401",
                    "a value in this record is too large to be rated exactly "
                    f"({type(exc).__name__})",
                    hint="check the meter values",
                ),
            )
        )
