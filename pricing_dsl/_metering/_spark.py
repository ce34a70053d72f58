"""The distributed engine: the same SQL text, run by Spark SQL.

Works on a local session (the tests) and on a cluster unchanged: give
``spark_master`` (``--spark-master spark://host:7077``, ``yarn``, …), run
under ``spark-submit``, or pass a session of your own.  Input paths that are
URIs (``s3a://``, ``hdfs://``) go to Spark as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from .._errors import Diagnostic, PricingError
from .._spark_session import SparkUnavailable, error_message, open_session, task_fraction
from ._inputs import Column, Source, check_columns
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


class SparkEngine:
    """Runs the metering SQL with Spark SQL on a local or remote Spark session."""

    name = "spark"

    def __init__(self, options: MeterOptions, session: Any = None) -> None:
        # The session setup (find or start one, Java, quiet logs, settings put
        # back on a borrowed session) is shared with `pricing batch`.
        try:
            self._session = open_session(
                "pricing meter", master=options.spark_master, session=session, conf=_SESSION_CONF
            )
        except SparkUnavailable as exc:
            raise _unavailable(exc.message, exc.hint) from None
        self._views: list[str] = []
        self.spark = self._session.session
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
                "E608", f"cannot read the {source.kind} files: {error_message(exc)}", source.label
            )
        )

    def progress(self) -> float | None:
        """The share of finished tasks in the running stages, or None when none runs."""
        return task_fraction(self.spark)

    def close(self) -> None:
        for view in self._views:
            # The session may already be stopped; the views then are gone too.
            with contextlib.suppress(Exception):
                self.spark.catalog.dropTempView(view)
        self._session.close()
