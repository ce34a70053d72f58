"""The embedded engine: DuckDB reads the files in place and runs the SQL out of core.

No server and no loading step: each kind becomes a view over
``read_parquet``/``read_csv``/``read_json``, and DuckDB streams the files
through the queries, spilling to a private temporary directory when the
data does not fit in memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from .._duckdb import connect, interrupted, load_extension
from .._errors import Diagnostic, PricingError
from .._sqlquote import sql_ident as _ident
from .._sqlquote import sql_string as _literal
from ._inputs import Column, Source, check_columns, first_line
from ._options import MeterOptions

__all__ = ["DuckDBEngine"]

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}

# The DuckDB extension that reads each kind of remote URL.  Extensions are
# never installed or loaded automatically (see pricing_dsl._duckdb): one the
# user installed beforehand is loaded; any other remote path is refused.
_URL_EXTENSIONS = {
    **dict.fromkeys(("http", "https", "s3", "s3a", "s3n", "gs", "gcs", "r2", "hf"), "httpfs"),
    **dict.fromkeys(("az", "azure", "abfss"), "azure"),
}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _family(role: str, sql_type: str) -> str:
    """How the shared SQL reads a column of this type (see ``_sql.py``); ``cast`` means as text."""
    upper = sql_type.upper()
    if upper == "VARCHAR":
        return "string"
    if role == "time" and upper.startswith("TIMESTAMP"):
        return "timestamp"
    if role == "count" and upper in _INTEGER_TYPES:
        return "integer"
    return "cast"


class DuckDBEngine:
    """Runs the metering SQL on an in-process DuckDB database."""

    name = "duckdb"

    def __init__(self, options: MeterOptions) -> None:
        try:
            import duckdb
        except ImportError:
            raise PricingError(
                Diagnostic(
                    "E609",
                    "the duckdb engine needs the duckdb package, which is not installed",
                    key="engine",
                    hint="pip install duckdb",
                )
            ) from None
        self._duckdb = duckdb
        # A private spill directory: an in-memory database would otherwise
        # spill into ./.tmp of wherever the command happens to run.
        self._tmp = tempfile.mkdtemp(prefix="pricing-meter-")
        try:
            # Never an extension fetched or loaded behind the user's back.
            self._con = connect({"temp_directory": self._tmp})
            for statement in (
                # Naive timestamps (no offset) in the files are UTC.
                "SET TimeZone = 'UTC'",
                # Results do not depend on row order, and not keeping it lets
                # DuckDB stream and spill with less memory.
                "SET preserve_insertion_order = false",
                # query_progress() needs the progress bar on; it must never
                # print, since standard output may carry the usage records.
                "SET enable_progress_bar = true",
                "SET enable_progress_bar_print = false",
                # The two names the shared SQL uses that DuckDB spells differently.
                "CREATE TYPE timestamp_ltz AS TIMESTAMPTZ",
                "CREATE MACRO unix_micros(t) AS epoch_us(CAST(t AS TIMESTAMPTZ))",
            ):
                self._con.execute(statement)
            if options.memory_limit:
                self._con.execute(f"SET memory_limit = {_literal(options.memory_limit)}")
        except duckdb.Error as exc:
            self.close()
            raise PricingError(
                Diagnostic("E609", f"cannot start DuckDB: {first_line(exc)}", key="engine")
            ) from None

    def register(self, source: Source, columns: Sequence[Column]) -> dict[str, str]:
        """Expose ``source`` as the view ``pricing_meter_<kind>``; returns each column's family."""
        self._check_remote(source)
        files = "[" + ", ".join(_literal(f) for f in source.files) + "]"
        if source.format == "jsonl":
            # Every key is read as text: the shared SQL parses it, the same
            # way as Spark does, and a value of the wrong type becomes a
            # counted bad row instead of a failed read.
            wanted = dict.fromkeys(c.source for c in columns)
            spec = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in wanted) + "}"
            relation = f"read_json({files}, format = 'newline_delimited', columns = {spec})"
            types = dict.fromkeys(wanted, "VARCHAR")
        else:
            if source.format == "parquet":
                relation = f"read_parquet({files})"
            else:
                # Every dialect setting is fixed: left to the sniffer, DuckDB
                # may take a line for the header further down (skipping the
                # rows above it) or '#' for a comment, and drop rows unseen.
                relation = (
                    f"read_csv({files}, header = true, all_varchar = true, delim = ',', "
                    "quote = '\"', escape = '\"', comment = '', skip = 0, "
                    "strict_mode = true, null_padding = false)"
                )
            described = self._run(f"DESCRIBE SELECT * FROM {relation}", source)
            types = {str(row[0]): str(row[1]) for row in described}
            check_columns(source, columns, list(types))
        select = []
        families: dict[str, str] = {}
        for col in columns:
            family = _family(col.role, types[col.source])
            expr = _ident(col.source)
            if family == "cast":
                expr, family = f"CAST({expr} AS VARCHAR)", "string"
            if col.role == "text" and family != "string":
                expr, family = f"CAST({expr} AS VARCHAR)", "string"
            select.append(f"{expr} AS {_ident(col.name)}")
            families[col.name] = family
        self._run(
            f"CREATE OR REPLACE TEMP VIEW pricing_meter_{source.kind} AS "
            f"SELECT {', '.join(select)} FROM {relation}",
            source,
        )
        return families

    def _check_remote(self, source: Source) -> None:
        """E613 for a remote path DuckDB cannot read here without fetching an extension."""
        for path in source.files:
            m = _SCHEME.match(path)
            if m is None or m.group(1).lower() == "file":
                continue
            scheme = m.group(1).lower()
            extension = _URL_EXTENSIONS.get(scheme)
            if extension is None:
                raise PricingError(
                    Diagnostic(
                        "E613",
                        f"the duckdb engine cannot read `{scheme}://` paths",
                        path,
                        key=source.kind,
                        hint="copy the files to a local directory, or use --engine spark",
                    )
                )
            try:
                present = load_extension(self._con, extension)
            except self._duckdb.Error as exc:
                raise PricingError(
                    Diagnostic(
                        "E613",
                        f"DuckDB's `{extension}` extension, needed for `{scheme}://` paths, "
                        f"cannot be loaded: {first_line(exc)}",
                        path,
                        key=source.kind,
                        hint="reinstall it for this DuckDB version, or copy the files "
                        "to a local directory",
                    )
                ) from None
            if not present:
                raise PricingError(
                    Diagnostic(
                        "E613",
                        f"reading `{scheme}://` paths needs DuckDB's `{extension}` extension, "
                        "which is not installed; pricing never downloads code during a run",
                        path,
                        key=source.kind,
                        hint=f'install it once beforehand (python -c "import duckdb; '
                        f"duckdb.install_extension('{extension}')\"), or copy the files "
                        "to a local directory",
                    )
                )

    def fetch(self, sql: str, source: Source) -> list[tuple[Any, ...]]:
        """Run one metering query and return all its rows."""
        return self._run(sql, source)

    def _run(self, sql: str, source: Source) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self._con.execute(sql).fetchall()
            return rows
        except RuntimeError as exc:
            # Ctrl-C during the query: the CLI says `pricing: interrupted`, exit 130.
            if interrupted(exc):
                raise KeyboardInterrupt from None
            raise
        except self._duckdb.Error as exc:
            raise PricingError(
                Diagnostic(
                    "E608",
                    f"cannot read the {source.kind} files: {first_line(exc)}",
                    source.label,
                )
            ) from None

    def progress(self) -> float | None:
        """The running query's progress from 0 to 1, or None when DuckDB cannot tell."""
        try:
            value = float(self._con.query_progress())
        except (self._duckdb.Error, RuntimeError):
            return None
        return value / 100 if value >= 0 else None

    def close(self) -> None:
        con = getattr(self, "_con", None)
        if con is not None:
            con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
