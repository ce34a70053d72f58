"""`pricing batch` with many contracts of one shape, against a hand-written Python loop.

Run: python benchmarks/bench_shapes.py [--contracts 20,2000] [--records 50000]
                                       [--engines baseline,duckdb[,python]] [--dir DIR]

A billing run as sales ops make it: one `std` plan, and N contracts that
each restate the MAU allowance and overage, the concurrency percentage and
the video rate (so every contract has numbers of its own, and all share one
shape).  The records are spread evenly over the contracts, read from CSV,
and the line items written as JSON Lines.

For each N it times, end to end:

- ``duckdb`` (and ``python`` when asked): loading the ruleset text and
  ``run_batch`` on the file (the loading is also shown apart);
- ``baseline``: what an engineer would write by hand -- the same contracts'
  terms as a Python dict, the CSV read with the csv module, every line item
  rated with Decimal and written with json.dumps.

Every output must equal the baseline's byte for byte before a figure is
printed.  The table gives seconds, records per second and the baseline's
time over the engine's (above 1: faster than the loop), and, for each
engine, its time relative to the first N (the cost of more contracts).
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
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

import pricing_dsl
from pricing_dsl._batch import run_batch
from pricing_dsl._batch._rows import COLUMNS  # the output layout the baseline must match

CENT = Decimal("0.01")
ZERO = Decimal(0)
PERIOD = "2026-08"
BASE = Decimal("99.00")
VOICE = Decimal("0.001")
CONC_RATE = Decimal("1.00")

PLAN = """currency USD

plan std "Standard" {
  base 99.00 per month
  mau included 1000 overage 0.12 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
"""


@dataclass(frozen=True)
class Terms:
    """One contract's restated terms, as the hand-written loop holds them."""

    id: str
    name: str
    mau_included: int
    mau_rate: Decimal
    concurrency_pct: int
    video_rate: Decimal


def contracts(n: int) -> list[Terms]:
    return [
        Terms(
            f"c{i:05d}",
            f"Customer {i:05d}",
            1000 + 250 * (i % 97),
            Decimal(f"0.{100 + i % 53}"),
            1 + i % 9,
            Decimal(f"0.00{10 + i % 41}"),
        )
        for i in range(n)
    ]


def ruleset_text(terms: list[Terms]) -> str:
    parts = [PLAN]
    for t in terms:
        parts.append(
            f'contract {t.id} "{t.name}" extends std {{\n'
            f"  mau included {t.mau_included} overage {t.mau_rate} per user\n"
            f"  concurrency {t.concurrency_pct}%\n"
            f"  video {t.video_rate} per minute\n"
            "}\n"
        )
    return "\n".join(parts)


def write_usage(path: Path, terms: list[Terms], records: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("account,contract,period,mau,peak_connections,voice_minutes,video_minutes\n")
        for i in range(records):
            t = terms[i % len(terms)]
            voice = Decimal(rng.randint(0, 3_000_000)) / 10
            video = Decimal(rng.randint(0, 3_000_000)) / 10
            fh.write(
                f"acct-{i:07d},{t.id},{PERIOD},{rng.randint(0, 60_000)},"
                f"{rng.randint(0, 5_000)},{voice},{video}\n"
            )


def text(q: Decimal) -> str:
    s = f"{q:f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def baseline(usage: Path, out: Path, terms: list[Terms]) -> None:
    """The hand-written loop: read the CSV, rate each record by hand, write JSON Lines."""
    by_id = {t.id: t for t in terms}
    with (
        open(usage, encoding="utf-8", newline="") as src,
        open(out, "w", encoding="utf-8", newline="") as fh,
    ):
        for rec in csv.DictReader(src):
            t = by_id[rec["contract"]]
            included = Decimal(t.mau_included)
            allowance = (included * t.concurrency_pct / 100).to_integral_value(ROUND_FLOOR)
            mau = max(ZERO, Decimal(rec["mau"]) - included)
            peak = max(ZERO, Decimal(rec["peak_connections"]) - allowance)
            voice = Decimal(rec["voice_minutes"])
            video = Decimal(rec["video_minutes"])
            lines = (
                ("base", f"Base fee ({t.name})", "1", "month", "99.00", "99.00"),
                ("mau_overage", "MAU overage", text(mau), "user", str(t.mau_rate),
                 f"{(mau * t.mau_rate).quantize(CENT, ROUND_HALF_UP):f}"),
                ("concurrency_overage", "Concurrency overage", text(peak), "connection", "1.00",
                 f"{(peak * CONC_RATE).quantize(CENT, ROUND_HALF_UP):f}"),
                ("voice", "Voice minutes", text(voice), "minute", "0.001",
                 f"{(voice * VOICE).quantize(CENT, ROUND_HALF_UP):f}"),
                ("video", "Video minutes", text(video), "minute", str(t.video_rate),
                 f"{(video * t.video_rate).quantize(CENT, ROUND_HALF_UP):f}"),
            )  # fmt: skip
            head = (rec["account"], t.id, rec["period"], "USD")
            for line in lines:
                fh.write(
                    json.dumps(
                        dict(zip(COLUMNS, (*head, *line), strict=True)),
                        ensure_ascii=False,
                        separators=(",", ":"),
                    )
                    + "\n"
                )


def timed_engine(
    source: str, usage: Path, out: Path, engine: str, records: int
) -> tuple[float, float]:
    """Load the ruleset and run the batch: the whole cost of a billing run, and of the load."""
    start = time.perf_counter()
    rules = pricing_dsl.loads(source, "contracts.pricing")
    loaded = time.perf_counter() - start
    summary = run_batch(rules, usage, out, engine=engine, quiet=True)
    seconds = time.perf_counter() - start
    assert summary.failed == 0 and summary.rated == records, summary
    assert summary.interpreted == 0 or engine == "python", summary.reasons
    return seconds, loaded


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--contracts", default="20,2000", help="comma-separated contract counts")
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--engines", default="baseline,duckdb", help="any of baseline,duckdb,python")
    ap.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.contracts.split(",") if n]
    engines = [e for e in args.engines.split(",") if e]
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-shapes-"))
    directory.mkdir(parents=True, exist_ok=True)
    results: list[tuple[int, str, float, float]] = []
    try:
        for n in counts:
            terms = contracts(n)
            source = ruleset_text(terms)
            usage = directory / f"usage-{n}.csv"
            write_usage(usage, terms, args.records)
            outs = {}
            for engine in engines:
                out = directory / f"out-{n}-{engine}.jsonl"
                if engine == "baseline":
                    start = time.perf_counter()
                    baseline(usage, out, terms)
                    seconds, loaded = time.perf_counter() - start, 0.0
                else:
                    seconds, loaded = timed_engine(source, usage, out, engine, args.records)
                outs[engine] = out
                results.append((n, engine, seconds, loaded))
                print(f"  {n:6,} contracts  {engine:9} {seconds:8.2f} s", flush=True)
            first = outs[engines[0]]
            for engine, out in outs.items():
                if not filecmp.cmp(first, out, shallow=False):
                    print(f"{engine} and {engines[0]} disagree ({n} contracts)!", file=sys.stderr)
                    return 1
        print()
        print(
            f"{'contracts':>10} {'engine':9} {'seconds':>8} {'loading':>8} {'records/s':>11} "
            f"{'vs baseline':>12} {'vs ' + str(counts[0]) + ' contracts':>17} "
            f"{'same, w/o loading':>18}"
        )
        own = {(n, e): (s, ld) for n, e, s, ld in results}
        for n, engine, seconds, loaded in results:
            base = own.get((n, "baseline"))
            ratio = f"{base[0] / seconds:11.2f}x" if base else f"{'':12}"
            first, first_loaded = own[(counts[0], engine)]
            growth = seconds / first
            rest = (seconds - loaded) / (first - first_loaded)
            print(
                f"{n:10,} {engine:9} {seconds:8.2f} {loaded:8.2f} {args.records / seconds:11,.0f} "
                f"{ratio} {growth:16.2f}x {rest:17.2f}x"
            )
        print(
            f"\n{args.records:,} records, 5 line items each, CSV in, JSON Lines out; "
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
            "all outputs identical byte for byte"
        )
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
