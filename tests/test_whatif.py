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


def git_repo(tmp_path: Path, old: str, new: str, usage: list[dict[str, object]]) -> Path:
    """A git repository with `old` committed as rules/plans.pricing, then changed to `new`."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "plans.pricing").write_text(old)
    env = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", *env, "commit", "-qm", "v1"]):
        assert run(cmd, tmp_path).returncode == 0
    (rules / "plans.pricing").write_text(new)
    (tmp_path / "usage.jsonl").write_text("".join(json.dumps(u) + "\n" for u in usage))
    return tmp_path


def diff_schema_check(data: object) -> None:
    schema = json.loads((ROOT / "schemas" / "diff.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path, OLD, NEW, USAGE)


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
        "exceptions": {"added": [], "removed": []},
    }
    diff_schema_check(got)
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


# ----------------------------------------------- diff: recorded policy exceptions


def guarded(a_body: str, top: str = "") -> str:
    """A ruleset with a policy floor; `b` keeps the same approved exception throughout."""
    return (
        f"{top}currency USD\n"
        'policy "Limits" {\n'
        "  mau overage at least 0.10 per user\n"
        "}\n"
        'plan p "P" {\n'
        "  base 100.00 per month\n"
        "  mau included 1000 overage 0.12 per user\n"
        "}\n"
        f'contract a "A" extends p {{\n{a_body}}}\n'
        'contract b "B" extends p {\n'
        "  mau overage 0.09 per user\n"
        '  approved "FIN-7" for mau overage\n'
        "}\n"
    )


def approved(rate: str, ref: str, bound: str) -> str:
    return (
        f"  mau overage {rate} per user\n"
        f'  approved "{ref}" for mau overage down to {bound} per user\n'
    )


GUARDED_USAGE = [
    {"contract": "a", "period": "2026-08", "mau": 1500},
    {"contract": "b", "period": "2026-08", "mau": 1000},
]


def exception(effective: str, ref: str, bound: str) -> dict[str, object]:
    return {
        "contract": "a",
        "term": "mau overage",
        "policy": "Limits",
        "limit": "at least 0.10 per user",
        "effective": f"{effective} per user",
        "reference": ref,
        "approved_limit": f"down to {bound} per user",
    }


def two_folders(tmp_path: Path, old: str, new: str) -> Path:
    for name, text in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "r.pricing").write_text(text)
    (tmp_path / "usage.jsonl").write_text("".join(json.dumps(u) + "\n" for u in GUARDED_USAGE))
    return tmp_path


def exceptions_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Policy exceptions")
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines)
    )
    return lines[start:end]


@pytest.mark.parametrize("change", ["added", "removed"])
def test_diff_lists_an_exception_a_change_adds_or_removes(
    pricing_cmd: str, tmp_path: Path, change: str
) -> None:
    # `a` inherits 0.12 (within the floor 0.10) on one side; on the other it
    # goes down to 0.08 with approval FIN-1.  500 users over the 1000 included:
    # 500 x 0.12 = 60.00 against 500 x 0.08 = 40.00.
    clean, excepted = guarded(""), guarded(approved("0.08", "FIN-1", "0.08"))
    old, new = (clean, excepted) if change == "added" else (excepted, clean)
    ws = two_folders(tmp_path, old, new)
    result = run([pricing_cmd, "diff", "old", "new", "--usage", "usage.jsonl", "--format=json"], ws)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    diff_schema_check(got)
    other = "removed" if change == "added" else "added"
    # `b`'s exception is the same on both sides: not listed.
    assert got["exceptions"] == {change: [exception("0.08", "FIN-1", "0.08")], other: []}
    sign = "-" if change == "added" else ""
    assert got["totals"] == [
        {
            "currency": "USD",
            "old": "260.00" if change == "added" else "240.00",
            "new": "240.00" if change == "added" else "260.00",
            "change": f"{sign}20.00",
        }
    ]
    text = run([pricing_cmd, "diff", "old", "new", "--usage", "usage.jsonl"], ws)
    assert text.returncode == 0, text.stderr
    # Columns as wide as their widest cell: `change` 6 or `removed` 7,
    # `contract` 8, `mau overage` 11, the limit 31, `0.08 per user` 13.
    if change == "added":
        table = [
            "  change  contract  term         policy limit                     effective      "
            "reference",
            "  added   a         mau overage  at least 0.10 per user (Limits)  0.08 per user  "
            "FIN-1 (down to 0.08 per user)",
        ]
    else:
        table = [
            "  change   contract  term         policy limit                     effective      "
            "reference",
            "  removed  a         mau overage  at least 0.10 per user (Limits)  0.08 per user  "
            "FIN-1 (down to 0.08 per user)",
        ]
    assert exceptions_table(text.stdout) == ["Policy exceptions", *table]


def test_diff_shows_a_changed_approval_that_changes_no_amount(
    pricing_cmd: str, tmp_path: Path
) -> None:
    """Only the reference changes: no revenue effect, yet the exception is listed, and exit 0."""
    ws = two_folders(
        tmp_path,
        guarded(approved("0.08", "FIN-1", "0.08")),
        guarded(approved("0.08", "FIN-2", "0.08")),
    )
    result = run([pricing_cmd, "diff", "old", "new", "--usage", "usage.jsonl", "--format=json"], ws)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    diff_schema_check(got)
    # A changed exception is the old one removed and the new one added.
    assert got["exceptions"] == {
        "removed": [exception("0.08", "FIN-1", "0.08")],
        "added": [exception("0.08", "FIN-2", "0.08")],
    }
    assert got["totals"] == [
        {"currency": "USD", "old": "240.00", "new": "240.00", "change": "0.00"}
    ]
    text = run([pricing_cmd, "diff", "old", "new", "--usage", "usage.jsonl"], ws)
    assert text.returncode == 0, text.stderr
    assert "  USD  old 240.00  new 240.00  change no change" in text.stdout
    # The removed row first, then the added one that replaces it.
    assert exceptions_table(text.stdout) == [
        "Policy exceptions",
        "  change   contract  term         policy limit                     effective      "
        "reference",
        "  removed  a         mau overage  at least 0.10 per user (Limits)  0.08 per user  "
        "FIN-1 (down to 0.08 per user)",
        "  added    a         mau overage  at least 0.10 per user (Limits)  0.08 per user  "
        "FIN-2 (down to 0.08 per user)",
    ]


def test_diff_base_lists_the_exceptions_of_a_pull_request(pricing_cmd: str, tmp_path: Path) -> None:
    # The change lowers `a` from 0.08 (FIN-1) to 0.07 under a new approval
    # FIN-2, and inserts two lines on top, so `b`'s unchanged exception moves
    # down the file: a move is not a change.
    repo = git_repo(
        tmp_path,
        guarded(approved("0.08", "FIN-1", "0.08")),
        guarded(approved("0.07", "FIN-2", "0.07"), top="# Limits for 2026.\n\n"),
        GUARDED_USAGE,
    )
    args = [pricing_cmd, "diff", "--base", "HEAD", "rules", "--usage", "usage.jsonl"]
    result = run([*args, "--format", "json"], repo)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    diff_schema_check(got)
    assert got["exceptions"] == {
        "added": [exception("0.07", "FIN-2", "0.07")],
        "removed": [exception("0.08", "FIN-1", "0.08")],
    }
    # 500 users over: 500 x 0.08 = 40.00 -> 500 x 0.07 = 35.00.
    a = next(c for c in got["contracts"] if c["contract"] == "a")
    assert {ln["code"]: ln["change"] for ln in a["lines"]}["mau_overage"] == "-5.00"
    text = run(args, repo)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    # Beside the revenue effect: after the totals, before the contract lists.
    assert lines.index("Totals") < lines.index("Policy exceptions")
    assert exceptions_table(text.stdout)[2:] == [
        "  removed  a         mau overage  at least 0.10 per user (Limits)  0.08 per user  "
        "FIN-1 (down to 0.08 per user)",
        "  added    a         mau overage  at least 0.10 per user (Limits)  0.07 per user  "
        "FIN-2 (down to 0.07 per user)",
    ]
