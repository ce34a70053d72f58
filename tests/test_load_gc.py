"""Loading pauses the garbage collector only where no other thread can notice."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from typing import Any

import pytest

import pricing_dsl
from pricing_dsl import _ruleset

from .conftest import RULESETS

TEXT = (RULESETS / "catalog.pricing").read_text()


def _collector_state_while_checking(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    seen: list[bool] = []
    real = _ruleset.check

    def spy(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(_ruleset, "check", spy)
    return seen


def test_another_thread_keeps_its_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _collector_state_while_checking(monkeypatch)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)  # an embedding application's thread
    worker.start()
    try:
        pricing_dsl.loads(TEXT)
    finally:
        stop.set()
        worker.join()
    assert seen == [True]
    assert gc.isenabled()


def test_a_lone_thread_loads_with_the_collector_paused() -> None:
    # In a fresh interpreter: in this one a Spark session may have left threads.
    script = """
import gc, sys
import pricing_dsl
from pricing_dsl import _ruleset
seen = []
real = _ruleset.check
def spy(*args):
    seen.append(gc.isenabled())
    return real(*args)
_ruleset.check = spy
pricing_dsl.load(sys.argv[1])
print(seen, gc.isenabled())
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(RULESETS / "catalog.pricing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[False] True"


def test_a_collector_switched_off_stays_off(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _collector_state_while_checking(monkeypatch)
    gc.disable()
    try:
        pricing_dsl.loads(TEXT)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False]
