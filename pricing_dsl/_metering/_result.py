"""What a metering run produces: usage records, bad-row counts, and their files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from types import MappingProxyType
from urllib.parse import quote

from .._errors import Diagnostic, PricingError
from .._files import write_atomic
from .._usage import Period
from ._options import Cycle, MeterOptions

__all__ = ["REASONS", "BadRows", "MeterResult", "UsageRecord", "minutes"]

#: Every reason a row can be refused for, in the order rows are checked (a
#: row with several faults is counted under the first), with the words for
#: one row and for several.  Documented in docs/metering.md.
REASONS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "missing_account": ("has no account", "have no account"),
        "missing_user_id": ("has no user_id", "have no user_id"),
        "missing_connection_id": ("has no connection_id", "have no connection_id"),
        "missing_call_id": ("has no call_id", "have no call_id"),
        "missing_timestamp": ("lacks a required timestamp", "lack a required timestamp"),
        "bad_timestamp": (
            "has a timestamp that cannot be read",
            "have a timestamp that cannot be read",
        ),
        "unknown_kind": (
            "has a kind other than voice or video",
            "have a kind other than voice or video",
        ),
        "end_before_start": ("ends before it starts", "end before they start"),
        "bad_participants": (
            "has no participants, or not a whole number from 1 to 999,999,999",
            "have no participants, or not a whole number from 1 to 999,999,999",
        ),
        "conflicting_id": (
            "shares its id with a row that disagrees with it",
            "share their id with a row that disagrees with them",
        ),
    }
)

_MICROS_PER_MINUTE = 60_000_000
_MILLIONTH = Decimal("0.000001")


def minutes(micros: int) -> Decimal:
    """Microseconds as minutes, exactly whenever a decimal can hold the value.

    60,000,000 is 2⁸·3·5⁷, so the quotient is a finite decimal exactly when
    ``micros`` is a multiple of 3 (for whole seconds: a multiple of 3
    seconds, at most two decimal places).  Otherwise (1 second is 0.01666…
    minutes) it is rounded to the nearest millionth of a minute.  The
    division happens once, on the total, so rounding never accumulates.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(micros) / _MICROS_PER_MINUTE
        if micros % 3:
            value = value.quantize(_MILLIONTH, ROUND_HALF_EVEN)
        return _canonical(value)


def _canonical(d: Decimal) -> Decimal:
    # 2124.000000 and 2124 are the same number; write the short one.
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _number(value: int | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """The usage of one account in one cycle.  A meter is None when its events were not given."""

    account: str
    period: Period
    mau: int | None = None
    peak_connections: int | None = None
    voice_minutes: Decimal | None = None
    video_minutes: Decimal | None = None

    def to_dict(self) -> dict[str, object]:
        """The record in the project's usage format (numbers stay exact)."""
        out: dict[str, object] = {"account": self.account, "period": self.period.to_json()}
        out.update(self._meters())
        return out

    def to_json(self) -> str:
        """One JSON object on one line; Decimals are written as exact JSON numbers."""
        parts = [
            f'"account": {json.dumps(self.account, ensure_ascii=False)}',
            f'"period": {json.dumps(self.period.to_json())}',
        ]
        for key, value in self._meters():
            parts.append(f'"{key}": {_number(value)}')
        return "{" + ", ".join(parts) + "}"

    def to_yaml(self) -> str:
        """The record as a YAML usage file, as `pricing rate --usage` reads it."""
        period = self.period.to_json()
        if isinstance(period, str):
            period_text = f'"{period}"'
        else:
            period_text = f'{{start: "{period["start"]}", end: "{period["end"]}"}}'
        lines = [f"account: {_yaml_string(self.account)}", f"period: {period_text}"]
        lines.extend(f"{key}: {_number(value)}" for key, value in self._meters())
        return "\n".join(lines) + "\n"

    def _meters(self) -> list[tuple[str, int | Decimal]]:
        out: list[tuple[str, int | Decimal]] = []
        for key in ("mau", "peak_connections", "voice_minutes", "video_minutes"):
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        return out


def _yaml_string(text: str) -> str:
    import yaml

    # A double-quoted YAML scalar, escaped by PyYAML itself so that every
    # account id (quotes, colons, line separators) reads back unchanged.
    dumped: str = yaml.safe_dump(
        text, default_style='"', allow_unicode=True, width=1 << 30, explicit_end=False
    )
    return dumped.strip()


@dataclass(frozen=True, slots=True)
class BadRows:
    """Rows of one kind refused for one reason.  ``example`` is an id from one of them."""

    kind: str
    reason: str
    count: int
    example: str | None = None

    @property
    def words(self) -> str:
        """``3 connection rows end before they start (e.g. `c17`)``."""
        noun = {"logins": "login", "connections": "connection", "calls": "call"}[self.kind]
        one, many = REASONS[self.reason]
        rows = f"{self.count} {noun} row" if self.count == 1 else f"{self.count} {noun} rows"
        example = f" (e.g. `{self.example}`)" if self.example else ""
        return f"{rows} {one if self.count == 1 else many}{example}"


@dataclass(frozen=True, slots=True)
class MeterResult:
    """The outcome of :func:`pricing_dsl._metering.meter`.

    ``records`` holds one usage record per account, sorted by account.
    ``bad_rows`` lists the refused rows per kind and reason; ``rows_read``
    and ``duplicates`` count, per kind given, the rows read and the exact
    duplicates that were counted once.
    """

    records: tuple[UsageRecord, ...]
    bad_rows: tuple[BadRows, ...]
    rows_read: Mapping[str, int]
    duplicates: Mapping[str, int]
    cycle: Cycle
    engine: str
    options: MeterOptions = field(default_factory=MeterOptions)

    @property
    def period(self) -> Period:
        """The billing period metered (its days; ``cycle`` has the exact instants)."""
        return self.cycle.period

    @property
    def bad_row_counts(self) -> dict[tuple[str, str], int]:
        """``{(kind, reason): count}`` for every reason with at least one row."""
        return {(b.kind, b.reason): b.count for b in self.bad_rows}

    def by_account(self) -> dict[str, UsageRecord]:
        """The records keyed by account id."""
        return {r.account: r for r in self.records}

    def to_jsonl(self) -> str:
        """Every record as JSON Lines."""
        return "".join(r.to_json() + "\n" for r in self.records)

    def diagnostics(self, sources: Mapping[str, str] | None = None) -> list[Diagnostic]:
        """The bad rows as diagnostics: E612 errors under ``strict``, else W612 warnings."""
        strict = self.options.strict
        return [
            Diagnostic(
                "E612" if strict else "W612",
                b.words + ("" if strict else "; not used"),
                (sources or {}).get(b.kind, b.kind),
                key=b.reason,
                severity="error" if strict else "warning",
            )
            for b in self.bad_rows
        ]

    def summary(self) -> str:
        """A few lines for people: what was metered, with which options, and what was refused."""
        n = len(self.records)
        lines = [
            f"metered {n} account{'s' if n != 1 else ''} for {self.period} "
            f"({self.cycle.tz}) with {self.engine}",
            f"  {self.options.describe()}",
        ]
        for kind, rows in self.rows_read.items():
            bad = sum(b.count for b in self.bad_rows if b.kind == kind)
            dups = self.duplicates.get(kind, 0)
            extra = []
            if dups:
                extra.append(f"{dups} exact duplicate{'s' if dups != 1 else ''} counted once")
            if bad:
                extra.append(f"{bad} bad")
            tail = f" ({', '.join(extra)})" if extra else ""
            lines.append(f"  {kind}: {rows} row{'s' if rows != 1 else ''}{tail}")
        return "\n".join(lines) + "\n"

    def write(self, path: str, fmt: str) -> list[str]:
        """Write the records: ``jsonl`` to a file (``-`` is standard output) or ``yaml``
        to a directory, one ``<account>.yaml`` per account.  Returns the files written.
        """
        if fmt not in ("jsonl", "yaml") or (fmt == "yaml" and path == "-"):
            raise PricingError(
                Diagnostic(
                    "E611",
                    f"cannot write {fmt} there: write jsonl to a file or -, or yaml to a directory",
                    path,
                    key="out",
                )
            )
        if fmt == "jsonl":
            if path == "-":
                import sys

                sys.stdout.write(self.to_jsonl())
                sys.stdout.flush()
                return []
            _write_atomic(path, self.to_jsonl())
            return [path]
        return self._write_yaml_dir(path)

    def _write_yaml_dir(self, directory: str) -> list[str]:
        names: dict[str, str] = {}
        for r in self.records:
            name = file_name(r.account)
            clash = names.get(name.casefold())
            if clash is not None:
                raise PricingError(
                    Diagnostic(
                        "E611",
                        f"accounts `{clash}` and `{r.account}` would share the file {name}; "
                        "write JSON Lines instead",
                        directory,
                    )
                )
            names[name.casefold()] = r.account
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise PricingError(
                Diagnostic("E611", f"cannot create the output directory: {exc.strerror}", directory)
            ) from None
        written = []
        for r in self.records:
            target = os.path.join(directory, file_name(r.account))
            _write_atomic(target, r.to_yaml())
            written.append(target)
        return written


def file_name(account: str) -> str:
    """A file name for an account id: safe characters kept, others %-escaped."""
    name = quote(account, safe="-_@+=,")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + ".yaml"


def _write_atomic(path: str, text: str) -> None:
    # Write beside the target and rename, so a failed run never leaves half a
    # usage file that a batch would then rate.
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise PricingError(
            Diagnostic("E611", f"cannot write the output: {exc.strerror}", path)
        ) from None
