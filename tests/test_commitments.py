"""The commitment statements in the tools: `pricing fmt` and `pricing export`."""

from __future__ import annotations

import json

import jsonschema

import pricing_dsl
from pricing_dsl._export import export
from pricing_dsl._format import format_text

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
