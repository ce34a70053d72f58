"""Golden rating cases, one folder each under data/valid/.

Each folder holds ``ruleset.pricing``, ``usage.yaml`` or ``usage.json`` and
``expected.json``::

    {"contract": "c", "lines": {"base": "99.00", ...}, "total": "...",
     "worked": "the hand arithmetic", "quantities": {...}, "issue_date": "2026-09-01"}

Every amount in ``expected.json`` was computed by hand (the arithmetic is in
``worked``), never by running pricing-dsl.  Amounts are strings, compared
exactly, so the number of decimal places (the currency's minor unit) is
checked too.  ``lines`` is ordered: the invoice must list the same codes in
the same order.  With ``issue_date`` the case is an issued invoice
(``Ruleset.invoice``); otherwise one period is rated (``Ruleset.rate``).

Both engines are checked: a ``Usage`` object goes through the reference
interpreter, a plain ``dict`` through the compiled fast path.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pricing_dsl
from pricing_dsl import Invoice, Usage
from pricing_dsl._usage import load_usage_file

from .conftest import DATA

VALID = DATA / "valid"
CASES = sorted(p.parent for p in VALID.glob("*/expected.json"))


def _usage_file(case: Path) -> Path:
    found = [p for p in (case / "usage.yaml", case / "usage.json") if p.exists()]
    assert len(found) == 1, f"{case.name}: needs exactly one of usage.yaml, usage.json"
    return found[0]


def _expected(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((case / "expected.json").read_text("utf-8"))
    return data


def _as_mapping(usage: Usage) -> dict[str, Any]:
    """The same usage as a plain dict, which takes the compiled fast path of ``rate``."""
    out: dict[str, Any] = dict(usage.values)
    if usage.period is not None:
        out["period"] = usage.period.to_json()
    if usage.account is not None:
        out["account"] = usage.account
    return out


def _compare(invoice: Invoice, expected: dict[str, Any], engine: str) -> None:
    want = expected["lines"]
    got = {ln.code: str(ln.amount) for ln in invoice.lines}
    assert invoice.codes == list(want), f"{engine}: line codes or their order"
    assert got == want, f"{engine}: line amounts"
    assert str(invoice.total) == expected["total"], f"{engine}: total"
    assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))
    for code, quantity in expected.get("quantities", {}).items():
        line = next(ln for ln in invoice.lines if ln.code == code)
        assert line.quantity == Decimal(quantity), f"{engine}: quantity of {code}"


def test_golden_cases_were_found() -> None:
    assert CASES, f"no golden cases under {VALID}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_is_well_formed(case: Path) -> None:
    expected = _expected(case)
    assert (case / "ruleset.pricing").is_file()
    _usage_file(case)
    assert isinstance(expected["contract"], str)
    assert isinstance(expected["worked"], str) and expected["worked"].strip()
    assert expected["lines"], "a case lists at least one line"
    amounts = [*expected["lines"].values(), expected["total"]]
    assert all(isinstance(a, str) for a in amounts), "amounts are strings, compared exactly"
    # The hand arithmetic adds up: the total is the sum of the listed lines.
    total = sum((Decimal(a) for a in expected["lines"].values()), Decimal(0))
    assert total == Decimal(expected["total"])
    assert set(expected.get("quantities", {})) <= set(expected["lines"])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_rates_as_computed_by_hand(case: Path) -> None:
    expected = _expected(case)
    rules = pricing_dsl.load(case / "ruleset.pricing")
    usage = load_usage_file(str(_usage_file(case)), rules.meters)
    contract = expected["contract"]
    if "issue_date" in expected:
        issued = date.fromisoformat(expected["issue_date"])
        _compare(rules.invoice(contract, issued, usage), expected, "invoice(Usage)")
        _compare(rules.invoice(contract, issued, _as_mapping(usage)), expected, "invoice(dict)")
    else:
        _compare(rules.rate(contract, usage), expected, "interpreter")
        _compare(rules.rate(contract, _as_mapping(usage)), expected, "compiled fast path")
        _compare(rules.rate_reference(contract, _as_mapping(usage)), expected, "rate_reference")
