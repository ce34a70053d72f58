"""Golden tests of `pricing diff`, `pricing quote` and `pricing export` (hand-computed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from .conftest import ROOT

OLD = """currency USD
plan p "P" {
  base 100.00 per month
  mau included 1000 overage 0.10 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
contract c "C" extends p {
  concurrency 10%
}
contract gone "Gone" extends p {
}
"""

NEW = """currency USD
plan p "P" {
  base 100.00 per month
  mau included 1000 overage 0.12 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
contract c "C" extends p {
  concurrency 10%
}
contract fresh "Fresh" extends p {
  base 90.00 per month
}
"""

USAGE = [
    {"contract": "c", "period": "2026-08", "mau": 1500, "peak_connections": 120},
    {"contract": "c", "period": "2026-09", "mau": 900},
    {"contract": "p", "period": "2026-08", "mau": 1001},
]


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "plans.pricing").write_text(OLD)
    env = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", *env, "commit", "-qm", "v1"]):
        assert run(cmd, tmp_path).returncode == 0
    (rules / "plans.pricing").write_text(NEW)
    (tmp_path / "usage.jsonl").write_text("".join(json.dumps(u) + "\n" for u in USAGE))
    return tmp_path


def test_diff_against_a_git_revision(pricing_cmd: str, repo: Path) -> None:
    result = run(
        [
            pricing_cmd,
            "diff",
            "--base",
            "HEAD",
            "rules",
            "--usage",
            "usage.jsonl",
            "--format",
            "json",
        ],
        repo,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    # c, August: 500 users over at 0.10 -> 0.12 = 50.00 -> 60.00; 120 connections
    # over floor(1000 x 10%) = 100 -> 20.00; base 100.  September: 900 MAU, no overage.
    # p, August: 1 user over: 0.10 -> 0.12; no connections, base 100.
    assert got == {
        "contracts": [
            {
                "contract": "c",
                "currency": "USD",
                "records": 2,
                "errors": [],
                "lines": [
                    {"code": "base", "old": "200.00", "new": "200.00", "change": "0.00"},
                    {"code": "mau_overage", "old": "50.00", "new": "60.00", "change": "10.00"},
                    {
                        "code": "concurrency_overage",
                        "old": "20.00",
                        "new": "20.00",
                        "change": "0.00",
                    },
                    {"code": "voice", "old": "0.00", "new": "0.00", "change": "0.00"},
                    {"code": "video", "old": "0.00", "new": "0.00", "change": "0.00"},
                    {"code": "total", "old": "270.00", "new": "280.00", "change": "10.00"},
                ],
            },
            {
                "contract": "p",
                "currency": "USD",
                "records": 1,
                "errors": [],
                "lines": [
                    {"code": "base", "old": "100.00", "new": "100.00", "change": "0.00"},
                    {"code": "mau_overage", "old": "0.10", "new": "0.12", "change": "0.02"},
                    {"code": "concurrency_overage", "old": "0.00", "new": "0.00", "change": "0.00"},
                    {"code": "voice", "old": "0.00", "new": "0.00", "change": "0.00"},
                    {"code": "video", "old": "0.00", "new": "0.00", "change": "0.00"},
                    {"code": "total", "old": "100.10", "new": "100.12", "change": "0.02"},
                ],
            },
        ],
        "totals": [{"currency": "USD", "old": "370.10", "new": "380.12", "change": "10.02"}],
        "added": ["fresh"],
        "removed": ["gone"],
        "changed_without_usage": [],
    }
    text = run([pricing_cmd, "diff", "--base", "HEAD", "rules", "--usage", "usage.jsonl"], repo)
    assert "mau_overage   50.00   60.00  +10.00" in text.stdout
    assert "Contracts added: fresh" in text.stdout
    assert "Contracts removed: gone" in text.stdout


def test_diff_of_two_folders_and_a_bad_revision(pricing_cmd: str, repo: Path) -> None:
    old = repo / "old"
    old.mkdir()
    (old / "plans.pricing").write_text(OLD)
    result = run([pricing_cmd, "diff", "old", "rules", "--usage", "usage.jsonl"], repo)
    assert result.returncode == 0
    assert "USD  old 370.10  new 380.12  change +10.02" in result.stdout
    bad = run(
        [pricing_cmd, "diff", "--base", "no-such-rev", "rules", "--usage", "usage.jsonl"], repo
    )
    assert bad.returncode == 1
    assert "error[E403]" in bad.stderr and "Traceback" not in bad.stderr
    one = run([pricing_cmd, "diff", "rules", "--usage", "usage.jsonl"], repo)
    assert one.returncode == 2


def test_diff_base_reads_file_names_git_would_quote(pricing_cmd: str, tmp_path: Path) -> None:
    """Names with spaces and non-ASCII letters, which `git ls-tree` quotes or splits without -z."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    rules = tmp_path / "price lists"
    rules.mkdir()
    (rules / "plans.pricing").write_text(
        'currency USD\nplan p "P" {\n  base 100.00 per month\n'
        "  mau included 1000 overage 0.10 per user\n}\n",
        "utf-8",
    )
    (rules / "café.pricing").write_text(
        'contract cafe "Café" extends p {\n  base 99.00 per month\n}\n', "utf-8"
    )
    (rules / "my catalog.pricing").write_text(
        'contract cat "Cat" extends p {\n  base 50.00 per month\n}\n', "utf-8"
    )
    # A file that a name split at its space would find instead of the real one.
    (tmp_path / "catalog.pricing").write_text(
        'currency USD\nplan q "Q" {\n  mau included 1 overage 1.00 per user\n}\n', "utf-8"
    )
    env = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", *env, "commit", "-qm", "v1"]):
        assert run(cmd, tmp_path).returncode == 0
    (rules / "my catalog.pricing").write_text(
        'contract cat "Cat" extends p {\n  base 60.00 per month\n}\n', "utf-8"
    )
    usage = [{"contract": c, "period": "2026-08", "mau": 10} for c in ("cafe", "cat")]
    (tmp_path / "usage.jsonl").write_text("".join(json.dumps(u) + "\n" for u in usage))
    result = run(
        [pricing_cmd, "diff", "--base=HEAD", "price lists", "--usage=usage.jsonl", "--format=json"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert (got["added"], got["removed"], got["changed_without_usage"]) == ([], [], [])
    # Only `cat` changed: base 50.00 -> 60.00, 10 MAU is inside the allowance.
    changes = {
        c["contract"]: {ln["code"]: ln["change"] for ln in c["lines"] if ln["change"] != "0.00"}
        for c in got["contracts"]
    }
    assert changes == {"cafe": {}, "cat": {"base": "10.00", "total": "10.00"}}
    assert got["totals"] == [
        {"currency": "USD", "old": "149.00", "new": "159.00", "change": "10.00"}
    ]


def test_diff_base_turns_git_failures_into_e403(pricing_cmd: str, tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo, other = tmp_path / "repo", tmp_path / "other"
    for d in (repo / "rules", other):
        d.mkdir(parents=True)
        (d / "r.pricing").write_text("currency USD\n", "utf-8")
    (repo / "usage.jsonl").write_text("")
    env = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", *env, "commit", "-qm", "v1"]):
        assert run(cmd, repo).returncode == 0
    cases = [
        ("HEAD~5", ["rules"], "HEAD~5"),  # no such revision
        ("--name-only", ["rules"], "not a git revision"),  # never passed to git as an option
        ("HEAD", ["rules", "../other"], "outside repository"),
        ("HEAD", ["missing"], "No such file or directory"),
    ]
    for rev, paths, words in cases:
        result = run([pricing_cmd, "diff", f"--base={rev}", *paths, "--usage", "usage.jsonl"], repo)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "error[E403]: " in result.stderr and f"`{rev}`" in result.stderr
        assert words in result.stderr


def test_quote_across_mau(pricing_cmd: str, tmp_path: Path) -> None:
    (tmp_path / "q.pricing").write_text(
        "currency USD\n"
        'plan g "G" {\n'
        "  base 10.00 per month\n"
        "  mau included 1000 overage graduated {\n"
        "    up to 2000 at 0.10 per user\n"
        "    above at 0.05 per user\n"
        "  }\n"
        "}\n"
    )
    result = run(
        [
            pricing_cmd,
            "quote",
            "q.pricing",
            "--contract",
            "g",
            "--vary",
            "mau=0..3000",
            "--step",
            "1000",
            "--format",
            "json",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    totals = [
        (r["value"], r["lines"]["mau_overage"], r["total"]) for r in got["contracts"][0]["rows"]
    ]
    # 1000 free; 1001..2000 at 0.10 (100.00); above 2000 at 0.05 (1000 x 0.05 = 50.00).
    assert totals == [
        ("0", "0.00", "10.00"),
        ("1000", "0.00", "10.00"),
        ("2000", "100.00", "110.00"),
        ("3000", "150.00", "160.00"),
    ]
    bad = run(
        [pricing_cmd, "quote", "q.pricing", "--contract", "g", "--vary", "mau=9..1"], tmp_path
    )
    assert bad.returncode == 2 and "LOW <= HIGH" in bad.stderr


def test_quote_plot_draws_an_svg(pricing_cmd: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    svg = tmp_path / "curve.svg"
    result = run(
        [
            pricing_cmd,
            "quote",
            str(ROOT / "rulesets"),
            "--contract",
            "pro",
            "--contract",
            "scale",
            "--vary",
            "mau=0..100000",
            "--step",
            "25000",
            "--fix",
            "period=2026-08",
            "--plot",
            str(svg),
        ]
    )
    assert result.returncode == 0, result.stderr
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_export_matches_its_schema_and_keeps_sources(pricing_cmd: str) -> None:
    result = run([pricing_cmd, "export", str(ROOT / "rulesets")])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    schema = json.loads((ROOT / "schemas" / "export.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    acme = next(c for c in data["contracts"] if c["id"] == "acme")
    terms = {t["term"]: t for t in acme["terms"]}
    assert terms["meter.mau.rate"]["value"] == {"mode": "flat", "price": "0.09"}
    assert terms["meter.mau.rate"]["source"].endswith("acme.pricing:5:30")  # the rate clause
    assert terms["meter.concurrency.allowance"]["value"] == {"kind": "percent", "value": "8"}
    assert terms["addon_price.e2e_encryption"]["value"] == "250.00"
    assert acme["extends"] == ["pro", "starter"]
    froms = [la for la in acme["layers"] if "from" in la]
    assert froms[0]["from"] == "2027-01-01"
    globex = next(c for c in data["contracts"] if c["id"] == "globex")
    whens = [la["when"] for la in globex["layers"] if "when" in la]
    assert whens == [
        "mau > 150_000",
        "video_minutes >= 1_000_000 and voice_minutes < 10_000",
        "period.start < 2026-10-01",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # A meter's id is not its usage key: the key is offered.
        (
            ["--vary", "voice=0..100"],
            "--vary: unknown usage key `voice`; did you mean `voice_minutes`? "
            "(the meters' usage keys are: mau, peak_connections, voice_minutes, video_minutes)",
        ),
        (
            ["--vary", "voice_minute=0..100"],
            "--vary: unknown usage key `voice_minute`; did you mean `voice_minutes`?",
        ),
        (["--vary", "period=1..2"], "--vary: `period` is not a meter; vary one of mau,"),
        (
            ["--vary", "mau=0..10", "--fix", "mau=5"],
            "`--fix mau` conflicts with `--vary mau`: a key is varied or fixed, not both",
        ),
        (
            ["--vary", "mau=0..10", "--fix", "perod=2026-08"],
            "--fix: unknown usage key `perod`; did you mean `period`?",
        ),
        (
            ["--vary", "mau=0..10", "--fix", "period=2026-08", "--fix", "period=2026-09"],
            "--fix gives `period` twice",
        ),
    ],
)
def test_quote_keys_that_cannot_be_meant_are_bad_use(
    pricing_cmd: str, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "p.pricing").write_text(OLD)
    result = run([pricing_cmd, "quote", "p.pricing", "--contract", "c", *args], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: pricing quote")
    assert f"pricing: error: {message}" in result.stderr
    assert result.stdout == ""
