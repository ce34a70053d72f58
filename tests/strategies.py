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


# ------------------------------------------------------------ pricing models
#
# Contracts that use issue 12's constructs: blocks (random sizes, rounded up
# or down, in tier rows too), flat fees per tier, line minimums and caps on
# random lines and groups, time-limited discounts, and quarterly and yearly
# fees with and without a term.  Usage lands on and next to every tier bound
# and every block edge (allowance + k blocks), and periods fall before, on and
# after the discounts' last months and the fees' interval starts.

MODEL_TERMS = [
    "",
    "2026-07-01 to 2026-12-31",
    "2026-07-10 to 2027-07-09",
    "2026-01-31 to 2027-03-15",
]
MODEL_PERIODS = [
    "2026-01",
    "2026-04",
    "2026-07",
    "2026-08",
    "2026-10",
    "2027-01",
    "2027-03",
    "2027-07",
]
money = st.decimals(min_value=0, max_value=500, places=2, allow_nan=False, allow_infinity=False)
# Up to twelve decimal places, the language's finest.
fine_prices = st.decimals(
    min_value=0, max_value=1, places=12, allow_nan=False, allow_infinity=False
)


def _block_sizes(whole: bool) -> st.SearchStrategy[str]:
    sizes = (
        ["1", "10", "60", "100", "1_000"] if whole else ["0.5", "1", "2.5", "60", "100", "1_000"]
    )
    return st.sampled_from(sizes)


@st.composite
def model_price(draw: st.DrawFn, unit: str, whole: bool, allowance: int) -> str:
    """PRICE per UNIT, or a block price (per N UNITs, maybe rounded down)."""
    price = f"{draw(st.one_of(prices, fine_prices)):f}"
    if draw(st.booleans()):
        return f"{price} per {unit}" + (" rounded down" if draw(st.integers(0, 3)) == 0 else "")
    size = draw(_block_sizes(whole))
    n = int(float(size.replace("_", "")))
    POINTS.extend(allowance + k * n for k in (1, 2, 7) if n >= 1)
    down = " rounded down" if draw(st.booleans()) else ""
    return f"{price} per {size} {unit}s{down}"


@st.composite
def model_tier_table(draw: st.DrawFn, unit: str, whole: bool, allowance: int) -> str:
    bounds = sorted(set(draw(st.lists(st.integers(1, 50_000), min_size=1, max_size=3))))
    POINTS.extend(bounds)
    rows = []
    for b in [*bounds, None]:
        head = f"up to {b}" if b is not None else "above"
        fee = f" plus {draw(money)}" if draw(st.booleans()) else ""
        rows.append(f"    {head} at {draw(model_price(unit, whole, allowance))}{fee}")
    mode = draw(st.sampled_from(["graduated", "volume"]))
    return f"{mode} {{\n" + "\n".join(rows) + "\n  }"


@st.composite
def model_meter(draw: st.DrawFn, meter: str, unit: str, whole: bool) -> str:
    allowance = draw(st.sampled_from([0, 0, 100, 1000]))
    POINTS.append(allowance)
    included = f"included {allowance} " if allowance else ""
    rate = (
        draw(model_tier_table(unit, whole, allowance))
        if draw(st.booleans())
        else draw(model_price(unit, whole, allowance))
    )
    return f"  {meter} {included}overage {rate}"


@st.composite
def model_ruleset(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A catalog, a plan and contract `c` using the pricing models, and usage points."""
    POINTS.clear()
    currency = draw(st.sampled_from(["USD", "JPY", "EUR"]))
    rounding = draw(st.sampled_from(["half_up", "half_even"]))
    base_unit = draw(st.sampled_from(["month", "quarter", "year"]))
    plan = [
        f"  base {draw(money)} per {base_unit}",
        draw(model_meter("mau", "user", True)),
        f"  concurrency 5% overage {draw(model_price('connection', True, 0))}",
        draw(model_meter("voice", "minute", False)),
        draw(model_meter("video", "minute", False)),
        draw(model_meter("sms", "message", False)),
    ]
    contract = []
    term = draw(st.sampled_from(MODEL_TERMS))
    if term:
        contract.append(f"  term {term}")
    addons = draw(st.sampled_from(["", "a", "a, q", "q, y", "a, q, y"]))
    if addons:
        contract.append(f"  addons {addons}")
        if "q" in addons and draw(st.booleans()):
            unit = draw(st.sampled_from(["month", "quarter", "year"]))
            contract.append(f"  addon q {draw(money)} per {unit}")
    lines = ["base", "mau_overage", "concurrency_overage", "voice", "video", "sms", "usage"]
    if addons:
        lines += ["addons"] + [f"addon.{a.strip()}" for a in addons.split(",")]
    limits = [""] + ([" for 1 months", " for 3 months", " for 7 months"] if term else [])
    limits += [" until 2026-07-31", " until 2026-12-31"]
    for target in draw(st.lists(st.sampled_from(lines), max_size=3, unique=True)):
        contract.append(
            f"  discount {draw(st.integers(0, 30))}% on {target}{draw(st.sampled_from(limits))}"
        )
    if draw(st.booleans()):
        contract.append(f"  discount {draw(money)} per month{draw(st.sampled_from(limits))}")
    minimums: dict[str, int] = {}
    for target in draw(st.lists(st.sampled_from(lines), max_size=2, unique=True)):
        minimums[target] = draw(st.integers(0, 3000))
        contract.append(f"  minimum {target} {minimums[target]} per month")
    for target in draw(st.lists(st.sampled_from(lines), max_size=3, unique=True)):
        # Never below a line minimum on the same target (E253).
        cap = minimums.get(target, 0) + draw(st.integers(0, 1000))
        contract.append(f"  cap {target} {cap} per month")
    if draw(st.booleans()):
        contract.append(f"  minimum {draw(st.integers(0, 20000))} per month")
    # The same constructs in a dated and a conditional layer.
    if draw(st.booleans()):
        # A new price, billed as often as before (a different interval is E254).
        video = draw(model_meter("video", "minute", False))
        contract.append(
            f"  from 2027-01-01 {{\n    base {draw(money)} per {base_unit}\n  {video}\n  }}"
        )
    if draw(st.booleans()):
        threshold = draw(st.integers(0, 50_000))
        POINTS.append(threshold)
        target = draw(st.sampled_from(lines))
        cap = minimums.get(target, 0) + draw(st.integers(0, 1000))
        body = draw(
            st.sampled_from(
                [
                    f"cap {target} {cap} per month",
                    f"sms {draw(model_price('message', False, 0))}",
                    # At most 10% more, so no line's discounts pass 100% (E223).
                    f"discount {draw(st.integers(0, 10))}% on {target}",
                ]
            )
        )
        contract.append(f"  when mau >= {threshold} {{\n    {body}\n  }}")
    text = "\n".join(
        [
            f"currency {currency}",
            f"rounding {rounding}",
            'meter sms "SMS" unit message',
            'addon a "A" 10.005 per month',
            'addon q "Q" 900.50 per quarter',
            'addon y "Y" 1_000.01 per year',
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
def model_usage_for(draw: st.DrawFn, points: list[int], n: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "account": f"acct-{n}",
        "contract": "c",
        "period": draw(st.sampled_from(MODEL_PERIODS)),
    }
    for key in ("mau", "peak_connections", "voice_minutes", "video_minutes", "sms"):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1 and points:
            record[key] = draw(st.sampled_from(points))
        elif key in ("mau", "peak_connections"):
            record[key] = draw(st.integers(0, 60_000))
        else:
            record[key] = draw(st.decimals(min_value=0, max_value=60_000, places=1))
    return record
