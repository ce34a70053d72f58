"""Per-account rating over many contracts, against a hand-written Decimal rater.

Run: python benchmarks/bench_contracts.py [--contracts 10000] [--records 500000]

One `std` plan; N contracts that each restate the MAU allowance and
overage rate, the concurrency percentage and the video rate (different
numbers each, so no two contracts are alike).  The records are spread
evenly over the contracts, interleaved, with usage values mixed: ints,
Decimals and decimal strings.

* first pass: a freshly loaded Ruleset rates every record, so every
  contract is rated for the first time during the pass;
* second pass: the same Ruleset rates them all again.

The baseline is what an engineer would write by hand for these contracts:
one Decimal function, with each contract's numbers looked up in a dict.
Both return every line's amount and the total.  Ratios are baseline
time / pricing-dsl time (above 1.0: pricing-dsl is
faster), measured in one process, one after the other.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

import pricing_dsl

CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)
BASE = Decimal("99.00")
VOICE = Decimal("0.001")
CONC_RATE = Decimal("1.00")

Terms = tuple[Decimal, Decimal, Decimal, Decimal]  # MAU included, MAU rate, conc. %, video


def contracts(n: int, seed: int = 11) -> dict[str, Terms]:
    rng = random.Random(seed)
    return {
        f"c{i:05d}": (
            Decimal(rng.randrange(1_000, 50_000, 100)),
            Decimal(rng.randrange(5, 15)) / 100,
            Decimal(rng.randrange(3, 10)),
            Decimal(rng.randrange(15, 35)) / 10_000,
        )
        for i in range(n)
    }


def ruleset_text(terms: dict[str, Terms]) -> str:
    out = [
        "currency USD",
        "",
        'plan std "Standard" {',
        "  base 99.00 per month",
        "  mau included 1000 overage 0.12 per user",
        "  concurrency 5% overage 1.00 per connection",
        "  voice 0.001 per minute",
        "  video 0.003 per minute",
        "}",
        "",
    ]
    for cid, (included, rate, pct, video) in terms.items():
        out += [
            f'contract {cid} "Customer {cid}" extends std {{',
            f"  mau included {included} overage {rate} per user",
            f"  concurrency {pct}%",
            f"  video {video} per minute",
            "}",
            "",
        ]
    return "\n".join(out)


def records(terms: dict[str, Terms], n: int, seed: int = 7) -> list[tuple[str, dict[str, object]]]:
    rng = random.Random(seed)
    ids = list(terms)
    out = []
    for i in range(n):
        video = Decimal(rng.randint(0, 3_000_000)) / 10
        kind = i % 3  # ints, Decimals and decimal strings, mixed
        rec: dict[str, object] = {
            "period": "2026-08",
            "mau": rng.randint(0, 60_000),
            "peak_connections": rng.randint(0, 5_000),
            "voice_minutes": rng.randint(0, 300_000),
            "video_minutes": str(video) if kind == 2 else video,
        }
        if kind == 1:
            rec["mau"] = Decimal(rec["mau"])  # type: ignore[arg-type]
        elif kind == 2:
            rec["peak_connections"] = str(rec["peak_connections"])
        out.append((ids[i % len(ids)], rec))
    return out


def make_baseline(
    terms: dict[str, Terms],
) -> Callable[[str, dict[str, object]], tuple[dict[str, Decimal], Decimal]]:
    """The hand-written rater: each line's amount by code, and the total (as bench_rate's)."""

    def rate(cid: str, usage: dict[str, object]) -> tuple[dict[str, Decimal], Decimal]:
        included, mau_rate, pct, video_rate = terms[cid]
        mau = Decimal(usage.get("mau", 0))  # type: ignore[arg-type]
        peak = Decimal(usage.get("peak_connections", 0))  # type: ignore[arg-type]
        voice = Decimal(usage.get("voice_minutes", 0))  # type: ignore[arg-type]
        video = Decimal(usage.get("video_minutes", 0))  # type: ignore[arg-type]
        allowance = (included * pct / HUNDRED).to_integral_value(ROUND_FLOOR)
        lines = {
            "base": BASE,
            "mau_overage": (max(ZERO, mau - included) * mau_rate).quantize(CENT, ROUND_HALF_UP),
            "concurrency_overage": (max(ZERO, peak - allowance) * CONC_RATE).quantize(
                CENT, ROUND_HALF_UP
            ),
            "voice": (voice * VOICE).quantize(CENT, ROUND_HALF_UP),
            "video": (video * video_rate).quantize(CENT, ROUND_HALF_UP),
        }
        return lines, sum(lines.values(), ZERO)

    return rate


def _run(
    fn: Callable[[str, dict[str, object]], object], chunk: list[tuple[str, dict[str, object]]]
) -> float:
    start = time.perf_counter()
    for cid, rec in chunk:
        fn(cid, rec)
    return time.perf_counter() - start


def interleaved(
    baseline: Callable[[str, dict[str, object]], object],
    engine: Callable[[str, dict[str, object]], object],
    data: list[tuple[str, dict[str, object]]],
    chunks: int = 100,
) -> tuple[float, float]:
    """Seconds for the baseline and the engine, timed chunk by chunk in turn.

    Alternating keeps both sides under the same load on a shared machine.
    """
    size = max(1, len(data) // chunks)
    t_base = t_engine = 0.0
    gc.collect()
    for at in range(0, len(data), size):
        chunk = data[at : at + size]
        t_base += _run(baseline, chunk)
        t_engine += _run(engine, chunk)
    return t_base, t_engine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contracts", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=500_000)
    args = ap.parse_args(argv)

    terms = contracts(args.contracts)
    text = ruleset_text(terms)
    data = records(terms, args.records)
    baseline = make_baseline(terms)

    start = time.perf_counter()
    check = pricing_dsl.loads(text, "contracts.pricing")
    load = time.perf_counter() - start
    # Same answers first, on a sample (a fast wrong engine is worth nothing).
    for cid, rec in data[:: max(1, len(data) // 2_000)]:
        invoice = check.rate(cid, dict(rec))
        assert (invoice.amounts, invoice.total) == baseline(cid, rec), (cid, rec)
    del check

    rules = pricing_dsl.loads(text, "contracts.pricing")

    def engine(cid: str, rec: dict[str, object]) -> Decimal:
        total: Decimal = rules.rate(cid, rec).total
        return total

    b1, t_first = interleaved(baseline, engine, data)
    b2, t_second = interleaved(baseline, engine, data)
    shapes = len(rules._shapes)
    print(f"{args.contracts:,} contracts, {args.records:,} records (ints, Decimals, strings)")
    print(f"load (parse + check) {load:.2f} s ({args.contracts / load:,.0f} contracts/s)")
    print(f"{'':<34} {'records/s':>12} {'vs baseline':>12}")
    for name, t, b in (
        ("hand-written Decimal rater", b1, b1),
        ("Ruleset.rate, first pass", t_first, b1),
        ("Ruleset.rate, second pass", t_second, b2),
    ):
        print(f"{name:<34} {args.records / t:>12,.0f} {b / t:>11.2f}x")
    print(f"compiled shapes: {shapes}; python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
