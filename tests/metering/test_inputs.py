"""Input files: formats, paths, column mapping, bad rows, and every user error as a diagnostic."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pricing_dsl import PricingError
from pricing_dsl._metering import MeterOptions, meter

from .conftest import as_plain, run, write_events
from .conftest import call_row as _call

UTC = timezone.utc
LOGINS = [
    {"account": "a", "user_id": "u1", "timestamp": "2026-08-01T10:00:00Z"},
    {"account": "a", "user_id": "u2", "timestamp": "2026-08-02 10:00:00.5+02:00"},
    {"account": "b", "user_id": "u1", "timestamp": "2026-08-03T10:00:00"},
]
CONNECTIONS = [
    {
        "account": "a",
        "connection_id": "c1",
        "user_id": "u1",
        "connected_at": "2026-08-01T10:00:00Z",
        "disconnected_at": "2026-08-01T11:00:00Z",
    },
    {
        "account": "a",
        "connection_id": "c2",
        "user_id": "u1",
        "connected_at": "2026-08-01T10:30:00Z",
        "disconnected_at": None,
    },
]
CALLS = [
    {
        "account": "a",
        "call_id": "k1",
        "kind": "voice",
        "started_at": "2026-08-01T10:00:00Z",
        "ended_at": "2026-08-01T10:02:00Z",
        "participants": 2,
    },
    {
        "account": "b",
        "call_id": "k2",
        "kind": "video",
        "started_at": "2026-08-01T10:00:00Z",
        "ended_at": "2026-08-01T10:00:06Z",
        "participants": 1,
    },
]
EXPECTED = {
    "a": {"mau": 2, "peak_connections": 2, "voice_minutes": 2, "video_minutes": 0},
    "b": {"mau": 1, "peak_connections": 0, "voice_minutes": 0, "video_minutes": "0.1"},
}


def _expected() -> dict[str, dict[str, Any]]:
    from decimal import Decimal

    return {
        a: {k: Decimal(str(v)) if "minutes" in k else v for k, v in rec.items()}
        for a, rec in EXPECTED.items()
    }


def _native(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with Parquet-native timestamps (UTC instants)."""
    out = []
    for row in rows:
        new = dict(row)
        for k, v in row.items():
            if isinstance(v, str) and k.endswith(("_at", "timestamp")):
                text = v.replace(" ", "T").replace("Z", "+00:00")
                moment = datetime.fromisoformat(text)
                new[k] = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        out.append(new)
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "parquet-native", "csv.gz"])
def test_every_format_gives_the_same_usage(
    engine: str, fmt: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    paths = {}
    for kind, rows in (("logins", LOGINS), ("connections", CONNECTIONS), ("calls", CALLS)):
        if fmt == "parquet-native":
            paths[kind] = write_events(tmp_path, kind, _native(rows), "parquet")
        elif fmt == "csv.gz":
            plain = write_events(tmp_path, kind, rows, "csv")
            packed = plain.with_suffix(".csv.gz")
            packed.write_bytes(gzip.compress(plain.read_bytes()))
            plain.unlink()
            paths[kind] = packed
        else:
            paths[kind] = write_events(tmp_path, kind, rows, fmt)
    result = run(engine, request=request, options=MeterOptions(), **paths)
    assert as_plain(result) == _expected()
    assert result.bad_rows == ()


def test_directories_globs_and_several_paths(tmp_path: Path) -> None:
    d = tmp_path / "logins"
    write_events(d / "day=01", "logins", LOGINS[:1], name="part-0")
    write_events(d / "day=02", "logins", LOGINS[1:2], name="part-0")
    write_events(d, "logins", LOGINS[2:], name="part-9")
    (d / "_SUCCESS").write_text("")  # Spark and Hadoop markers are skipped
    (d / ".part-0.jsonl.crc").write_text("not json")
    (d / "notes.txt").write_text("not an event file")
    by_dir = as_plain(meter(logins=d, period="2026-08"))
    by_glob = as_plain(meter(logins=str(d / "**" / "*.jsonl"), period="2026-08"))
    by_list = as_plain(
        meter(
            logins=[d / "day=01", d / "day=02" / "part-0.jsonl", d / "part-9.jsonl"],
            period="2026-08",
        )
    )
    assert by_dir == by_glob == by_list == {"a": {"mau": 2}, "b": {"mau": 1}}


def test_an_explicit_input_format(tmp_path: Path) -> None:
    path = write_events(tmp_path, "logins", LOGINS)
    odd = path.rename(tmp_path / "logins.log")
    with pytest.raises(PricingError) as err:
        meter(logins=odd, period="2026-08")
    assert err.value.codes == ["E602"]
    result = meter(logins=odd, period="2026-08", options=MeterOptions(input_format="jsonl"))
    assert len(result.records) == 2


def test_mapped_column_names(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    renamed = [{"acct": r["account"], "uid": r["user_id"], "at": r["timestamp"]} for r in LOGINS]
    calls = [{**r, "type": r["kind"]} for r in CALLS]
    options = MeterOptions(
        column_map={
            "account": "acct",
            "user_id": "uid",
            "timestamp": "at",
            "calls.account": "account",
            "calls.kind": "type",
        }
    )
    result = run(
        engine,
        request=request,
        options=options,
        logins=write_events(tmp_path, "logins", renamed, "csv", columns=["acct", "uid", "at"]),
        calls=write_events(
            tmp_path,
            "calls",
            calls,
            "parquet",
            columns=["account", "call_id", "type", "started_at", "ended_at"],
        ),
    )
    assert {a: r["mau"] for a, r in as_plain(result).items()} == {"a": 2, "b": 1}
    assert as_plain(result)["b"]["video_minutes"] == _expected()["b"]["video_minutes"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_missing_column_names_the_columns_there_are(
    engine: str, fmt: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rows = [{"account": "a", "uid": "u1", "timestamp": "2026-08-01T10:00:00Z"}]
    path = write_events(tmp_path, "logins", rows, fmt, columns=["account", "uid", "timestamp"])
    with pytest.raises(PricingError) as err:
        run(engine, request=request, logins=path)
    (diag,) = err.value.diagnostics
    assert diag.code == "E607"
    assert diag.key == "user_id"
    assert diag.path == str(path)
    assert "no column `user_id`" in diag.message
    assert diag.hint is not None and "--map logins.user_id=NAME" in diag.hint
    assert "account, uid, timestamp" in diag.hint


def test_json_lines_may_leave_keys_out(tmp_path: Path) -> None:
    """An absent key is null: no disconnect means the connection is still open."""
    path = tmp_path / "connections.jsonl"
    path.write_text(
        '{"account": "a", "connection_id": "c1", "connected_at": "2026-08-30T00:00:00Z"}\n'
        '{"account": "a", "connection_id": "c2", "connected_at": "2026-08-31T00:00:00Z"}\n'
        "\n"
    )
    (record,) = meter(connections=path, period="2026-08").records
    assert record.peak_connections == 2


def test_participants_as_native_integers(tmp_path: Path) -> None:
    rows = [dict(CALLS[0], participants=p, call_id=f"k{p}") for p in (3, 0, -2)]
    path = write_events(tmp_path, "calls", rows, "parquet")
    result = meter(calls=path, period="2026-08", options=MeterOptions(minutes_per="participant"))
    assert as_plain(result) == {"a": {"voice_minutes": 6, "video_minutes": 0}}
    assert result.bad_row_counts == {("calls", "bad_participants"): 2}


# ------------------------------------------------------------------ bad rows

T0, T1 = "2026-08-05T10:00:00Z", "2026-08-05T11:00:00Z"
BAD_LOGINS = [
    {"account": "good", "user_id": "u1", "timestamp": T0},
    {"account": None, "user_id": "u2", "timestamp": T0},
    {"account": "  ", "user_id": "u3", "timestamp": T0},
    {"account": "a", "user_id": "", "timestamp": T0},
    {"account": "a", "user_id": "u4", "timestamp": None},
    {"account": "a", "user_id": "u5", "timestamp": "2026-13-01T00:00:00Z"},
    {"account": "a", "user_id": "u6", "timestamp": "5 August 2026"},
]
BAD_CONNECTIONS = [
    {"account": "good", "connection_id": "c0", "connected_at": T0, "disconnected_at": T1},
    {"account": "a", "connection_id": None, "connected_at": T0, "disconnected_at": T1},
    {"account": "a", "connection_id": "c2", "connected_at": None, "disconnected_at": T1},
    {"account": "a", "connection_id": "c3", "connected_at": T0, "disconnected_at": "later"},
    {"account": "a", "connection_id": "c4", "connected_at": T1, "disconnected_at": T0},
    # The same id twice with different ends: which is right cannot be known.
    {"account": "a", "connection_id": "c5", "connected_at": T0, "disconnected_at": T1},
    {"account": "a", "connection_id": "c5", "connected_at": T0, "disconnected_at": None},
]


BAD_CALLS = [
    _call("good", "k0", "video", T0, T1, 2),
    _call("", "k1", "voice", T0, T1, 1),
    _call("a", None, "voice", T0, T1, 1),
    _call("a", "k3", "voice", T0, None, 1),
    _call("a", "k4", "sms", T0, T1, 1),
    _call("a", "k5", "voice", T1, T0, 1),
    _call("a", "k6", "voice", T0, T1, 0),
    # The same id twice with different kinds.
    _call("a", "k7", "voice", T0, T1, 1),
    _call("a", "k7", "video", T0, T1, 1),
]
BAD_COUNTS = {
    ("logins", "missing_account"): 2,
    ("logins", "missing_user_id"): 1,
    ("logins", "missing_timestamp"): 1,
    ("logins", "bad_timestamp"): 2,
    ("connections", "missing_connection_id"): 1,
    ("connections", "missing_timestamp"): 1,
    ("connections", "bad_timestamp"): 1,
    ("connections", "end_before_start"): 1,
    ("connections", "conflicting_id"): 2,
    ("calls", "missing_account"): 1,
    ("calls", "missing_call_id"): 1,
    ("calls", "missing_timestamp"): 1,
    ("calls", "unknown_kind"): 1,
    ("calls", "end_before_start"): 1,
    ("calls", "bad_participants"): 1,
    ("calls", "conflicting_id"): 2,
}


def _bad_files(tmp_path: Path, fmt: str = "jsonl") -> dict[str, Path]:
    return {
        "logins": write_events(tmp_path, "logins", BAD_LOGINS, fmt),
        "connections": write_events(tmp_path, "connections", BAD_CONNECTIONS, fmt),
        "calls": write_events(tmp_path, "calls", BAD_CALLS, fmt),
    }


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_bad_rows_are_counted_by_reason_and_never_used(
    engine: str, fmt: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    options = MeterOptions(minutes_per="participant")
    result = run(engine, request=request, options=options, **_bad_files(tmp_path, fmt))
    assert result.bad_row_counts == BAD_COUNTS
    # Only the good rows are used: the bad ones name account "a", which has none.
    assert as_plain(result) == {
        "good": {"mau": 1, "peak_connections": 1, "voice_minutes": 0, "video_minutes": 120}
    }
    assert result.rows_read == {"logins": 7, "connections": 7, "calls": 9}
    examples = {(b.kind, b.reason): b.example for b in result.bad_rows}
    assert examples[("connections", "conflicting_id")] == "c5"
    assert examples[("calls", "unknown_kind")] == "k4"
    assert examples[("logins", "bad_timestamp")] == "u5"


def test_strict_refuses_bad_rows(tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    with pytest.raises(PricingError) as err:
        meter(**files, period="2026-08", options=MeterOptions(strict=True))
    diags = err.value.diagnostics
    assert {d.code for d in diags} == {"E612"}
    assert len(diags) == len(BAD_COUNTS) - 1  # participants are not checked per call
    first = diags[0]
    assert first.path == str(files["logins"])
    assert first.key == "missing_account"
    assert first.message == "2 login rows have no account (e.g. `u2`)"
    assert first.severity == "error"


def test_strict_passes_clean_events(tmp_path: Path) -> None:
    path = write_events(tmp_path, "logins", LOGINS)
    result = meter(logins=path, period="2026-08", options=MeterOptions(strict=True))
    assert len(result.records) == 2


# -------------------------------------------------------------- file errors


def test_unreadable_files_are_diagnostics(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    broken_json = tmp_path / "logins.jsonl"
    broken_json.write_text(
        '{"account": "a", "user_id": "u", "timestamp": "2026-08-01T00:00:00Z"}\n'
        '{"account": "a", oops\n'
    )
    broken_csv = tmp_path / "calls.csv"
    broken_csv.write_text(
        "account,call_id,kind,started_at,ended_at\na,k1,voice\n"
        "a,k2,voice,2026-08-01T00:00:00Z,2026-08-01T00:01:00Z,extra,more\n"
    )
    not_parquet = tmp_path / "connections.parquet"
    not_parquet.write_text("this is not parquet")
    for kind, path in (
        ("logins", broken_json),
        ("calls", broken_csv),
        ("connections", not_parquet),
    ):
        with pytest.raises(PricingError) as err:
            run(engine, request=request, **{kind: path})
        (diag,) = err.value.diagnostics
        assert diag.code == "E608", diag
        assert diag.path == str(path)
        assert diag.message.startswith(f"cannot read the {kind} files: ")
        assert "Traceback" not in diag.message and "\n" not in diag.message


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"logins": "no/such/file.jsonl"}, "E601"),
        ({"logins": "no/such/*.jsonl"}, "E601"),
        ({}, "E610"),
        ({"logins": "L", "period": "2026-13"}, "E604"),
        ({"logins": "L", "period": "August"}, "E604"),
        ({"logins": "L", "period": "2026-08-31..2026-08-01"}, "E604"),
        ({"logins": "L", "engine": "sqlite"}, "E606"),
    ],
)
def test_user_errors(kwargs: dict[str, Any], code: str, tmp_path: Path) -> None:
    path = write_events(tmp_path, "logins", LOGINS)
    args = {"period": "2026-08", **kwargs}
    if args.get("logins") == "L":
        args["logins"] = path
    with pytest.raises(PricingError) as err:
        meter(**args)
    assert err.value.codes == [code]


def test_an_empty_directory_and_mixed_formats(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PricingError) as err:
        meter(logins=empty, period="2026-08")
    assert err.value.codes == ["E601"]
    mixed = tmp_path / "mixed"
    write_events(mixed, "logins", LOGINS, "jsonl")
    write_events(mixed, "logins", LOGINS, "csv")
    with pytest.raises(PricingError) as err:
        meter(logins=mixed, period="2026-08")
    assert err.value.codes == ["E602"]
    assert "mix formats (csv, jsonl)" in err.value.diagnostics[0].message


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"column_map": {"userid": "uid"}}, "E603"),
        ({"column_map": {"user_id": ""}}, "E603"),
        ({"tz": "Mars/Olympus"}, "E605"),
        ({"idle_timeout": timedelta(0)}, "E606"),
        ({"call_rounding": "hour"}, "E606"),
        ({"minutes_per": "seat"}, "E606"),
        ({"input_format": "xml"}, "E606"),
        ({"memory_limit": "lots"}, "E606"),
    ],
)
def test_bad_options(options: dict[str, Any], code: str) -> None:
    with pytest.raises(PricingError) as err:
        MeterOptions(**options)
    assert err.value.codes == [code]


def test_the_map_suggests_a_column() -> None:
    with pytest.raises(PricingError) as err:
        MeterOptions(column_map={"userid": "uid"})
    assert "did you mean `user_id`?" in err.value.diagnostics[0].message


# ------------------------------------------------------------- no engine


@pytest.mark.parametrize(
    ("module", "engine", "hint"),
    [
        ("duckdb", "duckdb", "pip install duckdb"),
        ("pyspark", "spark", "pip install 'pricing-dsl[spark]'"),
    ],
)
def test_a_missing_engine_package(
    module: str, engine: str, hint: str, tmp_path: Path, refuse_import: Callable[[str], None]
) -> None:
    path = write_events(tmp_path, "logins", LOGINS)
    refuse_import(module)
    with pytest.raises(PricingError) as err:
        meter(logins=path, period="2026-08", engine=engine)
    (diag,) = err.value.diagnostics
    assert diag.code == "E609"
    assert diag.hint == hint


def test_spark_without_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pyspark_sql = pytest.importorskip("pyspark.sql")
    path = write_events(tmp_path, "logins", LOGINS)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(pyspark_sql.SparkSession, "getActiveSession", staticmethod(lambda: None))
    with pytest.raises(PricingError) as err:
        meter(logins=path, period="2026-08", engine="spark")
    (diag,) = err.value.diagnostics
    assert diag.code == "E609"
    assert "Java" in diag.message
