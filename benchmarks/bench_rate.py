"""Per-account rating through the public API, against a hand-written Decimal baseline.

Run: python benchmarks/bench_rate.py [--seconds 2]

Both sides rate the same usage records for the worked-example contract
`acme` (rulesets/contracts/acme.pricing) and produce every line amount and
the total, rounded half-up to cents.  The baseline is what an engineer
would write by hand for that one contract; the ratio is baseline time /
pricing-dsl time, so above 1.0 means pricing-dsl is faster.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from acme_terms import (
    BASE,
    CENT,
    CONC_ALLOWANCE,
    CONC_RATE,
    E2E,
    HIPAA,
    MAU_INCLUDED,
    MAU_RATE,
    VIDEO,
    VOICE,
    ZERO,
)

import pricing_dsl

ROOT = Path(__file__).resolve().parent.parent


def baseline(usage: dict[str, object]) -> tuple[dict[str, Decimal], Decimal]:
    """acme, hand-written: the same lines and rounding as the language's rules."""
    mau = Decimal(usage.get("mau", 0))  # type: ignore[arg-type]
    peak = Decimal(usage.get("peak_connections", 0))  # type: ignore[arg-type]
    voice = Decimal(usage.get("voice_minutes", 0))  # type: ignore[arg-type]
    video = Decimal(usage.get("video_minutes", 0))  # type: ignore[arg-type]
    lines = {
        "base": BASE.quantize(CENT, ROUND_HALF_UP),
        "mau_overage": (max(ZERO, mau - MAU_INCLUDED) * MAU_RATE).quantize(CENT, ROUND_HALF_UP),
        "concurrency_overage": (max(ZERO, peak - CONC_ALLOWANCE) * CONC_RATE).quantize(
            CENT, ROUND_HALF_UP
        ),
        "voice": (voice * VOICE).quantize(CENT, ROUND_HALF_UP),
        "video": (video * VIDEO).quantize(CENT, ROUND_HALF_UP),
        "addon.hipaa": HIPAA.quantize(CENT, ROUND_HALF_UP),
        "addon.e2e_encryption": E2E.quantize(CENT, ROUND_HALF_UP),
    }
    return lines, sum(lines.values(), ZERO)


def records(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {
            "period": "2026-08",
            "mau": rng.randint(0, 60_000),
            "peak_connections": rng.randint(0, 5_000),
            "voice_minutes": Decimal(rng.randint(0, 3_000_000)) / 10,
            "video_minutes": Decimal(rng.randint(0, 3_000_000)) / 10,
        }
        for _ in range(n)
    ]


def timed(fn, data, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Best per-record time over repeated passes."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for rec in data:
            fn(rec)
        best = min(best, (time.perf_counter() - start) / len(data))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2_000)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)

    rules = pricing_dsl.load(ROOT / "rulesets")
    data = records(args.records)
    # Same answers first: a fast wrong engine is worth nothing.
    for rec in data:
        lines, total = baseline(rec)
        inv = rules.rate("acme", rec)
        assert inv.total == total, (rec, inv.total, total)
        assert {ln.code: ln.amount for ln in inv.lines} == lines, rec

    variants = {
        "hand-written Decimal baseline": lambda r: baseline(r),
        "Ruleset.rate (lines + total)": lambda r: rules.rate("acme", r).total,
        "Ruleset.rate + explanations": lambda r: [
            ln.explanation for ln in rules.rate("acme", r).lines
        ],
    }
    results = {name: timed(fn, data, args.seconds) for name, fn in variants.items()}
    base = results["hand-written Decimal baseline"]
    print(f"{'variant':<34} {'accounts/s':>12} {'vs baseline':>12}")
    for name, t in results.items():
        print(f"{name:<34} {1 / t:>12,.0f} {base / t:>11.2f}x")
    print(f"python {sys.version.split()[0]}, {args.records} records, best of repeated passes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
