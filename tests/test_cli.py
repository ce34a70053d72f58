"""The installed `pricing` command, run as a user runs it.

Exit codes: 0 clean, 1 errors, 2 bad command-line use.  No run, whatever its
input, may show a Python traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .conftest import ROOT, RULESETS

SCHEMAS = ROOT / "pricing_dsl" / "schemas"

RULES = """currency USD

addon a1 "Add-on one" 10.00 per month

plan p "Plan P" {
  base 100.00 per month
  mau included 1000 overage 0.10 per user
  addons a1
}

contract c "Customer C" extends p {
  term 2026-07-15 to 2026-12-31
}
"""
# Hand-computed for c, 2026-08, mau 1100: base 100.00; mau_overage 100 x 0.10 = 10.00;
# concurrency_overage (allowance floor(1000 x 5%) = 50, peak 0), voice, video 0.00;
# addon.a1 10.00; total 120.00.
AUGUST = "contract: c\nperiod: 2026-08\nmau: 1100\n"
AUGUST_LINES = {
    "base": "100.00",
    "mau_overage": "10.00",
    "concurrency_overage": "0.00",
    "voice": "0.00",
    "video": "0.00",
    "addon.a1": "10.00",
}

BAD = """currency USD
plan p {
  mau included 1000 overage 0.12 per minute
  base -5 per month
}
"""


def run(
    cmd: str, *args: str | Path, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [cmd, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "rules.pricing").write_text(RULES)
    (tmp_path / "bad.pricing").write_text(BAD)
    (tmp_path / "aug.yaml").write_text(AUGUST)
    (tmp_path / "nocontract.yaml").write_text("period: 2026-08\nmau: 1100\n")
    return tmp_path


def _schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return data


def _valid(instance: Any, schema: str) -> None:
    jsonschema.validate(instance, _schema(schema), cls=jsonschema.Draft202012Validator)


# -------------------------------------------------------------------- check


def test_check_passes_the_shipped_rulesets(pricing_cmd: str) -> None:
    result = run(pricing_cmd, "check", RULESETS)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr
    assert re.search(r"ok: \d+ files, \d+ plans or contracts", result.stderr)


def test_check_reports_errors_with_position_and_caret(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "check", "bad.pricing", cwd=ws)
    assert result.returncode == 1
    err = result.stderr.splitlines()
    assert err[0] == "bad.pricing:3:38: error[E204]: `mau` is priced per user, not per minute"
    assert err[1] == "    mau included 1000 overage 0.12 per minute"
    assert err[2] == "                                       ^^^^^^"
    assert "bad.pricing:4:8: error[E205]: the base fee cannot be negative (-5)" in err
    assert "         ^^" in err
    assert err[-1] == "2 errors"


def test_check_json_format(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "check", "--format", "json", "bad.pricing", cwd=ws)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["code"], r["line"], r["column"]) for r in records] == [
        ("E204", 3, 38),
        ("E205", 4, 8),
    ]
    for r in records:
        _valid(r, "diagnostics")
        assert r["path"] == "bad.pricing" and r["severity"] == "error"
    assert records[0]["end_column"] == 44


def test_check_github_format(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "check", "--format", "github", "bad.pricing", cwd=ws)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "::error file=bad.pricing,line=3,col=38,endColumn=44,title=E204::"
        "`mau` is priced per user, not per minute (hint: write `per user`)"
    )
    assert lines[1].startswith("::error file=bad.pricing,line=4,col=8,")
    assert "title=E205::" in lines[1]


def test_check_clean_file_in_every_format(pricing_cmd: str, ws: Path) -> None:
    for fmt in ("text", "json", "github"):
        result = run(pricing_cmd, "check", "--format", fmt, "rules.pricing", cwd=ws)
        assert result.returncode == 0, (fmt, result.stderr)
        assert "error" not in result.stdout


def test_check_missing_path(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "check", "nothing-here", cwd=ws)
    assert result.returncode == 1
    assert "nothing-here: error[E001]: no such file or directory" in result.stderr
    empty = ws / "empty"
    empty.mkdir()
    result = run(pricing_cmd, "check", empty)
    assert result.returncode == 1 and "E001" in result.stderr


# --------------------------------------------------------------------- rate


def test_rate_text(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "rate", "rules.pricing", "--usage", "aug.yaml", cwd=ws)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Invoice for Customer C (c)\nperiod 2026-08, currency USD\n")
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()[4:] if line.strip()}
    for code, amount in AUGUST_LINES.items():
        assert rows[code] == amount
    assert out.rstrip().endswith("USD 120.00")
    assert "Total" in out


def test_rate_json_matches_the_invoice_schema(pricing_cmd: str, ws: Path) -> None:
    result = run(
        pricing_cmd, "rate", "rules.pricing", "--usage", "aug.yaml", "--format", "json", cwd=ws
    )
    assert result.returncode == 0, result.stderr
    invoice = json.loads(result.stdout)
    _valid(invoice, "invoice")
    assert invoice["contract"] == "c" and invoice["period"] == "2026-08"
    assert {ln["code"]: ln["amount"] for ln in invoice["lines"]} == AUGUST_LINES
    assert [ln["code"] for ln in invoice["lines"]] == list(AUGUST_LINES)
    assert invoice["total"] == "120.00"
    assert isinstance(invoice["total"], str)  # money is never a JSON float


def test_rate_json_of_the_shipped_example(pricing_cmd: str) -> None:
    usage = RULESETS / "examples" / "usage" / "acme-2026-08.yaml"
    result = run(pricing_cmd, "rate", RULESETS, "--usage", usage, "--format", "json")
    assert result.returncode == 0, result.stderr
    _valid(json.loads(result.stdout), "invoice")


def test_rate_explain(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "rate", "rules.pricing", "--usage", "aug.yaml", "--explain", cwd=ws)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "= 100 × 0.10 per user" in out
    assert "exact amount" in out
    assert "rules.pricing:7" in out  # the clause that set the MAU terms
    assert "standard rate (billing FAQ)" in out  # voice and video were not stated


@pytest.mark.parametrize(
    ("stdin", "extra"),
    [
        (AUGUST, ()),
        (json.dumps({"period": "2026-08", "mau": 1100}), ("--contract", "c")),
    ],
    ids=["yaml", "json"],
)
def test_rate_reads_usage_from_stdin(
    pricing_cmd: str, ws: Path, stdin: str, extra: tuple[str, ...]
) -> None:
    result = run(
        pricing_cmd, "rate", "rules.pricing", "--usage", "-", *extra, "--format", "json",
        stdin=stdin, cwd=ws,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == "120.00"


def test_contract_flag_overrides_the_usage(pricing_cmd: str, ws: Path) -> None:
    # p has no term: 100.00 + 10.00 + 10.00, the same amounts as c in a whole month.
    result = run(
        pricing_cmd, "rate", "rules.pricing", "--usage", "aug.yaml", "--contract", "p", cwd=ws
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Invoice for Plan P (p)")


def test_rating_errors_exit_1(pricing_cmd: str, ws: Path) -> None:
    result = run(
        pricing_cmd, "rate", "rules.pricing", "--usage", "aug.yaml", "--contract", "cc", cwd=ws
    )
    assert result.returncode == 1
    assert "error[E301]: no plan or contract `cc`; did you mean `c`?" in result.stderr
    assert "hint: this ruleset has: c, p" in result.stderr
    (ws / "jan.yaml").write_text("contract: c\nperiod: 2027-01\n")
    result = run(pricing_cmd, "rate", "rules.pricing", "--usage", "jan.yaml", cwd=ws)
    assert result.returncode == 1
    assert "jan.yaml: period: error[E302]" in result.stderr


def test_bad_usage_file_exit_1_naming_file_and_line(pricing_cmd: str, ws: Path) -> None:
    (ws / "b.yaml").write_text("contract: c\nmau: 10.5\nvoice_minute: 3\n")
    result = run(pricing_cmd, "rate", "rules.pricing", "--usage", "b.yaml", cwd=ws)
    assert result.returncode == 1
    assert "b.yaml:2:1: error[E401]: `mau` must be a whole number of users" in result.stderr
    assert (
        "b.yaml:3:1: error[E401]: unknown usage key `voice_minute`; did you mean `voice_minutes`?"
        in result.stderr
    )
    result = run(pricing_cmd, "rate", "rules.pricing", "--usage", "missing.yaml", cwd=ws)
    assert result.returncode == 1
    assert "missing.yaml: error[E402]: usage file not found" in result.stderr


def test_rate_on_a_bad_ruleset_exit_1(pricing_cmd: str, ws: Path) -> None:
    result = run(pricing_cmd, "rate", "bad.pricing", "--usage", "aug.yaml", cwd=ws)
    assert result.returncode == 1
    assert "bad.pricing:3:38: error[E204]" in result.stderr


# ------------------------------------------------------------------ invoice


def test_invoice(pricing_cmd: str, ws: Path) -> None:
    result = run(
        pricing_cmd,
        "invoice",
        "rules.pricing",
        "--date",
        "2026-09-01",
        "--usage",
        "aug.yaml",
        "--format",
        "json",
        cwd=ws,
    )
    assert result.returncode == 0, result.stderr
    invoice = json.loads(result.stdout)
    _valid(invoice, "invoice")
    # September's fees in advance, August's usage in arrears: the same amounts as AUGUST_LINES.
    assert {ln["code"]: ln["amount"] for ln in invoice["lines"]} == AUGUST_LINES
    assert invoice["issue_date"] == "2026-09-01" and invoice["period"] is None
    periods = {ln["code"]: ln["service_period"] for ln in invoice["lines"]}
    assert periods["base"] == "2026-09" and periods["mau_overage"] == "2026-08"
    assert invoice["total"] == "120.00"


def test_first_invoice_of_a_term_needs_no_usage(pricing_cmd: str, ws: Path) -> None:
    result = run(
        pricing_cmd, "invoice", "rules.pricing", "--date", "2026-07-01", "--contract", "c", cwd=ws
    )
    assert result.returncode == 0, result.stderr
    # July 15..31 = 17/31: base 100.00 x 17/31 = 54.838... -> 54.84;
    # addon.a1 10.00 x 17/31 = 5.483... -> 5.48; total 60.32.
    assert "54.84" in result.stdout and "5.48" in result.stdout
    assert result.stdout.rstrip().endswith("USD 60.32")
    assert "mau_overage" not in result.stdout


def test_invoice_errors_exit_1(pricing_cmd: str, ws: Path) -> None:
    result = run(
        pricing_cmd, "invoice", "rules.pricing", "--date", "2026-09-15", "--contract", "c", cwd=ws
    )
    assert result.returncode == 1
    assert "error[E304]: invoices are issued on the first day of a month" in result.stderr
    result = run(
        pricing_cmd, "invoice", "rules.pricing", "--date", "2027-03-01", "--contract", "c", cwd=ws
    )
    assert result.returncode == 1
    assert "error[E302]" in result.stderr


# ------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    "which",
    ["usage", "invoice", "export", "diagnostics", "approvals", "diff", "statement", "ledger"],
)
def test_schema_prints_the_shipped_schema(pricing_cmd: str, which: str) -> None:
    result = run(pricing_cmd, "schema", which)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == _schema(which)
    jsonschema.Draft202012Validator.check_schema(printed)


def test_an_unknown_schema_is_named_with_the_choices(pricing_cmd: str) -> None:
    result = run(pricing_cmd, "schema", "nope")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: pricing schema")
    assert result.stderr.endswith(
        "pricing: error: unknown schema `nope`; choose one of usage, invoice, export, "
        "diagnostics, approvals, diff, statement, ledger\n"
    )
    assert "argument which" not in result.stderr
    result = run(pricing_cmd, "schema", "usgae")
    assert result.returncode == 2
    assert "unknown schema `usgae`; did you mean `usage`? (choose one of usage," in result.stderr


def test_usage_schema_includes_a_rulesets_custom_meters(pricing_cmd: str) -> None:
    result = run(pricing_cmd, "schema", "usage", RULESETS)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"sms", "storage_gb", "mau", "video_minutes"} <= set(schema["properties"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"period": "2026-08", "sms": "12.5", "mau": 3}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sms": "12.5"}, _schema("usage"))  # not a built-in meter


# -------------------------------------------------------- bad command lines


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["rate", "rules.pricing", "--usage", "aug.yaml", "--bogus"], "unrecognized arguments"),
        (["rate", "rules.pricing"], "--usage"),
        (["rate", "--usage", "aug.yaml"], "PATH"),
        (["invoice", "rules.pricing", "--date", "2026-13-01"], "is not a date"),
        (["invoice", "rules.pricing", "--date", "soon", "--contract", "c"], "is not a date"),
        (["invoice", "rules.pricing"], "--date"),
        (["rate", "rules.pricing", "--usage", "nocontract.yaml"], "no contract given"),
        (["invoice", "rules.pricing", "--date", "2026-09-01"], "no contract given"),
        (["check", "--format", "xml", "rules.pricing"], "invalid choice"),
        (["schema", "nonsense"], "unknown schema `nonsense`; choose one of usage,"),
        (["frobnicate"], "invalid choice"),
        ([], "COMMAND"),
    ],
)
def test_bad_command_line_use_exits_2(
    pricing_cmd: str, ws: Path, args: Sequence[str], words: str
) -> None:
    result = run(pricing_cmd, *args, cwd=ws)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "usage: pricing" in result.stderr
    assert words in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "stdin",
    ["", "mau: [1\n", "{", "- 1\n", "mau: .nan\n", '{"mau": NaN}', "\x00\x01", "mau: 1\nmau: 2\n"],
)
def test_hostile_usage_on_stdin_never_crashes(pricing_cmd: str, ws: Path, stdin: str) -> None:
    result = run(
        pricing_cmd, "rate", "rules.pricing", "--usage", "-", "--contract", "c", stdin=stdin, cwd=ws
    )
    assert result.returncode == 1
    assert "error[E4" in result.stderr


def test_hostile_ruleset_never_crashes(pricing_cmd: str, ws: Path) -> None:
    (ws / "x.pricing").write_bytes(b"\xff\xfeplan")
    result = run(pricing_cmd, "check", "x.pricing", cwd=ws)
    assert result.returncode == 1 and "E002" in result.stderr
    (ws / "y.pricing").write_text("plan p {\n  when ((((mau > 1 {\n}\n" + "}" * 50 + "\n")
    result = run(pricing_cmd, "check", "y.pricing", cwd=ws)
    assert result.returncode == 1 and "error[E1" in result.stderr


def test_undecodable_bytes_on_stdin_never_crash(pricing_cmd: str, ws: Path) -> None:
    result = subprocess.run(
        [pricing_cmd, "rate", "rules.pricing", "--usage", "-", "--contract", "c"],
        input=b"\xff\xfe mau: 1\n",
        capture_output=True,
        cwd=ws,
        timeout=60,
    )
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr
    assert result.returncode == 1 and "error[E40" in stderr


@pytest.mark.parametrize("argv", [["-h"], ["-h", "rate"], ["--help", "check"]])
def test_top_level_help_lists_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from pricing_dsl._cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("check", "rate", "test", "fmt", "meter", "batch"):
        assert f"    {command} " in out, command
