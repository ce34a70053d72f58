"""Hypothesis strategies: random event sets that hit the edge cases of every definition.

Instants cluster at the cycle's boundaries and on a coarse grid, so
connections often touch (one ends when another starts), calls cross the
boundaries, and logins land on the first and last second.  Ids come from a
small pool, so rows collide: exact copies, and copies that disagree.  Some
values are bad (no account, unreadable or impossible timestamps, unknown
kinds, bad participant counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from pricing_dsl._metering import MeterOptions

from . import reference

PERIODS = (
    ("2026-08", date(2026, 8, 1), date(2026, 8, 31)),
    ("2026-08-10..2026-08-11", date(2026, 8, 10), date(2026, 8, 11)),
    ("2026-10-25..2026-10-25", date(2026, 10, 25), date(2026, 10, 25)),  # a 25-hour day in Berlin
)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
OFFSETS = (None, "Z", "+00:00", "+02:00", "-05:30", "+0530", "+01", "-00:00")
FRACTIONS = ("",) * 5 + (".5", ".000001", ".123456789")
BAD_TIMES = (
    "garbage",
    "2026-02-30T00:00:00Z",  # no such day
    "2026-08-01",  # a date, not an instant
    "2026-08-01T24:00:00Z",
    "2026-08-01T00:00:60Z",
    "2026-08-01T00:00:00+19:00",
    "2026-08-01T00:00:00Z\n",
    " 2026-08-01T00:00:00Z",
    1785542400,  # epoch seconds are not a supported timestamp
    "",
    " ",
    None,
)
CONNECTION_IDS = (*(f"c{i}" for i in range(30)), "")
CALL_IDS = (*(f"k{i}" for i in range(20)), None)
KINDS = ("voice",) * 4 + ("video",) * 4 + ("sms", "Voice", None)
PARTICIPANTS = (1,) * 4 + (2, 3, 12, 0, -1, None, "2", "x", 1_000_000_000)
ACCOUNTS = ("a",) * 5 + ("b",) * 4 + ("acct, 'quoted' \"c\"", "é", "", " ", None)


@dataclass(frozen=True)
class Scenario:
    period: str
    start: date
    end: date
    tz: str
    options: MeterOptions
    logins: list[dict[str, Any]]
    connections: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    formats: dict[str, str]

    def expected(self) -> reference.Expected:
        start_us, end_us = reference.cycle_bounds(self.start, self.end, self.tz)
        timeout = self.options.idle_timeout
        return reference.meter(
            self.logins,
            self.connections,
            self.calls,
            start_us,
            end_us,
            idle_timeout_us=None if timeout is None else timeout // timedelta(microseconds=1),
            rounding_us=60_000_000 if self.options.call_rounding == "minute" else 1_000_000,
            per_participant=self.options.minutes_per == "participant",
        )


def _render(seconds: int, offset: str | None, fraction: str, sep: str) -> str:
    if offset in (None, "Z"):
        delta = timedelta(0)
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    local = datetime.fromtimestamp(seconds, timezone.utc) + delta
    return local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + (offset or "")


def _seconds(start_s: int, end_s: int, busy: int) -> st.SearchStrategy[int]:
    near = st.sampled_from(
        [a + d for a in (start_s, end_s) for d in (-3600, -60, -1, 0, 1, 59, 60, 61, 3600)]
    )
    # Busy hours: many events close together, so connections overlap and
    # touch.  One busy hour is at a boundary of the cycle, or in its middle.
    crowd = st.integers(busy - 7200, busy + 7200).map(lambda s: s - s % 600)
    return st.one_of(
        near,
        crowd,
        crowd,
        crowd,
        st.integers(start_s - 86_400, end_s + 86_400).map(lambda s: s - s % 1800),
        st.integers(start_s - 86_400, end_s + 86_400),
    )


def _text(draw: st.DrawFn, seconds: int) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(BAD_TIMES))
    return _render(
        seconds,
        draw(st.sampled_from(OFFSETS)),
        draw(st.sampled_from(FRACTIONS)),
        draw(st.sampled_from("TT ")),
    )


DURATIONS = (0, 1, 59, 60, 61, 600, 1800, 3600, 3600, 7200, 86_400)


def _spans(draw: st.DrawFn, n: int, start_s: int, end_s: int, busy: int) -> list[tuple[Any, Any]]:
    """Starts and ends: mostly the end after the start, sometimes anywhere (even before).

    A third of the spans start exactly when an earlier one ends, where the
    half-open rule (a disconnect counts before a connect) decides the peak.
    """
    out, ends = [], []
    for _ in range(n):
        if ends and draw(st.integers(0, 2)) == 0:
            first = draw(st.sampled_from(ends))
        else:
            first = draw(_seconds(start_s, end_s, busy))
        if draw(st.integers(0, 9)) == 0:
            last = draw(_seconds(start_s, end_s, busy))
        else:
            last = first + draw(st.one_of(st.sampled_from(DURATIONS), st.integers(0, 86_400)))
        ends.append(last)
        out.append((_text(draw, first), _text(draw, last)))
    return out


def _with_copies(
    draw: st.DrawFn, rows: list[dict[str, Any]], changes: dict[str, st.SearchStrategy[Any]]
) -> list[dict[str, Any]]:
    """The rows, some exact copies, and some copies with one field changed; shuffled."""
    if rows:
        for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=3)):
            rows = [*rows, dict(rows[i])]
        for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=2)):
            field = draw(st.sampled_from(sorted(changes)))
            rows = [*rows, {**rows[i], field: draw(changes[field])}]
    return draw(st.permutations(rows))


@st.composite
def scenarios(draw: st.DrawFn, max_rows: int = 12) -> Scenario:
    period, start, end = draw(st.sampled_from(PERIODS))
    tz = draw(st.sampled_from(ZONES))
    start_us, end_us = reference.cycle_bounds(start, end, tz)
    s0, s1 = start_us // 1_000_000, end_us // 1_000_000
    busy = draw(st.sampled_from((s0, s1, (s0 + s1) // 2)))
    account = st.sampled_from(ACCOUNTS)
    instant = _seconds(s0, s1, busy)

    logins = [
        {
            "account": draw(account),
            "user_id": draw(st.sampled_from(("u0", "u1", "u2", "u3", 7, "", None))),
            # The first and last instants of the cycle, and just outside it.
            "timestamp": _text(
                draw, draw(st.one_of(st.sampled_from((s0 - 1, s0, s1 - 1, s1)), instant))
            ),
        }
        for _ in range(draw(st.integers(0, max_rows)))
    ]
    connections = [
        {
            "account": draw(account),
            "connection_id": draw(st.sampled_from(CONNECTION_IDS)),
            "user_id": draw(st.sampled_from(("u0", "u1"))),
            "connected_at": connected,
            # No disconnect: open to the end of the cycle, or the idle timeout.
            "disconnected_at": None if draw(st.integers(0, 4)) == 0 else disconnected,
        }
        for connected, disconnected in _spans(draw, draw(st.integers(0, max_rows)), s0, s1, busy)
    ]
    calls = [
        {
            "account": draw(account),
            "call_id": draw(st.sampled_from(CALL_IDS)),
            "kind": draw(st.sampled_from(KINDS)),
            "started_at": started,
            "ended_at": ended,
            "participants": draw(st.sampled_from(PARTICIPANTS)),
        }
        for started, ended in _spans(draw, draw(st.integers(0, max_rows)), s0, s1, busy)
    ]
    other_time = _seconds(s0, s1, busy).map(lambda x: _render(x, "Z", "", "T"))
    options = MeterOptions(
        tz=tz,
        idle_timeout=draw(st.sampled_from((None, None, timedelta(seconds=1), timedelta(hours=1)))),
        call_rounding=draw(st.sampled_from(("second", "minute"))),
        minutes_per=draw(st.sampled_from(("call", "participant"))),
    )
    formats = {
        kind: draw(st.sampled_from(("jsonl", "csv", "parquet")))
        for kind in ("logins", "connections", "calls")
    }
    return Scenario(
        period,
        start,
        end,
        tz,
        options,
        _with_copies(draw, logins, {"user_id": st.sampled_from(("u0", "u1"))}),
        _with_copies(
            draw,
            connections,
            {"disconnected_at": st.one_of(st.none(), other_time), "connected_at": other_time},
        ),
        _with_copies(
            draw,
            calls,
            {
                "ended_at": other_time,
                "kind": st.sampled_from(("voice", "video")),
                "participants": st.sampled_from((1, 2)),
            },
        ),
        formats,
    )
