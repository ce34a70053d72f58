"""Warnings, `test` blocks and their runner, and check output formats."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import pricing_dsl
from pricing_dsl._ruleset import check_paths

from .conftest import ROOT

PLAN = """currency USD
addon hipaa "HIPAA" 500.00 per month
plan p "P" {
  base 10.00 per month
  mau included 1000 overage 0.12 per user
}
"""


def warnings_of(tmp_path: Path, text: str) -> list[tuple[str, int, int, str]]:
    path = tmp_path / "w.pricing"
    path.write_text(PLAN + text)
    ruleset, diags = check_paths(path, warnings=True)
    assert ruleset is not None, [d.render() for d in diags]
    return [(d.code, d.line, d.column, d.message) for d in diags]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'contract c "C" extends p {\n  base 10.00 per month\n}\n',
            [("W101", 8, 3, "`base` repeats the value inherited from `p`")],
        ),
        (
            'contract c "C" extends p {\n  voice 0.001 per minute\n  voice 0.002 per minute\n}\n',
            [
                (
                    "W102",
                    9,
                    3,
                    "`voice` rate is already set in this block, on line 8; this later value wins",
                )
            ],
        ),
        (
            'contract c "C" extends p {\n  when mau > 10 and mau < 5 {\n'
            "    base 1 per month\n  }\n}\n",
            [("W103", 8, 8, "this `when` condition can never hold, so its terms never apply")],
        ),
        (
            'contract c "C" extends p {\n  mau included 5000 overage graduated {\n'
            "    up to 4000 at 0.10 per user\n    above at 0.05 per user\n  }\n}\n",
            [
                (
                    "W104",
                    8,
                    29,
                    "the tier up to 4000 lies inside the 5000 included units of "
                    "`mau`, so it never prices anything",
                )
            ],
        ),
        (
            'contract c "C" extends p {\n  addons hipaa\n  addon hipaa 0 per month\n}\n',
            [("W105", 9, 3, "add-on `hipaa` is billed but priced at zero")],
        ),
        (
            # 100 minutes at 0.003 = 0.30; 101 at 0.001 = 0.10: the total falls.
            'contract c "C" extends p {\n  video volume {\n    up to 100 at 0.003 per minute\n'
            "    above at 0.001 per minute\n  }\n}\n",
            [
                (
                    "W106",
                    7,
                    10,
                    "the total goes down as `video_minutes` goes up: 10.30 at 100, "
                    "but 10.10 at 101",
                )
            ],
        ),
    ],
    ids=["W101", "W102", "W103", "W104", "W105", "W106"],
)
def test_each_warning(tmp_path: Path, text: str, expected: list[tuple[str, int, int, str]]) -> None:
    assert warnings_of(tmp_path, text) == expected


def test_an_allow_comment_silences_one_warning(tmp_path: Path) -> None:
    text = (
        '# pricing: allow W101\ncontract c "C" extends p {\n'
        "  base 10.00 per month  # pricing: allow W101\n}\n"
    )
    assert warnings_of(tmp_path, text) == []


def test_warnings_do_not_fail_check_unless_strict(pricing_cmd: str, tmp_path: Path) -> None:
    path = tmp_path / "w.pricing"
    path.write_text(PLAN + 'contract c "C" extends p {\n  base 10.00 per month\n}\n')
    plain = subprocess.run([pricing_cmd, "check", str(path)], capture_output=True, text=True)
    assert plain.returncode == 0 and "warning[W101]" in plain.stderr
    strict = subprocess.run(
        [pricing_cmd, "check", "--strict", str(path)], capture_output=True, text=True
    )
    assert strict.returncode == 1
    gh = subprocess.run(
        [pricing_cmd, "check", "--format", "github", str(path)], capture_output=True, text=True
    )
    assert gh.stdout.startswith(f"::warning file={path},line=8,col=3,endColumn=23,title=W101::")
    js = subprocess.run(
        [pricing_cmd, "check", "--format", "json", str(path)], capture_output=True, text=True
    )
    schema = json.loads((ROOT / "schemas" / "diagnostics.schema.json").read_text())
    rows = [json.loads(line) for line in js.stdout.splitlines()]
    assert [r["code"] for r in rows] == ["W101"]
    for row in rows:
        jsonschema.Draft202012Validator(schema).validate(row)


TESTS = (
    PLAN
    + """contract c "C" extends p {
  addons hipaa
}

test "overage is charged" {
  contract c
  period 2026-08
  usage { mau 1001 }
  expect mau_overage 0.12
  expect mau_overage quantity 1
  expect total 510.12
}

test "a wrong expectation" {
  contract c
  usage { mau 1002 }
  expect mau_overage 0.12
}

test "a wrong total" {
  contract p
  period 2026-08-01..2026-08-31
  usage { mau 0 }
  expect total 11.00
}

test "errors can be expected" {
  contract c
  usage { mau 1.5 }
  expect error E401
}

test "an error that does not come" {
  contract c
  usage { mau 1 }
  expect error E401
}
"""
)


def test_the_runner(pricing_cmd: str, tmp_path: Path) -> None:
    path = tmp_path / "t.pricing"
    path.write_text(TESTS)
    result = subprocess.run([pricing_cmd, "test", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    out = result.stdout
    assert "PASS  overage is charged" in out
    # 2 users over at 0.12 = 0.24; the failure shows the derivation trace.
    assert "FAIL  a wrong expectation" in out
    assert "mau_overage amount: expected 0.12, got 0.24" in out
    assert "= 2 × 0.12 per user" in out
    assert "total: expected 11.00, got 10.00" in out
    assert "PASS  errors can be expected" in out
    assert "expected error E401, but rating succeeded" in out
    assert out.rstrip().endswith("2 passed, 3 failed")
    only = subprocess.run(
        [pricing_cmd, "test", str(path), "--filter", "overage*"], capture_output=True, text=True
    )
    assert only.returncode == 0 and only.stdout.rstrip().endswith("1 passed, 0 failed")
    junit = subprocess.run(
        [pricing_cmd, "test", str(path), "--format", "junit"], capture_output=True, text=True
    )
    suite = ET.fromstring(junit.stdout)
    assert suite.get("tests") == "5" and suite.get("failures") == "3"


def test_check_verifies_tests(tmp_path: Path) -> None:
    bad = (
        PLAN
        + """test "t" {
  contract pp
  usage { mua 5 }
  expect total 1
}
test "u" {
  contract p
  usage { mua 5 }
  expect mau_overgae 1
}
"""
    )
    with pytest.raises(pricing_dsl.PricingError) as info:
        pricing_dsl.loads(bad, "t.pricing")
    got = [(d.code, d.line, d.column, d.message) for d in info.value.diagnostics]
    assert got == [
        ("E230", 8, 12, "test names an unknown contract `pp`; did you mean `p`?"),
        ("E231", 14, 11, "unknown usage key `mua`; did you mean `mau`?"),
        ("E231", 15, 10, "`p` has no `mau_overgae` line; did you mean `mau_overage`?"),
    ]


def test_coverage_lists_clauses_no_test_used(pricing_cmd: str, tmp_path: Path) -> None:
    path = tmp_path / "t.pricing"
    path.write_text(
        PLAN
        + """contract c "C" extends p {
  voice 0.002 per minute
  when mau > 5000 {
    base 1 per month
  }
}
test "t" {
  contract c
  usage { voice_minutes 10 }
  expect voice 0.02
}
"""
    )
    result = subprocess.run(
        [pricing_cmd, "test", str(path), "--coverage"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "coverage: 2 clauses not exercised by any test" in result.stdout
    assert f"{path}:9: when" in result.stdout
    assert f"{path}:10: base" in result.stdout
