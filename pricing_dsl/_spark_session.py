"""One Spark session setup for every command that runs on Spark (metering, batch).

A run either borrows a session -- one it is given, or the active one (under
``spark-submit`` or in a notebook) -- or starts its own: on the master it is
given, else the one ``spark-submit`` configured, else a local session on
every core.  A session it starts it stops at the end; a session it borrows
it leaves running, with every setting it changed for the run put back.

PySpark is imported only here and only when a run needs it, so importing
pricing_dsl never pays for it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SparkSessionHandle",
    "SparkUnavailable",
    "error_message",
    "open_session",
    "task_fraction",
]

INSTALL_HINT = "pip install 'pricing-dsl[spark]'"
# PySpark's own default for the Python that runs on executors; see open_session.
_DEFAULT_PYTHON = "python3"


class SparkUnavailable(Exception):
    """Spark cannot be used: PySpark is missing, there is no Java, or the session will not start."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SparkSessionHandle:
    """A session for one run, and what to undo when the run ends (see :meth:`close`)."""

    def __init__(
        self,
        session: Any,
        owned: bool,
        saved: Mapping[str, str | None],
        python_exec: str | None,
    ) -> None:
        self.session = session
        self.owned = owned
        self._saved = dict(saved)
        # The borrowed context's Python for executors, when we replaced it.
        self._python_exec = python_exec

    def set_for_run(self, key: str, value: str) -> None:
        """Set a Spark SQL setting until :meth:`close` (which puts back the one before)."""
        if key not in self._saved:
            self._saved[key] = self.session.conf.get(key, None)
        self.session.conf.set(key, value)

    def close(self) -> None:
        """Stop a session we started; put back what we changed on one we borrowed."""
        if self.owned:
            self.session.stop()
            return
        if self._python_exec is not None:
            self.session.sparkContext.pythonExec = self._python_exec
        for key, value in self._saved.items():
            if value is None:
                self.session.conf.unset(key)
            else:
                self.session.conf.set(key, value)


def error_message(exc: BaseException) -> str:
    """The line of a Spark error that says what went wrong, without the Java stack trace."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            text = str(java.getMessage() or java.toString())
        except Exception:  # the JVM may already be gone
            text = str(exc)
        return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_session(
    app_name: str,
    *,
    master: str | None = None,
    session: Any = None,
    conf: Mapping[str, str] | None = None,
    python_workers: bool = False,
) -> SparkSessionHandle:
    """A Spark session for one run, with ``conf`` set on it for the run.

    ``session`` lends a session of the caller's; otherwise the active session
    is borrowed if there is one, else a new one is started (on ``master``,
    else spark-submit's master, else ``local[*]``).  ``python_workers`` says
    the run sends Python code to executors: on a local master that still
    runs them with PySpark's default ``python3`` (no ``PYSPARK_PYTHON``, no
    ``spark.pyspark.python``), they run with this interpreter instead, the
    one that has pricing-dsl installed.

    Raises SparkUnavailable when PySpark is not installed, when a session
    must be started and there is no Java runtime, or when it will not start.
    """
    settings = dict(conf or {})
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the spark engine needs PySpark, which is not installed", hint=INSTALL_HINT
        ) from None
    owned = False
    if session is None:
        session = SparkSession.getActiveSession()
    if session is None:
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise SparkUnavailable(
                "the spark engine needs a Java runtime, and none was found",
                hint="install Java 17 or later, or set JAVA_HOME; or use --engine duckdb",
            )
        builder = SparkSession.builder.appName(app_name)
        if master:
            builder = builder.master(master)
        elif not SparkConf().contains("spark.master"):
            # Not under spark-submit and no master given: run locally.
            builder = builder.master("local[*]")
        for key, value in settings.items():
            builder = builder.config(key, value)
        # Spark's console progress bar would interleave with ours.
        builder = builder.config("spark.ui.showConsoleProgress", "false")
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # any failure to start is the same to a user
            raise SparkUnavailable(f"cannot start Spark: {error_message(exc)}") from None
        # Our own session: errors are reported as diagnostics, so Spark need
        # not also log each failed task with its Java stack trace.
        session.sparkContext.setLogLevel("FATAL")
        owned = True
    # A session that is not ours gets our settings for this run only.
    saved = {key: session.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        session.conf.set(key, value)
    replaced = None
    if python_workers:
        replaced = _use_this_python(session.sparkContext)
    return SparkSessionHandle(session, owned, saved, None if owned else replaced)


def _use_this_python(sc: Any) -> str | None:
    """Run executors' Python with this interpreter on a local master left at PySpark's default.

    PySpark starts executors' Python as ``python3`` from the PATH unless told
    otherwise, which need not be the interpreter (or virtualenv) that has
    pricing-dsl and PySpark installed.  On a local master the executors run
    on this machine, so this interpreter is the right one.  On a cluster the
    executors' Python is the cluster's to configure.  Returns the setting
    replaced, or None when left alone.
    """
    master = str(sc.master or "")
    configured = os.environ.get("PYSPARK_PYTHON") or sc.getConf().get("spark.pyspark.python")
    if not master.startswith("local") or configured or sc.pythonExec != _DEFAULT_PYTHON:
        return None
    previous = str(sc.pythonExec)
    sc.pythonExec = sys.executable
    return previous


def task_fraction(session: Any) -> float | None:
    """The share of finished tasks in the running stages, or None when none runs."""
    try:
        tracker = session.sparkContext.statusTracker()
        done = total = 0
        for stage in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
    except Exception:  # progress is best effort, never an error
        return None
    return done / total if total else None
