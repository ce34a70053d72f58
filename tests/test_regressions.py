"""Bugs found by review and adversarial testing, each pinned so it stays fixed."""

from __future__ import annotations

import decimal
from datetime import date
from decimal import Decimal

import pytest

import pricing_dsl
from pricing_dsl._usage import parse_usage_text

PLAN = """currency USD
addon hipaa "HIPAA" 500.00 per month
plan p "P" {
  base 100.00 per month
  mau included 1000 overage 0.10 per user
}
"""


def codes(text: str) -> list[tuple[str, int, int]]:
    with pytest.raises(pricing_dsl.PricingError) as info:
        pricing_dsl.loads(text, "r.pricing")
    return [(d.code, d.line, d.column) for d in info.value.diagnostics]


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [
        ("mau: 010\n", "`010` is not a plain decimal number"),
        ("mau: 08\n", "`08` is not a plain decimal number"),
        ("peak_connections: -09\n", "`-09` is not a plain decimal number"),
        ("mau: 0_8\n", "`0_8` is not a plain decimal number"),
        ("mau: 0x10\n", "`0x10` is not a plain decimal number"),
        ("peak_connections: 1:30\n", "`1:30` is not a plain decimal number"),
        ("voice_minutes: 1:30.5\n", "`1:30.5` is not a plain decimal number"),
        ("period: {start: 2026-02-01, end: 2026-02-30}\n", "day is out of range"),
    ],
)
def test_yaml_quirks_are_refused_not_misread(yaml_text: str, needle: str) -> None:
    with pytest.raises(pricing_dsl.PricingError) as info:
        parse_usage_text(yaml_text, "u.yaml")
    assert info.value.codes == ["E400"]
    assert needle in info.value.diagnostics[0].message


def test_plain_yaml_numbers_still_read_exactly() -> None:
    usage = parse_usage_text("mau: 1_000\nvoice_minutes: 0.1\nvideo_minutes: 0\n", "u.yaml")
    assert usage.values == {"mau": 1000, "voice_minutes": Decimal("0.1"), "video_minutes": 0}
    # A leading zero before the point is plain; quoted text is the user's own choice.
    usage = parse_usage_text('voice_minutes: 0.5\nmau: "08"\n', "u.yaml")
    assert usage.values == {"voice_minutes": Decimal("0.5"), "mau": 8}


def test_the_callers_decimal_context_never_matters() -> None:
    rules = pricing_dsl.load("rulesets")
    usage = {"period": "2026-08", "mau": Decimal(60001), "voice_minutes": Decimal("123456.7")}
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_DOWN
        fast = rules.rate("scale", dict(usage))
        reference = rules.rate_reference("scale", dict(usage))
    # 40000 x 0.10 + 10001 x 0.08 = 4800.08; 123456.7 x 0.001 = 123.4567 -> 123.46
    assert fast.amounts["mau_overage"] == reference.amounts["mau_overage"] == Decimal("4800.08")
    assert fast.amounts["voice"] == Decimal("123.46")


def test_discounts_reaching_one_line_cannot_pass_100_percent() -> None:
    text = PLAN + (
        'contract c "C" extends p {\n  discount 60% on usage\n  discount 60% on mau_overage\n}\n'
    )
    assert codes(text) == [("E223", 7, 10)]


def test_a_cap_compares_the_line_net_of_its_rounded_discount() -> None:
    rules = pricing_dsl.loads(
        PLAN + 'contract c "C" extends p {\n  mau overage 1.00 per user\n'
        "  discount 50% on mau_overage\n  cap mau_overage 50.00 per month\n}\n"
    )
    inv = rules.rate("c", {"mau": 1100})
    # 100 users x 1.00 = 100.00; -50% = -50.00; net 50.00 is at the cap: nothing more.
    assert inv.amounts["discount.mau_overage"] == Decimal("-50.00")
    assert inv.amounts["cap.mau_overage"] == Decimal("0.00")
    odd = pricing_dsl.loads(
        PLAN + 'contract c "C" extends p {\n  mau overage 0.10001 per user\n'
        "  discount 50% on mau_overage\n  cap mau_overage 50.00 per month\n}\n"
    )
    inv = odd.rate("c", {"mau": 2000})
    # 1000 x 0.10001 = 100.01; -50% = -50.005 -> -50.01 (half up); net 50.00: no cap.
    assert inv.amounts["mau_overage"] == Decimal("100.01")
    assert inv.amounts["discount.mau_overage"] == Decimal("-50.01")
    assert inv.amounts["cap.mau_overage"] == Decimal("0.00")
    assert inv.total == Decimal("150.00")  # 100 + 100.01 - 50.01


def test_a_single_addon_can_be_discounted() -> None:
    rules = pricing_dsl.loads(
        PLAN + 'contract c "C" extends p {\n  addons hipaa\n  discount 10% on addon.hipaa\n}\n'
    )
    assert rules.rate("c", {}).amounts["discount.addon.hipaa"] == Decimal("-50.00")


def test_meters_cannot_take_line_codes_or_reserved_names() -> None:
    assert codes(PLAN + 'meter mau_overage "X" unit thing\n') == [("E202", 7, 7)]
    assert codes(PLAN + 'meter usage "X" unit thing\n') == [("E202", 7, 7)]


def test_a_period_rule_needs_a_period_whatever_the_usage() -> None:
    rules = pricing_dsl.loads(
        PLAN + 'contract c "C" extends p {\n  when mau > 100 and period.start >= 2026-10-01 {\n'
        "    base 1 per month\n  }\n}\n"
    )
    for mau in (50, 150):
        with pytest.raises(pricing_dsl.PricingError) as info:
            rules.rate("c", {"mau": mau})
        assert info.value.codes == ["E303"]


TERM = (
    PLAN
    + """contract t "T" extends p {
  term 2026-07-15 to 2026-09-14
  minimum 310.00 per month
}
"""
)


def test_minimums_follow_the_fees_on_issued_invoices() -> None:
    rules = pricing_dsl.loads(TERM)
    # July 2026 has 31 days, 17 in the term: fees 100 x 17/31 = 54.838... -> 54.84;
    # minimum 310 x 17/31 = 170.00 exactly, so the true-up is 170.00 - 54.84 = 115.16.
    first = rules.invoice("t", date(2026, 7, 1), {})
    assert first.amounts == {"base": Decimal("54.84"), "minimum": Decimal("115.16")}
    assert first.total == Decimal("170.00")
    # After the term: September's usage only; no fees, so no minimum.
    last = rules.invoice("t", date(2026, 10, 1), {"period": "2026-09", "mau": 1001})
    assert last.amounts["minimum"] == Decimal("0.00")
    assert last.total == Decimal("0.10")


def test_exponents_get_their_own_message() -> None:
    assert codes("currency USD\nplan p {\n  mau included 1e5\n}\n") == [("E105", 3, 16)]
    assert codes("currency USD\nplan p {\n  voice 1e-3 per minute\n}\n") == [("E105", 3, 9)]


def test_a_term_that_ends_before_it_starts() -> None:
    text = PLAN + 'contract c "C" extends p {\n  term 2027-01-01 to 2026-01-01\n}\n'
    assert codes(text) == [("E224", 8, 3)]


def test_a_period_object_is_accepted_in_a_usage_mapping() -> None:
    rules = pricing_dsl.loads(PLAN)
    inv = rules.rate("p", {"period": pricing_dsl.Period.month(2026, 8), "mau": 1001})
    assert str(inv.period) == "2026-08" and inv.total == Decimal("100.10")


# ---------------------------------------------------------------- adversarial


def assert_both_engines_refuse(record: dict[str, object], code: str) -> None:
    """The compiled path and the interpreter refuse the usage with the same code."""
    rules = pricing_dsl.load("rulesets")
    for rate in (rules.rate, rules.rate_reference):
        with pytest.raises(pricing_dsl.PricingError) as info:
            rate("starter", dict(record))
        assert info.value.codes == [code]


def test_a_yaml_alias_bomb_is_refused_at_once() -> None:
    lines = ["a0: &a0 {x: 1, y: 1}"]
    lines += [f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}" for i in range(1, 40)]
    with pytest.raises(pricing_dsl.PricingError) as info:
        parse_usage_text("\n".join(lines) + "\n", "bomb.yaml")
    # Refused at the first alias, before any value is built.
    assert info.value.codes == ["E400"]
    assert "anchors or aliases" in info.value.diagnostics[0].message


@pytest.mark.parametrize(
    "record",
    [
        {"mau": 10**99},
        {"voice_minutes": Decimal("1e400")},
        # Fine-grained is fine, but not past what can be multiplied exactly.
        {"voice_minutes": Decimal("0." + "1" * 120)},
    ],
)
def test_numbers_beyond_the_limits_are_refused_by_both_engines(record: dict[str, object]) -> None:
    assert_both_engines_refuse(record, "E401")


def test_fine_grained_usage_rates_exactly_in_both_engines() -> None:
    rules = pricing_dsl.load("rulesets")
    record = {"voice_minutes": Decimal("1234.0000000001")}
    # 1234.0000000001 x 0.001 = 1.2340000000001 -> 1.23
    assert rules.rate("starter", dict(record)).amounts["voice"] == Decimal("1.23")
    assert rules.rate_reference("starter", dict(record)).amounts["voice"] == Decimal("1.23")


def test_a_ruleset_price_beyond_the_limits_is_refused() -> None:
    text = "currency USD\nplan p {\n  mau included 1\n  base " + "9" * 99 + " per month\n}\n"
    assert codes(text) == [("E225", 4, 8)]


@pytest.mark.parametrize(
    "text", ["mau: 5\x07\n", "mau: 5\x00\n", "[mau]: 1\n", "? {a: 1}\n: 5\n", "mau: " + "[" * 3000]
)
def test_hostile_usage_text_gives_e400(text: str) -> None:
    with pytest.raises(pricing_dsl.PricingError) as info:
        parse_usage_text(text, "u.yaml")
    assert info.value.codes == ["E400"]


def test_deep_json_nesting_gives_e400() -> None:
    with pytest.raises(pricing_dsl.PricingError) as info:
        parse_usage_text("[" * 100_000 + "]" * 100_000, "u.json")
    assert info.value.codes == ["E400"]


def test_a_deeply_nested_condition_gives_e108() -> None:
    cond = " and ".join(["mau > 1"] * 1500)
    text = PLAN + f'contract c "C" extends p {{\n  when {cond} {{\n    base 1 per month\n  }}\n}}\n'
    assert [c for c, _, _ in codes(text)] == ["E108"]


@pytest.mark.parametrize("period", ["9999-12", "0000-01", "1899-12"])
def test_periods_far_from_now_are_refused_by_both_engines(period: str) -> None:
    assert_both_engines_refuse({"period": period}, "E401")


@pytest.mark.parametrize("when", [date(9999, 12, 1), date(1, 1, 1), "9999-12-15"])
def test_issue_dates_far_from_now_are_refused(when: object) -> None:
    rules = pricing_dsl.load("rulesets")
    with pytest.raises(pricing_dsl.PricingError) as info:
        rules.invoice("starter", when, {})  # type: ignore[arg-type]
    assert info.value.codes == ["E304"]


@pytest.mark.parametrize(
    "record",
    [{"period": None}, {"account": None}, {"contract": None}, {"sms": None}, {"mau": None}],
)
def test_explicit_none_is_refused_by_both_engines(record: dict[str, object]) -> None:
    assert_both_engines_refuse(record, "E401")


def test_negative_zero_rates_as_zero() -> None:
    rules = pricing_dsl.load("rulesets")
    inv = rules.rate("starter", {"voice_minutes": Decimal("-0")})
    assert str(inv.amounts["voice"]) == "0.00"


def test_api_type_slips_are_pricing_errors() -> None:
    rules = pricing_dsl.load("rulesets")
    with pytest.raises(pricing_dsl.PricingError):
        rules.rate(None, {})  # type: ignore[arg-type]
    assert rules.invoice("starter", "2026-09-01", {}).total == Decimal("99.00")


def test_an_unclosed_string_says_so() -> None:
    assert codes('currency USD\naddon x "abc 5 per month\n') == [("E107", 2, 9)]


def test_a_brace_inside_a_string_does_not_confuse_recovery() -> None:
    assert codes('currency USD\naddon x "a{b" 5 per\n') == [("E100", 2, 20)]


def test_a_byte_order_mark_is_not_content(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bom.pricing"
    path.write_bytes("\ufeff".encode() + PLAN.encode())
    assert pricing_dsl.load(path).contract_ids == ["p"]
    # Named twice, directly and through its folder: read once.
    assert pricing_dsl.load(path, path.parent).contract_ids == ["p"]
