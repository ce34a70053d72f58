"""DuckDB, Spark and the pure-Python reference agree exactly on random event sets."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from pricing_dsl._metering import MeterResult

from .conftest import as_plain, run, write_events
from .strategies import Scenario, scenarios


def _meter(s: Scenario, engine: str, spark_session: Any = None) -> MeterResult:
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            kind: write_events(Path(tmp), kind, getattr(s, kind), s.formats[kind])
            for kind in ("logins", "connections", "calls")
        }
        return run(engine, period=s.period, options=s.options, spark_session=spark_session, **paths)


def _check_against_reference(s: Scenario, result: MeterResult) -> None:
    exp = s.expected()
    assert as_plain(result) == exp.records()
    assert result.bad_row_counts == exp.bad
    assert dict(result.duplicates) == {
        k: exp.duplicates.get(k, 0) for k in ("connections", "calls")
    }
    assert dict(result.rows_read) == {
        k: len(getattr(s, k)) for k in ("logins", "connections", "calls")
    }


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_duckdb_agrees_with_the_reference(s: Scenario) -> None:
    _check_against_reference(s, _meter(s, "duckdb"))


# Spark pays seconds a query whatever the size, so fewer examples with more
# rows each: the same SQL is checked on 150 examples with DuckDB above.
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=scenarios(max_rows=24))
def test_spark_duckdb_and_the_reference_agree(s: Scenario, spark: Any) -> None:
    on_spark = _meter(s, "spark", spark)
    on_duckdb = _meter(s, "duckdb")
    assert on_spark.records == on_duckdb.records
    assert on_spark.bad_rows == on_duckdb.bad_rows
    assert on_spark.duplicates == on_duckdb.duplicates
    _check_against_reference(s, on_spark)
