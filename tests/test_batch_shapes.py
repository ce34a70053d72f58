"""`pricing batch` with SQL per plan shape: golden cases, many contracts, quantities.

The DuckDB engine generates SQL once per plan *shape* and reads each
contract's numbers from a terms table, so its SQL must not grow with the
number of contracts of one shape.  Every golden case of data/valid/ also
runs through both batch engines and must give the line items of
``Ruleset.rate``, to the cent.
"""

from __future__ import annotations

import contextlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._usage import load_usage_file

from .conftest import DATA
from .test_batch import Row, both, invoice_rows, read_rows, write_usage

duckdb = pytest.importorskip("duckdb", reason="the DuckDB engine needs the duckdb package")

CASES = sorted(p.parent for p in (DATA / "valid").glob("*/expected.json"))


def rate_rows(rules: pricing_dsl.Ruleset, record: dict[str, Any]) -> list[Row]:
    """``Ruleset.rate``'s line items for one record, as output rows ([] if it fails)."""
    with contextlib.suppress(PricingError):
        inv = rules.rate(record["contract"], {k: v for k, v in record.items() if k != "contract"})
        return invoice_rows(inv)
    return []


# ------------------------------------------------------------ golden cases


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_through_both_batch_engines(case: Path, tmp_path: Path) -> None:
    expected = json.loads((case / "expected.json").read_text("utf-8"))
    rules = pricing_dsl.load(case / "ruleset.pricing")
    usage_file = next(p for p in (case / "usage.yaml", case / "usage.json") if p.exists())
    usage = load_usage_file(str(usage_file), rules.meters)
    contract = expected["contract"]
    record: dict[str, Any] = {"contract": contract, **usage.values}
    if usage.account is not None:
        record["account"] = usage.account
    # The case's own record, as it is (without a period, or with a partial
    # one, the DuckDB engine leaves it to the interpreter), and the same usage
    # in whole months, the form the SQL rates.
    records = [record if usage.period is None else {**record, "period": usage.period.to_json()}]
    records += [{**record, "period": month} for month in ("2026-08", "2027-02")]
    path = tmp_path / "usage.jsonl"
    write_usage(path, records)
    _py, dk = both(rules, path, tmp_path, "jsonl")
    rows = read_rows(tmp_path / "dk.jsonl")
    want = [row for r in records for row in rate_rows(rules, r)]
    assert rows == want
    if "issue_date" not in expected:
        # The case's own record, as written by the batch: the amounts computed by hand.
        own = {row[4]: row[9] for row in rows[: len(rate_rows(rules, records[0]))]}
        assert own == expected["lines"]
    # Whole months inside the term (or with no term) are rated by SQL.
    term = rules.contracts[contract].static_terms.get(("term",))
    sql_months = sum(
        1
        for r in records
        if isinstance(r.get("period"), str)
        and (
            term is None
            or (term.value[0].isoformat()[:7] < r["period"] < term.value[1].isoformat()[:7])
        )
        and rate_rows(rules, r)
    )
    assert dk.interpreted <= len(records) - sql_months, dk.reasons


# ------------------------------------------------- many contracts, one shape

PLAN = """currency USD

addon hipaa "HIPAA compliance" 500.00 per month

plan std "Standard" {
  base 99.00 per month
  mau included 1000 overage 0.12 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
"""


def many(n: int) -> str:
    """N contracts of one shape, each restating its numbers (with the same digits)."""
    parts = [PLAN]
    for i in range(n):
        parts.append(
            f'contract c{i:04d} "Customer {i:04d}" extends std {{\n'
            f"  mau included {1000 + i} overage 0.{10 + i % 80} per user\n"
            f"  concurrency {1 + i % 9}%\n"
            f"  video 0.00{10 + i % 80} per minute\n"
            f"  addons hipaa\n  addon hipaa {400 + i % 100}.00 per month\n"
            f"  discount 1{i % 10}% on usage\n"
            f"  cap video {100 + i % 900} per month\n"
            "}\n"
        )
    return "\n".join(parts)


class _Recording:
    """A DuckDB connection (or cursor) that notes the SQL it runs."""

    def __init__(self, inner: Any, log: list[str]) -> None:
        self._inner = inner
        self._log = log

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._log.append(sql)
        return self._inner.execute(sql, *args, **kwargs)

    def cursor(self) -> _Recording:
        return _Recording(self._inner.cursor(), self._log)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _statements(
    n: int, tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], pricing_dsl.Ruleset, list[dict[str, Any]]]:
    rules = pricing_dsl.loads(many(n), "many.pricing")
    records = [
        {
            "account": f"a{i:05d}",
            "contract": f"c{i % n:04d}",
            "period": "2026-08",
            "mau": 1500 + 37 * i,
            "peak_connections": 40 + i % 70,
            "voice_minutes": Decimal(i * 13) / 10,
            "video_minutes": 90000 + i * 7,
        }
        for i in range(2 * n)
    ]
    return sql_of_run(rules, records, tmp / f"n{n:04d}", monkeypatch), rules, records


def sql_of_run(
    rules: pricing_dsl.Ruleset,
    records: list[dict[str, Any]],
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Rate ``records`` with the DuckDB engine in ``directory``: the SQL it ran.

    Every record must be rated in SQL (none left to the interpreter).
    """
    directory.mkdir()
    usage = directory / "usage.jsonl"
    write_usage(usage, records)
    log: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: _Recording(real(*a, **k), log))
    try:
        summary = pricing_dsl._batch.run_batch(
            rules, usage, directory / "out.jsonl", engine="duckdb", quiet=True
        )
    finally:
        monkeypatch.setattr(duckdb, "connect", real)
    assert summary.interpreted == 0 and summary.rated == len(records), summary.reasons
    return log


def test_sql_does_not_grow_with_contracts_of_one_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few, _, _ = _statements(20, tmp_path, monkeypatch)
    lots, rules, records = _statements(400, tmp_path, monkeypatch)
    # Statement by statement, the same SQL text for 20 contracts and for 400
    # (the file names have the same length): the numbers travel as data.
    assert [len(s) for s in few] == [len(s) for s in lots]
    assert not any("c0399" in s or "Customer 0399" in s for s in lots)
    # And the amounts are still the interpreter's.
    rows = read_rows(tmp_path / "n0400" / "out.jsonl")
    assert rows == [row for r in records for row in rate_rows(rules, r)]


def test_plans_of_one_shape_with_numbers_of_different_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots are typed by the widest number of the shape; where that cannot fit, shapes split."""
    text = PLAN + "".join(
        f'contract k{i} "K{i}" extends std {{\n'
        f"  video {price} per minute\n  mau included {inc}\n}}\n"
        for i, (price, inc) in enumerate(
            [
                ("0.1", "5"),
                ("0.12345", "123456789"),
                ("7", "0"),
                # Alone each fits in 38 digits; typed together they would not.
                ("0.000000001", "10"),
                ("100000000000000", "10"),
            ]
        )
    )
    rules = pricing_dsl.loads(text, "widths.pricing")
    records = [
        {"contract": f"k{i}", "period": "2026-08", "mau": m, "video_minutes": v}
        for i in range(5)
        for m, v in ((0, 0), (123456790, Decimal("999999999999.999999")), (7, Decimal("0.5")))
    ]
    usage = tmp_path / "u.jsonl"
    write_usage(usage, records)
    log: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: _Recording(real(*a, **k), log))
    _py, dk = both(rules, usage, tmp_path, "jsonl")
    assert dk.interpreted == 0
    assert read_rows(tmp_path / "dk.jsonl") == [row for r in records for row in rate_rows(rules, r)]
    # One shape, but the last plan's 15-digit price and the 9 decimals of
    # another would not fit DECIMAL(38) typed together: split in two, not five.
    (copy,) = [s for s in log if s.startswith("COPY")]
    assert re.findall(r"WHEN (\d+) THEN concat_ws", copy) == ["0", "1"]


# ------------------------------------------------------------- quantities


@pytest.mark.parametrize("in_fmt", ["csv", "jsonl"])
def test_quantities_are_written_without_trailing_zeros(tmp_path: Path, in_fmt: str) -> None:
    rules = pricing_dsl.loads(PLAN + 'contract c "C" extends std {\n  voice included 0.25\n}\n')
    records = [
        {"contract": "c", "period": "2026-08", "video_minutes": "182000.50", "voice_minutes": v}
        for v in ("100.00", "100.25", "0.250000")
    ]
    usage = tmp_path / f"u.{in_fmt}"
    if in_fmt == "csv":
        write_usage(usage, records)
    else:
        usage.write_text(
            "".join(
                '{"contract":"c","period":"2026-08","video_minutes":182000.50,'
                f'"voice_minutes":{r["voice_minutes"]}}}\n'
                for r in records
            ),
            "utf-8",
        )
    _py, dk = both(rules, usage, tmp_path, "jsonl")
    assert dk.interpreted == 0
    quantities = [
        (r[4], r[6]) for r in read_rows(tmp_path / "dk.jsonl") if r[4] in ("voice", "video")
    ]
    assert quantities == [
        ("voice", "99.75"),
        ("video", "182000.5"),
        ("voice", "100"),
        ("video", "182000.5"),
        ("voice", "0"),
        ("video", "182000.5"),
    ]
