"""The compiled fast path agrees with the reference interpreter, to the cent.

Hypothesis writes random contracts -- flat and tiered rates, allowances,
`when` rules, adjustments, rounding modes, currencies with 0 and 2 minor
digits -- and random usage, and both engines must give identical lines.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl

prices = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=300_000)
minutes = st.decimals(min_value=0, max_value=2_000_000, places=1)


# Numbers the generated contract uses (tier bounds, thresholds, allowances):
# usage lands on them and next to them, where off-by-one mistakes live.
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
    if draw(st.booleans()):
        contract.append(f"  addons {draw(st.sampled_from(['a', 'a, b', 'b']))}")
    for _ in range(draw(st.integers(0, 2))):
        meter = draw(st.sampled_from(["mau", "peak_connections", "video_minutes", "sms"]))
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        other = draw(st.sampled_from(["", " and voice_minutes < 1000", " or mau / 0 > 1"]))
        body = draw(
            st.sampled_from(
                [
                    f"mau overage {draw(prices)} per user",
                    f"video {draw(prices)} per minute",
                    f"base {draw(prices)} per month",
                ]
            )
        )
        threshold = draw(counts)
        POINTS.append(threshold)
        contract.append(f"  when {meter} {op} {threshold}{other} {{\n    {body}\n  }}")
    if draw(st.booleans()):
        contract.append(
            f"  discount {draw(st.integers(0, 100))}% on "
            f"{draw(st.sampled_from(['video', 'usage', 'addons', 'base, voice']))}"
        )
    if draw(st.booleans()):
        contract.append(f"  discount {draw(prices)} per month")
    if draw(st.booleans()):
        contract.append(f"  cap mau_overage {draw(st.integers(0, 5000))} per month")
    if draw(st.booleans()):
        contract.append(f"  minimum {draw(st.integers(0, 20000))} per month")
    text = (
        "\n".join(
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
        + "\n"
    )
    return text, sorted({p + d for p in POINTS for d in (-1, 0, 1) if p + d >= 0})


@st.composite
def usage_for(draw: st.DrawFn, points: list[int]) -> dict[str, object]:
    record: dict[str, object] = {"period": "2026-08"}
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_agrees_with_interpreter(data: st.DataObject) -> None:
    text, points = data.draw(ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    for record in data.draw(st.lists(usage_for(points), min_size=1, max_size=8)):
        fast = rules.rate("c", dict(record))
        reference = rules.rate_reference("c", dict(record))
        assert fast.amounts == reference.amounts
        assert [str(a) for a in fast.amounts.values()] == [str(ln.amount) for ln in reference.lines]
        assert fast.total == reference.total
        assert str(fast.total) == str(reference.total)
        assert fast.rules_applied == reference.rules_applied
        # The lines built on demand are the interpreter's own.
        assert [ln.to_dict() for ln in fast.lines] == [ln.to_dict() for ln in reference.lines]
        assert fast.total == sum((ln.amount for ln in fast.lines), Decimal(0))


def test_the_fast_path_is_taken_for_plain_usage() -> None:
    rules = pricing_dsl.load("rulesets")
    invoice = rules.rate("acme", {"period": "2026-08", "mau": 26250})
    # Lazily built: nothing materialised until asked for.
    assert invoice._lines is None
    assert invoice.total == Decimal("1391.50")  # 529 + 112.50 + 500 + 250
    assert invoice.lines[1].code == "mau_overage"


def test_a_mutated_usage_dict_does_not_change_an_invoice() -> None:
    rules = pricing_dsl.load("rulesets")
    record: dict[str, object] = {"period": "2026-08", "mau": 26250}
    invoice = rules.rate("acme", record)
    record["mau"] = 0
    assert invoice.line("mau_overage").amount == Decimal("112.50")


def test_partial_periods_and_errors_fall_back_to_the_interpreter() -> None:
    rules = pricing_dsl.load("rulesets")
    partial = rules.rate("acme", {"period": "2026-07", "mau": 0})
    assert partial.line("base").amount == Decimal("290.10")  # 529 x 17/31
    try:
        rules.rate("acme", {"period": "2026-08", "mau": -1})
    except pricing_dsl.PricingError as exc:
        assert exc.codes == ["E401"]
    else:  # pragma: no cover
        raise AssertionError("negative MAU was accepted")
