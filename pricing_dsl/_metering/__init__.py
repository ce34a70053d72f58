"""Metering: usage summaries (MAU, peak connections, call minutes) from raw event logs.

::

    from pricing_dsl._metering import MeterOptions, meter

    result = meter(
        logins="events/logins/",
        connections="events/connections/*.parquet",
        calls="events/calls.csv",
        period="2026-08",
    )
    for record in result.records:
        print(record.to_json())

The definitions, options, inputs and error codes are in ``docs/metering.md``.
The work is SQL (``_sql.py``), run by DuckDB (embedded, the default) or by
Spark SQL; both engines are imported only when a run needs them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._errors import Diagnostic, PricingError
from .._progress import Poller
from .._usage import Period
from ._inputs import Column, Source, columns_for, resolve
from ._options import KINDS, Cycle, MeterOptions, parse_duration, parse_map, parse_period
from ._result import REASONS, BadRows, MeterResult, UsageRecord, minutes
from ._sql import calls_sql, connections_sql, logins_sql

__all__ = [
    "ENGINES",
    "BadRows",
    "MeterOptions",
    "MeterResult",
    "Progress",
    "UsageRecord",
    "meter",
    "parse_duration",
    "parse_map",
]

ENGINES = ("duckdb", "spark")

#: ``progress(step, fraction)``: ``step`` names the kind being metered
#: (``"connections (2/3)"``); ``fraction`` is 0 to 1, or None when unknown.
Progress = Callable[[str, float | None], None]


class _Engine(Protocol):
    name: str

    def register(self, source: Source, columns: Sequence[Column]) -> dict[str, str]: ...

    def fetch(self, sql: str, source: Source) -> list[tuple[Any, ...]]: ...

    def progress(self) -> float | None: ...

    def close(self) -> None: ...


def _paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _open_engine(engine: str, options: MeterOptions, spark_session: Any) -> _Engine:
    if engine == "duckdb":
        from ._duckdb import DuckDBEngine

        return DuckDBEngine(options)
    if engine == "spark":
        from ._spark import SparkEngine

        return SparkEngine(options, spark_session)
    raise PricingError(
        Diagnostic("E606", f"unknown engine `{engine}`; use duckdb or spark", key="engine")
    )


class _Ticker:
    """Reports the engine's progress every half second while a query runs."""

    def __init__(self, engine: _Engine, step: str, progress: Progress | None) -> None:
        self._engine, self._step, self._progress = engine, step, progress
        self._poller = Poller(self._tick, 0.5) if progress is not None else None

    def __enter__(self) -> _Ticker:
        if self._progress is not None and self._poller is not None:
            self._progress(self._step, None)
            self._poller.__enter__()
        return self

    def _tick(self) -> None:
        assert self._progress is not None
        fraction = self._engine.progress()
        if fraction is not None:
            self._progress(self._step, fraction)

    def __exit__(self, *exc: object) -> None:
        if self._poller is not None:
            self._poller.__exit__(*exc)


def meter(
    logins: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    connections: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    calls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    period: str | Period,
    engine: str = "duckdb",
    options: MeterOptions | None = None,
    progress: Progress | None = None,
    spark_session: Any = None,
) -> MeterResult:
    """Compute one usage record per account from raw event files.

    Each of ``logins``, ``connections`` and ``calls`` is a file, a directory,
    a glob, or a list of them (Parquet, CSV or JSON Lines); give at least one.
    A kind not given leaves its meters out of the records.  ``period`` is
    ``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD``, in ``options.tz``.  ``engine``
    is ``duckdb`` (embedded) or ``spark``; ``spark_session`` lends Spark a
    session of yours (otherwise the active one, or a new one is made).

    Rows that cannot be used are counted in ``MeterResult.bad_rows``, never
    used; with ``options.strict`` they raise :class:`PricingError` (E612)
    instead.  Every user error is a :class:`PricingError` with an E6xx code.
    """
    options = options if options is not None else MeterOptions()
    cycle = Cycle.of(parse_period(period), options.tz)
    given = {
        kind: _paths(value)
        for kind, value in zip(KINDS, (logins, connections, calls), strict=True)
        if value is not None
    }
    if not given:
        raise PricingError(
            Diagnostic(
                "E610",
                "no events given: give logins, connections or calls (or several)",
                hint="pricing meter --logins FILE --connections FILE --calls FILE --period 2026-08",
            )
        )
    sources = {kind: resolve(kind, paths, options.input_format) for kind, paths in given.items()}
    eng = _open_engine(engine, options, spark_session)
    tallies: dict[str, _Tally] = {}
    try:
        for number, (kind, source) in enumerate(sources.items(), start=1):
            families = eng.register(source, columns_for(kind, options))
            if kind == "logins":
                sql = logins_sql(families, cycle)
            elif kind == "connections":
                sql = connections_sql(families, cycle, options)
            else:
                sql = calls_sql(families, cycle, options)
            with _Ticker(eng, f"{kind} ({number}/{len(sources)})", progress):
                rows = eng.fetch(sql, source)
            tallies[kind] = _Tally.of(kind, rows)
    finally:
        eng.close()
    result = _result(tallies, cycle, eng.name, options)
    if options.strict and result.bad_rows:
        raise PricingError(result.diagnostics({k: s.label for k, s in sources.items()}))
    return result


class _Tally:
    """One kind's query result, sorted into its sections."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows = 0
        self.duplicates = 0
        self.bad: dict[str, tuple[int, str | None]] = {}
        self.accounts: set[str] = set()
        self.values: dict[str, dict[str, int]] = {}

    @staticmethod
    def of(kind: str, rows: list[tuple[Any, ...]]) -> _Tally:
        t = _Tally(kind)
        for section, key, value, example in rows:
            # SUM over no rows is NULL; the engines return DECIMAL for some
            # sections, so every value goes through int().
            n = int(value) if value is not None else 0
            if section == "rows":
                t.rows += n
                if key is not None and n:
                    t.bad[str(key)] = (n, example)
            elif section == "conflict":
                if n:
                    t.bad["conflicting_id"] = (n, example)
            elif section == "duplicates":
                t.duplicates += n
            else:
                t.accounts.add(str(key))
                if section != "account":
                    t.values.setdefault(str(section), {})[str(key)] = n
        return t


def _result(
    tallies: dict[str, _Tally], cycle: Cycle, engine: str, options: MeterOptions
) -> MeterResult:
    accounts = sorted(set().union(*(t.accounts for t in tallies.values())))

    def metric(kind: str, section: str, account: str) -> int | None:
        t = tallies.get(kind)
        return None if t is None else t.values.get(section, {}).get(account, 0)

    records = []
    for account in accounts:
        voice = metric("calls", "voice", account)
        video = metric("calls", "video", account)
        records.append(
            UsageRecord(
                account,
                cycle.period,
                mau=metric("logins", "mau", account),
                peak_connections=metric("connections", "peak", account),
                voice_minutes=None if voice is None else minutes(voice),
                video_minutes=None if video is None else minutes(video),
            )
        )
    bad = [
        BadRows(kind, reason, *t.bad[reason])
        for kind, t in tallies.items()
        for reason in REASONS
        if reason in t.bad
    ]
    return MeterResult(
        tuple(records),
        tuple(bad),
        {k: t.rows for k, t in tallies.items()},
        {k: t.duplicates for k, t in tallies.items() if k != "logins"},
        cycle,
        engine,
        options,
    )
