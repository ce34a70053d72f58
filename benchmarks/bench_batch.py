"""`pricing batch` end to end, against a hand-written per-account Decimal loop.

Run: python benchmarks/bench_batch.py [--accounts 1000000] [--formats jsonl,csv,parquet]
                                      [--engines baseline,python,duckdb[,spark]] [--dir DIR]
                                      [--keep]

For each format it generates N accounts on the worked-example contract
`acme` (rulesets/contracts/acme.pricing) as a usage file, then times, end to
end (read the file, rate every account, write every line item):

- the baseline: what an engineer would write by hand for that one contract,
  as in benchmarks/bench_rate.py, with the standard library (and pyarrow
  for Parquet, when installed);
- `run_batch(engine="python")`: every record through Ruleset.rate;
- `run_batch(engine="duckdb")`: SQL compiled from the contract, run by DuckDB;
- `run_batch(engine="spark")` (only when asked for): Spark reads the file and
  its executors rate each record as the python engine does, on a local
  session on every core, started before the clock starts (its start-up time
  is printed apart).

All three must write the same line items, checked byte for byte (JSON
Lines, CSV) or row by row in order (Parquet) before any figure is printed:
a fast wrong engine is worth nothing.  The table shows accounts per second
and the ratio baseline time / engine time (above 1 is faster).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from acme_terms import CENT, CONC_ALLOWANCE, CONC_RATE, MAU_INCLUDED, MAU_RATE, VIDEO, VOICE, ZERO

import pricing_dsl
from pricing_dsl._batch import run_batch
from pricing_dsl._batch._rows import COLUMNS  # the output layout the baseline must match

ROOT = Path(__file__).resolve().parent.parent

FIXED = (
    ("base", "Base fee (Acme Health, MSA 2026-07)", "1", "month", "529.00", "529.00"),
    ("addon.hipaa", "HIPAA compliance", "1", "month", "500.00", "500.00"),
    ("addon.e2e_encryption", "End-to-end encryption", "1", "month", "250.00", "250.00"),
)


def text(q: Decimal) -> str:
    s = f"{q:f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def baseline_lines(rec: dict[str, Any]) -> list[tuple[str, ...]]:
    """acme's line items for one account: code, description, quantity, unit, price, amount."""
    mau = max(ZERO, Decimal(rec.get("mau") or 0) - MAU_INCLUDED)
    peak = max(ZERO, Decimal(rec.get("peak_connections") or 0) - CONC_ALLOWANCE)
    voice = Decimal(rec.get("voice_minutes") or 0)
    video = Decimal(rec.get("video_minutes") or 0)
    return [
        FIXED[0],
        ("mau_overage", "MAU overage", text(mau), "user", "0.09",
         f"{(mau * MAU_RATE).quantize(CENT, ROUND_HALF_UP):f}"),
        ("concurrency_overage", "Concurrency overage", text(peak), "connection", "1.00",
         f"{(peak * CONC_RATE).quantize(CENT, ROUND_HALF_UP):f}"),
        ("voice", "Voice minutes", text(voice), "minute", "0.001",
         f"{(voice * VOICE).quantize(CENT, ROUND_HALF_UP):f}"),
        ("video", "Video minutes", text(video), "minute", "0.003",
         f"{(video * VIDEO).quantize(CENT, ROUND_HALF_UP):f}"),
        FIXED[1],
        FIXED[2],
    ]  # fmt: skip


def baseline_records(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line, parse_float=Decimal)
    elif fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
            yield from batch.to_pylist()


def baseline(usage: Path, out: Path, fmt: str) -> None:
    """The hand-written loop: read, rate acme by hand, write every line item."""
    records = baseline_records(usage, fmt)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: list[list[Any]] = [[] for _ in COLUMNS]
        for rec in records:
            head = (rec["account"], "acme", "2026-08", "USD")
            for line in baseline_lines(rec):
                for col, value in zip(cols, (*head, *line), strict=True):
                    col.append(value)
        pq.write_table(pa.table(dict(zip(COLUMNS, cols, strict=True))), out)
        return
    with open(out, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(COLUMNS)
            for rec in records:
                head = (rec["account"], "acme", "2026-08", "USD")
                writer.writerows((*head, *line) for line in baseline_lines(rec))
        else:
            for rec in records:
                head = (rec["account"], "acme", "2026-08", "USD")
                for line in baseline_lines(rec):
                    fh.write(
                        json.dumps(
                            dict(zip(COLUMNS, (*head, *line), strict=True)),
                            ensure_ascii=False,
                            separators=(",", ":"),
                        )
                        + "\n"
                    )


def baseline_total(rec: dict[str, Any]) -> Decimal:
    """acme's invoice total for one account, by hand: the rating alone, no text."""
    mau = max(ZERO, Decimal(rec["mau"]) - MAU_INCLUDED)
    peak = max(ZERO, Decimal(rec["peak_connections"]) - CONC_ALLOWANCE)
    return (
        (mau * MAU_RATE).quantize(CENT, ROUND_HALF_UP)
        + (peak * CONC_RATE).quantize(CENT, ROUND_HALF_UP)
        + (rec["voice_minutes"] * VOICE).quantize(CENT, ROUND_HALF_UP)
        + (rec["video_minutes"] * VIDEO).quantize(CENT, ROUND_HALF_UP)
        + Decimal("1279.00")  # base and the two add-ons
    )


def rating_only(rules: pricing_dsl.Ruleset, parquet: Path) -> tuple[float, float]:
    """Seconds to rate every account with no reading or writing: the loop, and the SQL.

    The loop runs over records already in memory; the SQL over the records
    table the DuckDB engine builds, computing every line's amount and summing.
    """
    import duckdb
    import pyarrow.parquet as pq

    from pricing_dsl._batch import _duck
    from pricing_dsl._batch._progress import Progress
    from pricing_dsl._batch._tally import Tally

    records = pq.read_table(parquet).to_pylist()
    totals: list[Decimal] = []
    loop = timed(lambda: totals.extend(baseline_total(r) for r in records))
    engine = _duck._Engine(rules, str(parquet), "parquet", Progress(False), Tally())
    con = duckdb.connect()
    try:
        parse = engine.parse_sql(con)
        _duck.contracts_table(con, engine.compiled)
        con.execute(
            "CREATE TABLE recs AS " + _duck._stage1(parse, engine.compiled, len(rules.meters))
        )
        shapes = engine.shapes(con)
        engine.terms(con, shapes, "parquet")
        engine.join(con, shapes, {}, "", "parquet")
        found: list[Any] = []
        sql = timed(lambda: found.extend(con.execute(engine.totals_sql(shapes)).fetchall()))
    finally:
        con.close()
    ((_, _, minor),) = found
    assert Decimal(int(minor)).scaleb(-2) == sum(totals, ZERO), "the SQL and the loop disagree"
    return loop, sql


def generate(n: int, directory: Path, seed: int = 7) -> dict[str, Path]:
    """N accounts on acme for 2026-08, as JSON Lines, CSV and Parquet."""
    rng = random.Random(seed)
    jsonl = directory / "usage.jsonl"
    with open(jsonl, "w", encoding="utf-8") as fh:
        for i in range(n):
            voice = Decimal(rng.randint(0, 3_000_000)) / 10
            video = Decimal(rng.randint(0, 3_000_000)) / 10
            fh.write(
                f'{{"account":"acct-{i:07d}","contract":"acme","period":"2026-08",'
                f'"mau":{rng.randint(0, 60_000)},"peak_connections":{rng.randint(0, 5_000)},'
                f'"voice_minutes":{voice},"video_minutes":{video}}}\n'
            )
    import duckdb

    con = duckdb.connect()
    columns = (
        "{'account': 'VARCHAR', 'contract': 'VARCHAR', 'period': 'VARCHAR', 'mau': 'BIGINT', "
        "'peak_connections': 'BIGINT', 'voice_minutes': 'DECIMAL(9,1)', "
        "'video_minutes': 'DECIMAL(9,1)'}"
    )
    source = f"read_json('{jsonl}', format = 'newline_delimited', columns = {columns})"
    paths = {"jsonl": jsonl}
    for fmt, options in (("csv", "FORMAT CSV, HEADER true"), ("parquet", "FORMAT PARQUET")):
        paths[fmt] = directory / f"usage.{fmt}"
        con.execute(f"COPY (SELECT * FROM {source}) TO '{paths[fmt]}' ({options})")
    con.close()
    return paths


def same_output(a: Path, b: Path) -> bool:
    if a.suffix != ".parquet":
        return filecmp.cmp(a, b, shallow=False)
    import duckdb

    con = duckdb.connect()
    try:

        def numbered(p: Path) -> str:
            return f"SELECT row_number() OVER () AS n, * FROM read_parquet('{p}')"

        diff = con.execute(
            f"SELECT count(*) FROM (({numbered(a)}) EXCEPT ALL ({numbered(b)})) "
            f"UNION ALL SELECT count(*) FROM (({numbered(b)}) EXCEPT ALL ({numbered(a)}))"
        ).fetchall()
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM read_parquet('{a}')), "
            f"(SELECT count(*) FROM read_parquet('{b}'))"
        ).fetchall()[0]
        return diff == [(0,), (0,)] and counts[0] == counts[1]
    finally:
        con.close()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--formats", default="jsonl,csv,parquet", help="input and output formats")
    ap.add_argument(
        "--engines", default="baseline,python,duckdb", help="any of baseline,python,duckdb,spark"
    )
    ap.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    engines = [e for e in args.engines.split(",") if e]
    if "baseline" not in engines:
        ap.error("the baseline is what the engines are measured against")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            print("pyarrow is not installed: the Parquet baseline needs it; skipping Parquet")
            formats.remove("parquet")

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-batch-"))
    directory.mkdir(parents=True, exist_ok=True)
    rules = pricing_dsl.load(ROOT / "rulesets")
    spark = None
    if "spark" in engines:
        from pricing_dsl._spark_session import open_session

        started = time.perf_counter()
        # The engine borrows this active session, as it would under spark-submit.
        spark = open_session("pricing batch benchmark", python_workers=True)
        print(f"started a local Spark session in {time.perf_counter() - started:.1f} s")
    try:
        started = time.perf_counter()
        usage = generate(args.accounts, directory)
        print(f"generated {args.accounts:,} accounts in {time.perf_counter() - started:.1f} s")
        results: list[tuple[str, str, float]] = []
        for fmt in formats:
            outs: dict[str, Path] = {}
            for engine in engines:
                out = directory / f"out-{engine}.{fmt}"
                if engine == "baseline":
                    seconds = timed(lambda: baseline(usage[fmt], out, fmt))  # noqa: B023
                else:
                    summary = run_batch(rules, usage[fmt], out, engine=engine, quiet=True)
                    assert summary.failed == 0 and summary.rated == args.accounts, summary
                    assert summary.interpreted == 0 or engine == "python", summary.reasons
                    seconds = summary.seconds
                outs[engine] = out
                results.append((fmt, engine, seconds))
                print(f"  {fmt:8} {engine:9} {seconds:8.1f} s", flush=True)
            for engine in engines[1:]:
                if not same_output(outs["baseline"], outs[engine]):
                    print(f"{engine} and the baseline disagree on {fmt}!", file=sys.stderr)
                    return 1
        print()
        print(
            f"{'in -> out':18} {'engine':10} {'seconds':>9} {'accounts/s':>12} {'vs baseline':>12}"
        )
        base = {fmt: s for fmt, e, s in results if e == "baseline"}
        for fmt, engine, seconds in results:
            print(
                f"{fmt + ' -> ' + fmt:18} {engine:10} {seconds:9.2f} "
                f"{args.accounts / seconds:12,.0f} {base[fmt] / seconds:11.2f}x"
            )
        if "parquet" in formats and "duckdb" in engines:
            loop, sql = rating_only(rules, usage["parquet"])
            print(
                f"{'rating alone':18} {'baseline':10} {loop:9.2f} {args.accounts / loop:12,.0f} "
                f"{1:11.2f}x\n{'rating alone':18} {'duckdb SQL':10} {sql:9.2f} "
                f"{args.accounts / sql:12,.0f} {loop / sql:11.2f}x"
            )
        size = {fmt: os.path.getsize(directory / f"out-duckdb.{fmt}") for fmt in formats}
        print(
            f"\n{args.accounts:,} accounts, 7 line items each; output sizes: "
            + ", ".join(f"{fmt} {size[fmt] / 1e6:,.0f} MB" for fmt in formats)
            + f"; python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
            "all outputs identical to the baseline's"
        )
    finally:
        if spark is not None:
            spark.close()
        if not args.keep and not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
