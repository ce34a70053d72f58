"""Pricing models (issue 12): the rules around the golden cases, one by one.

Amounts are worked out by hand in each test; the golden cases themselves are
in data/valid/ and data/acceptance/models-9001/.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._export import export
from pricing_dsl._plan import intervals
from pricing_dsl._usage import Period

HEAD = """currency USD
addon sso "Single sign-on" 900.00 per quarter
meter sms "SMS" unit message
plan p "P" {
  base 100.00 per month
  mau included 1000 overage 0.10 per user
}
"""


def load(tmp_path: Path, body: str) -> pricing_dsl.Ruleset:
    path = tmp_path / "r.pricing"
    path.write_text(HEAD + body)
    return pricing_dsl.load(path)


def lines(inv: pricing_dsl.Invoice) -> dict[str, str]:
    return {ln.code: str(ln.amount) for ln in inv.lines}


def test_a_yearly_fee_needs_a_period(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  base 1200.00 per year\n}\n")
    with pytest.raises(PricingError) as e:
        rules.rate("c", {"mau": 5})
    d = e.value.diagnostics[0]
    assert d.code == "E303"
    assert "billed per year" in d.message


def test_quarters_keep_the_day_or_take_the_months_last() -> None:
    term = Period(date(2026, 1, 31), date(2027, 1, 30))
    found = intervals("quarter", term, term)
    assert [iv.start for iv in found] == [
        date(2026, 1, 31),
        date(2026, 4, 30),
        date(2026, 7, 31),
        date(2026, 10, 31),
    ]
    # Each quarter ends the day before the next starts (counted from the term
    # start, not chained from the last quarter).
    assert [iv.end for iv in found][:2] == [date(2026, 4, 29), date(2026, 7, 30)]


def test_a_leap_day_anniversary_falls_on_the_28th() -> None:
    term = Period(date(2028, 2, 29), date(2030, 2, 26))
    found = intervals("year", term, term)
    assert [iv.start for iv in found] == [date(2028, 2, 29), date(2029, 2, 28)]
    # The second year, 2029-02-28 .. 2030-02-27 (365 days), is cut a day short.
    assert found[1].note == "364/365 of a year (the term ends 2030-02-26)"
    assert found[0].billed == 1


def test_a_term_ending_inside_a_year_bills_its_days(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-01-01 to 2026-09-30\n  base 12000.00 per year\n}\n",
    )
    inv = rules.rate("c", {"period": "2026-01"})
    # 12000 x 273/365 = 8975.3424... -> 8975.34; quantity 273/365 = 0.747945...
    assert lines(inv)["base"] == "8975.34"
    base = inv.lines[0]
    assert (base.unit, base.quantity) == ("year", Decimal("0.747945"))
    assert "273/365 of a year" in " ".join(base.explanation.details)
    assert lines(rules.rate("c", {"period": "2026-02"}))["base"] == "0.00"


def test_calendar_quarters_without_a_term(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  addons sso\n}\n")
    billed = {
        m: lines(rules.rate("c", {"period": f"2026-{m:02d}"}))["addon.sso"] for m in range(1, 13)
    }
    assert [m for m, a in billed.items() if a == "900.00"] == [1, 4, 7, 10]
    assert {a for m, a in billed.items() if m not in (1, 4, 7, 10)} == {"0.00"}


def test_issued_invoices_bill_a_yearly_fee_in_advance(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n  base 6000.00 per year\n}\n",
    )
    # Issued 2026-07-01: the fees of July, in which the year from 2026-07-15 starts.
    first = rules.invoice("c", date(2026, 7, 1), {})
    assert lines(first)["base"] == "6000.00"
    second = rules.invoice("c", date(2026, 8, 1), {"mau": 1500})
    assert lines(second)["base"] == "0.00"
    assert lines(second)["mau_overage"] == "50.00"  # July's usage, in arrears: 500 x 0.10


def test_a_block_line_shows_no_unit_price_and_explains_its_blocks(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  sms 5.00 per 100 messages\n}\n")
    inv = rules.rate("c", {"sms": 250})
    sms = next(ln for ln in inv.lines if ln.code == "sms")
    # 250 messages: 3 started blocks of 100 -> 15.00.
    assert (sms.amount, sms.quantity, sms.unit_price) == (Decimal("15.00"), Decimal(250), None)
    assert "250 messages in blocks of 100: 3 started blocks, rounded up" in sms.explanation.details


def test_rounded_down_without_a_block_bills_whole_units(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  voice 0.50 per minute rounded down\n}\n")
    # 149.7 minutes: 149 whole minutes x 0.50 = 74.50.
    assert lines(rules.rate("c", {"voice_minutes": "149.7"}))["voice"] == "74.50"


def test_a_time_limited_discount_is_listed_while_it_applies(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n"
        "  discount 10% on base for 2 months\n}\n",
    )
    august = rules.rate("c", {"period": "2026-08"})
    assert lines(august)["discount.base"] == "-10.00"
    assert any("for 2 months (to 2026-08-31)" in r for r in august.rules_applied)
    september = rules.rate("c", {"period": "2026-09"})
    assert "discount.base" not in lines(september)
    assert september.rules_applied == ()


def test_a_limited_discount_overrides_the_bodys_while_it_applies(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  discount 5% on base\n"
        "  discount 50% on base until 2026-08-31\n}\n",
    )
    assert lines(rules.rate("c", {"period": "2026-08"}))["discount.base"] == "-50.00"
    assert lines(rules.rate("c", {"period": "2026-09"}))["discount.base"] == "-5.00"


def test_a_plan_without_a_mau_allowance_bills_every_user(tmp_path: Path) -> None:
    rules = load(tmp_path, 'plan m "M" {\n  base 0.00 per month\n}\n')
    inv = rules.rate("m", {"mau": 3, "peak_connections": 2})
    # No MAU included: 3 x 0.12; the concurrency allowance is 5% of 0: 2 x 1.00.
    assert lines(inv)["mau_overage"] == "0.36"
    assert lines(inv)["concurrency_overage"] == "2.00"


def test_export_shows_blocks_fees_intervals_and_limits(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n  base 600.00 per quarter\n"
        "  sms graduated {\n    up to 100 at 1.00 per 10 messages rounded down plus 5.00\n"
        "    above at 0.05 per message\n  }\n  discount 10% on base for 3 months\n}\n",
    )
    out = export(rules, "c")["contracts"][0]
    terms = {t["term"]: t["value"] for t in out["terms"]}
    assert terms["base_per"] == "quarter"
    assert terms["meter.sms.rate"]["tiers"][0] == {
        "up_to": "100",
        "price": "1.00",
        "block": "10",
        "rounding": "down",
        "flat_fee": "5.00",
    }
    assert out["layers"][-1]["until"] == "2026-09-30"


def test_issued_invoices_discount_usage_by_its_own_month(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n"
        "  discount 10% on usage for 2 months\n  discount 20% on base for 2 months\n}\n",
    )
    # Months 1 and 2 of the term are July and August 2026.  Usage is billed in
    # arrears at its own month's terms, fees in advance at theirs.
    # Issued 2026-08-01: August's fee (month 2): -20.00; July's usage
    # (2000 - 1000) x 0.10 = 100.00 (month 1): -10.00.
    august = rules.invoice("c", date(2026, 8, 1), {"mau": 2000})
    assert (lines(august)["discount.base"], lines(august)["discount.usage"]) == ("-20.00", "-10.00")
    # Issued 2026-09-01: September's fee (month 3) is not discounted; August's usage is.
    september = rules.invoice("c", date(2026, 9, 1), {"mau": 2000})
    assert "discount.base" not in lines(september)
    assert lines(september)["discount.usage"] == "-10.00"
    # Issued 2026-10-01: September's usage (month 3): no discount.
    october = rules.invoice("c", date(2026, 10, 1), {"mau": 2000})
    assert "discount.usage" not in lines(october)


def test_a_minimum_on_usage_over_the_issued_invoices_of_a_term_adds_up(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n"
        "  minimum video 50.00 per month\n}\n",
    )
    issued = [date(2026 + (6 + k) // 12, (6 + k) % 12 + 1, 1) for k in range(14)]
    assert (issued[0], issued[-1]) == (date(2026, 7, 1), date(2027, 8, 1))
    tops = [lines(rules.invoice("c", d, {})).get("minimum.video", "0.00") for d in issued]
    # No usage on the first invoice; July 2026's usage (17 of 31 days):
    # 50 x 17/31 = 27.419... -> 27.42; eleven whole months; July 2027's usage
    # (14 of 31 days): 50 x 14/31 = 22.580... -> 22.58.
    assert tops == ["0.00", "27.42", *["50.00"] * 11, "22.58"]
    assert sum(Decimal(t) for t in tops) == Decimal("600.00")


def test_a_shorter_limited_discount_wins_while_both_apply(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "contract c extends p {\n  term 2026-07-15 to 2027-07-14\n"
        "  discount 50% on base for 3 months\n  discount 20% on base until 2027-03-31\n}\n",
    )
    # 50% through September 2026 (month 3), then 20% through March 2027, then none.
    got = [
        lines(rules.rate("c", {"period": p})).get("discount.base")
        for p in ("2026-08", "2026-09", "2026-10", "2027-03", "2027-04")
    ]
    assert got == ["-50.00", "-50.00", "-20.00", "-20.00", None]


def test_a_limited_discount_without_a_period_says_so(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  discount 10% on base until 2026-12-31\n}\n")
    with pytest.raises(PricingError) as e:
        rules.rate("c", {"mau": 1})
    d = e.value.diagnostics[0]
    assert (d.code, d.message) == (
        "E303",
        "`c` has a time-limited discount (to 2026-12-31), so the usage needs a period",
    )


def test_a_tier_inside_the_allowance_with_a_flat_fee_is_not_dead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pricing_dsl._cli import main

    def check(path: Path) -> list[str]:
        main(["check", "--format", "json", str(path)])
        return [json.loads(row)["code"] for row in capsys.readouterr().out.splitlines()]

    text = HEAD + (
        "contract c extends p {\n  mau included 100 overage graduated {\n"
        "    up to 100 at 1.00 per user plus 10.00\n    above at 0.25 per user\n  }\n}\n"
    )
    path = tmp_path / "w.pricing"
    path.write_text(text)
    assert check(path) == []
    # Its fee is billed at zero usage: 10.00.
    assert lines(pricing_dsl.load(path).rate("c", {}))["mau_overage"] == "10.00"
    path.write_text(text.replace(" plus 10.00", ""))
    assert check(path) == ["W104"]


def test_export_gives_each_addons_billing_interval(tmp_path: Path) -> None:
    rules = load(tmp_path, "contract c extends p {\n  addons sso\n}\n")
    out = export(rules, "c")["contracts"][0]
    assert out["addons"] == [
        {"id": "sso", "name": "Single sign-on", "catalog_price": "900.00", "per": "quarter"}
    ]
