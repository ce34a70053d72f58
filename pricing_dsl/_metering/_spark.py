"""The distributed engine: the same SQL text, run by Spark SQL.

Works on a local session (the tests) and on a cluster unchanged: give
``spark_master`` (``--spark-master spark://host:7077``, ``yarn``, …), run
under ``spark-submit``, or pass a session of your own.  Input paths that are
URIs (``s3a://``, ``hdfs://``) go to Spark as they are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from typing import Any

from .._errors import Diagnostic, PricingError
from ._inputs import Column, Source, check_columns, first_line
from ._options import MeterOptions

__all__ = ["SparkEngine"]

_INTEGER_TYPES = {"ByteType", "ShortType", "IntegerType", "LongType"}
_TIMESTAMP_TYPES = {"TimestampType", "TimestampNTZType"}
_SESSION_CONF = {
    # Naive timestamps (no offset) in the files are UTC, as with DuckDB.
    "spark.sql.session.timeZone": "UTC",
}


def _unavailable(message: str, hint: str | None = None) -> PricingError:
    return PricingError(Diagnostic("E609", message, key="engine", hint=hint))


def _family(role: str, type_name: str) -> str:
    """How the shared SQL reads a column of this type (see ``_sql.py``); ``cast`` means as text."""
    if type_name in ("StringType", "VarcharType", "CharType"):
        return "string"
    if role == "time" and type_name in _TIMESTAMP_TYPES:
        return "timestamp"
    if role == "count" and type_name in _INTEGER_TYPES:
        return "integer"
    return "cast"


def _message(exc: BaseException) -> str:
    # A Py4J error's text is a Java stack trace; its first line after the
    # call description says what went wrong.
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            text = str(java.getMessage() or java.toString())
        except Exception:  # the JVM may already be gone
            text = str(exc)
        return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first_line(exc)


class SparkEngine:
    """Runs the metering SQL with Spark SQL on a local or remote Spark session."""

    name = "spark"

    def __init__(self, options: MeterOptions, session: Any = None) -> None:
        try:
            from pyspark import SparkConf
            from pyspark.sql import SparkSession
        except ImportError:
            raise _unavailable(
                "the spark engine needs PySpark, which is not installed",
                hint="pip install 'pricing-dsl[spark]'",
            ) from None
        self._views: list[str] = []
        self._owned = False
        if session is None:
            session = SparkSession.getActiveSession()
        if session is None:
            if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
                raise _unavailable(
                    "the spark engine needs a Java runtime, and none was found",
                    hint="install Java 17 or later, or set JAVA_HOME; or use --engine duckdb",
                )
            builder = SparkSession.builder.appName("pricing meter")
            if options.spark_master:
                builder = builder.master(options.spark_master)
            elif not SparkConf().contains("spark.master"):
                # Not under spark-submit and no master given: run locally.
                builder = builder.master("local[*]")
            for key, value in _SESSION_CONF.items():
                builder = builder.config(key, value)
            # Spark's console progress bar would interleave with ours.
            builder = builder.config("spark.ui.showConsoleProgress", "false")
            try:
                session = builder.getOrCreate()
            except Exception as exc:  # any failure to start is the same to a user
                raise _unavailable(f"cannot start Spark: {_message(exc)}") from None
            # Our own session: a bad input file is reported as a diagnostic
            # (E608), so Spark need not also log the task failure and its
            # Java stack trace.
            session.sparkContext.setLogLevel("FATAL")
            self._owned = True
        self.spark = session
        # A session that is not ours gets our settings for this run only.
        self._saved = {key: session.conf.get(key, None) for key in _SESSION_CONF}
        for key, value in _SESSION_CONF.items():
            session.conf.set(key, value)
        from pyspark.sql import functions

        self._functions = functions

    def register(self, source: Source, columns: Sequence[Column]) -> dict[str, str]:
        """Expose ``source`` as the temporary view ``pricing_meter_<kind>``."""
        from pyspark.sql.types import StringType, StructField, StructType

        reader = self.spark.read
        files = list(source.files)
        try:
            if source.format == "jsonl":
                # Every key as text, like DuckDB: the SQL parses the values.
                wanted = list(dict.fromkeys(c.source for c in columns))
                schema = StructType([StructField(name, StringType()) for name in wanted])
                frame = reader.schema(schema).option("mode", "FAILFAST").json(files)
            elif source.format == "parquet":
                frame = reader.parquet(*files)
            else:
                # RFC 4180 quoting, as DuckDB reads it: "" is a quote inside a
                # quoted field, and quoted fields may hold line breaks.
                frame = (
                    reader.option("header", True)
                    .option("mode", "FAILFAST")
                    .option("escape", '"')
                    .option("multiLine", True)
                    .csv(files)
                )
        except Exception as exc:  # PySpark raises many kinds for a bad file
            raise self._read_error(source, exc) from None
        types = {f.name: type(f.dataType).__name__ for f in frame.schema.fields}
        if source.format != "jsonl":
            check_columns(source, columns, list(types))
        f = self._functions
        select = []
        families: dict[str, str] = {}
        for col in columns:
            family = _family(col.role, types[col.source])
            expr = f.col("`" + col.source.replace("`", "``") + "`")
            if family == "cast" or (col.role == "text" and family != "string"):
                expr, family = expr.cast("string"), "string"
            select.append(expr.alias(col.name))
            families[col.name] = family
        view = f"pricing_meter_{source.kind}"
        try:
            frame.select(*select).createOrReplaceTempView(view)
        except Exception as exc:
            raise self._read_error(source, exc) from None
        self._views.append(view)
        return families

    def fetch(self, sql: str, source: Source) -> list[tuple[Any, ...]]:
        """Run one metering query and collect its (small) result."""
        try:
            return [tuple(row) for row in self.spark.sql(sql).collect()]
        except Exception as exc:  # Py4J and PySpark errors have no common root
            raise self._read_error(source, exc) from None

    def _read_error(self, source: Source, exc: BaseException) -> PricingError:
        return PricingError(
            Diagnostic(
                "E608", f"cannot read the {source.kind} files: {_message(exc)}", source.label
            )
        )

    def progress(self) -> float | None:
        """The share of finished tasks in the running stages, or None when none runs."""
        try:
            tracker = self.spark.sparkContext.statusTracker()
            done = total = 0
            for stage in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage)
                if info is not None:
                    done += info.numCompletedTasks
                    total += info.numTasks
        except Exception:  # progress is best effort, never an error
            return None
        return done / total if total else None

    def close(self) -> None:
        for view in self._views:
            # The session may already be stopped; the views then are gone too.
            with contextlib.suppress(Exception):
                self.spark.catalog.dropTempView(view)
        if self._owned:
            self.spark.stop()
            return
        for key, value in self._saved.items():
            if value is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, value)
