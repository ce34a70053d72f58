from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RULESETS = ROOT / "rulesets"


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
