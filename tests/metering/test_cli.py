"""`pricing meter`: through a bare argparse harness and through the `pricing` command."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from pricing_dsl._cli import main
from pricing_dsl._metering import _cli

from .conftest import DATA, write_events

CASE = DATA / "acceptance-9001"
EVENTS = [
    "--logins",
    str(CASE / "logins.jsonl"),
    "--connections",
    str(CASE / "connections.jsonl"),
    "--calls",
    str(CASE / "calls.jsonl"),
]


def harness(argv: list[str]) -> int:
    """The `meter` command on its own, as any argparse program would mount it."""
    parser = argparse.ArgumentParser(prog="pricing")
    sub = parser.add_subparsers(dest="command", required=True)
    _cli.add_parser(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def _expected() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads((CASE / "expected-2026-08.json").read_text())
    return data


@pytest.mark.parametrize("entry", [harness, main], ids=["harness", "pricing"])
def test_jsonl_out(entry: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "usage.jsonl"
    assert entry(["meter", *EVENTS, "--period", "2026-08", "--out", str(out)]) == 0  # type: ignore[operator]
    records = [json.loads(line, parse_float=Decimal) for line in out.read_text().splitlines()]
    assert [r["account"] for r in records] == sorted(_expected())
    for r in records:
        want = _expected()[r["account"]]
        assert r["period"] == "2026-08"
        assert {k: Decimal(str(r[k])) for k in want} == {k: Decimal(v) for k, v in want.items()}
    assert '"voice_minutes": 1592.3,' in out.read_text()
    err = capsys.readouterr().err
    assert "metered 4 accounts for 2026-08 (UTC) with duckdb" in err
    assert "minutes exact to the second, per call" in err
    assert f"wrote 4 records to {out}" in err


def test_standard_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", *EVENTS, "--period", "2026-08", "-q"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4
    assert captured.err == ""


def test_yaml_directory_then_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "usage"
    assert main(["meter", *EVENTS, "--period", "2026-08", "--out", f"{out}/"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{a}.yaml" for a in sorted(_expected())]
    assert "wrote 4 usage files" in capsys.readouterr().err
    rulesets = str(Path(__file__).resolve().parents[2] / "rulesets")
    code = main(
        [
            "rate",
            rulesets,
            "--contract",
            "acme",
            "--usage",
            str(out / "acct9001_1.yaml"),
            "--format",
            "json",
        ]
    )
    assert code == 0
    invoice = json.loads(capsys.readouterr().out)
    assert invoice["account"] == "acct9001_1"
    lines = {ln["code"]: ln for ln in invoice["lines"]}
    assert Decimal(str(lines["video"]["quantity"])) == Decimal("1943.3")


def test_options_reach_the_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "meter",
            "--calls",
            str(CASE / "calls.jsonl"),
            "--period",
            "2026-08",
            "--call-rounding",
            "minute",
            "--minutes-per",
            "participant",
            "--idle-timeout",
            "90m",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out.splitlines()[0])
    assert set(first) == {"account", "period", "voice_minutes", "video_minutes"}
    assert isinstance(first["voice_minutes"], int)  # whole minutes
    assert "each call rounded up to the whole minute, per participant" in captured.err
    assert "open connections close after 1h30m" in captured.err


def test_bad_rows_warn_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"account": "a", "user_id": "u1", "timestamp": "2026-08-01T00:00:00Z"},
        {"account": "", "user_id": "u2", "timestamp": "2026-08-01T00:00:00Z"},
        {"account": "a", "user_id": "u3", "timestamp": "yesterday"},
    ]
    logins = write_events(tmp_path, "logins", rows)
    out = tmp_path / "usage.jsonl"
    assert main(["meter", "--logins", str(logins), "--period", "2026-08", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{logins}: missing_account: warning[W612]: 1 login row has no account" in err
    assert "bad_timestamp: warning[W612]: 1 login row has a timestamp that cannot be read" in err
    assert "logins: 3 rows (2 bad)" in err
    assert out.read_text().count("\n") == 1

    out.unlink()
    argv = ["meter", "--logins", str(logins), "--period", "2026-08", "--out", str(out), "--strict"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "error[E612]: 1 login row has no account (e.g. `u2`)" in err
    assert "Traceback" not in err
    assert not out.exists()  # nothing written when the run fails


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--map", "user_id"], "E603"),
        (["--map", "nosuch=x"], "E603"),
        (["--period", "2026-8"], "E604"),
        (["--tz", "Nowhere/Special"], "E605"),
        (["--idle-timeout", "soon"], "E606"),
        (["--idle-timeout", "1000000000d"], "E606"),
        (["--idle-timeout", "99999999999999999999"], "E606"),
        (["--idle-timeout", "\u00b2"], "E606"),  # a digit to str.isdigit, not to int()
        (["--memory-limit", "big"], "E606"),
        (["--out", "usage.txt"], "E611"),
    ],
)
def test_user_errors_are_diagnostics(
    extra: list[str], code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["meter", "--logins", str(CASE / "logins.jsonl"), "--period", "2026-08", *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"error[{code}]" in err
    assert "Traceback" not in err


def test_the_idle_timeout_has_a_stated_range(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta

    from pricing_dsl import PricingError
    from pricing_dsl._metering import MeterOptions, parse_duration

    base = ["meter", *EVENTS, "--period", "2026-08", "-q", "--idle-timeout"]
    for too_long in ("36501d", "3153600001", "1000000000d", "9" * 5000):
        assert main([*base, too_long]) == 1
        err = capsys.readouterr().err
        assert "error[E606]: the idle timeout" in err and "is too long" in err
        assert "hint: give 1 second to 36500d (100 years)" in err
        assert "Traceback" not in err
    # The longest allowed timeout, in days or in seconds, runs through the SQL.
    for longest in ("36500d", "3153600000"):
        assert main([*base, longest]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 4
    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(PricingError) as exc:
        MeterOptions(idle_timeout=timedelta(days=36_501))
    assert exc.value.codes == ["E606"]
    assert "36501d" in exc.value.diagnostics[0].message


def test_no_events_and_missing_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "--period", "2026-08"]) == 1
    assert "error[E610]" in capsys.readouterr().err
    assert main(["meter", "--logins", "nope.jsonl", "--period", "2026-08"]) == 1
    assert "nope.jsonl: error[E601]: logins file not found" in capsys.readouterr().err


def test_output_that_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["meter", "--logins", str(CASE / "logins.jsonl"), "--period", "2026-08"]
    assert main([*base, "--out", str(tmp_path / "missing" / "u.jsonl")]) == 1
    assert "the output file is in a directory that does not exist" in capsys.readouterr().err
    afile = tmp_path / "u.jsonl"
    afile.write_text("")
    assert main([*base, "--out", str(afile), "--out-format", "yaml"]) == 1
    assert "give a directory" in capsys.readouterr().err


def test_the_output_never_overwrites_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logins = tmp_path / "in.jsonl"
    shutil.copy(CASE / "logins.jsonl", logins)
    before = logins.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(logins)
    os.link(logins, tmp_path / "hard.jsonl")
    calls = tmp_path / "calls.jsonl"
    shutil.copy(CASE / "calls.jsonl", calls)
    for out in ("in.jsonl", "./sub/../in.jsonl", "link.jsonl", "hard.jsonl", "calls.jsonl"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        argv = ["meter", "--logins", str(logins), "--calls", str(calls), "--period", "2026-08"]
        assert main([*argv, "--out", str(tmp_path / out)]) == 1
        err = capsys.readouterr().err
        assert "error[E611]: the output would overwrite the " in err, err
    # A directory or a glob that takes in the output file counts too.
    assert (
        main(["meter", "--logins", str(tmp_path), "--period", "2026-08", "--out", str(logins)]) == 1
    )
    assert "would overwrite the logins file" in capsys.readouterr().err
    assert logins.read_bytes() == before
    assert calls.read_bytes() == (CASE / "calls.jsonl").read_bytes()
    # YAML usage files would land beside an input named .yaml.
    named = tmp_path / "y" / "logins.yaml"
    named.parent.mkdir()
    shutil.copy(CASE / "logins.jsonl", named)
    argv = ["meter", "--logins", str(named), "--input-format", "jsonl", "--period", "2026-08"]
    assert main([*argv, "--out", f"{named.parent}/"]) == 1
    assert "the output directory holds the logins file" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "elsewhere.jsonl"), "-q"]) == 0


def test_command_line_misuse_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["meter", "--logins", "x.jsonl"])  # no --period
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["meter", "--period", "2026-08", "--engine", "sqlite"])
    assert exc.value.code == 2
    capsys.readouterr()


def test_progress_on_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", *EVENTS, "--period", "2026-08", "--progress", "-q"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err if line.startswith("metering")][:3] == [
        "metering logins",
        "metering connections",
        "metering calls",
    ]


def test_the_spark_engine_from_the_command_line(
    spark: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shared test session is active, so the command uses it (as under spark-submit).
    out = tmp_path / "usage.jsonl"
    argv = ["meter", *EVENTS, "--period", "2026-08", "--engine", "spark", "--out", str(out)]
    assert main(argv) == 0
    assert len(out.read_text().splitlines()) == 4
    assert "with spark" in capsys.readouterr().err


def harness_output() -> str:
    """The DuckDB engine's JSON Lines for the acceptance case."""
    from pricing_dsl._metering import meter

    return meter(
        CASE / "logins.jsonl", CASE / "connections.jsonl", CASE / "calls.jsonl", period="2026-08"
    ).to_jsonl()


# A `pricing` run whose metering query never ends, interrupted as Ctrl-C would.
_ENDLESS_METER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
import pricing_dsl._duckdb
# One thread: DuckDB looks for Ctrl-C between the tasks the calling thread
# runs, and with worker threads holding every task it may not look until the
# query ends (which this one never does).
pricing_dsl._duckdb.NO_DOWNLOADS["threads"] = 1
import pricing_dsl._metering as m
# Four columns like the real query; the scan of a trillion rows never ends.
m.logins_sql = lambda *a: (
    "SELECT 'rows', NULL, count(*), NULL FROM range(1000000000000) t(i) WHERE hash(i) = 42"
)
from pricing_dsl._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_duckdb_query_exits_130(tmp_path: Path) -> None:
    """DuckDB's own "Query interrupted" becomes `pricing: interrupted`, exit 130, no output."""
    import signal
    import time

    out = tmp_path / "usage.jsonl"
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", _ENDLESS_METER, "meter", "--logins", str(CASE / "logins.jsonl")]
    argv += ["--period", "2026-08", "--progress", "-q", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the progress line, printed as the query starts
        assert first.startswith("metering logins"), first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
        code = proc.returncode
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in rest
    assert rest.endswith("pricing: interrupted\n"), rest
    assert code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_remote_paths_never_fetch_an_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`s3a://` with no httpfs installed is E613 at once: DuckDB is not let download it."""
    from pricing_dsl._metering._duckdb import DuckDBEngine
    from pricing_dsl._metering._options import MeterOptions

    # A home of its own: no extension the machine may have installed is found.
    monkeypatch.setenv("HOME", str(tmp_path))
    engine = DuckDBEngine(MeterOptions())
    try:
        settings = engine._con.execute(
            "SELECT current_setting('autoinstall_known_extensions'), "
            "current_setting('autoload_known_extensions')"
        ).fetchall()
        installed = engine._con.execute(
            "SELECT installed FROM duckdb_extensions() WHERE extension_name = 'httpfs'"
        ).fetchall()
    finally:
        engine.close()
    assert settings == [(False, False)]
    if installed != [(False,)]:
        pytest.skip("this DuckDB has httpfs built in")
    for url, words in (
        (
            "s3a://bucket/logins.parquet",
            "needs DuckDB's `httpfs` extension, which is not installed",
        ),
        ("https://example.com/logins.csv", "needs DuckDB's `httpfs` extension"),
        ("hdfs://cluster/logins.parquet", "the duckdb engine cannot read `hdfs://` paths"),
    ):
        assert main(["meter", "--logins", url, "--period", "2026-08", "-q"]) == 1
        err = capsys.readouterr().err
        assert f"{url}: logins: error[E613]: " in err and words in err, err
        assert "Traceback" not in err
    assert not (tmp_path / ".duckdb").exists()  # nothing was installed


def test_an_installed_extension_is_loaded_not_fetched() -> None:
    from pricing_dsl import _duckdb

    class Con:
        def __init__(self, installed: bool, loaded: bool) -> None:
            self.state = [(installed, loaded)]
            self.sql: list[str] = []

        def execute(self, sql: str, params: object = None) -> Con:
            self.sql.append(sql)
            return self

        def fetchall(self) -> list[tuple[bool, bool]]:
            return self.state

    for installed, loaded, ok, load in (
        (True, True, True, False),
        (True, False, True, True),
        (False, False, False, False),
    ):
        con = Con(installed, loaded)
        assert _duckdb.load_extension(con, "httpfs") is ok
        assert ('LOAD "httpfs"' in con.sql) is load
        assert not any("INSTALL" in s for s in con.sql)
