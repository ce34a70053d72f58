"""`pricing batch`: the DuckDB engine, the python engine and the interpreter agree to the cent.

The DuckDB engine compiles contracts to SQL; the python engine rates every
record through ``Ruleset.rate``; ``Ruleset.rate_reference`` is the
interpreter alone.  On the shipped rulesets with hand-made usage, and on
contracts and usage that Hypothesis writes (tiers hit on their bounds and
next to them, `when` and `from` rules, adjustments, currencies with 0 and 2
minor digits, both rounding modes), all three give the same line items.
The engines also write the same bytes and the same error file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._batch import BatchSummary, BatchUsageError, run_batch
from pricing_dsl._cli import main

from .strategies import model_ruleset, model_usage_for, ruleset, usage_for

duckdb = pytest.importorskip("duckdb", reason="the DuckDB engine needs the duckdb package")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "batch"
RULES = pricing_dsl.load(ROOT / "rulesets")
COLUMNS = (
    "account",
    "contract",
    "period",
    "currency",
    "code",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
)
FORMATS = ("jsonl", "csv", "parquet")

Row = tuple[Any, ...]


# ------------------------------------------------------------------ helpers


def plain(q: Decimal) -> str:
    text = f"{q:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def invoice_rows(inv: pricing_dsl.Invoice) -> list[Row]:
    """An invoice's lines as the output rows a batch writes."""
    return [
        (
            inv.account,
            inv.contract,
            None if inv.period is None else str(inv.period),
            inv.currency,
            ln.code,
            ln.description,
            plain(ln.quantity),
            ln.unit,
            None if ln.unit_price is None else f"{ln.unit_price:f}",
            f"{ln.amount:f}",
        )
        for ln in inv.lines
    ]


def reference_rows(rules: pricing_dsl.Ruleset, record: dict[str, Any]) -> list[Row]:
    """What the interpreter alone makes of one record, as output rows."""
    return invoice_rows(rules.rate_reference(record.get("contract"), record))  # type: ignore[arg-type]


def read_rows(path: Path) -> list[Row]:
    if path.suffix == ".parquet":
        con = duckdb.connect()
        try:
            return [
                tuple(r) for r in con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
            ]
        finally:
            con.close()
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(path.read_text("utf-8"), newline="")))
        assert tuple(rows[0]) == COLUMNS
        return [tuple(None if v == "" else v for v in r) for r in rows[1:]]
    out = []
    for line in path.read_text("utf-8").splitlines():
        obj = json.loads(line)
        assert tuple(obj) == COLUMNS
        out.append(tuple(obj.values()))
    return out


def json_value(v: Any) -> str:
    if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def write_usage(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Records as JSON Lines, CSV (values as text) or Parquet (typed columns)."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    if path.suffix == ".jsonl":
        text = "".join(
            "{" + ",".join(f"{json.dumps(k)}:{json_value(v)}" for k, v in r.items()) + "}\n"
            for r in records
        )
        path.write_text(text, "utf-8")
        return
    if path.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(keys)
        w.writerows([["" if r.get(k) is None else str(r[k]) for k in keys] for r in records])
        path.write_text(buf.getvalue(), "utf-8")
        return
    types = {
        "account": "VARCHAR",
        "contract": "VARCHAR",
        "period": "VARCHAR",
        "mau": "HUGEINT",
        "peak_connections": "INTEGER",
    }
    scratch = path.with_suffix(".scratch.csv")
    write_usage(scratch, records)
    con = duckdb.connect()
    try:
        cols = ", ".join(f'CAST("{k}" AS {types.get(k, "DECIMAL(24,7)")}) AS "{k}"' for k in keys)
        con.execute(
            f"COPY (SELECT {cols} FROM read_csv('{scratch}', all_varchar = true)) "
            f"TO '{path}' (FORMAT PARQUET)"
        )
    finally:
        con.close()
        scratch.unlink()


def both(
    rules: pricing_dsl.Ruleset, usage: Path, tmp: Path, out_fmt: str, **kw: Any
) -> tuple[BatchSummary, BatchSummary]:
    """Run both engines; their outputs and error files must be the same."""
    py = run_batch(rules, usage, tmp / f"py.{out_fmt}", engine="python", quiet=True, **kw)
    dk = run_batch(rules, usage, tmp / f"dk.{out_fmt}", engine="duckdb", quiet=True, **kw)
    assert read_rows(tmp / f"py.{out_fmt}") == read_rows(tmp / f"dk.{out_fmt}")
    if out_fmt != "parquet":
        assert (tmp / f"py.{out_fmt}").read_bytes() == (tmp / f"dk.{out_fmt}").read_bytes()
    assert (tmp / "py.errors.jsonl").read_bytes() == (tmp / "dk.errors.jsonl").read_bytes()
    for field in ("records", "rated", "failed", "lines", "errors", "totals"):
        assert getattr(py, field) == getattr(dk, field), field
    return py, dk


def expected(rules: pricing_dsl.Ruleset, records: Iterable[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for r in records:
        with contextlib.suppress(PricingError):
            rows += reference_rows(rules, r)
    return rows


def errors(path: Path) -> list[tuple[int, str, str | None]]:
    return [
        (e["line"], e["code"], e["key"])
        for e in map(json.loads, path.read_text("utf-8").splitlines())
    ]


# ---------------------------------------------------------- shipped rulesets


SHIPPED = DATA / "shipped.jsonl"


def shipped_records() -> list[dict[str, Any]]:
    """The valid JSON objects of the hand-made file (the rest are malformed on purpose)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise ValueError("a key appears twice")
        return dict(items)

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    out = []
    for line in SHIPPED.read_text("utf-8").splitlines():
        try:
            obj = json.loads(
                line, parse_float=Decimal, object_pairs_hook=pairs, parse_constant=no_constants
            )
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def test_shipped_rulesets_agree_with_the_interpreter(tmp_path: Path) -> None:
    py, dk = both(RULES, SHIPPED, tmp_path, "jsonl")
    assert dk.engine == "duckdb" and py.engine == "python"
    assert (dk.records, dk.rated, dk.failed) == (44, 27, 17)
    # Most records are rated by SQL; the rest say why not.
    assert dk.interpreted == 8
    assert dict(dk.reasons) == {
        "values not in the plain form the SQL reads (see docs/batch.md)": 5,
        "no period, or a period not written as a calendar month (YYYY-MM)": 2,
        "the period is only partly inside the contract's term": 1,
    }
    rows = read_rows(tmp_path / "dk.jsonl")
    assert rows == expected(RULES, shipped_records())
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row[3]] = totals.get(row[3], Decimal(0)) + Decimal(row[9])
    assert dict(dk.totals) == totals
    # The golden error file: line numbers count blank lines too.
    assert (tmp_path / "dk.errors.jsonl").read_text("utf-8") == (
        DATA / "shipped.errors.jsonl"
    ).read_text("utf-8")


def test_shipped_rulesets_line_by_line(tmp_path: Path) -> None:
    """A few hand-checked lines, so the agreement above is not agreement in error."""
    run_batch(RULES, SHIPPED, tmp_path / "o.jsonl", quiet=True)
    by = {(r[0], r[4]): (r[6], r[8], r[9]) for r in read_rows(tmp_path / "o.jsonl")}
    assert by["acme-1", "mau_overage"] == ("1250", "0.09", "112.50")
    assert by["acme-1", "video"] == ("96500.5", "0.003", "289.50")
    assert by["acme-2", "mau_overage"] == ("5000", "0.085", "425.00")  # from 2027-01-01
    assert by["acme-2", "addon.moderation"] == ("1", "199.00", "199.00")
    assert by["acme-3", "base"] == ("0.548387", "529.00", "290.10")  # 17/31 of July
    assert by["globex-1", "video"] == ("1200000", "0", "0.00")  # free before October
    assert by["globex-1", "mau_overage"] == ("150000", "0.05", "7500.00")  # above 150k: flat
    assert by["globex-2", "mau_overage"] == ("140000", None, "12000.00")  # at 150k: tiers
    assert by["globex-2", "video"] == ("1000000", "0.002", "2000.00")
    assert by["globex-2", "voice"] == ("9999", "0.001", "10.00")  # 9.999 rounds up
    assert by["globex-3", "mau_overage"] == ("140001", "0.05", "7000.05")
    assert by["globex-3", "video"] == ("999999.9", "0.0025", "2500.00")  # volume, top tier
    assert by["scale-1", "mau_overage"] == ("40000", None, "4000.00")  # graduated, on a bound
    assert by["scale-1", "video"] == ("100000", "0.003", "300.00")  # volume, on a bound
    assert by["scale-2", "mau_overage"] == ("40001", None, "4000.08")  # one above
    assert by["scale-2", "video"] == ("100001", "0.0025", "250.00")  # volume, one above
    assert by["scale-2", "storage_gb"] == ("0.000001", "0.02", "0.00")
    assert by["initech-1", "voice"] == ("100000.5", "0.001", "100.00")  # half_even
    assert by["initech-1", "discount.voice"] == ("1", None, "-10.00")
    assert by["initech-1", "discount.addons"] == ("1", None, "-52.05")
    assert by["initech-1", "minimum"] == ("1", None, "1532.55")
    assert by['Zürich, "AG"', "base"] == ("1", "99.00", "99.00")


@pytest.mark.parametrize("in_fmt", FORMATS)
@pytest.mark.parametrize("out_fmt", FORMATS)
def test_every_format_in_and_out(tmp_path: Path, in_fmt: str, out_fmt: str) -> None:
    records = [
        {k: v for k, v in r.items() if not isinstance(v, dict)}
        for r in shipped_records()
        if isinstance(r.get("contract"), str)
        and all(not isinstance(v, (dict, list)) and v is not None for v in r.values())
        and isinstance(r.get("mau", 0), int)
        and r.get("account") != ""
    ]
    usage = tmp_path / f"usage.{in_fmt}"
    write_usage(usage, records)
    _py, dk = both(RULES, usage, tmp_path, out_fmt)
    assert dk.engine == "duckdb"
    assert dk.records == len(records)
    # The same records, written as text (CSV) or typed (Parquet), mean the same.
    textual = [{k: str(v) for k, v in r.items()} for r in records]
    assert read_rows(tmp_path / f"dk.{out_fmt}") == expected(
        RULES, textual if in_fmt == "csv" else records
    )


# ---------------------------------------------------- generated contracts


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_contracts_agree(data: st.DataObject, tmp_path_factory: Any) -> None:
    text, points = data.draw(ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    n = data.draw(st.integers(1, 25))
    records = [data.draw(usage_for(points, i)) for i in range(n)]
    tmp = tmp_path_factory.mktemp("gen")
    in_fmt = data.draw(st.sampled_from(FORMATS))
    usage = tmp / f"usage.{in_fmt}"
    write_usage(usage, records)
    out_fmt = data.draw(st.sampled_from(FORMATS))
    _py, dk = both(rules, usage, tmp, out_fmt)
    # Every generated contract compiles and every record is plain: all SQL, but
    # for July against a term that starts on the 10th, which the interpreter prorates.
    partial = sum(r["period"] == "2026-07" for r in records) if "07-10" in text else 0
    assert dk.engine == "duckdb" and dk.interpreted == partial, dk.reasons
    assert dk.failed == 0
    textual = [{k: str(v) for k, v in r.items()} for r in records]
    assert read_rows(tmp / f"dk.{out_fmt}") == expected(
        rules, textual if in_fmt == "csv" else records
    )
    # The fast path too, as a third opinion on the amounts.
    for r in records:
        assert rules.rate("c", dict(r)).total == rules.rate_reference("c", dict(r)).total


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_pricing_models_agree(data: st.DataObject, tmp_path_factory: Any) -> None:
    # Contracts with blocks, tier fees, line minimums, caps on any line or
    # group, time-limited discounts and quarterly/yearly fees: both batch
    # engines write the interpreter's line items, whichever of them (SQL or
    # the interpreter) rates each record, and the fast path agrees.
    text, points = data.draw(model_ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    n = data.draw(st.integers(1, 20))
    records = [data.draw(model_usage_for(points, i)) for i in range(n)]
    tmp = tmp_path_factory.mktemp("models")
    in_fmt = data.draw(st.sampled_from(FORMATS))
    usage = tmp / f"usage.{in_fmt}"
    write_usage(usage, records)
    out_fmt = data.draw(st.sampled_from(FORMATS))
    _py, _dk = both(rules, usage, tmp, out_fmt)
    textual = [{k: str(v) for k, v in r.items()} for r in records]
    assert read_rows(tmp / f"dk.{out_fmt}") == expected(
        rules, textual if in_fmt == "csv" else records
    )
    for r in records:
        with contextlib.suppress(PricingError):  # periods outside the term fail alike
            reference = reference_rows(rules, r)
            assert invoice_rows(rules.rate("c", dict(r))) == reference


NUMBER_TOKENS = [
    "0",
    "-0",
    "-0.0",
    "1e3",
    "1E+3",
    "1.5e-7",
    "0.1234567",
    "0.123456",
    "999999999999",
    "1000000000000",
    "999999999999.999999",
    "12.50",
    "007",
    '"12"',
    '"12.5"',
    '" 12"',
    '"1e3"',
    '""',
    "true",
    "null",
    "[1]",
    "{}",
    "NaN",
    "1.0",
    "100000000000000000000",
    "0.000001",
    "5.",
    ".5",
    "-5",
    "2500",
    "42.25",
]
TEXT_TOKENS = {
    "account": ['"a"', '""', "5", '"a,b"', '"Zürich"', '"\\u00e9"', "null", '"x\\"y"'],
    "period": [
        '"2026-08"',
        '"2026-8"',
        '"1899-12"',
        '"9001-01"',
        '"9000-12"',
        '"1900-01"',
        '{"start":"2026-08-01","end":"2026-08-31"}',
        '"2026-08-01..2026-08-31"',
    ],
    "contract": ['"starter"', '"scale"', '"nope"', "5", '""'],
}


@st.composite
def json_line(draw: st.DrawFn) -> str:
    parts = []
    for key, pool in TEXT_TOKENS.items():
        if draw(st.integers(0, 4)):
            parts.append(f'"{key}":{draw(st.sampled_from(pool))}')
    for key in draw(st.lists(st.sampled_from(["mau", "voice_minutes", "sms", "voice_minute"]))):
        parts.append(
            f'"{key}"{draw(st.sampled_from([":", " : ", ": "]))}'
            f"{draw(st.sampled_from(NUMBER_TOKENS))}"
        )
    end = draw(st.sampled_from(["}", ",}", " } "]))
    return draw(st.sampled_from(["{", " {", "{ "])) + ",".join(parts) + end


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(json_line(), min_size=1, max_size=30))
def test_unusual_values_are_judged_like_the_interpreter(
    lines: list[str], tmp_path_factory: Any
) -> None:
    """Whatever the SQL takes as plain, the interpreter reads the same; the rest it rates."""
    tmp = tmp_path_factory.mktemp("odd")
    usage = tmp / "odd.jsonl"
    usage.write_text("\n".join(lines) + "\n", "utf-8")
    _py, dk = both(RULES, usage, tmp, "jsonl")
    assert dk.engine == "duckdb"


def test_unusual_csv_cells_are_judged_like_the_interpreter(tmp_path: Path) -> None:
    cells = [t.strip('"') if t.count('"') == 2 else t for t in NUMBER_TOKENS]
    usage = tmp_path / "odd.csv"
    with open(usage, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["account", "contract", "period", "mau", "voice_minutes", "sms"])
        for i, a in enumerate(cells):
            for b in cells[i % 3 :: 3]:
                out.writerow([f"acct,{i}", "starter", "2026-08", a, b, cells[-i]])
    _py, dk = both(RULES, usage, tmp_path, "csv")
    assert dk.engine == "duckdb"
    assert 0 < dk.interpreted < dk.rated < dk.records


ROUNDING_TIES = """
currency {currency}
rounding {rounding}
plan p "P" {{
  base 0 per month
  mau included 0 overage 0.005 per user
  concurrency 0% overage 0 per connection
  voice 0.0005 per minute
  video 0.0025 per minute
}}
contract c "C" extends p {{
  discount 50% on mau_overage
  discount 10% on usage
  discount 0.005 per month
  cap voice 0.015 per month
}}
"""


@pytest.mark.parametrize("rounding", ["half_up", "half_even"])
@pytest.mark.parametrize("currency", ["USD", "JPY"])
def test_rounding_ties_positive_and_negative(tmp_path: Path, rounding: str, currency: str) -> None:
    """Ties on usage lines and on (negative) adjustments round as the interpreter rounds."""
    rules = pricing_dsl.loads(ROUNDING_TIES.format(rounding=rounding, currency=currency))
    records = [
        {
            "account": f"a{i}",
            "contract": "c",
            "period": "2026-08",
            "mau": i,
            "voice_minutes": i * 10,
            "video_minutes": Decimal(i) / 2,
        }
        for i in [*range(0, 12), 99, 100, 101, 199, 201, 300, 999, 1001, 1999, 2001]
    ]
    usage = tmp_path / "usage.jsonl"
    write_usage(usage, records)
    _py, dk = both(rules, usage, tmp_path, "jsonl")
    assert dk.interpreted == 0 and dk.failed == 0
    rows = read_rows(tmp_path / "dk.jsonl")
    assert rows == expected(rules, records)
    got = {(r[0], r[4]): r[9] for r in rows}
    # mau x 0.005 ties at odd counts (USD) and at odd hundreds (JPY); the 50% discount
    # then ties again, below zero, where half_up rounds away from zero.
    ties = {
        ("USD", "half_up"): {"a1": ("0.01", "-0.01"), "a5": ("0.03", "-0.02")},
        ("USD", "half_even"): {"a1": ("0.00", "0.00"), "a5": ("0.02", "-0.01")},
        ("JPY", "half_up"): {"a100": ("1", "-1"), "a300": ("2", "-1")},
        ("JPY", "half_even"): {"a100": ("0", "0"), "a300": ("2", "-1")},
    }[currency, rounding]
    for account, (line, discount) in ties.items():
        assert (got[account, "mau_overage"], got[account, "discount.mau_overage"]) == (
            line,
            discount,
        )


# ------------------------------------------------------- errors and lines


def test_error_file_has_line_numbers_and_the_projects_messages(tmp_path: Path) -> None:
    usage = tmp_path / "u.jsonl"
    usage.write_text(
        "\n".join(
            [
                '{"contract": "starter", "period": "2026-08", "mau": 1}',
                "",
                "   ",
                '{"contract": "starter", "period": "2026-08", "mau": -1}',
                '{"contract": "nope", "period": "2026-08"}',
                "{oops",
                '{"period": "2026-08"}',
                '{"contract": "starter", "period": "2026-08", "mau": 1.5, "sms": "x"}',
            ]
        )
        + "\n",
        "utf-8",
    )
    summary = run_batch(RULES, usage, tmp_path / "o.csv", errors_path=tmp_path / "e.csv")
    assert (summary.records, summary.rated, summary.failed) == (6, 1, 5)
    rows = list(csv.reader(io.StringIO((tmp_path / "e.csv").read_text("utf-8"))))
    assert rows[0] == ["line", "code", "key", "message", "hint"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("4", "E401", "mau"),
        ("5", "E301", "contract"),
        ("6", "E400", ""),
        ("7", "E404", "contract"),
        ("8", "E401", "mau"),
        ("8", "E401", "sms"),
    ]
    assert rows[1][3] == "`mau` must be a whole number of users, 0 or more; got -1"
    assert rows[2][3] == "no plan or contract `nope`"
    assert summary.errors == 6


def test_csv_quoting_bom_crlf_and_bad_rows(tmp_path: Path) -> None:
    usage = tmp_path / "u.csv"
    usage.write_bytes(
        b"\xef\xbb\xbfaccount,contract,period,mau,voice_minutes\r\n"
        b'"Acme, ""Inc.""",starter,2026-08,2000,1.5\r\n'
        b"plain,starter,2026-08,,\r\n"
        b"\r\n"
        b"short,starter\r\n"
        b'"quoted",starter,2026-08,0007,"12.25"\r\n'
        b"bad,starter,2026-08,1.0,\r\n"
        + b"x" * 140_000  # longer than the csv module's field limit
        + b",starter,2026-08,1,\r\n"
    )
    _py, dk = both(RULES, usage, tmp_path, "csv")
    assert dk.engine == "duckdb"
    assert (dk.records, dk.rated, dk.failed) == (6, 3, 3)
    assert errors(tmp_path / "dk.errors.jsonl") == [
        (5, "E400", None),
        (7, "E401", "mau"),
        (8, "E400", None),
    ]
    text = (tmp_path / "dk.csv").read_text("utf-8")
    assert text.splitlines()[1].startswith('"Acme, ""Inc.""",starter,2026-08,USD,base,')


def test_files_duckdb_cannot_split_like_python_go_to_the_python_engine(tmp_path: Path) -> None:
    lone_cr = tmp_path / "cr.jsonl"
    lone_cr.write_bytes(
        b'{"contract":"starter","period":"2026-08","mau":2000}\r'
        b'{"contract":"starter","period":"2026-08"}\n'
    )
    multiline = tmp_path / "ml.csv"
    multiline.write_text('account,contract,period\n"two\nlines",starter,2026-08\n', "utf-8")
    not_utf8 = tmp_path / "latin.jsonl"
    not_utf8.write_bytes(
        b'{"contract":"starter","period":"2026-08"}\n{"account":"Z\xfcrich","contract":"starter"}\n'
    )
    for usage, errs in (
        (lone_cr, [(1, "E400", None)]),
        (multiline, []),
        (not_utf8, [(2, "E400", None)]),
    ):
        _py, dk = both(RULES, usage, tmp_path, "jsonl")
        assert dk.engine == "python (fallback)"
        assert "the python engine rated" in dk.notes[0]
        assert errors(tmp_path / "dk.errors.jsonl") == errs


def test_crlf_json_lines_are_read_in_place(tmp_path: Path) -> None:
    usage = tmp_path / "crlf.jsonl"
    usage.write_bytes(
        b'{"contract":"starter","period":"2026-08","mau":2000}\r\n\r\n'
        b'{"contract":"starter","period":"2026-08","mau":-2}\r\n'
    )
    _py, dk = both(RULES, usage, tmp_path, "jsonl")
    assert dk.engine == "duckdb"
    assert errors(tmp_path / "dk.errors.jsonl") == [(3, "E401", "mau")]


def test_parquet_types(tmp_path: Path) -> None:
    """Exact doubles are read by SQL; inexact ones are refused as the interpreter refuses them."""
    usage = tmp_path / "typed.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT * FROM (VALUES
          ('a', 'starter', '2026-08', 2000::BIGINT, 0.5::DOUBLE, 12.125::DECIMAL(9,3), 'x'),
          ('b', 'starter', '2026-08', NULL, 0.1::DOUBLE, NULL, NULL),
          ('c', 'starter', '2026-08', 3::BIGINT, 1e300::DOUBLE, NULL, NULL),
          ('d', 'starter', '2026-08', -1::BIGINT, NULL, 1.0000001::DECIMAL(9,7), NULL),
          (NULL, 'starter', '2026-08', 7::BIGINT, 7.0::DOUBLE, 1.5::DECIMAL(9,3), NULL)
        ) t(account, contract, period, mau, voice_minutes, video_minutes, extra))
        TO '{usage}' (FORMAT PARQUET)"""
    )
    con.close()
    _py, dk = both(RULES, usage, tmp_path, "parquet")
    assert dk.engine == "duckdb"
    assert [(e[0], e[1]) for e in errors(tmp_path / "dk.errors.jsonl")] == [
        (1, "E401"),  # `extra` is not a usage key
        (2, "E401"),  # 0.1 is not exactly 0.1 in binary
        (3, "E401"),  # far too large
        (4, "E401"),  # negative MAU
    ]
    assert dk.rated == 1 and dk.interpreted == 0


def test_a_contract_that_does_not_compile_is_interpreted_and_says_why(tmp_path: Path) -> None:
    rules = pricing_dsl.loads(
        "currency USD\n"
        'plan p "P" {\n  base 10 per month\n  mau included 10 overage 1 per user\n}\n'
        'contract c "C" extends p {\n'
        # The interpreter divides to 100 digits: 1 / 3 * 3 is 0.999...9, not 1.
        "  when video_minutes / voice_minutes * 3 == 1 {\n    base 20 per month\n  }\n}\n"
    )
    records = [
        {"contract": "c", "period": "2026-08", "voice_minutes": m, "video_minutes": v}
        for m, v in [(0, 5), (3, 1), (6, 2), (4, 1)]
    ]
    usage = tmp_path / "u.jsonl"
    write_usage(usage, records)
    _py, dk = both(rules, usage, tmp_path, "jsonl")
    assert dk.interpreted == 4
    ((why, n),) = dk.reasons
    assert n == 4 and why.startswith("contract `c` does not compile to SQL: a condition divides")
    assert read_rows(tmp_path / "dk.jsonl") == expected(rules, records)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_date_range_period_written_out_reads_back_in(tmp_path: Path, fmt: str) -> None:
    """The output's `period` column (`start..end`) is a period CSV and Parquet inputs accept."""
    first = tmp_path / "first.jsonl"
    period = {"start": "2026-08-01", "end": "2026-08-15"}
    write_usage(first, [{"account": "a1", "contract": "starter", "period": period, "mau": 3000}])
    out = tmp_path / f"first-out.{fmt}"
    run_batch(RULES, first, out, quiet=True)
    rows = read_rows(out)
    assert {r[2] for r in rows} == {"2026-08-01..2026-08-15"}
    # Starter: 99.00 a month for 15 of 31 days is 47.90; 3000 - 1000 users at 0.12 is 240.00.
    assert [(r[4], r[9]) for r in rows][:2] == [("base", "47.90"), ("mau_overage", "240.00")]
    again = tmp_path / f"again.{fmt}"
    write_usage(
        again,
        [
            {"account": "a1", "contract": "starter", "period": rows[0][2], "mau": 3000},
            {"account": "a2", "contract": "starter", "period": "2026-08-01..2026-13-15"},
        ],
    )
    _py, dk = both(RULES, again, tmp_path, fmt)
    assert read_rows(tmp_path / f"dk.{fmt}") == rows
    assert (dk.rated, dk.failed) == (1, 1)
    assert errors(tmp_path / "dk.errors.jsonl") == [(3 if fmt == "csv" else 2, "E401", "period")]


# ---------------------------------------------------- safety of the output


@pytest.mark.parametrize("out_fmt", FORMATS)
def test_reruns_are_byte_identical(tmp_path: Path, out_fmt: str) -> None:
    first = tmp_path / f"a.{out_fmt}"
    second = tmp_path / f"b.{out_fmt}"
    run_batch(RULES, SHIPPED, first, quiet=True)
    run_batch(RULES, SHIPPED, second, quiet=True)
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.errors.jsonl").read_bytes() == (tmp_path / "b.errors.jsonl").read_bytes()


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_a_failed_run_leaves_no_partial_output(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "lines.jsonl"
    out.write_text("yesterday's run\n", "utf-8")
    from pricing_dsl._batch import _records

    real = _records.rate_record
    calls = [0]

    def flaky(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("the disk caught fire")
        return real(*args)

    monkeypatch.setattr(_records, "rate_record", flaky)
    monkeypatch.setattr("pricing_dsl._batch._python.rate_record", flaky)
    monkeypatch.setattr("pricing_dsl._batch._duck.rate_record", flaky)
    with pytest.raises(RuntimeError):
        run_batch(RULES, SHIPPED, out, engine=engine, quiet=True)
    assert out.read_text("utf-8") == "yesterday's run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.jsonl"]


# A `pricing batch` whose DuckDB query never ends, interrupted as Ctrl-C would.
_ENDLESS_BATCH = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
import pricing_dsl._duckdb
# One thread: DuckDB looks for Ctrl-C between the tasks the calling thread
# runs, and with worker threads holding every task it may not look until the
# query ends (which this one never does).
pricing_dsl._duckdb.NO_DOWNLOADS["threads"] = 1
import pricing_dsl._batch._duck as duck
def endless(*args):
    sys.stderr.write("reading\\n")
    sys.stderr.flush()
    return "SELECT i FROM range(1000000000000) t(i) WHERE hash(i) = 42"
duck._stage1 = endless
from pricing_dsl._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_a_duckdb_query_exits_130_and_keeps_the_old_output(tmp_path: Path) -> None:
    """DuckDB's own "Query interrupted" becomes `pricing: interrupted`, exit 130."""
    import signal
    import time

    usage = tmp_path / "u.jsonl"
    usage.write_text('{"contract": "starter", "period": "2026-08", "mau": 10}\n', "utf-8")
    out = tmp_path / "lines.jsonl"
    out.write_text("yesterday's run\n", "utf-8")
    argv = [sys.executable, "-c", _ENDLESS_BATCH, "batch", str(ROOT / "rulesets")]
    argv += ["--usage", str(usage), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == "reading\n"  # the query is about to start
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in err
    assert err.endswith("pricing: interrupted\n"), err
    assert proc.returncode == 130
    assert out.read_text("utf-8") == "yesterday's run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.jsonl", "u.jsonl"]


def test_an_error_file_that_is_a_directory_stops_the_run_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lines.jsonl"
    out.write_text("yesterday's run\n", "utf-8")
    (tmp_path / "errs.jsonl").mkdir()
    for engine in ("duckdb", "python"):
        argv = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED), "--out", str(out)]
        argv += ["--errors", str(tmp_path / "errs.jsonl"), "--engine", engine]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"pricing: error: the error file `{tmp_path / 'errs.jsonl'}` is a directory" in err
        assert out.read_text("utf-8") == "yesterday's run\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["errs.jsonl", "lines.jsonl"]
    with pytest.raises(BatchUsageError, match=r"the output file .* is a directory"):
        run_batch(RULES, SHIPPED, tmp_path / "errs.jsonl", errors_path=tmp_path / "e.csv")


@pytest.mark.parametrize("existed", [True, False])
def test_the_output_is_replaced_only_with_the_error_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool
) -> None:
    """If the error file cannot take its place, the output goes back to what it was."""
    out = tmp_path / "lines.jsonl"
    errs = tmp_path / "lines.errors.jsonl"
    if existed:
        out.write_text("yesterday's run\n", "utf-8")
    errs.write_text("yesterday's errors\n", "utf-8")
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == errs:
            raise PermissionError(13, "Permission denied", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(pricing_dsl._batch.BatchError, match="Permission denied"):
        run_batch(RULES, SHIPPED, out, quiet=True)
    if existed:
        assert out.read_text("utf-8") == "yesterday's run\n"
    assert errs.read_text("utf-8") == "yesterday's errors\n"
    expected_files = ["lines.errors.jsonl", "lines.jsonl"] if existed else ["lines.errors.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected_files


def test_empty_input_gives_empty_output(tmp_path: Path) -> None:
    for name, content in (("e.jsonl", ""), ("e.csv", "account,contract,period\n"), ("f.csv", "")):
        usage = tmp_path / name
        usage.write_text(content, "utf-8")
        for out_fmt in FORMATS:
            _py, dk = both(RULES, usage, tmp_path, out_fmt)
            assert (dk.records, dk.lines, dk.engine) == (0, 0, "duckdb")
            assert read_rows(tmp_path / f"dk.{out_fmt}") == []


def test_the_batch_api_is_public_and_its_errors_are_pricing_errors(tmp_path: Path) -> None:
    assert pricing_dsl.run_batch is run_batch
    assert pricing_dsl.BatchSummary is BatchSummary
    assert {"run_batch", "BatchError", "BatchUsageError"} <= set(pricing_dsl.__all__)
    usage = tmp_path / "u.jsonl"
    usage.write_text("", "utf-8")
    with pytest.raises(pricing_dsl.PricingError) as info:
        pricing_dsl.run_batch(RULES, usage, tmp_path / "o.jsonl", engine="flink")
    assert isinstance(info.value, pricing_dsl.BatchUsageError)
    assert isinstance(info.value, ValueError)
    assert info.value.codes == ["E621"]
    assert str(info.value).startswith("unknown engine")
    assert issubclass(pricing_dsl.BatchError, pricing_dsl.PricingError)
    assert pricing_dsl.BatchError("disk full").codes == ["E620"]


def test_bad_requests(tmp_path: Path) -> None:
    usage = tmp_path / "u.jsonl"
    usage.write_text("", "utf-8")
    with pytest.raises(BatchUsageError, match="format of the output file"):
        run_batch(RULES, usage, tmp_path / "o.txt")
    with pytest.raises(BatchUsageError, match="must differ"):
        run_batch(RULES, usage, usage)
    with pytest.raises(BatchUsageError, match="does not exist"):
        run_batch(RULES, usage, tmp_path / "missing" / "o.jsonl")
    with pytest.raises(BatchUsageError, match="unknown engine"):
        run_batch(RULES, usage, tmp_path / "o.jsonl", engine="flink")
    with pytest.raises(PricingError) as exc:
        run_batch(RULES, tmp_path / "none.jsonl", tmp_path / "o.jsonl")
    assert exc.value.codes == ["E402"]
    dup = tmp_path / "dup.csv"
    dup.write_text("mau,mau\n1,2\n", "utf-8")
    for engine in ("duckdb", "python"):
        with pytest.raises(PricingError, match="appears twice"):
            run_batch(RULES, dup, tmp_path / "o.jsonl", engine=engine)


# ----------------------------------------------------------------- the CLI


def test_cli_exit_status_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.csv"
    good.write_text("contract,period,mau\nstarter,2026-08,2000\nacme,2026-08,30000\n", "utf-8")
    args = [
        "batch",
        str(ROOT / "rulesets"),
        "--usage",
        str(good),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "pricing batch: 2 records: 2 rated, 0 failed" in err
    assert "total USD 1,948.00" in err and "engine duckdb" in err  # 219 + 1729
    assert main([*args[:-1], str(tmp_path / "o.csv"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert (
        main(
            [
                "batch",
                str(ROOT / "rulesets"),
                "--usage",
                str(SHIPPED),
                "--out",
                str(tmp_path / "s.parquet"),
                "--errors",
                str(tmp_path / "s.csv"),
                "--quiet",
            ]
        )
        == 1
    )
    assert "17 of 44 records failed; see" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "o.xlsx")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert (
        main(
            [
                "batch",
                str(ROOT / "rulesets"),
                "--usage",
                str(tmp_path / "no.jsonl"),
                "--out",
                str(tmp_path / "o.jsonl"),
            ]
        )
        == 1
    )
    assert "E402" in capsys.readouterr().err


def test_importing_the_package_does_not_import_duckdb() -> None:
    code = (
        "import sys, pricing_dsl, pricing_dsl._batch, pricing_dsl._batch._cli; "
        "print('duckdb' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.stdout.strip() == "False"


def test_a_duckdb_that_rounds_differently_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine checks DuckDB's rounding of ties against Python's before trusting it."""
    from pricing_dsl._batch import _duck, _sql

    def wrong() -> tuple[str, list[tuple[str, str, list[str]]]]:
        sql, cases = _sql.rounding_self_check()
        return sql, [(m, p, ["0", *expected[1:]]) for m, p, expected in cases]

    monkeypatch.setattr(_duck, "rounding_self_check", wrong)
    _py, dk = both(RULES, SHIPPED, tmp_path, "csv")
    assert dk.engine == "python (fallback)"
    assert "rounds DECIMAL ties unlike Python" in dk.notes[0]


def test_every_duckdb_connection_refuses_to_fetch_extensions() -> None:
    """A billing run never downloads code: every connection is opened by _duckdb.connect."""
    from pricing_dsl._duckdb import connect

    con = connect()
    try:
        assert con.execute(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).fetchall() == [(False, False)]
    finally:
        con.close()
    package = ROOT / "pricing_dsl"
    opened_elsewhere = [
        str(p.relative_to(package))
        for p in sorted(package.rglob("*.py"))
        if p.name != "_duckdb.py" and "duckdb.connect(" in p.read_text("utf-8")
    ]
    assert opened_elsewhere == []
