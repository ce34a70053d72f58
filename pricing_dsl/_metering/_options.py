"""Metering options, the billing cycle, and the parsing of option text.

Everything a user can get wrong here is reported as a :class:`PricingError`
with an ``E6xx`` code (see ``docs/metering.md``), never as a raw exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Literal

from .._errors import Diagnostic, PricingError
from .._suggest import did_you_mean
from .._usage import Period

__all__ = [
    "COLUMNS",
    "KINDS",
    "MAX_IDLE_TIMEOUT",
    "Cycle",
    "MeterOptions",
    "parse_duration",
    "parse_map",
    "parse_period",
]

KINDS = ("logins", "connections", "calls")

#: The canonical column names of each kind of event, in the order documented.
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "logins": ("account", "user_id", "timestamp"),
    "connections": ("account", "connection_id", "connected_at", "disconnected_at"),
    "calls": ("account", "call_id", "kind", "started_at", "ended_at", "participants"),
}

Rounding = Literal["second", "minute"]
MinutesPer = Literal["call", "participant"]
InputFormat = Literal["parquet", "csv", "jsonl"]

_ROUNDINGS = ("second", "minute")
_MINUTES_PER = ("call", "participant")
_FORMATS = ("parquet", "csv", "jsonl")


def _fail(
    code: str, message: str, *, key: str | None = None, hint: str | None = None
) -> PricingError:
    return PricingError(Diagnostic(code, message, hint=hint, key=key))


@dataclass(frozen=True, slots=True)
class MeterOptions:
    """How events become usage.  Every field has the documented default.

    ``column_map`` maps a canonical column (``user_id``) or a kind-qualified
    one (``logins.user_id``) to the column name in the files.  A plain name
    applies to every kind that has that column; a qualified one wins over it.
    """

    tz: str = "UTC"
    idle_timeout: timedelta | None = None
    call_rounding: Rounding = "second"
    minutes_per: MinutesPer = "call"
    column_map: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    input_format: InputFormat | None = None
    spark_master: str | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        if self.call_rounding not in _ROUNDINGS:
            raise _fail(
                "E606",
                f"unknown call rounding `{self.call_rounding}`; use `second` or `minute`",
                key="call_rounding",
            )
        if self.minutes_per not in _MINUTES_PER:
            raise _fail(
                "E606",
                f"unknown participant counting `{self.minutes_per}`; use `call` or `participant`",
                key="minutes_per",
            )
        if self.input_format is not None and self.input_format not in _FORMATS:
            raise _fail(
                "E606",
                f"unknown input format `{self.input_format}`; use parquet, csv or jsonl",
                key="input_format",
            )
        if self.idle_timeout is not None and self.idle_timeout <= timedelta(0):
            raise _fail("E606", "the idle timeout must be longer than zero", key="idle_timeout")
        if self.idle_timeout is not None and self.idle_timeout > MAX_IDLE_TIMEOUT:
            raise _out_of_range(_show_duration(self.idle_timeout))
        if self.memory_limit is not None and not re.fullmatch(
            r"[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", self.memory_limit
        ):
            raise _fail(
                "E606",
                f"bad memory limit `{self.memory_limit}`",
                key="memory_limit",
                hint="write an amount such as 4GB or 512MB",
            )
        # A frozen dataclass still holds whatever mapping it was given; keep a
        # read-only copy, so neither the caller's dict nor anyone holding these
        # options can change them later.
        clean = _check_map(dict(self.column_map))
        object.__setattr__(self, "column_map", MappingProxyType(clean))
        zone_of(self.tz)

    def source_column(self, kind: str, column: str) -> str:
        """The name of ``column`` of ``kind`` in the input files."""
        return self.column_map.get(f"{kind}.{column}", self.column_map.get(column, column))

    @property
    def rounding_us(self) -> int:
        """Each call's in-cycle duration is rounded up to a multiple of this."""
        return 60_000_000 if self.call_rounding == "minute" else 1_000_000

    def describe(self) -> str:
        """The options that change the numbers, in words (for the run summary)."""
        rounding = (
            "each call rounded up to the whole minute"
            if self.call_rounding == "minute"
            else "exact to the second"
        )
        per = "per participant" if self.minutes_per == "participant" else "per call"
        idle = (
            f"open connections close after {_show_duration(self.idle_timeout)}"
            if self.idle_timeout is not None
            else "open connections stay open to the end of the cycle"
        )
        return f"minutes {rounding}, {per}; {idle}"


def _check_map(mapping: dict[str, str]) -> dict[str, str]:
    known = {c for cols in COLUMNS.values() for c in cols}
    qualified = {f"{k}.{c}" for k, cols in COLUMNS.items() for c in cols}
    for key, value in mapping.items():
        if key not in known and key not in qualified:
            raise _fail(
                "E603",
                f"--map: unknown column `{key}`" + did_you_mean(key, sorted(known | qualified)),
                key=key,
                hint="map a documented column to the name in your files, e.g. --map user_id=uid",
            )
        if not isinstance(value, str) or not value:
            raise _fail("E603", f"--map: `{key}` needs a column name after `=`", key=key)
    return mapping


def parse_map(items: Iterable[str]) -> dict[str, str]:
    """``["user_id=uid", "calls.kind=type"]`` as a mapping; E603 for a bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise _fail(
                "E603",
                f"--map `{item}` is not COLUMN=NAME",
                hint="for example --map user_id=uid",
            )
        if key in out and out[key] != value:
            raise _fail("E603", f"--map gives `{key}` twice", key=key)
        out[key] = value
    return _check_map(out)


_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_SECONDS = re.compile(r"[0-9]+")

#: The longest idle timeout: 100 years, far beyond any billing cycle, and
#: small enough that no timestamp plus it overflows the engines' integers.
MAX_IDLE_TIMEOUT = timedelta(days=36_500)


def _out_of_range(text: str) -> PricingError:
    return _fail(
        "E606",
        f"the idle timeout `{text}` is too long",
        key="idle_timeout",
        hint="give 1 second to 36500d (100 years); a connection never stays open past "
        "the end of the cycle anyway",
    )


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or plain seconds; E606 otherwise.

    The allowed range is one second to :data:`MAX_IDLE_TIMEOUT`.
    """
    raw = text.strip()
    if _SECONDS.fullmatch(raw):
        groups: tuple[str | None, ...] = (None, None, None, raw)
    else:
        m = _DURATION.fullmatch(raw)
        if not raw or m is None:
            raise _fail(
                "E606",
                f"bad idle timeout `{text}`",
                key="idle_timeout",
                hint="write a duration such as 30m, 2h, 1h30m, 1d or a number of seconds",
            )
        groups = m.groups()
    # Whole seconds as an int, so that no number is too large to add up;
    # a timedelta is made only of a value known to be in range.
    seconds = 0
    for digits, size in zip(groups, (86_400, 3_600, 60, 1), strict=True):
        if digits:
            if len(digits.lstrip("0")) > 12:
                raise _out_of_range(raw)
            seconds += int(digits) * size
    if seconds <= 0:
        raise _fail("E606", "the idle timeout must be longer than zero", key="idle_timeout")
    if seconds > MAX_IDLE_TIMEOUT.total_seconds():
        raise _out_of_range(raw)
    return timedelta(seconds=seconds)


def _show_duration(value: timedelta | None) -> str:
    if value is None:
        return "never"
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or f"{value.total_seconds()}s"


def parse_period(text: str | Period) -> Period:
    """``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD`` (inclusive); E604 otherwise."""
    if isinstance(text, Period):
        return text
    try:
        return Period.parse(text.strip())
    except (ValueError, TypeError) as exc:
        raise _fail(
            "E604",
            f"bad --period `{text}`: {exc}",
            key="period",
            hint="write a month such as 2026-08, or 2026-08-01..2026-08-15 (both days included)",
        ) from None


def zone_of(name: str) -> tzinfo:
    """The time zone called ``name`` (``UTC`` or an IANA name); E605 if unknown."""
    if name.upper() in ("UTC", "Z"):
        return timezone.utc
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise _fail(
            "E605",
            f"unknown time zone `{name}`",
            key="tz",
            hint="use an IANA name such as Europe/Berlin or America/New_York, or UTC",
        ) from None


@dataclass(frozen=True, slots=True)
class Cycle:
    """A billing cycle as the half-open interval [start_us, end_us) of UTC epoch microseconds.

    The period's first day starts at local midnight in ``tz``; the cycle ends
    at local midnight after its last day.
    """

    period: Period
    tz: str
    start_us: int
    end_us: int

    @staticmethod
    def of(period: Period, tz: str) -> Cycle:
        zone = zone_of(tz)
        start = _midnight_us(period.start, zone)
        end = _midnight_us(period.end + timedelta(days=1), zone)
        return Cycle(period, tz, start, end)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _midnight_us(day: date, zone: tzinfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    delta = local.astimezone(timezone.utc) - _EPOCH
    return delta // timedelta(microseconds=1)
