"""The python engine: every record read with the standard library and rated by Ruleset.rate.

It is the reference the DuckDB engine is tested against, and what the DuckDB
engine hands a whole file to when it cannot read that file in place.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._duckdb import connect
from .._ruleset import Ruleset
from ._progress import Progress
from ._records import Outcome, Record, parquet_rows, rate_record, read_csv, read_jsonl
from ._rows import COLUMNS, CSV_HEADER, json_line
from ._sql import sql_string
from ._tally import Tally

__all__ = ["rows_scratch", "rows_to_parquet", "run_python"]


def _records(path: str, fmt: str, progress: Progress, con: Any) -> Iterator[Record]:
    if fmt == "parquet":
        total = con.execute(f"SELECT count(*) FROM read_parquet({sql_string(path)})").fetchall()[0][
            0
        ]
        progress_rows = [0]
        progress.stage("rating", lambda: progress_rows[0] / max(total, 1))
        for rec in parquet_rows(con, path):
            progress_rows[0] = rec.line
            yield rec
        return
    lines = _count_lines(path) if progress.enabled else 0
    seen = [0]
    progress.stage("rating", lambda: seen[0] / lines if lines else -1.0)
    for rec in read_jsonl(path) if fmt == "jsonl" else read_csv(path):
        seen[0] = rec.line
        yield rec


def _count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
    return n + 1


def rows_scratch(out_path: str) -> str:
    """A new empty JSON Lines file next to ``out_path`` for rows bound for Parquet."""
    fd, scratch = tempfile.mkstemp(
        dir=Path(out_path).parent, prefix=".pricing-batch-", suffix=".jsonl"
    )
    os.close(fd)
    return scratch


def rows_to_parquet(con: Any, scratch: str, out_path: str, lines: int) -> None:
    """Output rows written as JSON Lines to ``scratch``, copied into Parquet at ``out_path``."""
    columns = ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in COLUMNS)
    select = (
        f"SELECT * FROM read_json({sql_string(scratch)}, format = 'newline_delimited', "
        f"columns = {{{columns}}})"
    )
    if lines == 0:
        # read_json cannot tell the columns' types of an empty file.
        select = (
            "SELECT " + ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in COLUMNS) + " WHERE FALSE"
        )
    con.execute(f"COPY ({select}) TO {sql_string(out_path)} (FORMAT PARQUET)")


def run_python(
    rules: Ruleset,
    usage_path: str,
    in_fmt: str,
    out_path: str,
    out_fmt: str,
    progress: Progress,
) -> Tally:
    """Rate a usage file record by record into ``out_path``."""
    tally = Tally()
    whole = {m.usage_key: m.whole for m in rules.meters}
    con: Any = None
    if "parquet" in (in_fmt, out_fmt):
        con = connect()
    target = out_path
    scratch: str | None = None
    try:
        if out_fmt == "parquet":
            scratch = target = rows_scratch(out_path)
        with open(target, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            if out_fmt == "csv":
                out.write(CSV_HEADER + "\n")
            for rec in _records(usage_path, in_fmt, progress, con):
                if rec.error is not None:
                    tally.outcome(rec.line, Outcome(errors=(rec.error,)), None)
                    continue
                result = rate_record(rules, rec.data, whole)
                tally.outcome(rec.line, result, None)
                if out_fmt == "csv":
                    writer.writerows(["" if v is None else v for v in row] for row in result.rows)
                else:
                    out.writelines(json_line(row) + "\n" for row in result.rows)
        if scratch is not None:
            rows_to_parquet(con, scratch, out_path, tally.lines)
    finally:
        if scratch is not None and os.path.exists(scratch):
            os.unlink(scratch)
        if con is not None:
            con.close()
    return tally
