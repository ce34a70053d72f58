"""Golden cases computed independently of pricing-dsl (see data/acceptance/README.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pricing_dsl
from pricing_dsl._usage import load_usage_file

from .conftest import DATA

ACCEPTANCE = DATA / "acceptance"
CASES = sorted(
    (usage, usage.parent / usage.name.replace("usage", "expected").replace(".yaml", ".json"))
    for usage in ACCEPTANCE.glob("*/usage*.yaml")
)


def test_cases_were_found() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize(
    ("usage_path", "expected_path"), CASES, ids=[f"{u.parent.name}/{u.stem}" for u, _ in CASES]
)
def test_rates_as_computed_independently(usage_path: Path, expected_path: Path) -> None:
    rules = pricing_dsl.load(usage_path.parent / "ruleset.pricing")
    usage = load_usage_file(str(usage_path), rules.meters)
    assert usage.contract is not None
    invoice = rules.rate(usage.contract, usage)
    expected = json.loads(expected_path.read_text())
    if "unadjusted_lines" in expected:
        got = {ln.code: str(ln.amount) for ln in invoice.lines if ln.kind != "adjustment"}
        assert got == expected["unadjusted_lines"]
    else:
        assert {ln.code: str(ln.amount) for ln in invoice.lines} == expected["lines"]
        assert invoice.codes == list(expected["lines"])  # line order too
    assert str(invoice.total) == expected["total"]
    assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))


def test_thirteen_month_invoice_sequence() -> None:
    case = ACCEPTANCE / "invoices-9001"
    rules = pricing_dsl.load(case / "ruleset.pricing")
    expected = json.loads((case / "invoices.json").read_text())
    assert len(expected["invoices"]) >= 12
    for item in expected["invoices"]:
        invoice = rules.invoice(
            expected["contract"], date.fromisoformat(item["issue_date"]), item["usage"]
        )
        lines = sorted(
            [ln.code, str(ln.amount)]
            for ln in invoice.lines
            if ln.kind != "adjustment" and ln.amount != 0
        )
        assert lines == item["lines_without_adjustments_nonzero"], item["issue_date"]
        assert str(invoice.total) == item["total"], item["issue_date"]


MODELS = ACCEPTANCE / "models-9001"


def _model_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((MODELS / "cases.json").read_text())["cases"]
    return cases


def test_pricing_model_cases_were_found() -> None:
    assert len(_model_cases()) >= 13


@pytest.mark.parametrize("engine", ["interpreter", "fast path"])
def test_pricing_models_as_computed_independently(engine: str) -> None:
    """Blocks, tier flat fees, line minimums, caps on groups, yearly fees, fine rates."""
    rules = pricing_dsl.load(MODELS / "ruleset.pricing")
    rate = rules.rate_reference if engine == "interpreter" else rules.rate
    for case in _model_cases():
        invoice = rate(case["contract"], case["usage"])
        got = {ln.code: str(ln.amount) for ln in invoice.lines}
        for code, amount in case.get("lines", {}).items():
            assert got[code] == amount, (case["why"], code)
        assert str(invoice.total) == case["total"], case["why"]
        assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))
