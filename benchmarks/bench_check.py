"""How fast `pricing check` parses and checks a large ruleset.

Run: python benchmarks/bench_check.py [--lines 100000]

Generates a catalog plus enough contracts to reach the requested number of
lines, then times `pricing_dsl.load` (parse + check) and the full
`check_paths(..., warnings=True)` that `pricing check` runs, in lines per
second.  The baseline in the same process is Lark alone parsing the same
text with the same grammar, so the ratio shows what the AST and the
checker add on top of parsing.  Lark is timed with the garbage collector
paused, as loading pauses it, so the ratio compares like with like.

--repeat N times each step N times and reports the fastest (the machine
may be shared); --warnings FILE writes every diagnostic `pricing check`
found, one a line, for diffing two versions.

--errors N also damages N contracts, spread evenly through the file, with
the syntax slips people make (a price with no unit, a forgotten `%`, a
stray character, curly quotes, a misspelt keyword, a space before `%`), and
times `pricing check` on that file against the clean one.  Recovering from
each error in the same parse keeps the ratio near 1; re-parsing the file
after each error made it grow with N.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pricing_dsl
from pricing_dsl._parser import _lark
from pricing_dsl._ruleset import _no_gc_pauses, check_paths

CATALOG = """currency USD
addon hipaa "HIPAA compliance" 500.00 per month
addon webhooks "Webhooks" 99.00 per month
meter sms "SMS" unit message

plan base "Base" {
  base 99.00 per month
  mau included 1000 overage 0.12 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
"""


def contract(i: int) -> str:
    return f"""
# Customer {i}
contract c{i} "Customer {i}" extends base {{
  mau included {1000 + i % 50 * 1000} overage graduated {{
    up to {100_000 + i} at 0.10 per user
    above at 0.08 per user
  }}
  concurrency {5 + i % 5}%
  addons hipaa, webhooks
  addon webhooks {50 + i % 40}.00 per month
  sms 0.0075 per message
  when mau > {200_000 + i} {{
    mau overage 0.05 per user
  }}
  discount 10% on video
  minimum 1000.00 per month
}}
"""


# One slip per damaged contract, in turn: (the line as generated, as damaged).
SLIPS = (
    ("  minimum 1000.00 per month", "  minimum 1000.00"),
    ("  sms 0.0075 per message", "  sms 0.0075 per message!"),
    ("  addons hipaa, webhooks", "  adons hipaa, webhooks"),
    ("  discount 10% on video", "  discount 10 % on video"),
    ("  minimum 1000.00 per month", "  minimum $1000.00 per month"),
)


def damage(text: str, errors: int, contracts: int) -> str:
    """``text`` with ``errors`` contracts, spread evenly, given one syntax error each."""
    blocks = text.split("\n# Customer ")
    step = max(contracts // max(errors, 1), 1)
    for k in range(errors):
        i = 1 + k * step  # blocks[0] is the catalog
        old, new = SLIPS[k % len(SLIPS)]
        if k % 7 == 6:  # now and then a slip on the line that opens a block
            old, new = '"Customer ', "\u201cCustomer "
        assert old in blocks[i], (old, i)
        blocks[i] = blocks[i].replace(old, new, 1)
    return "\n# Customer ".join(blocks)


def time_errors(text: str, errors: int, contracts: int, repeat: int, tmp: str) -> None:
    """Print the time `pricing check` takes on ``text`` clean and with syntax errors."""
    clean = Path(tmp, "clean.pricing")
    clean.write_text(text)
    broken = Path(tmp, "broken.pricing")
    broken.write_text(damage(text, errors, contracts))
    clean_s = broken_s = float("inf")
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        check_paths(clean, warnings=True)
        clean_s = min(clean_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, diags = check_paths(broken, warnings=True)
        broken_s = min(broken_s, time.perf_counter() - t0)
    print(f"pricing check, clean file{'':<16} {clean_s:>8.2f}")
    print(f"pricing check, {errors} syntax errors{'':<11} {broken_s:>8.2f}")
    print(f"ratio with errors / clean{'':<16} {broken_s / clean_s:>8.2f}x")
    print(f"errors reported: {len(diags)} ({', '.join(sorted({d.code for d in diags}))})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="time each step N times, keep the best")
    ap.add_argument("--warnings", type=Path, help="write the diagnostics found to this file")
    ap.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="N",
        help="also time `pricing check` on the file with N syntax errors against the clean file",
    )
    args = ap.parse_args()
    parts = [CATALOG]
    n = 0
    while sum(p.count("\n") for p in parts) < args.lines:
        parts.append(contract(n))
        n += 1
    text = "".join(parts)
    lines = text.count("\n")
    if args.errors > 0:
        print(f"{lines:,} lines, {n:,} contracts")
        with tempfile.TemporaryDirectory() as tmp:
            _lark()  # build (or load) the parser before timing
            time_errors(text, args.errors, n, args.repeat, tmp)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.pricing")
        path.write_text(text)
        _lark()  # build (or load) the parser before timing
        lark_s = load_s = check_s = float("inf")
        for _ in range(max(args.repeat, 1)):
            with _no_gc_pauses():
                t0 = time.perf_counter()
                _lark().parse(text)
                lark_s = min(lark_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            rules = pricing_dsl.load(path)
            load_s = min(load_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, diags = check_paths(path, warnings=True)
            check_s = min(check_s, time.perf_counter() - t0)
    assert len(rules.contracts) == n + 1
    if args.warnings:
        args.warnings.write_text(
            "".join(f"{d.code} {d.line}:{d.column} {d.message}\n" for d in diags)
        )
    print(f"{lines:,} lines, {n:,} contracts")
    print(f"{'step':<40} {'seconds':>8} {'lines/s':>10} {'vs Lark alone':>14}")
    for name, s in (
        ("Lark parse alone (baseline)", lark_s),
        ("pricing_dsl.load (parse + check)", load_s),
        ("pricing check (with warnings)", check_s),
    ):
        print(f"{name:<40} {s:>8.2f} {lines / s:>10,.0f} {lark_s / s:>13.2f}x")
    print(f"warnings found: {len(diags)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
