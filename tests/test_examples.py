"""The shipped rulesets and example usage rate as computed by hand."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import pricing_dsl
from pricing_dsl._usage import load_usage_file

from .conftest import RULESETS

EXAMPLES = RULESETS / "examples"
USAGE = sorted((EXAMPLES / "usage").glob("*.*"))


@pytest.fixture(scope="module")
def rules() -> pricing_dsl.Ruleset:
    return pricing_dsl.load(RULESETS)


def test_examples_were_found() -> None:
    assert len(USAGE) >= 5


@pytest.mark.parametrize("usage_path", USAGE, ids=[p.stem for p in USAGE])
def test_example_rates_as_hand_computed(rules: pricing_dsl.Ruleset, usage_path: Path) -> None:
    usage = load_usage_file(str(usage_path), rules.meters)
    assert usage.contract is not None
    invoice = rules.rate(usage.contract, usage)
    expected = json.loads((EXAMPLES / "expected" / f"{usage_path.stem}.json").read_text())
    assert {ln.code: str(ln.amount) for ln in invoice.lines} == expected["lines"]
    assert str(invoice.total) == expected["total"]


def test_the_catalog_has_plans_of_increasing_mau(rules: pricing_dsl.Ruleset) -> None:
    included = [
        rules.contract(p).static_terms[("meter", "mau", "allowance")].value.value
        for p in ("starter", "pro", "enterprise")
    ]
    assert included == sorted(included) and len(set(included)) == 3


def test_northwind_twelve_month_sequence(rules: pricing_dsl.Ruleset) -> None:
    folder = EXAMPLES / "northwind"
    expected = json.loads((folder / "expected-invoices.json").read_text())
    assert len(expected["invoices"]) == 12
    for item in expected["invoices"]:
        usage = load_usage_file(str(folder / item["usage"]), rules.meters)
        invoice = rules.invoice("northwind", date.fromisoformat(item["issue_date"]), usage)
        got = {
            ln.code: str(ln.amount)
            for ln in invoice.lines
            if ln.kind != "adjustment" and ln.amount != 0
        }
        assert got == item["lines"], item["issue_date"]
        assert str(invoice.total) == item["total"], item["issue_date"]
