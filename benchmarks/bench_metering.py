"""Metering throughput: DuckDB on synthetic connection logs, against a pure-Python baseline.

Run: python benchmarks/bench_metering.py [--rows 10000000] [--format parquet] [--no-baseline]

Generates ``--rows`` connection rows (one row per connection: account,
connection_id, user_id, connected_at, disconnected_at) spread over
``--accounts`` accounts and August 2026 give or take a day, 1% of them
never disconnected and 0.1% exact duplicates.  The files are written once
into benchmarks/data/ (ignored by git) and reused.

Then it meters peak concurrent connections for 2026-08 with the DuckDB
engine, and with a pure-Python baseline on the same file: the file is read
with pyarrow (Parquet) or the json module (JSON Lines), and everything
after that (duplicates, clipping, the sorted sweep) is plain Python, the
way one would write it without an engine.  Both must give the same peak
for every account.  Figures are rows per second, wall clock, one run each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pricing_dsl._metering import MeterOptions, meter  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
START = int(datetime(2026, 8, 1, tzinfo=timezone.utc).timestamp())
END = int(datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp())


def generate(path: Path, rows: int, accounts: int, fmt: str) -> None:
    """Synthetic connections, written by DuckDB (deterministic: no random(), a hash of the row)."""
    import duckdb

    # Starts from a day before the cycle to a day after it; durations up to
    # 4 hours; 1% never disconnected; every 1000th row is written twice.
    span = END - START + 2 * 86_400
    time_expr = (
        "to_timestamp({s})"
        if fmt == "parquet"
        else "strftime(to_timestamp({s}) AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ')"
    )
    start = f"{START - 86_400} + (h1 % {span})"
    query = f"""
        WITH base AS (
            SELECT i, hash(i, 1) AS h1, hash(i, 2) AS h2 FROM range({rows}) t(i)
        ), conn AS (
            SELECT
                'acct' || (i % {accounts}) AS account,
                'c' || i AS connection_id,
                'u' || (h2 % 100000) AS user_id,
                {time_expr.format(s=start)} AS connected_at,
                CASE WHEN h2 % 100 = 0 THEN NULL
                     ELSE {time_expr.format(s=f"{start} + (h2 % 14400)")} END AS disconnected_at
            FROM base
        )
        SELECT * FROM conn
        UNION ALL
        SELECT * FROM conn WHERE hash(connection_id) % 1000 = 0
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    options = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT json)"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    con.execute(f"COPY ({query}) TO '{tmp}' {options}")
    tmp.rename(path)


def _seconds(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    text = str(value).replace("Z", "+00:00")
    return int(datetime.fromisoformat(text).timestamp())


def _rows(path: Path, fmt: str):  # type: ignore[no-untyped-def]
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            sys.exit("the Parquet baseline needs pyarrow: pip install pyarrow, or --no-baseline")

        for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000):
            yield from zip(*(batch.column(i).to_pylist() for i in range(5)), strict=True)
    else:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                yield (
                    r["account"],
                    r["connection_id"],
                    r["user_id"],
                    r["connected_at"],
                    r["disconnected_at"],
                )


def baseline(path: Path, fmt: str) -> dict[str, int]:
    """Peak concurrent connections per account, in plain Python."""
    seen: dict[str, tuple[str, int, int | None]] = {}
    for account, cid, _user, connected, disconnected in _rows(path, fmt):
        seen[f"{account}\x00{cid}"] = (account, _seconds(connected), _seconds(disconnected))  # type: ignore[assignment]
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for account, s, e in seen.values():
        s, e = max(s, START), min(END if e is None else e, END)
        if s < e:
            events[account].append((s, 1))
            events[account].append((e, -1))
    peaks = {}
    for account, evs in events.items():
        evs.sort()  # (t, -1) before (t, +1): a disconnect counts first
        running = best = 0
        for _, d in evs:
            running += d
            best = max(best, running)
        peaks[account] = best
    for account, *_ in seen.values():
        peaks.setdefault(account, 0)
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="connection rows")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pure-Python run")
    parser.add_argument("--memory-limit", help="DuckDB's memory limit, e.g. 2GB")
    args = parser.parse_args()

    path = DATA / f"connections-{args.rows}-{args.accounts}.{args.format}"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, args.rows, args.accounts, args.format)
        print(f"generated {path.name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    size = path.stat().st_size / 1e6
    import duckdb

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__}"
    )
    print(f"input: {path.name}, {size:,.0f} MB")

    t0 = time.perf_counter()
    result = meter(
        connections=path, period="2026-08", options=MeterOptions(memory_limit=args.memory_limit)
    )
    duck_s = time.perf_counter() - t0
    rows = result.rows_read["connections"]
    print(
        f"duckdb:   {rows:,} rows in {duck_s:6.1f}s = {rows / duck_s:12,.0f} rows/s "
        f"({len(result.records)} accounts, {result.duplicates['connections']:,} duplicates)"
    )
    if args.no_baseline:
        return 0
    t0 = time.perf_counter()
    peaks = baseline(path, args.format)
    py_s = time.perf_counter() - t0
    print(f"python:   {rows:,} rows in {py_s:6.1f}s = {rows / py_s:12,.0f} rows/s")
    print(f"speed-up: {py_s / duck_s:.1f}x")
    got = {r.account: r.peak_connections for r in result.records}
    if got != peaks:
        print("MISMATCH between DuckDB and the baseline", file=sys.stderr)
        return 1
    print("the peaks of every account agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
