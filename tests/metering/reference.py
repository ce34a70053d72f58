"""The metering definitions of docs/metering.md in plain Python, for tests only.

Small and obviously right rather than fast: peak connections are found by
counting, at every instant a connection opens, the connections open then.
It shares no code with the engines (only the Period type), so a bug in the
SQL cannot hide here.

Rows are dicts with the canonical column names, holding what a JSON Lines
file would: text, whole numbers, None (or a missing key); Parquet tests may
also pass datetimes (naive ones are UTC) and ints.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MISSING = "missing"  # a timestamp that is absent, as opposed to unreadable (None)

_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    re.ASCII,
)


def text(value: Any) -> str | None:
    """A JSON value as the engines read it into a text column."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def is_missing(value: Any) -> bool:
    t = text(value) if not isinstance(value, datetime) else "x"
    return t is None or t.strip(" ") == ""


def micros(value: Any) -> int | str | None:
    """Epoch microseconds, MISSING, or None when the value is not a readable timestamp."""
    if is_missing(value):
        return MISSING
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return (value - EPOCH) // timedelta(microseconds=1)
    t = text(value)
    assert t is not None
    m = _TS.fullmatch(t)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7), m.group(8)
    if not (1000 <= year <= 2999 and hour <= 23 and minute <= 59 and second <= 59):
        return None
    micro = int((fraction or "").ljust(9, "0")[:6])  # truncated to the microsecond
    tz = timezone.utc
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:] or 0)
        if oh > 14 or om > 59:
            return None
        tz = timezone(sign * timedelta(hours=oh, minutes=om))
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:  # February 30 and the like
        return None
    return (moment - EPOCH) // timedelta(microseconds=1)


def count(value: Any) -> int | None:
    """A participant count: a whole number of at most 9 digits, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 999_999_999 else None
    t = text(value)
    if t is None or not re.fullmatch(r"[0-9]{1,9}", t, re.ASCII):
        return None
    return int(t)


def cycle_bounds(start: date, end: date, tz: str = "UTC") -> tuple[int, int]:
    """[first local midnight, local midnight after the last day) as epoch microseconds."""
    zone = ZoneInfo(tz) if tz != "UTC" else timezone.utc

    def at(d: date) -> int:
        moment = datetime(d.year, d.month, d.day, tzinfo=zone)
        return (moment - EPOCH) // timedelta(microseconds=1)

    return at(start), at(end + timedelta(days=1))


def to_minutes(us: int) -> Decimal:
    """The documented conversion: exact when a decimal can hold it, else to 1e-6 minute."""
    exact = Fraction(us, 60_000_000)
    den = exact.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(exact.numerator) / Decimal(exact.denominator)
        if den != 1:
            value = value.quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
        return value


@dataclass
class Expected:
    """What the definitions give: per-account meters, bad rows, duplicates."""

    mau: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    voice_us: dict[str, int] = field(default_factory=dict)
    video_us: dict[str, int] = field(default_factory=dict)
    accounts: set[str] = field(default_factory=set)
    bad: dict[tuple[str, str], int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)

    def records(
        self, kinds: Iterable[str] = ("logins", "connections", "calls")
    ) -> dict[str, dict[str, Any]]:
        kinds = set(kinds)
        out: dict[str, dict[str, Any]] = {}
        for a in sorted(self.accounts):
            rec: dict[str, Any] = {}
            if "logins" in kinds:
                rec["mau"] = self.mau.get(a, 0)
            if "connections" in kinds:
                rec["peak_connections"] = self.peak.get(a, 0)
            if "calls" in kinds:
                rec["voice_minutes"] = to_minutes(self.voice_us.get(a, 0))
                rec["video_minutes"] = to_minutes(self.video_us.get(a, 0))
            out[a] = rec
        return out


def _base_reason(row: Mapping[str, Any], id_column: str) -> str | None:
    if is_missing(row.get("account")):
        return "missing_account"
    if is_missing(row.get(id_column)):
        return f"missing_{id_column}"
    return None


def _unique(
    kind: str, rows: list[tuple[str, str, tuple[Any, ...]]], exp: Expected
) -> list[tuple[str, tuple[Any, ...]]]:
    """One row per (account, id); copies that disagree are bad, exact ones count once."""
    groups: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for account, ident, values in rows:
        groups[(account, ident)].append(values)
    kept = []
    for (account, _), copies in groups.items():
        if len(set(copies)) == 1:
            kept.append((account, copies[0]))
            exp.duplicates[kind] = exp.duplicates.get(kind, 0) + len(copies) - 1
        else:
            key = (kind, "conflicting_id")
            exp.bad[key] = exp.bad.get(key, 0) + len(copies)
    return kept


def meter(
    logins: Iterable[Mapping[str, Any]] | None,
    connections: Iterable[Mapping[str, Any]] | None,
    calls: Iterable[Mapping[str, Any]] | None,
    start_us: int,
    end_us: int,
    *,
    idle_timeout_us: int | None = None,
    rounding_us: int = 1_000_000,
    per_participant: bool = False,
) -> Expected:
    exp = Expected()

    def bad(kind: str, reason: str) -> None:
        exp.bad[(kind, reason)] = exp.bad.get((kind, reason), 0) + 1

    # MAU: users with a login in [start, end), once each, per account.
    users: dict[str, set[str]] = defaultdict(set)
    for row in logins or ():
        reason = _base_reason(row, "user_id")
        t = micros(row.get("timestamp"))
        if reason is None and t == MISSING:
            reason = "missing_timestamp"
        elif reason is None and t is None:
            reason = "bad_timestamp"
        if reason:
            bad("logins", reason)
            continue
        account = text(row["account"])
        assert account is not None and isinstance(t, int)
        exp.accounts.add(account)
        if start_us <= t < end_us:
            users[account].add(text(row["user_id"]))  # type: ignore[arg-type]
    exp.mau = {a: len(u) for a, u in users.items()}

    # Peak: the most connections open at one instant of the cycle.
    valid = []
    for row in connections or ():
        reason = _base_reason(row, "connection_id")
        s, e = micros(row.get("connected_at")), micros(row.get("disconnected_at"))
        if reason is None:
            if s == MISSING:
                reason = "missing_timestamp"
            elif s is None or e is None:
                reason = "bad_timestamp"
            elif e != MISSING and e < s:  # type: ignore[operator]
                reason = "end_before_start"
        if reason:
            bad("connections", reason)
            continue
        end = None if e == MISSING else e
        valid.append((text(row["account"]), text(row["connection_id"]), (s, end)))
    intervals: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for account, (s, e) in _unique("connections", valid, exp):  # type: ignore[assignment]
        exp.accounts.add(account)
        if e is None:
            e = s + idle_timeout_us if idle_timeout_us is not None else end_us
        s, e = max(s, start_us), min(e, end_us)
        if s < e:
            intervals[account].append((s, e))
    for account, spans in intervals.items():
        # [s, e) is open at t when s <= t < e; the maximum is reached when one opens.
        exp.peak[account] = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)

    # Minutes: each call's time inside the cycle, rounded up, maybe per participant.
    valid = []
    for row in calls or ():
        reason = _base_reason(row, "call_id")
        s, e = micros(row.get("started_at")), micros(row.get("ended_at"))
        kind = text(row.get("kind"))
        p = count(row.get("participants")) if per_participant else 1
        if reason is None:
            if s == MISSING or e == MISSING:
                reason = "missing_timestamp"
            elif s is None or e is None:
                reason = "bad_timestamp"
            elif kind not in ("voice", "video"):
                reason = "unknown_kind"
            elif e < s:  # type: ignore[operator]
                reason = "end_before_start"
            elif p is None or p < 1:
                reason = "bad_participants"
        if reason:
            bad("calls", reason)
            continue
        valid.append((text(row["account"]), text(row["call_id"]), (kind, s, e, p)))
    for account, (kind, s, e, p) in _unique("calls", valid, exp):  # type: ignore[assignment]
        exp.accounts.add(account)
        inside = max(min(e, end_us) - max(s, start_us), 0)
        rounded = -(-inside // rounding_us) * rounding_us
        target = exp.voice_us if kind == "voice" else exp.video_us
        target[account] = target.get(account, 0) + rounded * p
    return exp
