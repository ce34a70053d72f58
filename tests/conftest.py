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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep every Spark test on one pytest-xdist worker (`--dist loadgroup`).

    A Spark session is a JVM that takes seconds to start and most of a core
    to run: one worker shares one session, instead of each starting its own.
    """
    for item in items:
        # Engine tests reach the session through the engine's own getOrCreate,
        # so the name says it too; a test that starts Spark in a process of
        # its own may run anywhere.
        on_shared = "spark" in getattr(item, "fixturenames", ()) or "spark" in item.nodeid.lower()
        if on_shared and "of_its_own" not in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("spark"))


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
