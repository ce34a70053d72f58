"""How pricing-dsl opens DuckDB: no extension is ever fetched, and Ctrl-C stays Ctrl-C.

Every DuckDB connection of the project (``pricing batch``, ``pricing meter``)
is opened by :func:`connect`.  Left to its defaults, DuckDB downloads and
loads an extension the first time a query needs one (``httpfs`` for an
``s3://`` path, say): a billing run would then fetch and run code from the
network.  Here both are switched off; what the wheel links in (Parquet,
JSON, ICU) keeps working, and an extension the user installed beforehand
is loaded only when asked for, by :func:`load_extension`.

DuckDB's Python package reports Ctrl-C during a query as
``RuntimeError("Query interrupted")`` in some versions, as
``KeyboardInterrupt`` in others.  :func:`interrupted` tells the first kind
apart, so callers can turn it back into the ``KeyboardInterrupt`` the CLI
answers with ``pricing: interrupted`` and exit status 130.

The ``duckdb`` package is imported only when a connection is opened.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NO_DOWNLOADS", "connect", "extension_state", "interrupted", "load_extension"]

#: Settings that keep DuckDB from installing or loading extensions on its own.
NO_DOWNLOADS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect(config: dict[str, Any] | None = None) -> Any:
    """A new in-memory DuckDB connection that never installs or loads an extension by itself."""
    import duckdb

    return duckdb.connect(":memory:", config={**(config or {}), **NO_DOWNLOADS})


def extension_state(con: Any, name: str) -> tuple[bool, bool]:
    """Whether the extension ``name`` is (installed, loaded); (False, False) if DuckDB has none."""
    rows = con.execute(
        "SELECT installed, loaded FROM duckdb_extensions() WHERE extension_name = ?", [name]
    ).fetchall()
    if not rows:
        return False, False
    return bool(rows[0][0]), bool(rows[0][1])


def load_extension(con: Any, name: str) -> bool:
    """Load ``name`` if it is installed on this machine already; False if it is not.

    Only a local, already installed copy is loaded: nothing is downloaded.
    """
    installed, loaded = extension_state(con, name)
    if loaded:
        return True
    if not installed:
        return False
    con.execute(f'LOAD "{name}"')
    return True


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's report of a query stopped by Ctrl-C (SIGINT)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return type(exc) is RuntimeError and str(exc).strip() == "Query interrupted"
