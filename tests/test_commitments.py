"""The commitment statements in the tools: `pricing fmt` and `pricing export`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

import pricing_dsl
from pricing_dsl._export import export
from pricing_dsl._format import format_text
from pricing_dsl._ruleset import check_paths

from .conftest import RULESETS
from .test_cli import SCHEMAS

MESSY = """currency USD
plan p {
  mau included 1000
}
contract c extends p {
    term 2026-01-01 to 2026-12-31
  commit   120_000.00   USD per   year on    usage
        prepaid 10_000.00 per year   rollover   # sold in advance
  credit 500.00
}
"""

TIDY = """currency USD
plan p {
  mau included 1000
}
contract c extends p {
  term 2026-01-01 to 2026-12-31
  commit 120_000.00 USD per year on usage
  prepaid 10_000.00 per year rollover  # sold in advance
  credit 500.00
}
"""


def test_fmt_lays_out_commitments() -> None:
    assert format_text(MESSY) == TIDY
    assert format_text(TIDY) == TIDY


def test_export_shows_commitments_and_credits() -> None:
    rules = pricing_dsl.loads(TIDY, "c.pricing")
    doc = export(rules, "c")
    jsonschema.validate(
        json.loads(json.dumps(doc)),
        json.loads((SCHEMAS / "export.schema.json").read_text()),
        cls=jsonschema.Draft202012Validator,
    )
    terms = {t["term"]: (t["value"], t["source"]) for t in doc["contracts"][0]["terms"]}
    assert terms["commit"] == (
        {"amount": "120000.00", "per": "year", "on": "usage", "rollover": False},
        "c.pricing:7:3",
    )
    assert terms["prepaid"][0] == {
        "amount": "10000.00",
        "per": "year",
        "on": "all",
        "rollover": True,
    }
    assert terms["credit"][0] == {"amount": "500.00", "per": None, "on": "all", "rollover": False}


def test_rate_ignores_commitments() -> None:
    # `rate` bills one period; commitments and credits act on statements only.
    rules = pricing_dsl.load(RULESETS)
    inv = rules.rate("wayne", {"period": "2026-04", "mau": 13500})
    assert inv.codes[-1] == "discount.usage"
    assert str(inv.total) == "2815.00"  # 2500.00 + 350.00 - 35.00


def test_a_misspelt_commitment_gets_a_did_you_mean() -> None:
    text = TIDY.replace("  commit 120_000.00 USD per year on usage\n", "  comit 5.00 per year\n")
    try:
        pricing_dsl.loads(text, "c.pricing")
    except pricing_dsl.PricingError as exc:
        (d,) = exc.diagnostics
        assert d.code == "E208" and "did you mean `commit`?" in d.message
    else:
        raise AssertionError("`comit` was accepted")


def test_warnings_for_a_commitment_twice_or_repeated(tmp_path: Path) -> None:
    twice = TIDY.replace("  credit 500.00\n", "  credit 500.00\n  credit 400.00\n")
    (tmp_path / "a.pricing").write_text(twice)
    _, diags = check_paths(tmp_path / "a.pricing", warnings=True)
    assert [(d.code, d.line) for d in diags] == [("W102", 10)]
    inherited = TIDY.replace(
        "contract c extends p {",
        "contract b extends c {\n  credit 500.00\n}\ncontract c extends p {",
    )
    (tmp_path / "a.pricing").write_text(inherited)
    _, diags = check_paths(tmp_path / "a.pricing", warnings=True)
    assert [(d.code, d.line) for d in diags] == [("W101", 6)]
