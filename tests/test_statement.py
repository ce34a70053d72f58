"""Statements: commitments, prepaid and promotional credit, carried from invoice to invoice."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._usage import load_usage_file

from .conftest import RULESETS

WAYNE = RULESETS / "examples" / "wayne"


@pytest.fixture(scope="module")
def rules() -> pricing_dsl.Ruleset:
    return pricing_dsl.load(RULESETS)


def _shown(inv: pricing_dsl.Invoice) -> dict[str, str]:
    """The lines the expected file lists: non-zero amounts, and the statement's own lines."""
    keep = ("credit.applied", "commit.true_up")
    return {ln.code: str(ln.amount) for ln in inv.lines if ln.amount != 0 or ln.code in keep}


def test_wayne_statement_matches_the_hand_computed_one(rules: pricing_dsl.Ruleset) -> None:
    expected = json.loads((WAYNE / "expected-statement.json").read_text())
    usages = [
        load_usage_file(str(p), rules.meters) for p in sorted((WAYNE / "usage").glob("*.yaml"))
    ]
    assert len(usages) == 14
    st = rules.statement("wayne", usages)
    assert [str(inv.issue_date) for inv in st.invoices] == [
        item["issue_date"] for item in expected["invoices"]
    ]
    for inv, item in zip(st.invoices, expected["invoices"], strict=True):
        assert _shown(inv) == item["lines"], item["issue_date"]
        assert str(inv.total) == item["total"], item["issue_date"]
    assert [e.to_dict() for e in st.ledger] == expected["ledger"]
    assert [y.to_dict() for y in st.years] == expected["years"]
    assert str(st.total) == expected["total"]
    assert st.balance == 0


def test_each_statement_invoice_is_the_invoice_given_its_history(
    rules: pricing_dsl.Ruleset,
) -> None:
    usages = {
        p.stem: load_usage_file(str(p), rules.meters)
        for p in sorted((WAYNE / "usage").glob("*.yaml"))
    }
    st = rules.statement("wayne", usages)
    for inv in st.invoices:
        assert inv.issue_date is not None
        month = f"{inv.issue_date.year - (inv.issue_date.month == 1)}-" + (
            f"{(inv.issue_date.month - 2) % 12 + 1:02d}"
        )
        history = {k: v for k, v in usages.items() if k < month}
        usage = usages.get(month, {})
        assert rules.invoice("wayne", inv.issue_date, usage, history=history) == inv


def test_invoice_refuses_a_contract_with_commitments_without_history(
    rules: pricing_dsl.Ruleset,
) -> None:
    with pytest.raises(PricingError) as info:
        rules.invoice("wayne", date(2026, 4, 1), {"mau": 12000})
    (d,) = info.value.diagnostics
    assert d.code == "E307"
    assert "statement" in (d.hint or "")
    # Contracts without commitments keep working as before.
    assert rules.invoice("acme", date(2026, 8, 1), {"mau": 26250}).total > 0


def test_invoice_history_must_come_before_the_invoice(rules: pricing_dsl.Ruleset) -> None:
    with pytest.raises(PricingError) as info:
        rules.invoice("wayne", "2026-05-01", {"mau": 1}, history={"2026-04": {"mau": 2}})
    assert info.value.diagnostics[0].code == "E309"


RULES = """currency USD
plan p "P" {
  base 100.00 per month
  mau included 0 overage 1.00 per user
}
contract c "C" extends p {
  term 2026-01-01 to 2027-12-31
  %s
}
"""


def _st(clauses: str, usages: dict[str, dict[str, int]], **kw: object) -> pricing_dsl.Statement:
    rules = pricing_dsl.loads(RULES % clauses, "c.pricing")
    return rules.statement("c", usages, **kw)  # type: ignore[arg-type]


def test_promotional_credit_expires_at_the_terms_end() -> None:
    # Credit 500.00; 120 users in 2026-01 (120.00) is all it pays; 380.00 expires
    # on the last invoice (2028-01-01), which bills 2027-12.
    st = _st("credit 500.00", {"2026-01": {"mau": 120}})
    assert [(str(e.date), e.reason, str(e.amount), str(e.balance)) for e in st.ledger] == [
        ("2026-01-01", "credit.granted", "500.00", "500.00"),
        ("2026-02-01", "credit.applied", "-120.00", "380.00"),
        ("2028-01-01", "credit.expired", "-380.00", "0.00"),
    ]
    assert st.invoices[1].amounts["credit.applied"] == Decimal("-120.00")
    assert st.invoices[1].total == Decimal("100.00")


def test_prepaid_without_rollover_expires_at_the_years_end() -> None:
    # Year 1 is 2026; its last month's usage is billed on 2027-01-01, where the
    # unused 1000.00 - 10.00 expires; year 2's 1000.00 is granted the same day.
    st = _st("prepaid 1_000.00 per year", {"2026-03": {"mau": 10}})
    moves = [(str(e.date), e.reason, str(e.amount), e.year) for e in st.ledger]
    assert moves[:4] == [
        ("2026-01-01", "prepaid.granted", "1000.00", 1),
        ("2026-04-01", "prepaid.applied", "-10.00", 1),
        ("2027-01-01", "prepaid.expired", "-990.00", 1),
        ("2027-01-01", "prepaid.granted", "1000.00", 2),
    ]
    assert moves[4] == ("2028-01-01", "prepaid.expired", "-1000.00", 2)


def test_a_rollover_is_carried_once_then_expires() -> None:
    st = _st("prepaid 1_000.00 per year rollover", {})
    moves = [(str(e.date), e.reason, str(e.amount), e.year) for e in st.ledger]
    assert moves == [
        ("2026-01-01", "prepaid.granted", "1000.00", 1),
        ("2027-01-01", "prepaid.rolled_over", "-1000.00", 1),
        ("2027-01-01", "rollover.granted", "1000.00", 2),
        ("2027-01-01", "prepaid.granted", "1000.00", 2),
        ("2028-01-01", "rollover.expired", "-1000.00", 2),
        ("2028-01-01", "prepaid.expired", "-1000.00", 2),
    ]


def test_commit_on_usage_counts_usage_lines_only() -> None:
    # 2026 fees 12 x 100.00 = 1200.00 do not count; usage 300 users = 300.00 does.
    st = _st("commit 1_000.00 per year on usage", {"2026-05": {"mau": 300}}, through="2027-01")
    last = st.invoices[-1]
    assert last.amounts["commit.true_up"] == Decimal("700.00")
    assert st.years[0].committed_spend == Decimal("300.00")
    # Counting every line, 1200.00 + 300.00 passes the commitment.
    st = _st("commit 1_000.00 per year", {"2026-05": {"mau": 300}}, through="2027-01")
    assert st.invoices[-1].amounts["commit.true_up"] == Decimal("0.00")
    assert st.years[0].committed_spend == Decimal("1500.00")


def test_no_credit_pays_the_true_up() -> None:
    st = _st("commit 5_000.00 per year\n  credit 4_000.00", {}, through="2027-01")
    last = st.invoices[-1]
    # 5000.00 - 1200.00 of fees; the promotional credit pays usage only.
    assert last.amounts["commit.true_up"] == Decimal("3800.00")
    assert last.amounts["credit.applied"] == Decimal("0.00")


def test_credit_is_applied_after_the_monthly_minimum() -> None:
    # Minimum 300.00: fees 100.00 + usage 50.00 top up by 150.00; the credit
    # then pays the 50.00 of usage, not the minimum.
    st = _st(
        "minimum 300.00 per month\n  credit 1_000.00", {"2026-01": {"mau": 50}}, through="2026-02"
    )
    inv = st.invoices[-1]
    assert inv.amounts["minimum"] == Decimal("150.00")
    assert inv.amounts["credit.applied"] == Decimal("-50.00")
    assert inv.total == Decimal("250.00")


def test_a_commitment_is_prorated_for_a_short_last_year() -> None:
    # A term to 2028-12-30: year 3 has 365 of 2028's 366 days (Lago's case).
    text = (RULES % "commit 36_600.00 per year").replace("2027-12-31", "2028-12-30")
    rules = pricing_dsl.loads(text, "c.pricing")
    st = rules.statement("c", {})
    # 36600.00 x 365/366 = 36500.00; fees 11 x 100.00 + 100.00 x 30/31 (96.77) = 1196.77.
    assert st.years[2].commitment == Decimal("36500.00")
    assert st.invoices[-1].amounts["commit.true_up"] == Decimal("35303.23")


@pytest.mark.parametrize(
    ("usages", "code"),
    [
        ({"2025-12": {"mau": 1}}, "E306"),
        ([{"mau": 1}], "E306"),
        ([{"period": "2026-01", "mau": 1}, {"period": "2026-01", "mau": 2}], "E306"),
        ([{"period": {"start": "2026-01-01", "end": "2026-01-15"}, "mau": 1}], "E306"),
        ({"January": {"mau": 1}}, "E306"),
    ],
)
def test_bad_statement_usage_is_refused(usages: object, code: str) -> None:
    with pytest.raises(PricingError) as info:
        _st("credit 5.00", usages)  # type: ignore[arg-type]
    assert info.value.diagnostics[0].code == code
    assert info.value.diagnostics[0].hint


def test_a_bad_through_is_refused() -> None:
    for through in ("2030-01", "soon", "2025-12"):
        with pytest.raises(PricingError) as info:
            _st("credit 5.00", {}, through=through)
        assert info.value.diagnostics[0].code == "E308"


def test_a_statement_is_one_accounts() -> None:
    usages = [
        {"account": "a", "period": "2026-01", "mau": 1},
        {"account": "b", "period": "2026-02", "mau": 1},
    ]
    with pytest.raises(PricingError) as info:
        _st("credit 5.00", usages)  # type: ignore[arg-type]
    assert info.value.diagnostics[0].code == "E306"
    assert "`a` and `b`" in info.value.diagnostics[0].message
    st = _st("credit 5.00", {"2026-01": {"account": "a", "mau": 1}}, through="2026-01")
    assert st.account == "a"
    # The first invoice already bills year 1's fees: the year is listed.
    assert [y.number for y in st.years] == [1]


def test_caps_and_line_minimums_count_with_the_lines_they_reach() -> None:
    # 2026-02-01 bills February's base 100.00, capped at 60.00 (cap.base -40.00, a
    # fee adjustment), and January's usage: mau_overage 300.00 and video 0.00,
    # topped up to 50.00 (minimum.video 50.00), then capped: usage 350.00 over
    # 100.00 gives cap.usage -250.00.  Usage after discounts: 300.00 + 50.00 -
    # 250.00 = 100.00, which the credit pays; the fee cap is not usage.
    clauses = (
        "cap base 60.00 per month\n  minimum video 50.00 per month\n"
        "  cap usage 100.00 per month\n  credit 1_000.00\n  commit 10.00 per year on usage"
    )
    st = _st(clauses, {"2026-01": {"mau": 300}}, through="2026-02")
    inv = st.invoices[-1]
    assert inv.amounts["cap.base"] == Decimal("-40.00")
    assert inv.amounts["minimum.video"] == Decimal("50.00")
    assert inv.amounts["cap.usage"] == Decimal("-250.00")
    assert inv.amounts["credit.applied"] == Decimal("-100.00")
    assert inv.total == Decimal("60.00")
    assert st.years[0].committed_spend == Decimal("100.00")


def test_a_statement_without_credit_has_a_balance_in_minor_units(tmp_path: Path) -> None:
    path = tmp_path / "c.pricing"
    path.write_text(
        "currency USD\nplan p {\n  base 100.00 per month\n  mau included 1000\n}\n"
        "contract c extends p {\n  term 2026-01-01 to 2026-12-31\n  commit 2000.00 per year\n}\n"
    )
    statement = pricing_dsl.load(path).statement("c", {})
    assert statement.ledger == ()
    assert str(statement.balance) == "0.00"
    assert statement.to_dict()["balance"] == "0.00"
