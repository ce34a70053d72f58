"""The supported dates, 1900-01-01 to 9000-12-31: refused outside at check time, never a traceback.

Date literals in a ruleset (a term, a `from` date, a date in a `when`
condition, a test's period) outside the range are E232 with a position; an
invoice date must leave both of its months in the range (E304).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl._ruleset import check_paths

PLAN = """currency USD
plan p "P" {
  base 100.00 per month
  mau included 1000 overage 0.10 per user
  voice 0.001 per minute
  video 0.003 per minute
}
"""


def contract(*body: str) -> str:
    return PLAN + 'contract c "C" extends p {\n' + "".join(f"  {b}\n" for b in body) + "}\n"


def write(tmp_path: Path, text: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.pricing").write_text(text, "utf-8")
    return rules


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def only_error(text: str) -> pricing_dsl.Diagnostic:
    with pytest.raises(pricing_dsl.PricingError) as info:
        pricing_dsl.loads(text, "r.pricing")
    assert len(info.value.diagnostics) == 1, info.value.diagnostics
    return info.value.diagnostics[0]


# The contract body starts on line 9 of `contract(...)`.
@pytest.mark.parametrize(
    ("body", "column", "text"),
    [
        (
            ("term 1899-12-01 to 2027-01-01", "when mau > 5 { base 90.00 per month }"),
            8,
            "1899-12-01",
        ),
        (
            ("from 9001-01-01 { base 90.00 per month }", "when mau > 5 { base 80 per month }"),
            8,
            "9001-01-01",
        ),
        (("term 2026-01-01 to 9001-01-01",), 22, "9001-01-01"),
        (("when period.start >= 9500-01-01 { base 80.00 per month }",), 24, "9500-01-01"),
        (("when period.end < 0001-01-01 { base 80.00 per month }",), 21, "0001-01-01"),
    ],
)
def test_check_refuses_dates_outside_the_range(
    pricing_cmd: str, tmp_path: Path, body: tuple[str, ...], column: int, text: str
) -> None:
    rules = write(tmp_path, contract(*body))
    result = run([pricing_cmd, "check", "rules"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    assert f"r.pricing:9:{column}: error[E232]: `{text}` is outside the supported dates" in out
    assert "hint: use a date from 1900-01-01 to 9000-12-31" in out
    d = only_error((rules / "r.pricing").read_text())
    assert (d.code, d.line, d.column) == ("E232", 9, column)


def test_a_term_past_the_range_is_refused_before_rate_and_invoice(
    pricing_cmd: str, tmp_path: Path
) -> None:
    text = contract("term 2026-01-01 to 9001-01-01")
    write(tmp_path, text)
    (tmp_path / "u.yaml").write_text("contract: c\nperiod: 2026-08\nmau: 1200\n")
    rate = run([pricing_cmd, "rate", "rules", "--usage", "u.yaml"], tmp_path)
    invoice = run(
        [pricing_cmd, "invoice", "rules", "--contract", "c", "--date", "2026-09-01"], tmp_path
    )
    for result in (rate, invoice):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "r.pricing:9:22: error[E232]" in result.stderr
    # In the API, the ruleset is refused when it is loaded, so `invoice.lines` is never reached.
    assert only_error(text).code == "E232"


def test_batch_reports_the_date_not_a_value_too_large(pricing_cmd: str, tmp_path: Path) -> None:
    write(tmp_path, contract("term 2026-01-01 to 9001-01-01"))
    record = {"account": "a", "contract": "c", "period": "2026-08", "mau": 1200}
    (tmp_path / "u.jsonl").write_text(json.dumps(record) + "\n")
    for engine in ("python", "duckdb"):
        result = run(
            [
                *(pricing_cmd, "batch", "rules", "--usage", "u.jsonl"),
                *("--out", f"{engine}.jsonl", "--engine", engine, "--quiet"),
            ],
            tmp_path,
        )
        assert result.returncode == 1, result.stderr
        assert "r.pricing:9:22: error[E232]: `9001-01-01` is outside the supported dates" in (
            result.stderr
        )
        assert "E401" not in result.stderr and "too large" not in result.stderr
        assert not (tmp_path / f"{engine}.jsonl").exists()


def test_a_test_period_outside_the_range_is_refused() -> None:
    text = contract() + 'test "t" {\n  contract c\n  period 1899-12\n  usage { mau 1 }\n}\n'
    d = only_error(text)
    assert (d.code, d.line, d.column) == ("E232", 12, 10)
    assert d.message == "`1899-12` is outside the supported dates"
    assert d.hint == "use a period within 1900-01-01 to 9000-12-31"
    text = text.replace("1899-12", "2026-08-01..9001-01-01")
    assert only_error(text).code == "E232"
    # A bad month inside the range is still E217.
    assert only_error(text.replace("2026-08-01..9001-01-01", "2026-13")).code == "E217"


def test_the_edges_of_the_range_rate_and_invoice() -> None:
    rules = pricing_dsl.loads(
        contract(
            "term 1900-01-01 to 9000-12-31",
            "from 9000-12-01 { base 80.00 per month }",
            "when mau > 1000 and period.start >= 1900-01-01 { voice 0.002 per minute }",
        )
    )
    # 1,200 MAU: 200 over at 0.10 = 20.00; 1,000 voice minutes at 0.002 = 2.00.
    first = rules.rate("c", {"period": "1900-01", "mau": 1200, "voice_minutes": 1000})
    assert first.total == Decimal("122.00")
    last = rules.rate("c", {"period": "9000-12", "mau": 1200, "voice_minutes": 1000})
    assert last.total == Decimal("102.00")
    # Issued on 1900-02-01: base 100.00 for 1900-02, usage of 1900-01 (22.00).
    assert rules.invoice("c", "1900-02-01", {"mau": 1200, "voice_minutes": 1000}).total == Decimal(
        "122.00"
    )
    # Issued on 9000-12-01: base 80.00 from the `from` block, usage of 9000-11 (22.00).
    assert rules.invoice("c", date(9000, 12, 1), {"mau": 1200, "voice_minutes": 1000}).total == (
        Decimal("102.00")
    )


@pytest.mark.parametrize("when", ["1900-01-01", "1900-01-15", "9000-12-15", "9001-01-01"])
def test_invoice_dates_whose_months_leave_the_range_are_refused(
    pricing_cmd: str, tmp_path: Path, when: str
) -> None:
    write(tmp_path, contract())
    result = run([pricing_cmd, "invoice", "rules", "--contract", "c", "--date", when], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"error[E304]: {when} is outside the dates that can be invoiced" in result.stderr
    assert "hint: issue it on the first of a month from 1900-02-01 to 9000-12-01" in result.stderr


# Dates anywhere a `date` can hold, with many near the edges of the range.
_DATES = st.one_of(
    st.dates(),
    st.dates(date(1899, 11, 1), date(1900, 3, 1)),
    st.dates(date(9000, 10, 1), date(9001, 2, 1)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=_DATES,
    end=_DATES,
    from_date=_DATES,
    period=_DATES,
    issue=_DATES,
    use_when=st.booleans(),
)
def test_any_dates_are_rated_or_refused_never_crash(
    start: date, end: date, from_date: date, period: date, issue: date, use_when: bool
) -> None:
    body = [
        f"term {start.isoformat()} to {end.isoformat()}",
        f"from {from_date.replace(day=1).isoformat()} {{ base 90.00 per month }}",
    ]
    if use_when:
        body.append(f"when mau > 5 and period.end < {end.isoformat()} {{ base 80.00 per month }}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "r.pricing")
        path.write_text(contract(*body), "utf-8")
        rules, diags = check_paths(path, warnings=True)  # `pricing check`, lints included
    supported = all(date(1900, 1, 1) <= d <= date(9000, 12, 31) for d in (start, end, from_date))
    codes = {d.code for d in diags if d.severity == "error"}
    assert ("E232" in codes) == (not supported)
    if rules is None:
        return
    month = f"{period.year:04d}-{period.month:02d}"
    for usage in (
        {"period": month, "mau": 1200},
        {"period": {"start": period.isoformat(), "end": end.isoformat()}, "mau": 7},
    ):
        for rate in (rules.rate, rules.rate_reference):
            with contextlib.suppress(pricing_dsl.PricingError):
                rate("c", usage)
    with contextlib.suppress(pricing_dsl.PricingError):
        rules.invoice("c", issue.replace(day=1), {"mau": 1200})
