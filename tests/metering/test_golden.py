"""Each definition pinned on small logs computed by hand, on every engine and the reference.

Every scenario has an account of its own, so one run per engine and option
set covers them all.  The comments show the arithmetic.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pricing_dsl._metering import MeterOptions

from . import reference
from .conftest import as_plain, run, write_events
from .conftest import call_row as call


def login(account: str, user: str, at: str) -> dict[str, Any]:
    return {"account": account, "user_id": user, "timestamp": at}


def conn(account: str, ident: str, start: str, end: str | None) -> dict[str, Any]:
    return {
        "account": account,
        "connection_id": ident,
        "user_id": "u1",
        "connected_at": start,
        "disconnected_at": end,
    }


LOGINS = [
    # Same user on two devices: one user, however many logins.
    login("devices", "u1", "2026-08-05T09:00:00Z"),
    login("devices", "u1", "2026-08-05T09:00:05Z"),
    login("devices", "u2", "2026-08-06T10:00:00Z"),
    # The cycle is [2026-08-01T00:00:00Z, 2026-09-01T00:00:00Z).
    login("edges", "last", "2026-08-31T23:59:59Z"),  # in
    login("edges", "first", "2026-08-01T00:00:00Z"),  # in
    login("edges", "next", "2026-09-01T00:00:00Z"),  # out
    login("edges", "prev", "2026-07-31T23:59:59Z"),  # out
    # An offset moves the instant: 01:30+02:00 is 23:30Z the day before.
    login("edges", "offset", "2026-08-01T01:30:00+02:00"),  # out
    # Exact duplicates: still one user.
    login("dups", "u1", "2026-08-10T10:00:00Z"),
    login("dups", "u1", "2026-08-10T10:00:00Z"),
    # In Berlin (UTC+2 in summer) August starts at 2026-07-31T22:00Z.
    login("berlin", "u1", "2026-07-31T22:30:00Z"),  # in Berlin's August only
    login("berlin", "u2", "2026-08-31T22:30:00Z"),  # in UTC's August only
    # The same user id in two accounts counts in each.
    login("other", "u1", "2026-08-10T10:00:00Z"),
]

CONNECTIONS = [
    # One user on two devices holds two connections: peak 2.
    conn("devices", "d1", "2026-08-05T09:00:00Z", "2026-08-05T10:00:00Z"),
    conn("devices", "d2", "2026-08-05T09:00:05Z", "2026-08-05T09:30:00Z"),
    # Opened in July, open at the cycle start: counts.  At 01:00 both are open.
    conn("start", "s1", "2026-07-31T20:00:00Z", "2026-08-01T02:00:00Z"),
    conn("start", "s2", "2026-08-01T01:00:00Z", "2026-08-01T03:00:00Z"),
    # Wholly in July: not in the cycle (but the account is known, so its peak is 0).
    conn("july", "j1", "2026-07-30T00:00:00Z", "2026-07-31T00:00:00Z"),
    # Half-open: t1 closes at 11:00 as t2 and t3 open; at 11:00 two are open, not three.
    conn("touching", "t1", "2026-08-12T10:00:00Z", "2026-08-12T11:00:00Z"),
    conn("touching", "t2", "2026-08-12T11:00:00Z", "2026-08-12T12:00:00Z"),
    conn("touching", "t3", "2026-08-12T11:00:00Z", "2026-08-12T11:30:00Z"),
    # No disconnect: open to the end of the cycle.  On 08-25 all three are
    # open (peak 3).  With a 1h idle timeout o1 closes in July, o2 at
    # 08-20T01:00, and only o3 is open on 08-25 (peak 1).
    conn("open", "o1", "2026-07-15T00:00:00Z", None),
    conn("open", "o2", "2026-08-20T00:00:00Z", None),
    conn("open", "o3", "2026-08-25T00:00:00Z", "2026-08-26T00:00:00Z"),
    # An exact duplicate counts once: peak 1, not 2.
    conn("dups", "x1", "2026-08-10T10:00:00Z", "2026-08-10T11:00:00Z"),
    conn("dups", "x1", "2026-08-10T10:00:00Z", "2026-08-10T11:00:00Z"),
]

CALLS = [
    # Across the cycle end: 23:50 to 00:15 gives 10 minutes to August.
    call("end", "e1", "voice", "2026-08-31T23:50:00Z", "2026-09-01T00:15:00Z"),
    # Across the cycle start: 30 seconds in August.
    call("end", "e2", "video", "2026-07-31T23:59:30Z", "2026-08-01T00:00:30Z"),
    # Rounding.  Voice: 61 s, and 30 s of a call across the end, 91 s in all:
    # 91/60 = 1.51666… → 1.516667 exact to the second; by the minute 2 + 1 = 3.
    # Video: 90 s = 1.5 minutes; by the minute 2.
    call("rounding", "r1", "voice", "2026-08-03T10:00:00Z", "2026-08-03T10:01:01Z"),
    call("rounding", "r2", "voice", "2026-08-31T23:59:30Z", "2026-09-01T00:00:30Z"),
    call("rounding", "r3", "video", "2026-08-04T10:00:00Z", "2026-08-04T10:01:30Z"),
    # Participants: 10 minutes with 3 people is 10 per call, 30 per participant.
    call("people", "p1", "voice", "2026-08-05T10:00:00Z", "2026-08-05T10:10:00Z", 3),
    # An exact duplicate counts once: 3 minutes, not 6.
    call("dups", "y1", "voice", "2026-08-10T10:00:00Z", "2026-08-10T10:03:00Z"),
    call("dups", "y1", "voice", "2026-08-10T10:00:00Z", "2026-08-10T10:03:00Z"),
]

VARIANTS = {
    "default": MeterOptions(),
    "minute": MeterOptions(call_rounding="minute"),
    "participant": MeterOptions(minutes_per="participant"),
    "idle": MeterOptions(idle_timeout=timedelta(hours=1)),
    "berlin": MeterOptions(tz="Europe/Berlin"),
}

D = Decimal
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("default", "devices", {"mau": 2, "peak_connections": 2}),
    ("default", "edges", {"mau": 2}),
    ("default", "start", {"peak_connections": 2}),
    ("default", "july", {"peak_connections": 0, "mau": 0, "voice_minutes": D(0)}),
    ("default", "touching", {"peak_connections": 2}),
    ("default", "open", {"peak_connections": 3}),
    ("idle", "open", {"peak_connections": 1}),
    ("default", "end", {"voice_minutes": D(10), "video_minutes": D("0.5")}),
    ("default", "rounding", {"voice_minutes": D("1.516667"), "video_minutes": D("1.5")}),
    ("minute", "rounding", {"voice_minutes": D(3), "video_minutes": D(2)}),
    ("minute", "end", {"voice_minutes": D(10), "video_minutes": D(1)}),
    ("default", "people", {"voice_minutes": D(10)}),
    ("participant", "people", {"voice_minutes": D(30)}),
    ("default", "dups", {"mau": 1, "peak_connections": 1, "voice_minutes": D(3)}),
    ("default", "berlin", {"mau": 1}),
    ("berlin", "berlin", {"mau": 1}),
    ("default", "other", {"mau": 1}),
]

_cache: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("golden")
    return {
        "logins": write_events(d, "logins", LOGINS),
        "connections": write_events(d, "connections", CONNECTIONS),
        "calls": write_events(d, "calls", CALLS),
    }


def _reference(variant: str) -> dict[str, dict[str, Any]]:
    opts = VARIANTS[variant]
    start, end = reference.cycle_bounds(date(2026, 8, 1), date(2026, 8, 31), opts.tz)
    idle = opts.idle_timeout
    return reference.meter(
        LOGINS,
        CONNECTIONS,
        CALLS,
        start,
        end,
        idle_timeout_us=None if idle is None else idle // timedelta(microseconds=1),
        rounding_us=opts.rounding_us,
        per_participant=opts.minutes_per == "participant",
    ).records()


@pytest.mark.parametrize(("variant", "account", "expected"), CASES)
def test_by_hand(
    engine: str,
    variant: str,
    account: str,
    expected: dict[str, Any],
    files: dict[str, Path],
    request: pytest.FixtureRequest,
) -> None:
    if (engine, variant) not in _cache:
        result = run(engine, request=request, options=VARIANTS[variant], **files)
        _cache[(engine, variant)] = as_plain(result)
    got = _cache[(engine, variant)][account]
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(("variant", "account", "expected"), CASES)
def test_reference_by_hand(variant: str, account: str, expected: dict[str, Any]) -> None:
    got = _reference(variant)[account]
    assert {k: got[k] for k in expected} == expected


def test_the_rules_differ_where_they_should(files: dict[str, Path]) -> None:
    """The Berlin cycle moves the logins; the extra minute of a split call is not billed."""
    utc = as_plain(run("duckdb", **files))
    berlin = as_plain(run("duckdb", options=VARIANTS["berlin"], **files))
    # u2 in UTC, u1 in Berlin: the same count, different users.
    assert utc["berlin"]["mau"] == berlin["berlin"]["mau"] == 1
    # In Berlin the cycle is [2026-07-31T22:00Z, 2026-08-31T22:00Z): "last"
    # moves out, "prev" and "offset" (23:59:59Z and 23:30Z on 07-31) move in.
    assert utc["edges"]["mau"] == 2
    assert berlin["edges"]["mau"] == 3
    assert set(utc) == set(berlin)


def test_records_cover_every_account_seen(files: dict[str, Path]) -> None:
    result = run("duckdb", **files)
    accounts = {r["account"] for r in LOGINS + CONNECTIONS + CALLS}
    assert [r.account for r in result.records] == sorted(accounts)
    assert result.duplicates == {"connections": 1, "calls": 1}
    assert result.bad_rows == ()


def test_a_custom_period(tmp_path: Path) -> None:
    logins = [
        {"account": "a", "user_id": "in1", "timestamp": "2026-08-10T00:00:00Z"},
        {"account": "a", "user_id": "in2", "timestamp": "2026-08-11T23:59:59Z"},
        {"account": "a", "user_id": "out", "timestamp": "2026-08-12T00:00:00Z"},
    ]
    result = run(
        "duckdb", period="2026-08-10..2026-08-11", logins=write_events(tmp_path, "logins", logins)
    )
    (record,) = result.records
    assert record.mau == 2
    assert record.to_dict()["period"] == {"start": "2026-08-10", "end": "2026-08-11"}
