"""Hypothesis strategies shared by the engine-agreement tests.

Random contracts -- flat and tiered rates, allowances, terms, `from` and
`when` layers, adjustments, rounding modes, currencies with 0 and 2 minor
digits -- and usage that lands on and next to every bound and threshold the
contract uses, where off-by-one mistakes live.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

prices = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=300_000)
minutes = st.decimals(min_value=0, max_value=2_000_000, places=1)
POINTS: list[int] = []


@st.composite
def tier_table(draw: st.DrawFn, unit: str) -> str:
    bounds = sorted(set(draw(st.lists(st.integers(1, 250_000), min_size=1, max_size=4))))
    POINTS.extend(bounds)
    rows = [f"    up to {b} at {draw(prices)} per {unit}" for b in bounds]
    rows.append(f"    above at {draw(prices)} per {unit}")
    mode = draw(st.sampled_from(["graduated", "volume"]))
    return f"{mode} {{\n" + "\n".join(rows) + "\n  }"


@st.composite
def rate_clause(draw: st.DrawFn, unit: str) -> str:
    if draw(st.booleans()):
        return f"{draw(prices)} per {unit}"
    return draw(tier_table(unit))


@st.composite
def ruleset(draw: st.DrawFn) -> tuple[str, list[int]]:
    POINTS.clear()
    currency = draw(st.sampled_from(["USD", "JPY", "EUR"]))
    rounding = draw(st.sampled_from(["half_up", "half_even"]))
    plan = [
        f"  base {draw(prices)} per month",
        f"  mau included {draw(counts)} overage {draw(rate_clause('user'))}",
        f"  concurrency {draw(st.integers(0, 100))}% overage {draw(rate_clause('connection'))}",
        f"  voice included {draw(st.integers(0, 5000))} minutes",
        f"  voice {draw(rate_clause('minute'))}",
        f"  video {draw(rate_clause('minute'))}",
        f"  sms {draw(prices)} per message",
    ]
    contract = []
    term = draw(st.sampled_from(["", "2026-07-01 to 2026-12-31", "2026-07-10 to 2027-07-09"]))
    if term:
        contract.append(f"  term {term}")
    if draw(st.booleans()):
        contract.append(f"  addons {draw(st.sampled_from(['a', 'a, b', 'b']))}")
    if draw(st.booleans()):
        contract.append(f"  from 2026-08-01 {{\n    voice {draw(prices)} per minute\n  }}")
    for _ in range(draw(st.integers(0, 3))):
        meter = draw(st.sampled_from(["mau", "peak_connections", "video_minutes", "sms"]))
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        other = draw(
            st.sampled_from(
                [
                    "",
                    " and voice_minutes < 1000",
                    " or mau / 0 > 1",
                    " and not period.start < 2026-08-01",
                    " or video_minutes / voice_minutes >= 3",
                    " and sms * 2 + sms / 4 != 7",
                ]
            )
        )
        body = draw(
            st.sampled_from(
                [
                    f"mau overage {draw(prices)} per user",
                    f"video {draw(prices)} per minute",
                    f"base {draw(prices)} per month",
                    f"discount {draw(st.integers(0, 50))}% on usage",
                    f"minimum {draw(st.integers(0, 20000))} per month",
                ]
            )
        )
        threshold = draw(counts)
        POINTS.append(threshold)
        contract.append(f"  when {meter} {op} {threshold}{other} {{\n    {body}\n  }}")
    if draw(st.booleans()):
        contract.append(
            f"  discount {draw(st.integers(0, 50))}% on "
            f"{draw(st.sampled_from(['video', 'usage', 'addons', 'base, voice', 'mau_overage']))}"
        )
    if draw(st.booleans()):
        contract.append(f"  discount {draw(prices)} per month")
    if draw(st.booleans()):
        contract.append(f"  cap mau_overage {draw(st.integers(0, 5000))} per month")
    if draw(st.booleans()):
        contract.append(f"  minimum {draw(st.integers(0, 20000))} per month")
    text = "\n".join(
        [
            f"currency {currency}",
            f"rounding {rounding}",
            'meter sms "SMS" unit message',
            'addon a "A" 10.005 per month',
            'addon b "B" 0.5 per month',
            'plan p "P" {',
            *plan,
            "}",
            'contract c "C" extends p {',
            *contract,
            "}",
        ]
    )
    return text + "\n", sorted({p + d for p in POINTS for d in (-1, 0, 1) if p + d >= 0})


@st.composite
def usage_for(draw: st.DrawFn, points: list[int], n: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "account": f"acct-{n}",
        "contract": "c",
        "period": draw(st.sampled_from(["2026-07", "2026-08"])),
    }
    for key in ("mau", "peak_connections", "voice_minutes", "video_minutes", "sms"):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1 and points:
            record[key] = draw(st.sampled_from(points))
        elif key in ("mau", "peak_connections"):
            record[key] = draw(counts)
        else:
            record[key] = draw(minutes)
    return record
