"""`pricing batch --ledger-in/--ledger-out`: commitments and credits across monthly runs.

A batch rates each month as a period; the ledger post-pass adds the
`prepaid`, `credit.applied` and `commit.true_up` rows.  For contracts whose
rated months and issued invoices bill the same lines per service month (no
`minimum`, no fixed discount, no `when` rules), a month's credit and a
year's true-up are the statement's: checked on the hand-computed `wayne`
example run month by month, and on random contracts and months with both
engines.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._batch import BatchUsageError, run_batch

from .conftest import RULESETS
from .test_cli import SCHEMAS, run

pytest.importorskip("duckdb", reason="the DuckDB engine needs the duckdb package")

WAYNE = RULESETS / "examples" / "wayne"
RULES = pricing_dsl.load(RULESETS)
STATEMENT_LINES = ("prepaid", "credit.applied", "commit.true_up")


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _wayne_records() -> list[dict[str, Any]]:
    import yaml

    out = []
    for p in sorted((WAYNE / "usage").glob("*.yaml")):
        rec = yaml.safe_load(p.read_text())
        rec["account"] = "wayne-1"
        out.append(rec)
    return out


def _added(out: Path) -> dict[tuple[str, str], str]:
    """(period, code) -> amount of the rows the ledger added."""
    found = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        if row["code"] in STATEMENT_LINES:
            found[(row["period"], row["code"])] = row["amount"]
    return found


def _from_statement(st_: pricing_dsl.Statement, months: set[str]) -> dict[tuple[str, str], str]:
    """The same rows from a statement, keyed by the month each belongs to."""
    found = {}
    for inv in st_.invoices:
        assert inv.issue_date is not None
        use = (inv.issue_date - timedelta(days=1)).strftime("%Y-%m")
        for ln in inv.lines:
            if ln.code == "prepaid":
                found[(inv.issue_date.strftime("%Y-%m"), ln.code)] = str(ln.amount)
            elif ln.code in STATEMENT_LINES and use in months:
                found[(use, ln.code)] = str(ln.amount)
    return found


def test_wayne_month_by_month_matches_the_hand_computed_statement(tmp_path: Path) -> None:
    expected = json.loads((WAYNE / "expected-statement.json").read_text())
    ledger: Path | None = None
    added: dict[tuple[str, str], str] = {}
    moves: list[tuple[str, str, int | None]] = []
    for n, record in enumerate(_wayne_records()):
        usage = _write(tmp_path / f"u{n}.jsonl", [record])
        out = tmp_path / f"o{n}.jsonl"
        new = tmp_path / f"l{n}.json"
        summary = run_batch(
            RULES, usage, out, engine="python", quiet=True, ledger_in=ledger, ledger_out=new
        )
        assert summary.failed == 0
        added.update(_added(out))
        doc = json.loads(new.read_text())
        jsonschema.validate(
            doc,
            json.loads((SCHEMAS / "ledger.schema.json").read_text()),
            cls=jsonschema.Draft202012Validator,
        )
        moves += [(m["reason"], m["amount"], m["year"]) for m in doc["accounts"][0]["movements"]]
        ledger = new
    want = {}
    for item in expected["invoices"]:
        issued = date.fromisoformat(item["issue_date"])
        use = (issued - timedelta(days=1)).strftime("%Y-%m")
        for code in STATEMENT_LINES:
            if code in item["lines"]:
                month = issued.strftime("%Y-%m") if code == "prepaid" else use
                if month >= "2026-03":
                    want[(month, code)] = item["lines"][code]
    assert added == want
    assert moves == [(m["reason"], m["amount"], m["year"]) for m in expected["ledger"]]
    final = json.loads(ledger.read_text()) if ledger else {}
    assert final["accounts"][0]["month"] == "2027-04"
    assert final["accounts"][0]["balances"] == []


def test_a_month_run_again_with_its_ledger_in_gives_the_same_bytes(tmp_path: Path) -> None:
    records = _wayne_records()
    first = _write(tmp_path / "m1.jsonl", records[:2])
    run_batch(RULES, first, tmp_path / "o1.csv", quiet=True, ledger_out=tmp_path / "l1.json")
    second = _write(tmp_path / "m2.jsonl", records[2:4])
    outs = []
    for n, engine in enumerate(("duckdb", "python", "duckdb")):
        out, led = tmp_path / f"o2-{n}.csv", tmp_path / f"l2-{n}.json"
        run_batch(
            RULES,
            second,
            out,
            engine=engine,
            quiet=True,
            ledger_in=tmp_path / "l1.json",
            ledger_out=led,
        )
        outs.append((out.read_bytes(), led.read_bytes()))
    assert outs[0] == outs[1] == outs[2]


def test_a_month_applied_twice_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    records = _wayne_records()
    usage = _write(tmp_path / "m1.jsonl", records[:1])
    ledger = tmp_path / "ledger.json"
    run_batch(RULES, usage, tmp_path / "o1.jsonl", quiet=True, ledger_out=ledger)
    before = ledger.read_bytes()
    with pytest.raises(PricingError) as info:
        run_batch(
            RULES,
            usage,
            tmp_path / "again.jsonl",
            quiet=True,
            ledger_in=ledger,
            ledger_out=ledger,
        )
    assert info.value.diagnostics[0].code == "E632"
    assert ledger.read_bytes() == before
    assert not (tmp_path / "again.jsonl").exists()
    # A skipped month is refused too: 2026-03 applied, 2026-05 next.
    skip = _write(tmp_path / "m3.jsonl", records[2:3])
    with pytest.raises(PricingError) as info:
        run_batch(RULES, skip, tmp_path / "o3.jsonl", ledger_in=ledger, ledger_out=ledger)
    assert info.value.diagnostics[0].code == "E631"
    assert "the next month to apply is 2026-04" in info.value.diagnostics[0].message


def test_bad_ledgers_and_options(tmp_path: Path, pricing_cmd: str) -> None:
    usage = _write(tmp_path / "m.jsonl", _wayne_records()[:1])
    bad = tmp_path / "bad.json"
    for text in ("not json", '{"format": "other"}', '{"format": "pricing-dsl ledger"}'):
        bad.write_text(text)
        with pytest.raises(PricingError) as info:
            run_batch(RULES, usage, tmp_path / "o.jsonl", ledger_in=bad, ledger_out=tmp_path / "l")
        assert info.value.diagnostics[0].code == "E630"
    with pytest.raises(BatchUsageError):
        run_batch(RULES, usage, tmp_path / "o.jsonl", ledger_in=bad)
    no_account = _write(tmp_path / "n.jsonl", [{"contract": "wayne", "period": "2026-03"}])
    result = run(
        pricing_cmd,
        "batch",
        RULESETS,
        "--usage",
        no_account,
        "--out",
        tmp_path / "o.jsonl",
        "--ledger-out",
        tmp_path / "l.json",
    )
    assert result.returncode == 1
    assert "error[E631]" in result.stderr and "names no account" in result.stderr
    result = run(
        pricing_cmd, "batch", RULESETS, "--usage", usage, "--out", tmp_path / "o.jsonl",
        "--ledger-in", tmp_path / "l.json",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--ledger-in needs --ledger-out" in result.stderr


@st.composite
def deals(draw: st.DrawFn) -> tuple[str, dict[str, dict[str, int]]]:
    start = date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 365)))
    end = start + timedelta(days=draw(st.integers(20, 800)))
    clauses = [
        f"term {start} to {end}",
        f"base {draw(st.integers(0, 300_000)) / 100:.2f} per month",
        f"mau included 1000 overage {draw(st.sampled_from(['0.10', '0.013']))} per user",
    ]
    if draw(st.booleans()):
        clauses.append(f"discount {draw(st.sampled_from(['10', '12.5']))}% on usage")
    if draw(st.booleans()):
        clauses.append(f"cap mau_overage {draw(st.integers(0, 5000))}.00 per month")
    if draw(st.booleans()):
        on = " on usage" if draw(st.booleans()) else ""
        clauses.append(f"commit {draw(st.integers(0, 200_000))}.00 per year{on}")
    if draw(st.booleans()):
        roll = " rollover" if draw(st.booleans()) else ""
        clauses.append(f"prepaid {draw(st.integers(0, 30_000))}.00 per year{roll}")
    if draw(st.booleans()) or not any(c.startswith(("commit", "prepaid")) for c in clauses):
        clauses.append(f"credit {draw(st.integers(0, 5_000))}.00")
    text = (
        'currency USD\nplan p "P" {\n  mau included 1000\n}\n'
        'contract deal "Deal" extends p {\n  ' + "\n  ".join(clauses) + "\n}\n"
    )
    usage = {}
    m = start.replace(day=1)
    while m <= end:
        usage[f"{m:%Y-%m}"] = {"mau": draw(st.integers(0, 40_000))}
        m = (m + timedelta(days=32)).replace(day=1)
    return text, usage


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(deals())
def test_both_engines_agree_with_the_statement(
    tmp_path_factory: pytest.TempPathFactory, deal: tuple[str, dict[str, dict[str, int]]]
) -> None:
    text, usage = deal
    rules = pricing_dsl.loads(text, "deal.pricing")
    statement = rules.statement("deal", usage)
    want = _from_statement(statement, set(usage))
    tmp = tmp_path_factory.mktemp("deal")
    # All months in one file, out of order, beside an account of another contract.
    records = [{"account": "d1", "contract": "deal", "period": k, **v} for k, v in usage.items()]
    records.reverse()
    records.insert(1, {"account": "other", "contract": "p", "mau": 5})
    src = _write(tmp / "usage.jsonl", records)
    for engine in ("python", "duckdb"):
        out, led = tmp / f"{engine}.jsonl", tmp / f"{engine}.ledger.json"
        summary = run_batch(rules, src, out, engine=engine, quiet=True, ledger_out=led)
        assert summary.failed == 0
        assert _added(out) == want, engine
        doc = json.loads(led.read_text())
        (account,) = doc["accounts"]
        got = [(m["reason"], Decimal(m["amount"]), m["year"]) for m in account["movements"]]
        assert got == [(e.reason, e.amount, e.year) for e in statement.ledger]
        assert Decimal(account["movements"][-1]["balance"] if got else "0") == statement.balance
        assert all(Decimal(m["balance"]) >= 0 for m in account["movements"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["accounts"][0].pop("month"), "has no `month`"),
        (lambda d: d["accounts"][0].update(month="2026-13"), "is not YYYY-MM"),
        (lambda d: d["accounts"][0]["balances"][0].update(amount="1E+500"), "is not an amount"),
        (lambda d: d["accounts"][0]["balances"][0].update(amount="-5.00"), "is not an amount"),
        (lambda d: d["accounts"][0]["balances"][0].update(kind="gift"), "not a kind of balance"),
        (lambda d: d["accounts"][0]["committed_spend"].update(year=True), "wrong type"),
        (lambda d: d["accounts"].append(dict(d["accounts"][0])), "in the ledger twice"),
        (lambda d: d.update(version=2), "is not 1"),
        # Changes the schema allows but pricing batch never writes: each would bill
        # the wrong money (a true-up on a year restarted, credit counted twice or
        # unusable, sub-cent balances).
        (lambda d: d["accounts"][0]["committed_spend"].update(year=9), "is not the contract year"),
        (
            lambda d: d["accounts"][0]["balances"].append(dict(d["accounts"][0]["balances"][-1])),
            "listed twice",
        ),
        (
            lambda d: [b.update(year=7) for b in d["accounts"][0]["balances"] if b["year"]],
            "does not belong to 2026-04",
        ),
        (lambda d: d["accounts"][0]["balances"][0].update(amount="1.005"), "finer than"),
        (lambda d: d["accounts"][0]["committed_spend"].update(amount="0.001"), "finer than"),
    ],
)
def test_a_changed_ledger_is_refused_with_what_is_wrong(
    tmp_path: Path, change: Any, words: str
) -> None:
    records = _wayne_records()
    ledger = tmp_path / "l.json"
    run_batch(RULES, _write(tmp_path / "m1.jsonl", records[:2]), tmp_path / "o1.jsonl",
              quiet=True, ledger_out=ledger)  # fmt: skip
    doc = json.loads(ledger.read_text())
    change(doc)
    ledger.write_text(json.dumps(doc))
    with pytest.raises(PricingError) as info:
        run_batch(
            RULES,
            _write(tmp_path / "m2.jsonl", records[2:3]),
            tmp_path / "o2.jsonl",
            ledger_in=ledger,
            ledger_out=tmp_path / "l2.json",
        )
    (d,) = info.value.diagnostics
    assert d.code == "E630" and words in d.message, d.message
    assert d.path == str(ledger) and d.hint


def test_every_output_format_gets_the_same_rows_and_ledger(tmp_path: Path) -> None:
    import duckdb

    usage = _write(tmp_path / "m.jsonl", _wayne_records()[:3])
    found = {}
    for fmt in ("jsonl", "csv", "parquet"):
        out, led = tmp_path / f"o.{fmt}", tmp_path / f"l-{fmt}.json"
        run_batch(RULES, usage, out, engine="python", quiet=True, ledger_out=led)
        source = f"read_csv('{out}', all_varchar = true)" if fmt == "csv" else f"'{out}'"
        rows = duckdb.sql(
            f"SELECT period, code, amount FROM {source} WHERE code IN "
            "('prepaid', 'credit.applied', 'commit.true_up')"
        ).fetchall()
        found[fmt] = (sorted(map(tuple, rows)), led.read_bytes())
    # 2026-03: prepaid 3660.00 and 180.00 of credit; 2026-04: 315.00; 2026-05: 90.00.
    assert found["jsonl"][0] == [
        ("2026-03", "credit.applied", "-180.00"),
        ("2026-03", "prepaid", "3660.00"),
        ("2026-04", "credit.applied", "-315.00"),
        ("2026-05", "credit.applied", "-90.00"),
    ]
    assert found["jsonl"] == found["csv"] == found["parquet"]
