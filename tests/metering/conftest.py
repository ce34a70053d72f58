"""Fixtures and helpers for the metering tests: event files in every format, engines."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pricing_dsl._metering import MeterOptions, MeterResult, meter
from pricing_dsl._metering._options import COLUMNS

DATA = Path(__file__).resolve().parent / "data"
ENGINES = ("duckdb", "spark")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine in turn; Spark only where there is Java."""
    if request.param == "spark":
        request.getfixturevalue("spark")
    return str(request.param)


def run(
    engine: str,
    *,
    period: str = "2026-08",
    options: MeterOptions | None = None,
    request: pytest.FixtureRequest | None = None,
    spark_session: Any = None,
    **paths: Any,
) -> MeterResult:
    """meter() on one engine, lending it the shared Spark session."""
    if engine == "spark" and spark_session is None and request is not None:
        spark_session = request.getfixturevalue("spark")
    return meter(
        paths.get("logins"),
        paths.get("connections"),
        paths.get("calls"),
        period=period,
        engine=engine,
        options=options,
        spark_session=spark_session,
    )


def call_row(
    account: Any, ident: Any, kind: str, start: Any, end: Any, n: Any = 1
) -> dict[str, Any]:
    """One row of a calls file."""
    return {
        "account": account,
        "call_id": ident,
        "kind": kind,
        "started_at": start,
        "ended_at": end,
        "participants": n,
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_events(
    directory: Path,
    kind: str,
    rows: Sequence[Mapping[str, Any]],
    fmt: str = "jsonl",
    *,
    name: str | None = None,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` as one file of ``fmt``; a key left out of a row is null (CSV: empty)."""
    directory.mkdir(parents=True, exist_ok=True)
    cols = list(columns or COLUMNS[kind])
    path = directory / f"{name or kind}.{fmt}"
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({k: v for k, v in row.items() if k in cols}) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for row in rows:
                writer.writerow([_csv_cell(row.get(c)) for c in cols])
    elif fmt == "parquet":
        # Written by DuckDB (a base dependency), with native types where the
        # values have them: TIMESTAMPTZ for datetimes, BIGINT for whole counts.
        import duckdb

        def sql_type(c: str) -> str:
            values = [row.get(c) for row in rows]
            if any(isinstance(v, datetime) for v in values):
                return "TIMESTAMPTZ"
            if c == "participants" and all(
                v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values
            ):
                return "BIGINT"
            return "VARCHAR"

        types = {c: sql_type(c) for c in cols}
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE t (" + ", ".join(f'"{c}" {types[c]}' for c in cols) + ")")
        if rows:
            con.executemany(
                f"INSERT INTO t VALUES ({', '.join('?' for _ in cols)})",
                [
                    [
                        v if v is None or types[c] != "VARCHAR" else _csv_cell(v)
                        for c, v in ((c, row.get(c)) for c in cols)
                    ]
                    for row in rows
                ],
            )
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
        con.close()
    else:  # pragma: no cover - a typo in a test
        raise ValueError(fmt)
    return path


def as_plain(result: MeterResult) -> dict[str, dict[str, Any]]:
    """Records as {account: {meter: value}}, the shape the reference produces."""
    out = {}
    for r in result.records:
        d = r.to_dict()
        d.pop("account")
        d.pop("period")
        out[r.account] = d
    return out
