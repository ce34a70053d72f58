"""The independently computed acceptance case metering-9001 (see data/acceptance-9001/README.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from . import reference
from .conftest import DATA, as_plain, run

CASE = DATA / "acceptance-9001"


def _expected() -> dict[str, dict[str, Any]]:
    raw = json.loads((CASE / "expected-2026-08.json").read_text())
    return {
        account: {
            "mau": int(v["mau"]),
            "peak_connections": int(v["peak_connections"]),
            "voice_minutes": Decimal(v["voice_minutes"]),
            "video_minutes": Decimal(v["video_minutes"]),
        }
        for account, v in raw.items()
    }


def _rows(kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CASE / f"{kind}.jsonl").read_text().splitlines()]


def test_engine_matches_the_expected_usage(engine: str, request: pytest.FixtureRequest) -> None:
    result = run(
        engine,
        request=request,
        logins=CASE / "logins.jsonl",
        connections=CASE / "connections.jsonl",
        calls=CASE / "calls.jsonl",
    )
    assert as_plain(result) == _expected()
    assert [r.account for r in result.records] == sorted(_expected())
    assert result.bad_rows == ()
    assert result.rows_read == {"logins": 219, "connections": 189, "calls": 91}
    # Two connection rows and two call rows are exact copies of another row.
    assert result.duplicates == {"connections": 2, "calls": 2}


def test_reference_matches_the_expected_usage() -> None:
    start, end = reference.cycle_bounds(date(2026, 8, 1), date(2026, 8, 31))
    exp = reference.meter(_rows("logins"), _rows("connections"), _rows("calls"), start, end)
    assert exp.records() == _expected()
    assert exp.bad == {}
