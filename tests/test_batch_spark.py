"""`pricing batch --engine spark`: the same bytes as the python engine, on a local Spark session.

Spark reads the usage file and its executors rate each record with the
python engine's own code, so the Spark engine must write byte for byte the
python engine's output and error files (and, through DuckDB's writer, the
same Parquet).  These tests hold it to that on the shipped rulesets, on
files that Spark splits into many pieces, on malformed lines, and on
contracts and usage that Hypothesis writes (compared with DuckDB and the
interpreter too).  Every test that runs Spark shares one local session; they
are skipped, saying why, only where there is no Java runtime.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl._batch import BatchError, BatchSummary, run_batch
from pricing_dsl._batch import _spark as spark_engine
from pricing_dsl._cli import main

from .conftest import LEAN_JVM
from .strategies import ruleset, usage_for
from .test_batch import FORMATS, SHIPPED, expected, read_rows, shipped_records, write_usage

ROOT = Path(__file__).resolve().parent.parent
RULES = pricing_dsl.load(ROOT / "rulesets")
SUMMARY_FIELDS = ("records", "rated", "failed", "lines", "errors", "totals", "interpreted")


def on_spark(rules: pricing_dsl.Ruleset, usage: Path, out: Path, spark: Any, **kw: Any) -> Any:
    return run_batch(rules, usage, out, engine="spark", spark_session=spark, quiet=True, **kw)


def same_as_python(
    rules: pricing_dsl.Ruleset, usage: Path, tmp: Path, out_fmt: str, spark: Any
) -> tuple[BatchSummary, BatchSummary]:
    """Run the python and Spark engines: the same output bytes, error file and counts."""
    py = run_batch(rules, usage, tmp / f"py.{out_fmt}", engine="python", quiet=True)
    sp = on_spark(rules, usage, tmp / f"sp.{out_fmt}", spark)
    if out_fmt == "parquet":
        assert read_rows(tmp / "py.parquet") == read_rows(tmp / "sp.parquet")
    assert (tmp / f"py.{out_fmt}").read_bytes() == (tmp / f"sp.{out_fmt}").read_bytes()
    assert (tmp / "py.errors.jsonl").read_bytes() == (tmp / "sp.errors.jsonl").read_bytes()
    for field in SUMMARY_FIELDS:
        assert getattr(py, field) == getattr(sp, field), field
    return py, sp


def errors(path: Path) -> list[tuple[int, str, str | None]]:
    return [
        (e["line"], e["code"], e["key"])
        for e in map(json.loads, path.read_text("utf-8").splitlines())
    ]


# ---------------------------------------------------------- shipped rulesets


@pytest.mark.parametrize("fmt", FORMATS)
def test_shipped_rulesets_give_the_python_engines_bytes(
    fmt: str, tmp_path: Path, spark: Any
) -> None:
    if fmt == "jsonl":
        usage = SHIPPED
    else:
        # The shipped records that CSV and Parquet can hold, as test_batch writes them.
        usage = tmp_path / f"usage.{fmt}"
        write_usage(
            usage,
            [
                r
                for r in shipped_records()
                if all(not isinstance(v, (dict, list)) and v is not None for v in r.values())
                and isinstance(r.get("contract"), str)
            ],
        )
    setting = spark.conf.get("spark.sql.files.maxPartitionBytes")
    _py, sp = same_as_python(RULES, usage, tmp_path, fmt, spark)
    assert sp.engine == "spark" and sp.interpreted == 0 and sp.notes == ()
    if fmt == "jsonl":
        assert (sp.records, sp.rated, sp.failed) == (44, 27, 17)
        # The golden error file: line numbers count blank lines too.
        assert (tmp_path / "sp.errors.jsonl").read_bytes() == (
            SHIPPED.with_name("shipped.errors.jsonl")
        ).read_bytes()
    # A borrowed session is left as it was found.
    assert spark.conf.get("spark.sql.files.maxPartitionBytes") == setting
    assert spark.sparkContext.pythonExec == "python3" or "PYSPARK_PYTHON" in os.environ


# ----------------------------------------------- line numbers across splits


def many_records(n: int) -> list[str]:
    """JSON Lines with blank lines, bad records and odd bytes between good ones."""
    lines = []
    for i in range(n):
        kind = i % 11
        if kind == 3:
            lines.append("")
        elif kind == 5:
            lines.append('{"contract": "starter", "period": "2026-08", "mau": -1}')
        elif kind == 7:
            lines.append(f'{{"account": "a{i}", "contract": "nope"}}')
        elif kind == 9:
            lines.append("{not json")
        else:
            lines.append(
                json.dumps(
                    {
                        "account": f"acct-{i}",
                        "contract": ["starter", "acme", "scale", "globex"][i % 4],
                        "period": "2026-08",
                        "mau": 900 + 37 * i,
                        "voice_minutes": f"{i}.5",
                    }
                )
            )
    return lines


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_split_in_many_pieces_keep_their_line_numbers(
    fmt: str, tmp_path: Path, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny splits, chunks and buckets: every boundary between them is crossed many times."""
    monkeypatch.setattr(spark_engine, "SPLIT_BYTES_MIN", 4096)
    monkeypatch.setattr(spark_engine, "TASKS_PER_CORE", 16)
    monkeypatch.setattr(spark_engine, "ROWS_PER_TASK", 97)
    monkeypatch.setattr(spark_engine, "RECORDS_PER_CHUNK", 7)
    monkeypatch.setattr(spark_engine, "LINES_PER_BUCKET", 101)
    lines = many_records(1500)
    if fmt == "jsonl":
        usage = tmp_path / "usage.jsonl"
        usage.write_text("\n".join(lines) + "\n", "utf-8")
    else:
        usage = tmp_path / f"usage.{fmt}"
        records = [json.loads(x) for x in lines if x.startswith('{"')]
        write_usage(usage, records)
    real = spark_engine._Run.frame
    splits: list[int] = []

    def frame(self: Any) -> Any:
        found = real(self)
        splits.append(found[0].rdd.getNumPartitions())
        return found

    monkeypatch.setattr(spark_engine._Run, "frame", frame)
    _py, sp = same_as_python(RULES, usage, tmp_path, fmt, spark)
    assert splits[0] >= 8, splits  # the file was cut in many pieces
    assert sp.failed > 200 and sp.rated > 900
    if fmt == "jsonl":
        found = errors(tmp_path / "sp.errors.jsonl")
        assert found[:3] == [(6, "E401", "mau"), (8, "E301", "contract"), (10, "E400", None)]
        assert [line for line, _, _ in found] == [i + 1 for i in range(1500) if i % 11 in (5, 7, 9)]


# --------------------------------------------------------- malformed lines


def test_odd_json_lines_are_read_as_python_reads_them(tmp_path: Path, spark: Any) -> None:
    usage = tmp_path / "odd.jsonl"
    usage.write_bytes(
        b'\xef\xbb\xbf{"contract":"starter","period":"2026-08","mau":2000}\r\n'
        b"\r\n"
        b'{"contract":"starter","period":"2026-08","mau":1}\r{"x":1}\n'  # a lone CR
        b" \t \n"
        b'{"account":"Z\xfcrich","contract":"starter","period":"2026-08"}\n'  # not UTF-8
        b'{"contract":"starter","period":"2026-08","mau":"-3"}\n'
        b'{"contract":"starter","period":"2026-08","mau":12.5}\n'
        b'{"contract":"starter","period":"2026-08"}'  # no newline at the end
    )
    _py, sp = same_as_python(RULES, usage, tmp_path, "jsonl", spark)
    assert (sp.records, sp.rated, sp.failed) == (6, 2, 4)
    assert errors(tmp_path / "sp.errors.jsonl") == [
        (3, "E400", None),
        (5, "E400", None),
        (6, "E401", "mau"),
        (7, "E401", "mau"),
    ]
    (first, *_) = (tmp_path / "sp.errors.jsonl").read_text("utf-8").splitlines()
    assert '"line":3' in first


def test_odd_csv_lines_are_read_as_python_reads_them(tmp_path: Path, spark: Any) -> None:
    usage = tmp_path / "odd.csv"
    usage.write_bytes(
        b"\xef\xbb\xbfaccount,contract,period,mau,voice_minutes\r\n"
        b'"Acme, ""Inc.""",starter,2026-08,2000,1.5\r\n'
        b"plain,starter,2026-08,,\r\n"
        b"\r\n"
        b"short,starter\r\n"
        b'"quoted",starter,2026-08,0007,"12.25"\r\n'
        b"bad,starter,2026-08,1.0,\r\n"
        b"Z\xfcrich,starter,2026-08,1,\r\n"
        b'mid"quote,starter,2026-08,1,2\r\n'
        b"cr,starter\r2026-08,1,2\r\n"
        + b"x" * 140_000  # longer than the csv module's field limit
        + b",starter,2026-08,1,\r\n"
    )
    _py, sp = same_as_python(RULES, usage, tmp_path, "csv", spark)
    assert sp.engine == "spark"
    assert errors(tmp_path / "sp.errors.jsonl") == [
        (5, "E400", None),
        (7, "E401", "mau"),
        (8, "E400", None),
        (10, "E400", None),
        (11, "E400", None),
    ]


def test_csv_records_that_span_lines_go_to_the_python_engine(tmp_path: Path, spark: Any) -> None:
    usage = tmp_path / "ml.csv"
    usage.write_text(
        'account,contract,period,mau\na,starter,2026-08,5\n"two\nlines",starter,2026-08,x\n',
        "utf-8",
    )
    _py, sp = same_as_python(RULES, usage, tmp_path, "jsonl", spark)
    assert sp.engine == "python (fallback)"
    assert sp.notes[0].startswith("not rated by Spark (it has quoted fields that span lines)")
    assert errors(tmp_path / "sp.errors.jsonl") == [(3, "E401", "mau")]
    header = tmp_path / "mlh.csv"
    header.write_text('"con\ntract",period\nstarter,2026-08\n', "utf-8")
    _py, sp = same_as_python(RULES, header, tmp_path, "csv", spark)
    assert sp.engine == "python (fallback)" and "header line" in sp.notes[0]


def test_parquet_values_are_the_python_engines(tmp_path: Path, spark: Any) -> None:
    """Decimals, doubles, unsigned, structs, lists, blobs: to the rater, as DuckDB reads them."""
    import duckdb

    usage = tmp_path / "typed.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT account, 'starter' AS contract, '2026-08' AS period, * EXCLUDE (account)
        FROM (VALUES
          ('a', 2000::BIGINT, 0.5::DOUBLE, 12.125::DECIMAL(9,3), NULL, NULL, NULL, NULL),
          ('b', NULL, 0.1::DOUBLE, NULL, NULL, NULL, NULL, NULL),
          ('c', NULL, NULL, NULL, NULL, {{'x': 1}}, NULL, NULL),
          ('d', -1::BIGINT, NULL, NULL, NULL, NULL, [1, 2], 'blob'::BLOB),
          (NULL, 7::BIGINT, 7.0::DOUBLE, 1.5::DECIMAL(9,3), 9::UBIGINT, NULL, NULL, NULL)
        ) t(account, mau, voice_minutes, video_minutes, sms, peak_connections, storage_gb,
            extra))
        TO '{usage}' (FORMAT PARQUET)"""
    )
    con.close()
    _py, sp = same_as_python(RULES, usage, tmp_path, "jsonl", spark)
    assert sp.engine == "spark" and (sp.rated, sp.failed) == (2, 3)
    assert [(line, key) for line, _, key in errors(tmp_path / "sp.errors.jsonl")] == [
        (2, "voice_minutes"),  # 0.1 is not exactly 0.1 in binary
        (3, "peak_connections"),  # a struct
        (4, "extra"),  # a blob, and not a usage key
        (4, "mau"),  # negative
        (4, "storage_gb"),  # a list
    ]


def test_parquet_that_spark_cannot_read_goes_to_the_python_engine(
    tmp_path: Path, spark: Any
) -> None:
    import duckdb

    usage = tmp_path / "interval.parquet"
    duckdb.sql(
        "COPY (SELECT 'starter' AS contract, '2026-08' AS period, INTERVAL 1 DAY AS gap) "
        f"TO '{usage}' (FORMAT PARQUET)"
    )
    _py, sp = same_as_python(RULES, usage, tmp_path, "csv", spark)
    assert sp.engine == "python (fallback)"
    assert sp.notes[0].startswith("not rated by Spark (Spark cannot read it: ")
    assert errors(tmp_path / "sp.errors.jsonl") == [(1, "E401", "gap")]


def test_empty_files(tmp_path: Path, spark: Any) -> None:
    for name, content in (("e.jsonl", ""), ("h.csv", "account,contract,period\n"), ("f.csv", "")):
        usage = tmp_path / name
        usage.write_text(content, "utf-8")
        for out_fmt in FORMATS:
            _py, sp = same_as_python(RULES, usage, tmp_path, out_fmt, spark)
            assert (sp.records, sp.lines) == (0, 0)


def test_a_bad_csv_header_is_the_python_engines_error(tmp_path: Path, spark: Any) -> None:
    dup = tmp_path / "dup.csv"
    dup.write_text("mau,mau\n1,2\n", "utf-8")
    with pytest.raises(pricing_dsl.PricingError, match="appears twice"):
        on_spark(RULES, dup, tmp_path / "o.jsonl", spark)


# ------------------------------------------------- generated contracts


@pytest.mark.parametrize("currency", ["JPY", "USD"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_contracts_agree_on_spark(
    currency: str, data: st.DataObject, tmp_path_factory: Any, spark: Any
) -> None:
    """Spark, the python engine, DuckDB and the interpreter: the same line items, to the cent."""
    text, points = data.draw(ruleset())
    # 0 and 2 minor digits, each in every run.
    text = re.sub(r"\Acurrency \w+", f"currency {currency}", text)
    rules = pricing_dsl.loads(text, "generated.pricing")
    records = [data.draw(usage_for(points, i)) for i in range(data.draw(st.integers(1, 25)))]
    tmp = tmp_path_factory.mktemp("gen")
    in_fmt = data.draw(st.sampled_from(FORMATS))
    out_fmt = data.draw(st.sampled_from(FORMATS))
    usage = tmp / f"usage.{in_fmt}"
    write_usage(usage, records)
    _py, sp = same_as_python(rules, usage, tmp, out_fmt, spark)
    assert sp.engine == "spark" and sp.failed == 0
    dk = run_batch(rules, usage, tmp / f"dk.{out_fmt}", engine="duckdb", quiet=True)
    assert read_rows(tmp / f"dk.{out_fmt}") == read_rows(tmp / f"sp.{out_fmt}")
    if out_fmt != "parquet":
        assert (tmp / f"dk.{out_fmt}").read_bytes() == (tmp / f"sp.{out_fmt}").read_bytes()
    assert (dk.totals, dk.lines) == (sp.totals, sp.lines)
    textual = [{k: str(v) for k, v in r.items()} for r in records]
    assert read_rows(tmp / f"sp.{out_fmt}") == expected(
        rules, textual if in_fmt == "csv" else records
    )


# ------------------------------------------------------- failures, safety


def test_a_failed_run_leaves_no_partial_output(
    tmp_path: Path, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "lines.jsonl"
    out.write_text("yesterday's run\n", "utf-8")
    monkeypatch.setattr(spark_engine, "RECORDS_PER_CHUNK", 5)
    real = spark_engine._count
    calls = [0]

    def flaky(*args: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        real(*args)

    monkeypatch.setattr(spark_engine, "_count", flaky)
    with pytest.raises(BatchError, match="No space left"):
        on_spark(RULES, SHIPPED, out, spark)
    assert out.read_text("utf-8") == "yesterday's run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.jsonl"]


def test_a_failed_spark_job_is_one_line_and_exit_status_1(
    tmp_path: Path, spark: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Executors cannot unpickle this ruleset: every task fails.
    monkeypatch.setattr(spark_engine, "ship_ruleset", lambda rules: b"not a pickle")
    out = tmp_path / "o.jsonl"
    argv = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED), "--out", str(out)]
    assert main([*argv, "--engine", "spark"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pricing batch: error: Spark stopped: ") and err.count("\n") == 1
    assert "not a pickled ruleset" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_lines_out_of_order_are_refused(
    tmp_path: Path, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver checks that the chunks cover every line once, in order."""
    real = spark_engine._Run.frame

    def shifted(self: Any) -> Any:
        frame, first_lines, total = real(self)
        return frame, tuple((block, line + 1) for block, line in first_lines), total

    monkeypatch.setattr(spark_engine._Run, "frame", shifted)
    with pytest.raises(BatchError, match="Spark returned line 2 where line 1 was due"):
        on_spark(RULES, SHIPPED, tmp_path / "o.jsonl", spark)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- the CLI


def test_the_installed_command_on_a_session_of_its_own(pricing_cmd: str, tmp_path: Path) -> None:
    """`pricing batch --engine spark --spark-master local[1]` starts, uses and stops Spark.

    The one test that starts a JVM of its own: `pricing meter --engine spark`
    opens its session with the same code (`_spark_session.open_session`).
    """
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: the Spark engine needs one (install Java 17+)")
    # The JVM settings of the shared session (see conftest), given the way a
    # cluster gives its own: in spark-defaults.conf, which spark-submit reads.
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(
        f"spark.driver.extraJavaOptions {LEAN_JVM}\nspark.sql.shuffle.partitions 1\n", "utf-8"
    )
    out = tmp_path / "lines.csv"
    args = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED), "--out"]
    done = subprocess.run(
        [pricing_cmd, *args, str(out), "--engine", "spark", "--spark-master", "local[1]"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SPARK_CONF_DIR": str(conf_dir)},
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 1, done.stderr  # 17 records fail, on purpose
    assert "pricing batch: 44 records: 27 rated, 17 failed" in done.stderr
    assert "engine spark," in done.stderr
    python = tmp_path / "python.csv"
    assert main([*args, str(python), "--engine", "python", "--quiet"]) == 1
    assert out.read_bytes() == python.read_bytes()
    assert (tmp_path / "lines.errors.jsonl").read_bytes() == (
        tmp_path / "python.errors.jsonl"
    ).read_bytes()


def test_spark_master_needs_the_spark_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED)]
    argv += ["--out", str(tmp_path / "o.jsonl"), "--spark-master", "local[1]"]
    for engine in ([], ["--engine", "duckdb"], ["--engine", "python"]):
        assert main(argv + engine) == 2
        err = capsys.readouterr().err
        assert "--spark-master is for --engine spark" in err and "usage:" in err
    assert list(tmp_path.iterdir()) == []


def test_without_pyspark_one_line_and_a_hint(
    tmp_path: Path, refuse_import: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    refuse_import("pyspark")
    out = tmp_path / "o.jsonl"
    argv = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED), "--out", str(out)]
    assert main([*argv, "--engine", "spark"]) == 1
    assert capsys.readouterr().err == (
        "pricing batch: error: the spark engine needs PySpark, which is not installed "
        "(pip install 'pricing-dsl[spark]')\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_without_java_one_line_and_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="PySpark is not installed")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(pyspark_sql.SparkSession, "getActiveSession", staticmethod(lambda: None))
    out = tmp_path / "o.csv"
    argv = ["batch", str(ROOT / "rulesets"), "--usage", str(SHIPPED), "--out", str(out)]
    assert main([*argv, "--engine", "spark"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pricing batch: error: the spark engine needs a Java runtime")
    assert err.count("\n") == 1 and "install Java 17" in err
    assert list(tmp_path.iterdir()) == []


def test_a_ruleset_travels_to_executors_intact() -> None:
    """The ruleset is pickled for executors (a Ruleset's read-only mappings need help)."""
    import pickle

    rules = pricing_dsl.load(ROOT / "rulesets")
    back = pickle.loads(spark_engine.ship_ruleset(rules))
    assert (back.contracts, back.meters, back.addons) == (
        rules.contracts,
        rules.meters,
        rules.addons,
    )
    usage = {"period": "2026-08", "mau": 26250, "video_minutes": "96500.5"}
    for contract in rules.contracts:
        assert back.rate(contract, dict(usage)) == rules.rate(contract, dict(usage))


def test_pricing_models_on_spark_as_computed_by_hand(tmp_path: Path, spark: Any) -> None:
    """Issue 12's acceptance cases (blocks, tier fees, line minimums, caps on groups,
    yearly and quarterly fees, a time-limited discount, a 12-decimal rate) through
    Spark: the python engine's bytes, and the totals worked out by hand."""
    case = ROOT / "tests" / "data" / "acceptance" / "models-9001"
    rules = pricing_dsl.load(case / "ruleset.pricing")
    cases = json.loads((case / "cases.json").read_text())["cases"]
    records = [
        {"account": f"a{n}", "contract": c["contract"], **c["usage"]} for n, c in enumerate(cases)
    ]
    usage = tmp_path / "usage.jsonl"
    write_usage(usage, records)
    _py, sp = same_as_python(rules, usage, tmp_path, "jsonl", spark)
    assert (sp.records, sp.failed, sp.interpreted) == (len(cases), 0, 0)
    totals: dict[str, Decimal] = {}
    for row in (json.loads(x) for x in (tmp_path / "sp.jsonl").read_text().splitlines()):
        totals[row["account"]] = totals.get(row["account"], Decimal(0)) + Decimal(row["amount"])
    assert [str(totals[f"a{n}"]) for n in range(len(cases))] == [c["total"] for c in cases]
