from __future__ import annotations

import builtins
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RULESETS = ROOT / "rulesets"
# A test JVM lives minutes and runs many small queries: the quick JIT compiler
# only (C2 would spend the second core optimizing code that runs once) and the
# single-threaded collector start it in a third of the time and halve its CPU.
LEAN_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def on_shared_session(nodeid: str) -> bool:
    """Whether a test runs on the shared Spark session: the word spark in its id.

    Engine tests reach the session through the engine's own getOrCreate, so
    the name says it; a test that starts Spark in a process of its own may
    run anywhere.
    """
    return "spark" in nodeid.lower() and "of_its_own" not in nodeid


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the shared session must say so in its name (see below)."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()) and not on_shared_session(item.nodeid):
            raise pytest.UsageError(
                f"{item.nodeid} uses the shared Spark session: put 'spark' in its name "
                "so that it runs on the session's pytest-xdist worker"
            )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Keep every Spark test on one pytest-xdist worker (`--dist loadgroup`).

    A Spark session is a JVM that takes seconds to start and most of a core
    to run: one worker shares one session, instead of each starting its own.
    The scheduler decides by test id, in the controller, because the
    xdist_group mark no longer works with pytest 9 (pytest-xdist 3.8 puts the
    group in a node id that pytest 9 no longer reads), which spread the Spark
    tests over both workers, each starting a JVM.  Every other test is a unit
    of its own, as with loadgroup, so the other worker and then both take
    them as they fall free.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedSparkScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "spark" if on_shared_session(nodeid) else str(super()._split_scope(nodeid))

    return SharedSparkScheduling(config, log)


@pytest.fixture(scope="session")
def pricing_cmd() -> str:
    """The installed console script (next to the running interpreter, or on PATH)."""
    candidate = Path(sys.executable).parent / "pricing"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pricing")
    if found is None:
        pytest.fail("the `pricing` console script is not installed; run `pip install .`")
    return found


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for every test that runs Spark (starting one takes seconds)."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: the Spark engine needs one (install Java 17+)")
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="PySpark is not installed")
    session = (
        # One core: the other is the second pytest-xdist worker's.
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("pricing-dsl tests")
        # The tests' files are tiny: one partition per shuffle is one task
        # per stage, which more than halves the time of each metering query.
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.driver.extraJavaOptions", LEAN_JVM)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def refuse_import(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make ``import NAME`` (and its submodules) fail, as if it were not installed."""

    def refuse(name: str) -> None:
        real = builtins.__import__

        def fake(module: str, *args: Any, **kwargs: Any) -> Any:
            if module == name or module.startswith(name + "."):
                raise ImportError(f"No module named {module!r}")
            return real(module, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake)
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, loaded)

    return refuse
