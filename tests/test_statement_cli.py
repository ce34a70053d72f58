"""`pricing statement`, run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from .conftest import RULESETS
from .test_cli import SCHEMAS, run

WAYNE = RULESETS / "examples" / "wayne"


def _schema(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return data


def test_statement_text_lists_every_invoice_then_the_ledger(pricing_cmd: str) -> None:
    result = run(
        pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", WAYNE / "usage"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Statement for Wayne Enterprises, MSA 2026-03 (wayne)\n")
    assert "15 invoices issued 2026-03-01 to 2027-05-01" in out
    assert out.count("Invoice for Wayne Enterprises") == 15
    ledger = out[out.index("\nLedger\n") :]
    assert "2027-03-01  prepaid.rolled_over     1  -1,237.79      0.00" in ledger
    assert "2027-04-01  prepaid.applied         2    -460.00      0.00" in ledger
    assert "1     2026-03-16  2027-03-15   31,712.54        31,712.53     0.01  2027-03-01" in out
    assert out.endswith("Total of the invoices: USD 38,237.54; credit left: USD 0.00\n")


def test_statement_json_matches_the_schemas_and_the_hand_computed_file(
    pricing_cmd: str, tmp_path: Path
) -> None:
    # JSON Lines usage, with a record of another contract that is left out.
    records = [yaml.safe_load(p.read_text()) for p in sorted((WAYNE / "usage").glob("*.yaml"))]
    records.append({"contract": "acme", "period": "2026-08", "mau": 5})
    usage = tmp_path / "usage.jsonl"
    usage.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run(
        pricing_cmd,
        "statement",
        RULESETS,
        "--contract",
        "wayne",
        "--usage",
        usage,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, _schema("statement"), cls=jsonschema.Draft202012Validator)
    for inv in doc["invoices"]:
        jsonschema.validate(inv, _schema("invoice"), cls=jsonschema.Draft202012Validator)
    expected = json.loads((WAYNE / "expected-statement.json").read_text())
    assert doc["ledger"] == expected["ledger"]
    assert doc["years"] == expected["years"]
    assert doc["total"] == expected["total"]


def test_statement_through_and_explain(pricing_cmd: str) -> None:
    result = run(
        pricing_cmd,
        "statement",
        RULESETS,
        "--contract",
        "wayne",
        "--usage",
        WAYNE / "usage",
        "--through",
        "2026-04",
        "--explain",
    )
    assert result.returncode == 0, result.stderr
    assert "2 invoices issued 2026-03-01 to 2026-04-01" in result.stdout
    assert "paid from: credit 180.00" in result.stdout
    assert "= -min(balance 4160.00, usage after discounts 180.00, invoice 2680.00)" in (
        result.stdout
    )


def test_statement_errors(pricing_cmd: str, tmp_path: Path) -> None:
    usage = WAYNE / "usage"
    bad = run(pricing_cmd, "statement", RULESETS, "--contract", "wayn", "--usage", usage)
    assert bad.returncode == 1
    assert "error[E301]" in bad.stderr and "did you mean `wayne`" in bad.stderr
    bad = run(
        pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", usage,
        "--through", "2030-01",
    )  # fmt: skip
    assert bad.returncode == 1
    assert "error[E308]" in bad.stderr and "2026-03 to 2027-05" in bad.stderr
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"period": "2026-05", "mau": 1}\n{"period": "2026-05", "mau": 2}\n')
    bad = run(pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", twice)
    assert bad.returncode == 1
    assert "error[E306]" in bad.stderr and "two usage records for 2026-05" in bad.stderr
    missing = run(pricing_cmd, "statement", RULESETS, "--usage", usage)
    assert missing.returncode == 2
    assert "--contract" in missing.stderr


def test_invoice_command_points_to_statement(pricing_cmd: str) -> None:
    result = run(pricing_cmd, "invoice", RULESETS, "--contract", "wayne", "--date", "2026-04-01")
    assert result.returncode == 1
    assert "error[E307]" in result.stderr
    assert "pricing statement" in result.stderr


def test_account_picks_one_account_of_a_shared_usage_file(pricing_cmd: str, tmp_path: Path) -> None:
    records = [yaml.safe_load(p.read_text()) for p in sorted((WAYNE / "usage").glob("*.yaml"))]
    usage = tmp_path / "usage.jsonl"
    # Two accounts on the contract: the second's usage doubles the MAU.
    usage.write_text(
        "".join(
            json.dumps({**r, "account": a, **({"mau": 2 * r["mau"]} if a == "w2" else {})}) + "\n"
            for r in records
            for a in ("w1", "w2")
        )
    )
    both = run(pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", usage)
    assert both.returncode == 1 and "E306" in both.stderr and "--account ID" in both.stderr
    one = run(
        pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", usage,
        "--account", "w1",
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    # w1's usage is the hand-computed example's: the same statement.
    assert one.stdout.endswith("Total of the invoices: USD 38,237.54; credit left: USD 0.00\n")
    none = run(
        pricing_cmd, "statement", RULESETS, "--contract", "wayne", "--usage", usage,
        "--account", "w3",
    )  # fmt: skip
    assert none.returncode == 2 and "names the account `w3`" in none.stderr
