"""The DuckDB engine: usage read in place, rated by SQL generated per plan shape.

1. *Read.*  One query reads the usage file where it lies (JSON Lines and CSV
   as raw lines, so every record keeps its line number; Parquet by row) and
   keeps, per record, the meters (12 digits and 6 decimals at most, as
   ``DECIMAL(18, 6)``), the account and period, the contract's index, term
   and `from` dates (joined from a contracts table), and the bits of its
   `when`/`from` layers.  A record is *plain* when the SQL can prove that
   the interpreter would read exactly these values and accept them; the
   rest keep their raw text.
2. *Interpret.*  Records that are not plain (bad values, unknown contracts,
   partial periods, unusual notation, contracts that do not compile) are
   rated one by one by the interpreter, exactly as the python engine does.
3. *Rate and write.*  The plans that rate records are grouped by shape
   (:mod:`._sql`); their constants go into a terms table, joined to the
   records by contract index and variant key.  One ``COPY`` computes the
   line items of every plain record with its shape's SQL, splices in the
   interpreter's lines by input order, and writes the output file.  A
   second query sums the plain records' amounts per shape and currency, in
   integer minor units.

The SQL grows with the number of shapes, not of contracts; only `when`
conditions are SQL of their own contract.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._duckdb import connect
from .._invoice import decimal_text
from .._plan import fee_share
from .._rating import Catalog, quantity_text
from .._ruleset import Ruleset
from .._sqlquote import sql_ident as _ident
from .._terms import MeterInfo
from .._usage import FIRST_YEAR, LAST_YEAR, Period
from ._progress import Progress
from ._records import (
    Outcome,
    Record,
    csv_header,
    parquet_rows,
    rate_record,
    record_from_csv_text,
    record_from_json_text,
)
from ._rows import COLUMNS, CSV_HEADER, canon, csv_field, csv_line, json_line, json_str
from ._sql import (
    CompiledContract,
    LineTexts,
    NotCompilable,
    Num,
    Shape,
    ShapeCache,
    SqlLine,
    Text,
    compile_contract,
    meter_columns,
    rounding_self_check,
    sql_string,
)
from ._tally import BatchError, CannotReadInPlace, Tally

__all__ = ["run_duckdb"]

_SOH = "\x01"
_MONTH_RE = "[0-9]{4}-(0[1-9]|1[0-2])"
# Number tokens the SQL does not read exactly: negative, exponent, more than 6
# decimals; and trailing commas, which DuckDB's JSON accepts and Python's does not.
_JSON_SUSPECT = r":\s*-?[0-9]+(\.[0-9]{7}|\.?[0-9]*[eE])|,\s*[\]}]"
_CELL = r'"(?:[^"]|"")*"|[^",]*'
_CSV_LINE = f"(?:{_CELL})(?:,(?:{_CELL}))*"
_CSV_CELL = f",({_CELL})"
_BAD_TEXT = r'[\x00-\x1f"\\]'  # characters plain output never has to escape
_CSV_FIELD_LIMIT = 131072  # the csv module's default field size limit
_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}


def _pattern(whole: bool) -> str:
    """Decimal text the SQL reads exactly: what the usage schema accepts, within the bounds."""
    return "[0-9]{1,12}" if whole else "[0-9]{1,12}(\\.[0-9]{1,6})?"


def _month(expr: str) -> str:
    """A period the SQL rates: YYYY-MM, in the years a Period allows."""
    return (
        f"(regexp_full_match({expr}, '{_MONTH_RE}') "
        f"AND {expr}[1:4] BETWEEN '{FIRST_YEAR}' AND '{LAST_YEAR}')"
    )


def _dec(expr: str) -> str:
    return f"CAST({expr} AS DECIMAL(18,6))"


_ZERO = "CAST(0 AS DECIMAL(18,6))"
_NULL = "CAST(NULL AS VARCHAR)"


# ------------------------------------------------------------------ checks


def precheck(path: str) -> str | None:
    """Why DuckDB cannot split this file into the same lines as Python, or None."""
    cr = lf = crlf = 0
    prev_cr = False
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            if b"\x00" in chunk or b"\x01" in chunk:
                return "it contains NUL or SOH control bytes"
            cr += chunk.count(b"\r")
            lf += chunk.count(b"\n")
            crlf += chunk.count(b"\r\n") + (1 if prev_cr and chunk.startswith(b"\n") else 0)
            prev_cr = chunk.endswith(b"\r")
    if cr and not cr == crlf == lf:
        return "it has carriage returns that do not end every line"
    return None


def _lines_source(path: str, skip: int) -> str:
    return (
        f"read_csv({sql_string(path)}, columns = {{'raw': 'VARCHAR'}}, header = false, "
        f"delim = '{_SOH}', quote = '', escape = '', auto_detect = false, skip = {skip}, "
        "max_line_size = 67108864)"
    )


# ------------------------------------------------------------ stage 1: parse


def _jsonl_parse(path: str, meters: Sequence[MeterInfo]) -> str:
    keys = ["account", "contract", "period", *(m.usage_key for m in meters)]
    struct = {"account": "VARCHAR", "contract": "VARCHAR", "period": "VARCHAR"}
    struct.update({m.usage_key: "DECIMAL(18,6)" for m in meters})
    paths = "[" + ", ".join(sql_string(f"$.{json.dumps(k)}") for k in keys) + "]"

    def field(k: str) -> str:
        return f"struct_extract(j, {sql_string(k)})"

    values = []
    for i, m in enumerate(meters):
        t = f"t[{i + 4}]"
        v = field(m.usage_key)
        s = f"json_extract_string(raw, {sql_string(f'$.{json.dumps(m.usage_key)}')})"
        whole = f" AND trunc({v}) = {v}" if m.whole else ""
        values.append(
            f"CASE WHEN {t} IS NULL THEN {_ZERO} "
            f"WHEN {t} = 'VARCHAR' THEN CASE WHEN regexp_full_match({s}, "
            f"{sql_string(_pattern(m.whole))}) THEN CAST({s} AS DECIMAL(18,6)) END "
            f"WHEN {t} = 'BOOLEAN' THEN NULL "
            f"WHEN {v} >= 0{whole} THEN {v} END AS m{i}"
        )
    ok = " AND ".join(
        [
            "pre",
            # Every key is known and appears once: the keys are exactly the known keys found.
            "len(ks) = list_count(t)",
            f"(t[1] IS NULL OR (t[1] = 'VARCHAR' AND {field('account')} <> ''))",
            f"t[2] = 'VARCHAR' AND {field('contract')} <> ''",
            f"t[3] = 'VARCHAR' AND {_month(field('period'))}",
            *(f"m{i} IS NOT NULL" for i in range(len(meters))),
        ]
    )
    return f"""
SELECT raw, blank, COALESCE({ok}, FALSE) AS ok, FALSE AS mal,
  {field("account")} AS account, {field("contract")} AS contract, {field("period")} AS period,
  {", ".join(f"m{i}" for i in range(len(meters)))}
FROM (
  SELECT *, {", ".join(values)} FROM (
    SELECT raw, blank, pre,
      CASE WHEN pre THEN json_transform(raw, {sql_string(json.dumps(struct))}) END AS j,
      CASE WHEN pre THEN json_type(raw, {paths}) END AS t,
      CASE WHEN pre THEN json_keys(raw) END AS ks
    FROM (
      SELECT raw, blank,
        CASE WHEN blank OR NOT starts_with(raw, '{{') OR contains(raw, '\\')
                  OR regexp_matches(raw, {sql_string(_JSON_SUSPECT)}) THEN FALSE
             ELSE json_valid(raw) END AS pre
      FROM (SELECT raw, {_blank("raw")} AS blank FROM {_lines_source(path, 0)})
    )
  )
)"""


def _blank(raw: str) -> str:
    """Empty, or only spaces and tabs (tested cheaply: most lines start with something else)."""
    return (
        f"({raw} IS NULL OR ((starts_with({raw}, ' ') OR starts_with({raw}, chr(9))) "
        f"AND trim({raw}, ' ' || chr(9)) = ''))"
    )


def _csv_parse(path: str, header: Sequence[str], meters: Sequence[MeterInfo]) -> str:
    idx = {name: i + 1 for i, name in enumerate(header)}
    keys = {"account", "contract", "period", *(m.usage_key for m in meters)}

    def cell(name: str) -> str | None:
        return f"cells[{idx[name]}]" if name in idx else None

    values = []
    for i, m in enumerate(meters):
        c = cell(m.usage_key)
        if c is None:
            values.append(f"{_dec('0')} AS m{i}")
            continue
        values.append(
            f"CASE WHEN {c} = '' THEN {_dec('0')} WHEN regexp_full_match({c}, "
            f"{sql_string(_pattern(m.whole))}) THEN {_dec(c)} END AS m{i}"
        )
    acc, con, per = cell("account"), cell("contract"), cell("period")
    ok = [
        "NOT blank",
        "cells IS NOT NULL",
        f"len(cells) = {len(header)}",
        f"strlen(raw) < {_CSV_FIELD_LIMIT}",
        *(f"cells[{i}] = ''" for name, i in idx.items() if name not in keys),
        "TRUE"
        if acc is None
        else f"({acc} = '' OR NOT regexp_matches({acc}, {sql_string(_BAD_TEXT)}))",
        "FALSE" if con is None else f"{con} <> ''",
        "FALSE" if per is None else _month(per),
        *(f"m{i} IS NOT NULL" for i in range(len(meters))),
    ]
    unquote = (
        "[CASE WHEN starts_with(x, '\"') THEN replace(x[2:-2], '\"\"', '\"') ELSE x END "
        f"FOR x IN regexp_extract_all(',' || raw, {sql_string(_CSV_CELL)}, 1)]"
    )
    return f"""
SELECT raw, blank, COALESCE({" AND ".join(ok)}, FALSE) AS ok, mal,
  {_NULL if acc is None else f"CASE WHEN {acc} = '' THEN NULL ELSE {acc} END"} AS account,
  {_NULL if con is None else con} AS contract, {_NULL if per is None else per} AS period,
  {", ".join(f"m{i}" for i in range(len(meters)))}
FROM (
  SELECT *, {", ".join(values)} FROM (
    SELECT raw, blank,
      CASE WHEN blank THEN NULL
           WHEN NOT contains(raw, '"') THEN string_split(raw, ',')
           WHEN regexp_full_match(raw, {sql_string(_CSV_LINE)}) THEN {unquote}
      END AS cells,
      CASE WHEN blank OR NOT contains(raw, '"') THEN FALSE
           ELSE NOT regexp_full_match(raw, {sql_string(_CSV_LINE)}) END AS mal
    FROM (SELECT raw, raw IS NULL AS blank FROM {_lines_source(path, 1)})
  )
)"""


def _parquet_value(name: str, typ: str, m: MeterInfo, i: int) -> str:
    c = _ident(name)
    if typ in _INTEGERS:
        test = f"{c} >= 0 AND {c} < 1000000000000"
    elif typ.startswith("DECIMAL"):
        scale = int(typ.rstrip(")").split(",")[1]) if "," in typ else 0
        test = f"{c} >= 0 AND {c} < 1000000000000"
        if scale > 6:
            test += f" AND {c} = round({c}, 6)"
        if m.whole:
            test += f" AND {c} = round({c}, 0)"
    elif typ in ("DOUBLE", "FLOAT"):
        d = f"CAST({c} AS DOUBLE)"
        # Exactly k/64 below 1e9: at most 6 decimals and 15 digits, so Python's
        # repr() of the float is exactly this decimal, as the interpreter requires.
        test = (
            f"isfinite({d}) AND {d} >= 0 AND NOT signbit({d}) AND {d} < 1e9 "
            f"AND {d} * 64 = floor({d} * 64)"
        )
        if m.whole:
            test += f" AND {d} = floor({d})"
        return f"CASE WHEN {c} IS NULL THEN {_dec('0')} WHEN {test} THEN {_dec(d)} END AS m{i}"
    elif typ == "VARCHAR":
        test = f"regexp_full_match({c}, {sql_string(_pattern(m.whole))})"
    else:
        return f"CASE WHEN {c} IS NULL THEN {_dec('0')} END AS m{i}"
    return f"CASE WHEN {c} IS NULL THEN {_dec('0')} WHEN {test} THEN {_dec(c)} END AS m{i}"


def _parquet_parse(
    path: str, schema: Sequence[tuple[str, str]], meters: Sequence[MeterInfo]
) -> str:
    types = dict(schema)
    keys = {"account", "contract", "period", *(m.usage_key for m in meters)}
    values = []
    for i, m in enumerate(meters):
        if m.usage_key in types:
            values.append(_parquet_value(m.usage_key, types[m.usage_key], m, i))
        else:
            values.append(f"{_dec('0')} AS m{i}")

    def text(name: str) -> str | None:
        """The column of a text key when it is there as text."""
        return _ident(name) if types.get(name) == "VARCHAR" else None

    acc, con, per = text("account"), text("contract"), text("period")
    bad = sql_string(_BAD_TEXT)
    ok = [
        *(f"{_ident(n)} IS NULL" for n, _ in schema if n not in keys),
        # A column of another type holds values only the interpreter can judge.
        *(f"{_ident(n)} IS NULL" for n in ("account",) if n in types and text(n) is None),
        "TRUE"
        if acc is None
        else f"({acc} IS NULL OR ({acc} <> '' AND NOT regexp_matches({acc}, {bad})))",
        "FALSE" if con is None else f"{con} <> ''",
        "FALSE" if per is None else _month(per),
        *(f"m{i} IS NOT NULL" for i in range(len(meters))),
    ]
    return f"""
SELECT NULL::VARCHAR AS raw, FALSE AS blank, COALESCE({" AND ".join(ok)}, FALSE) AS ok,
  FALSE AS mal, {acc or _NULL} AS account, {con or _NULL} AS contract,
  {per or _NULL} AS period,
  {", ".join(f"m{i}" for i in range(len(meters)))}
FROM (SELECT *, {", ".join(values)} FROM read_parquet({sql_string(path)}))"""


def _from_layers(compiled: Sequence[CompiledContract]) -> int:
    """How many `from`-date columns the contracts table has (layer n's date in f<n>)."""
    return max(
        (n + 1 for cc in compiled for n, d in enumerate(cc.from_dates) if d is not None),
        default=0,
    )


def _until_layers(compiled: Sequence[CompiledContract]) -> int:
    """How many last-day columns the contracts table has (layer n's in u<n>)."""
    return max(
        (n + 1 for cc in compiled for n, d in enumerate(cc.until_dates) if d is not None),
        default=0,
    )


def contracts_table(con: Any, compiled: Sequence[CompiledContract]) -> None:
    """The contracts table: id, index, term, the date of each `from`-only layer
    and the last day of each time-limited discount.

    Built from Python lists bound as parameters, so the SQL does not grow
    with the number of contracts.
    """
    layers = _from_layers(compiled)
    limited = _until_layers(compiled)
    columns = [
        [cc.contract.id for cc in compiled],
        list(range(len(compiled))),
        [None if cc.term is None else cc.term[0] for cc in compiled],
        [None if cc.term is None else cc.term[1] for cc in compiled],
        *(
            [cc.from_dates[n] if n < len(cc.from_dates) else None for cc in compiled]
            for n in range(layers)
        ),
        *(
            [cc.until_dates[n] if n < len(cc.until_dates) else None for cc in compiled]
            for n in range(limited)
        ),
    ]
    names = [
        "id",
        "cid",
        "tstart",
        "tend",
        *(f"f{n}" for n in range(layers)),
        *(f"u{n}" for n in range(limited)),
    ]
    types = ["VARCHAR", "INTEGER", "DATE", "DATE", *(["DATE"] * (layers + limited))]
    select = ", ".join(
        f"unnest(${i + 1}::{t}[]) AS {n}" for i, (n, t) in enumerate(zip(names, types, strict=True))
    )
    con.execute(f"CREATE TABLE contracts AS SELECT {select}", columns)


def _stage1(parse: str, compiled: Sequence[CompiledContract], n_meters: int) -> str:
    """The records table: kind 0 blank, 1 rated by SQL, 2 by the interpreter.

    Records join the contracts table by contract id for their index, term,
    `from` dates and time-limited discounts' last days; only the `when`
    conditions are SQL of their own contract.
    Joins do not keep the order of rows, so records are numbered first and
    stored in that order (the row id is the record's position in the file).
    """
    bits = [
        f"(CASE WHEN pstart >= f{n} THEN {1 << n} ELSE 0 END)"
        for n in range(_from_layers(compiled))
    ]
    # A time-limited discount applies to periods that start on or before its last day.
    bits += [
        f"(CASE WHEN pstart <= u{n} THEN {1 << n} ELSE 0 END)"
        for n in range(_until_layers(compiled))
    ]
    keys = []
    for i, cc in enumerate(compiled):
        conds = [
            f"(CASE WHEN {cond} THEN {1 << n} ELSE 0 END)"
            for n, cond in enumerate(cc.conditions)
            if cond is not None
        ]
        if conds:
            keys.append(f"WHEN {i} THEN {' + '.join(conds)}")
    if keys:
        bits.append(f"CASE cid {' '.join(keys)} ELSE 0 END")
    vkey = " + ".join(bits) if bits else "0"
    in_term = "(tstart IS NULL OR (pstart >= tstart AND pend <= tend))"
    ms = ", ".join(f"CASE WHEN fast THEN m{i} END AS m{i}" for i in range(n_meters))
    return f"""
SELECT
  CAST(CASE WHEN blank THEN 0 WHEN fast THEN 1 ELSE 2 END AS UTINYINT) AS kind,
  CASE WHEN fast THEN cid END AS cid,
  CAST(CASE WHEN fast THEN {vkey} END AS INTEGER) AS vkey,
  CASE WHEN fast THEN account END AS account,
  CASE WHEN fast THEN period END AS period,
  {ms},
  CASE WHEN blank OR fast THEN NULL ELSE raw END AS raw,
  mal
FROM (
  SELECT *, COALESCE(NOT blank AND ok AND cid IS NOT NULL AND {in_term}, FALSE) AS fast
  FROM (
    SELECT p.*, c.* EXCLUDE (id),
      CASE WHEN ok THEN CAST(period || '-01' AS DATE) END AS pstart,
      CASE WHEN ok THEN last_day(CAST(period || '-01' AS DATE)) END AS pend
    FROM (SELECT *, row_number() OVER () AS ord FROM ({parse})) AS p
    LEFT JOIN contracts AS c ON p.contract = c.id
  )
)
ORDER BY ord"""


# --------------------------------------------------------- stage 3: output


@dataclass(frozen=True, slots=True)
class _Own:
    """A text of the plan in an output line: field ``field`` of its LineTexts, formatted."""

    field: int
    fmt: Callable[[str | None], str]


def _plain(x: str | None) -> str:
    assert x is not None
    return x


# A part of an output line: fixed text, a text of the plan, or SQL; None for a null.
Part = str | _Own | Text | None


def _text_parts(ln: SqlLine, fmt: str) -> list[Part]:
    """One output line (JSON Lines or CSV) of a plain record, after its prefix ``pre``."""
    amount: Part = _Own(3, _plain) if ln.amount_text is not None else _amount(ln.amount)
    if fmt == "jsonl":
        quantity: list[Part] = (
            [json_str(ln.quantity)] if isinstance(ln.quantity, str) else ['"', ln.quantity, '"']
        )
        prices: list[Part] = ["null"]
        if isinstance(ln.unit_price, Text) and ln.unit_price.nullable:
            # A volume tier priced per block or with a flat fee has no unit price:
            # NULL, which `||` keeps (concat would not), written as null.
            prices = [Text(f"""COALESCE('"' || {ln.unit_price.sql} || '"', 'null')""")]
        elif isinstance(ln.unit_price, Text):
            prices = ['"', ln.unit_price, '"']
        elif isinstance(ln.unit_price, str):
            prices = [_Own(2, json_str)]
        return [
            _Own(0, json_str),
            ',"description":',
            _Own(1, json_str),
            ',"quantity":',
            *quantity,
            f',"unit":{json_str(ln.unit)},"unit_price":',
            *prices,
            ',"amount":"',
            amount,
            '"}',
        ]
    price: Part
    if isinstance(ln.unit_price, Text):
        price = ln.unit_price
    else:
        price = _Own(2, csv_field) if isinstance(ln.unit_price, str) else ""
    return [
        _Own(0, csv_field),
        ",",
        _Own(1, csv_field),
        ",",
        csv_field(ln.quantity) if isinstance(ln.quantity, str) else ln.quantity,
        f",{csv_field(ln.unit)},",
        price,
        ",",
        amount,
    ]


def _struct_parts(ln: SqlLine) -> list[Part]:
    """One Parquet row of a plain record: its ten fields."""
    amount = _Own(3, _plain) if ln.amount_text is not None else _amount(ln.amount)
    return [
        Text("account"),
        Text("contract"),
        Text("period"),
        Text("currency"),
        _Own(0, _plain),
        _Own(1, _plain),
        ln.quantity,
        ln.unit,
        _Own(2, _plain) if isinstance(ln.unit_price, str) else ln.unit_price,
        amount,
    ]


def _prefix(fmt: str) -> str:
    """SQL for the start of every output line of a plain record: account to currency.

    The contract's and currency's text, formatted in Python, come from the
    terms table (``p1``, ``p2``).
    """
    if fmt == "jsonl":
        account = "CASE WHEN account IS NULL THEN 'null' ELSE concat('\"', account, '\"') END"
        head = "'{\"account\":', "
    else:
        # Plain accounts hold no quotes or line breaks; only a comma needs quoting.
        account = (
            "CASE WHEN account IS NULL THEN '' WHEN contains(account, ',') "
            "THEN concat('\"', account, '\"') ELSE account END"
        )
        head = ""
    return f"concat({head}{account}, p1, period, p2)"


def _prefix_texts(fmt: str, contract: str, currency: str) -> tuple[str, str]:
    """The constant texts around the period in a line's prefix (see :func:`_prefix`)."""
    if fmt == "jsonl":
        return (
            f',"contract":{json_str(contract)},"period":"',
            f'","currency":{json_str(currency)},"code":',
        )
    if fmt == "csv":
        return f",{csv_field(contract)},", f",{csv_field(currency)},"
    return "", ""


def _json_value(x: str | Text | None) -> list[Part]:
    if isinstance(x, Text):
        return ['"', x, '"']
    return [json_str(x)]


def _amount(a: Num) -> str | Text:
    if a.value is not None:
        return decimal_text(a.value)
    return Text(f"CAST({a.sql} AS VARCHAR)")


class _Terms:
    """The terms table's columns: one row per plan that rates records, by shape.

    Texts that differ between the plans of a shape become columns of their
    own; texts all its plans share stay literals of the SQL.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[str, tuple[str, dict[int, Any]]] = {}

    def add(self, name: str, sql_type: str, values: Sequence[Any], first_row: int) -> None:
        self.columns[name] = (sql_type, {first_row + n: v for n, v in enumerate(values)})

    def create(self, con: Any, table: str = "terms") -> None:
        select = []
        params = []
        for i, (name, (sql_type, values)) in enumerate(self.columns.items()):
            params.append([values.get(r) for r in range(self.rows)])
            if sql_type.startswith("DECIMAL"):
                select.append(f"CAST(unnest(${i + 1}::VARCHAR[]) AS {sql_type}) AS {name}")
            else:
                select.append(f"unnest(${i + 1}::{sql_type}[]) AS {name}")
        con.execute(f"CREATE TABLE {table} AS SELECT {', '.join(select)}", params)


def _run(parts: Sequence[Part], texts: LineTexts) -> str:
    """Fixed text and a plan's texts, as one text."""
    out = []
    for p in parts:
        if isinstance(p, _Own):
            out.append(p.fmt(texts[p.field]))
        else:
            assert isinstance(p, str)
            out.append(p)
    return "".join(out)


def _shape_lines(shape: Shape, fmt: str, terms: _Terms, first_row: int) -> list[str]:
    """SQL for each output line of a shape's records; adds its text columns to ``terms``.

    Fixed text and the plans' texts between two SQL parts form a run; a run
    that differs between the shape's plans becomes a column of the terms table.
    """
    out = []
    runs = 0
    ln_texts = shape.members[0].lines
    for n, ln in enumerate(shape.sql.lines):
        if fmt == "parquet":
            groups: list[list[Part]] = [[p] for p in _struct_parts(ln)]
        else:
            groups = []
            for p in _text_parts(ln, fmt):
                if isinstance(p, Text) or not groups or isinstance(groups[-1][0], Text):
                    groups.append([p])
                else:
                    groups[-1].append(p)
        items = []
        for group in groups:
            first = group[0]
            if isinstance(first, Text):
                items.append(first.sql)
                continue
            if len(group) == 1 and first is None:
                items.append(_NULL)
                continue
            used = {p.field for p in group if isinstance(p, _Own)}
            texts = ln_texts[n]
            if all(m.lines[n][f] == texts[f] for f in used for m in shape.members):
                items.append(sql_string(_run(group, texts)))  # the same for every plan
                continue
            values = [_run(group, m.lines[n]) for m in shape.members]
            if all(v == values[0] for v in values):
                items.append(sql_string(values[0]))
                continue
            name = f"s{shape.sid}_r{runs}"
            runs += 1
            terms.add(name, "VARCHAR", values, first_row)
            items.append(name)
        if fmt == "parquet":
            fields = ", ".join(f"{sql_string(c)}: {e}" for c, e in zip(COLUMNS, items, strict=True))
            out.append("{" + fields + "}")
        else:
            out.append(f"concat(pre, {', '.join(items)})")
    return out


def _layers(found: Sequence[Shape], table: str) -> str:
    """Records with every shape's columns, computed group by group."""
    q = f"SELECT * FROM {table}"
    depth = max((len(s.sql.columns) for s in found), default=0)
    for g in range(depth):
        cols = [
            f"CASE WHEN sid = {s.sid} THEN {num.sql} END AS {name}"
            for s in found
            if g < len(s.sql.columns)
            for name, num in s.sql.columns[g]
        ]
        if cols:
            q = f"SELECT *, {', '.join(cols)} FROM ({q})"
    return q


def _by_shape(found: Sequence[Shape], expr: Mapping[int, str]) -> str:
    """CASE over the shape, one branch per shape."""
    if not found:
        return "NULL"
    return "CASE sid " + " ".join(f"WHEN {s.sid} THEN {expr[s.sid]}" for s in found) + " END"


# ------------------------------------------------------------------- engine


class _Engine:
    def __init__(
        self, rules: Ruleset, usage_path: str, in_fmt: str, progress: Progress, tally: Tally
    ) -> None:
        self.rules = rules
        self.path = usage_path
        self.in_fmt = in_fmt
        self.progress = progress
        self.tally = tally
        self.catalog = Catalog(rules.meters, rules.addons)
        self.whole = {m.usage_key: m.whole for m in rules.meters}
        self.compiled: list[CompiledContract] = []
        self.failures: dict[str, str] = {}
        self.cache = ShapeCache(meter_columns(self.catalog))
        for cid in sorted(rules.contracts):
            try:
                self.compiled.append(
                    compile_contract(
                        rules.contracts[cid], self.catalog, rules._plans(cid), self.cache
                    )
                )
            except NotCompilable as exc:
                self.failures[cid] = str(exc)
        self.index = {cc.contract.id: i for i, cc in enumerate(self.compiled)}
        self.header: tuple[str, ...] = ()

    def parse_sql(self, con: Any) -> str:
        meters = self.rules.meters
        if self.in_fmt == "jsonl":
            return _jsonl_parse(self.path, meters)
        if self.in_fmt == "csv":
            self.header = self.read_header()
            return _csv_parse(self.path, self.header, meters)
        schema = con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({sql_string(self.path)})"
        ).fetchall()
        return _parquet_parse(self.path, [(str(r[0]), str(r[1])) for r in schema], meters)

    def read_header(self) -> tuple[str, ...]:
        import csv

        from ._records import BOM

        with open(self.path, "rb") as fh:
            first = fh.readline()
        if not first:
            return ()  # an empty file: no header, no records
        if first.startswith(BOM):
            first = first[len(BOM) :]
        try:
            text = first.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise CannotReadInPlace("its header line is not UTF-8 text") from None
        if not text or ('"' in text and not _full_csv(text)):
            raise CannotReadInPlace("its header line is blank or has quotes that span lines")
        return csv_header(next(csv.reader([text])), self.path)

    def reason(self, data: Any) -> str:
        """Why a record that rated was left to the interpreter."""
        cid = data.get("contract") if isinstance(data, dict) else None
        if cid in self.failures:
            return f"contract `{cid}` does not compile to SQL: {self.failures[cid]}"
        period = data.get("period") if isinstance(data, dict) else None
        if not isinstance(period, str) or not re.fullmatch(_MONTH_RE, period):
            return "no period, or a period not written as a calendar month (YYYY-MM)"
        month = Period.parse(period)
        cc = self.compiled[self.index[cid]] if cid in self.index else None
        if cc is not None and cc.term is not None:
            start, end = cc.term
            if not (start <= month.start and month.end <= end):
                return "the period is only partly inside the contract's term"
        return "values not in the plain form the SQL reads (see docs/batch.md)"

    def interpret(self, con: Any, out_fmt: str) -> dict[int, Any]:
        """Rate the records SQL left alone; their formatted lines by record position."""
        rows = con.execute("SELECT rowid, raw FROM recs WHERE kind = 2 ORDER BY rowid").fetchall()
        if not rows:
            return {}
        done = [0]
        self.progress.stage("interpreting", lambda: done[0] / len(rows))
        records: list[tuple[int, Record]] = []
        if self.in_fmt == "jsonl":
            records = [(o, record_from_json_text(o + 1, raw)) for o, raw in rows]
        elif self.in_fmt == "csv":
            records = [(o, record_from_csv_text(o + 2, self.header, raw)) for o, raw in rows]
        else:
            wanted = "SELECT rowid FROM recs WHERE kind = 2"
            records = [(r.line - 1, r) for r in parquet_rows(con, self.path, wanted)]
        out: dict[int, Any] = {}
        for ord_, rec in records:
            done[0] += 1
            if rec.error is not None:
                self.tally.outcome(rec.line, Outcome(errors=(rec.error,)), None)
                continue
            result = rate_record(self.rules, rec.data, self.whole)
            self.tally.outcome(rec.line, result, None if result.errors else self.reason(rec.data))
            if result.rows:
                if out_fmt == "jsonl":
                    out[ord_] = [json_line(r) for r in result.rows]
                elif out_fmt == "csv":
                    out[ord_] = [csv_line(r) for r in result.rows]
                else:
                    out[ord_] = [dict(zip(COLUMNS, r, strict=True)) for r in result.rows]
        return out

    def shapes(self, con: Any) -> list[Shape]:
        """The plans that rate records, grouped by shape, and the tally of their records."""
        found = con.execute(
            "SELECT cid, vkey, count(*) FROM recs WHERE kind = 1 GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        plans = []
        for cid, key, count in found:
            plan = self.compiled[cid].plan(key)
            plans.append(((cid, key), plan))
            self.tally.records += count
            self.tally.rated += count
            self.tally.lines += count * len(plan.codes)
        return self.cache.shapes(plans)

    def terms(self, con: Any, found: Sequence[Shape], out_fmt: str) -> dict[int, list[str]]:
        """Create the terms table; the SQL of each shape's output lines."""
        terms = _Terms()
        lines = {}
        members = [m for shape in found for m in shape.members]
        terms.rows = len(members)
        idents = [m.ident for m in members]
        terms.add("cid", "INTEGER", [cid for cid, _ in idents], 0)
        terms.add("vkey", "INTEGER", [key for _, key in idents], 0)
        terms.add("sid", "INTEGER", [s.sid for s in found for _ in s.members], 0)
        contracts = [self.compiled[cid].contract for cid, _ in idents]
        terms.add("contract", "VARCHAR", [c.id for c in contracts], 0)
        terms.add("currency", "VARCHAR", [c.currency for c in contracts], 0)
        texts = [_prefix_texts(out_fmt, c.id, c.currency) for c in contracts]
        terms.add("p1", "VARCHAR", [t[0] for t in texts], 0)
        terms.add("p2", "VARCHAR", [t[1] for t in texts], 0)
        row = 0
        for shape in found:
            own = shape.members
            for i, (_, scale) in enumerate(shape.sql.types):
                values = [decimal_text(m.numbers[i]) for m in own]
                terms.add(f"s{shape.sid}_k{i}", f"DECIMAL(38,{scale})", values, row)
            for i in range(len(shape.sql.texts)):
                terms.add(f"s{shape.sid}_x{i}", "VARCHAR", [m.texts[i] for m in own], row)
            lines[shape.sid] = _shape_lines(shape, out_fmt, terms, row)
            row += len(own)
        terms.create(con)
        return lines

    def dated(self, con: Any, found: Sequence[Shape]) -> bool:
        """Create the dated table: quarterly and yearly fees by plan and period.

        Such a fee's amount and quantity depend on the period and the term
        (``RatingPlan.fee_amounts``, ``fee_share``), so they are worked out
        here, once for each plan and month that rates records, and joined by
        contract index, variant key and period: the SQL stays the same for
        every contract of a shape.  False when no shape has such a fee.
        """
        wanted = {m.ident: s for s in found if s.sql.dated for m in s.members}
        if not wanted:
            return False
        rows = con.execute(
            "SELECT cid, vkey, period FROM recs WHERE kind = 1 "
            "AND cid IN (SELECT unnest($1::INTEGER[])) GROUP BY ALL ORDER BY ALL",
            [sorted({cid for cid, _ in wanted})],
        ).fetchall()
        rows = [r for r in rows if (r[0], r[1]) in wanted]
        table = _Terms()
        table.rows = len(rows)
        table.add("cid", "INTEGER", [r[0] for r in rows], 0)
        table.add("vkey", "INTEGER", [r[1] for r in rows], 0)
        table.add("period", "VARCHAR", [r[2] for r in rows], 0)
        values: dict[str, tuple[str, dict[int, str]]] = {}
        for n, (cid, key, text) in enumerate(rows):
            shape = wanted[(cid, key)]
            plan = self.compiled[cid].plan(key)
            period = Period.parse(text)
            amounts = plan.fee_amounts(period)
            for j in shape.sql.dated:
                fee = plan.fees[j]
                share = fee_share(fee.per, period, plan.term)[0]
                places = shape.sql.minor_units
                for name, typ, value in (
                    (f"s{shape.sid}_f{j}", f"DECIMAL(38,{places})", decimal_text(amounts[j])),
                    (f"s{shape.sid}_q{j}", "VARCHAR", canon(quantity_text(share))),
                ):
                    values.setdefault(name, (typ, {}))[1][n] = value
        for name, (typ, by_row) in values.items():
            table.columns[name] = (typ, by_row)
        table.create(con, "dated")
        return True

    def join(
        self,
        con: Any,
        found: Sequence[Shape],
        fallback: dict[int, Any],
        scratch: str,
        out_fmt: str,
        dated: bool = False,
    ) -> None:
        """The rated table: records with their terms and computed columns, and the
        interpreter's lines beside theirs.

        The interpreter's lines go through a JSON Lines file (exact text, no
        numpy or Arrow needed).  The result is stored in record order, so the
        output can be written without sorting lines.
        """
        interpreted = ""
        if fallback:
            with open(scratch, "w", encoding="utf-8", newline="") as fh:
                for ord_, lines in fallback.items():
                    fh.write(json.dumps({"ord": ord_, "lines": lines}, ensure_ascii=False) + "\n")
            if out_fmt == "parquet":
                struct = ", ".join(f"{c} VARCHAR" for c in COLUMNS)
                ltype = f"STRUCT({struct})[]"
            else:
                ltype = "VARCHAR[]"
            con.execute(
                "CREATE TABLE interpreted AS SELECT * FROM read_json("
                f"{sql_string(scratch)}, format = 'newline_delimited', "
                f"columns = {{'ord': 'BIGINT', 'lines': {sql_string(ltype)}}})"
            )
            interpreted = ", i.lines AS interpreted"
        periodic = ", d.* EXCLUDE (cid, vkey, period)" if dated else ""
        joined = (
            f"(SELECT r.rowid AS ord, r.*, t.* EXCLUDE (cid, vkey){periodic}{interpreted} "
            "FROM recs AS r LEFT JOIN terms AS t ON r.cid = t.cid AND r.vkey = t.vkey "
            + (
                "LEFT JOIN dated AS d ON r.cid = d.cid AND r.vkey = d.vkey AND r.period = d.period "
                if dated
                else ""
            )
            + ("LEFT JOIN interpreted AS i ON r.rowid = i.ord " if fallback else "")
            + "WHERE r.kind <> 0)"
        )
        # The shapes' columns are computed here once, for the output and the totals.
        con.execute(f"CREATE TABLE rated AS {_layers(found, joined)} ORDER BY ord")

    def copy_sql(
        self,
        found: Sequence[Shape],
        lines_sql: Mapping[int, Sequence[str]],
        interpreted: bool,
        out_path: str,
        out_fmt: str,
    ) -> str:
        """The COPY that writes every line item, in record order.

        For JSON Lines and CSV a record's lines are written as one text
        joined by line breaks (the writer neither quotes nor escapes), which
        DuckDB writes faster than one row per line.
        """
        pre = _prefix(out_fmt) if out_fmt != "parquet" else _NULL
        inner = f"SELECT CASE WHEN kind = 1 THEN {pre} END AS pre, * FROM rated"
        if out_fmt == "parquet":
            lines = _by_shape(found, {k: "[" + ", ".join(v) + "]" for k, v in lines_sql.items()})
            if interpreted:
                lines = f"CASE WHEN kind = 2 THEN interpreted ELSE {lines} END"
            if not found and not interpreted:
                select = (
                    "SELECT "
                    + ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in COLUMNS)
                    + " WHERE FALSE"
                )
            else:
                select = f"SELECT unnest({lines}, recursive := true) FROM ({inner})"
            options = "FORMAT PARQUET"
        else:
            lines = _by_shape(
                found,
                {
                    k: f"concat_ws(chr(10), {', '.join(v)})" if v else _NULL
                    for k, v in lines_sql.items()
                },
            )
            if interpreted:
                spliced = "array_to_string(interpreted, chr(10))"
                lines = f"CASE WHEN kind = 2 THEN {spliced} ELSE {lines} END"
            elif not found:
                lines = _NULL
            name = CSV_HEADER if out_fmt == "csv" else "line"
            # A record without lines (one that failed) writes nothing.
            select = (
                f"SELECT text AS {_ident(name)} FROM (SELECT {lines} AS text FROM ({inner})) "
                "WHERE text <> ''"
            )
            options = (
                f"FORMAT CSV, HEADER {'true' if out_fmt == 'csv' else 'false'}, QUOTE '', "
                f"ESCAPE '', DELIMITER '{_SOH}'"
            )
        return f"COPY ({select}) TO {sql_string(out_path)} ({options})"

    def totals_sql(self, found: Sequence[Shape]) -> str:
        """Each shape's amounts summed per currency in integer minor units (no floats)."""
        exprs = {s.sid: _minor(s.sql.total, s.sql.minor_units) for s in found}
        return (
            f"SELECT sid, currency, CAST(sum({_by_shape(found, exprs)}) AS VARCHAR) "
            "FROM rated WHERE kind = 1 GROUP BY ALL ORDER BY ALL"
        )

    def add_totals(self, found: Sequence[Shape], sums: Sequence[tuple[int, str, str]]) -> None:
        places = {s.sid: s.sql.minor_units for s in found}
        for sid, currency, minor in sums:
            self.tally.add(currency, Decimal(int(minor)).scaleb(-places[sid]))


class _Background:
    """A query on a second connection, run while the main one writes the output."""

    def __init__(self, con: Any, sql: str) -> None:
        self.cur = con.cursor()
        self.sql = sql
        self.rows: list[Any] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="pricing-totals", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.rows = self.cur.execute(self.sql).fetchall()
        except BaseException as exc:  # handed to the main thread by result()
            self.error = exc

    def result(self) -> list[Any]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.rows

    def stop(self) -> None:
        if self.thread.is_alive():
            self.cur.interrupt()
            self.thread.join()
        self.cur.close()


def _minor(total: Num, places: int) -> str:
    if total.value is not None:
        return f"CAST({int(total.value.scaleb(places))} AS HUGEINT)"
    return f"CAST({total.sql} * {10**places} AS HUGEINT)"


def _full_csv(text: str) -> bool:
    return re.fullmatch(_CSV_LINE, text) is not None


def run_duckdb(
    rules: Ruleset,
    usage_path: str,
    in_fmt: str,
    out_path: str,
    out_fmt: str,
    progress: Progress,
) -> Tally:
    """Rate a usage file with DuckDB into ``out_path``; CannotReadInPlace if it cannot."""
    import duckdb

    tally = Tally()
    engine = _Engine(rules, usage_path, in_fmt, progress, tally)
    if in_fmt != "parquet":
        why = precheck(usage_path)
        if why is not None:
            raise CannotReadInPlace(why)
    con = connect()  # never fetches an extension
    try:
        sql, cases = rounding_self_check()
        if [list(x) for x in con.execute(sql).fetchall()[0]] != [c[2] for c in cases]:
            raise CannotReadInPlace(
                f"DuckDB {duckdb.__version__} rounds DECIMAL ties unlike Python"
            )
        con.execute("SET preserve_insertion_order = true")
        # Progress is tracked for our own bar, never printed by DuckDB.
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        progress.stage("reading", _poll(con))
        try:
            parse = engine.parse_sql(con)
            contracts_table(con, engine.compiled)
            con.execute(
                "CREATE TABLE recs AS " + _stage1(parse, engine.compiled, len(rules.meters))
            )
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CannotReadInPlace(f"DuckDB cannot read it: {first}") from None
        if in_fmt == "csv" and con.execute("SELECT count(*) FROM recs WHERE mal").fetchall()[0][0]:
            raise CannotReadInPlace("it has quoted fields that span lines or are malformed")
        totals: _Background | None = None
        scratch = str(Path(out_path).with_name(Path(out_path).name + ".interpreted.jsonl"))
        try:
            found = engine.shapes(con)
            fallback = engine.interpret(con, out_fmt)
            lines = engine.terms(con, found, out_fmt)
            dated = engine.dated(con, found)
            engine.join(con, found, fallback, scratch, out_fmt, dated)
            if found:
                # Summed alongside the write, which spends much of its time on I/O.
                totals = _Background(con, engine.totals_sql(found))
            progress.stage("rating and writing", _poll(con))
            con.execute(engine.copy_sql(found, lines, bool(fallback), out_path, out_fmt))
            if totals is not None:
                engine.add_totals(found, totals.result())
        except duckdb.Error as exc:
            raise BatchError(f"DuckDB stopped: {str(exc).strip()}") from None
        finally:
            if totals is not None:
                totals.stop()
            if os.path.exists(scratch):
                os.unlink(scratch)
    finally:
        con.close()
    return tally


def _poll(con: Any) -> Callable[[], float]:
    """DuckDB's progress of the running query, as a fraction (below 0 when unknown)."""
    return lambda: float(con.query_progress()) / 100
