"""Usage input: one billing period's meter readings, read exactly.

Numbers never pass through ``float``: JSON is parsed with
``parse_float=Decimal`` and YAML floats are built from their text.  Values
are validated against the usage JSON Schema, and each schema error is turned
into a plain-words diagnostic naming the file and key.
"""

from __future__ import annotations

import calendar
import json
import numbers
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from ._errors import Diagnostic, PricingError
from ._suggest import did_you_mean
from ._terms import BUILTIN_METERS, MeterInfo

__all__ = ["Period", "Usage", "load_usage_file", "parse_usage_text", "usage_schema"]


# The dates supported everywhere: date literals in rulesets (refused by
# `pricing check` with E232 outside them), usage periods and invoices.
# Calendar arithmetic near date.min/date.max overflows, and no bill is that far away.
FIRST_YEAR = 1900
LAST_YEAR = 9000
DATE_RANGE = f"{FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31"


def date_supported(d: date) -> bool:
    """Whether ``d`` lies in the supported years, FIRST_YEAR to LAST_YEAR."""
    return FIRST_YEAR <= d.year <= LAST_YEAR


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period, ``start`` to ``end`` inclusive."""

    start: date
    end: date

    def __post_init__(self) -> None:
        for d in (self.start, self.end):
            if not date_supported(d):
                raise ValueError(f"{d.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}")

    @staticmethod
    def month(year: int, month: int) -> Period:
        last = calendar.monthrange(year, month)[1]
        return Period(date(year, month, 1), date(year, month, last))

    @staticmethod
    def parse(text: str) -> Period:
        """``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD``; raises ValueError."""
        if ".." in text:
            a, b = text.split("..", 1)
            p = Period(date.fromisoformat(a), date.fromisoformat(b))
            if p.end < p.start:
                raise ValueError("the period ends before it starts")
            return p
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError("expected YYYY-MM")
        return Period.month(int(year), int(month))

    @property
    def is_calendar_month(self) -> bool:
        return (
            self.start.day == 1
            and self.start.year == self.end.year
            and self.start.month == self.end.month
            and self.end.day == calendar.monthrange(self.end.year, self.end.month)[1]
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def months(self) -> Iterable[Period]:
        """The calendar months this period touches, clipped to the period."""
        cur = self.start
        while cur <= self.end:
            last = date(cur.year, cur.month, calendar.monthrange(cur.year, cur.month)[1])
            yield Period(cur, min(last, self.end))
            cur = last + timedelta(days=1)

    def intersect(self, other: Period) -> Period | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start <= end else None

    def to_json(self) -> str | dict[str, str]:
        if self.is_calendar_month:
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def __str__(self) -> str:
        if self.is_calendar_month:
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True, slots=True)
class Usage:
    """Meter readings for one period.  ``values`` maps usage keys to exact quantities."""

    values: Mapping[str, Decimal]
    period: Period | None = None
    contract: str | None = None
    account: str | None = None
    source: str = "<usage>"

    def get(self, key: str) -> Decimal:
        return self.values.get(key, _ZERO)

    @staticmethod
    def from_mapping(
        data: Mapping[str, Any],
        *,
        meters: Iterable[MeterInfo] = BUILTIN_METERS,
        source: str = "<usage>",
        lines: Mapping[str, int] | None = None,
    ) -> Usage:
        """Validate a mapping (from a file or from Python code) into a :class:`Usage`."""
        return _validate(data, tuple(meters), source, lines or {})


_ZERO = Decimal(0)

# -------------------------------------------------------------------- schema


@cache
def _static_schema() -> dict[str, Any]:
    text = resources.files("pricing_dsl").joinpath("schemas/usage.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def usage_schema(meters: Iterable[MeterInfo] = BUILTIN_METERS) -> dict[str, Any]:
    """The JSON Schema of usage for a ruleset with these meters."""
    schema = json.loads(json.dumps(_static_schema()))
    for m in meters:
        if m.builtin:
            continue
        schema["properties"][m.usage_key] = {
            "description": f"{m.name}, in {m.unit}s",
            "$ref": "#/$defs/quantity",
        }
    return dict(schema)


@cache
def _validator(custom: tuple[str, ...]) -> Any:
    # Imported here: embedders that rate plain mappings never need it.
    import jsonschema

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        # Whole-valued Decimals (26250.0 in a JSON file) are integers too.
        "integer",
        lambda _checker, v: (
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value())
        ),
    )
    validator_class = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, type_checker=checker
    )
    meters = [m for m in BUILTIN_METERS] + [
        MeterInfo(k, k, "unit", k, k, False, False, BUILTIN_METERS[0].span) for k in custom
    ]
    return validator_class(usage_schema(meters))


# ---------------------------------------------------------------- validation


def _plain(
    value: Any, key: str, diag: list[Diagnostic], where: dict[str, Any], depth: int = 0
) -> Any:
    """Refuse values that cannot be exact numbers; give exact numbers as int or Decimal.

    Only the top level and one level below in a `period` mapping mean
    anything; deeper values are refused, never walked.
    """
    kind = type(value)
    if kind is str or (kind is int and value.bit_length() <= _HUGE_BITS):
        return value
    if isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in _NP_BOOLS):
        diag.append(_bad(key, f"`{key}` is {str(bool(value)).lower()}, not a number", where))
        return None
    if isinstance(value, Decimal):
        if not value.is_finite():
            diag.append(_bad(key, f"`{key}` must be a finite number, not {value}", where))
            return None
        return value
    if isinstance(value, (numbers.Number, _Unreadable)):
        return _number(value, key, diag, where)
    if isinstance(value, Period):
        return value.to_json()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping) and depth == 0 and key == "period":
        return {str(k): _plain(v, f"{key}.{k}", diag, where, 1) for k, v in value.items()}
    # A list or a mapping here is refused whatever it holds.  An empty one is
    # refused in the same words, and the schema, which writes the repr of
    # the value into its messages, never walks what may be a huge structure
    # (a list that holds itself, or the same list nested level after level).
    if isinstance(value, Mapping):
        return {}
    if isinstance(value, (list, tuple)):
        return []
    return value


# numpy's booleans are not `bool`: checked by name, as numpy is not a dependency.
_NP_BOOLS = ("bool", "bool_")


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A number written in a usage file that no Decimal or int can hold: its text.

    Reading goes on, so that validation reports it with its key, as it
    reports any other value out of bounds.
    """

    text: str


def _number(value: Any, key: str, diag: list[Diagnostic], where: dict[str, Any]) -> Any:
    """An exact int or Decimal for a number that is not an int or a Decimal, or None.

    Integers of any kind (numpy's too) are exact; so is a fraction that is a
    decimal; a binary float (Python's or numpy's) is taken only when it is
    exactly the decimal it prints as.  Everything else is refused, never
    rounded and never read as zero.
    """
    hint = 'pass an int, a Decimal or a decimal string such as "96500.5"'
    if isinstance(value, _Unreadable):
        # Only an exponent takes a number past Decimal's range (or an int past
        # Python's 4300-digit conversion limit): far too large, or far too fine.
        if re.search(r"[eE]-", value.text):
            diag.append(_places_error(key, _brief(value.text), where))
        else:
            diag.append(_size_error(key, _brief(value.text), where))
        return None
    if isinstance(value, numbers.Integral):
        try:
            whole = operator.index(value)
        except (TypeError, ValueError):
            pass  # numpy's timedelta64 is an Integral, but not a count of anything
        else:
            if whole.bit_length() <= _HUGE_BITS:
                return whole
            # Python refuses to write out an int this long, and the schema's
            # messages would try: refused here, by its first digits.
            if whole > 0:
                diag.append(_size_error(key, _int_brief(whole), where))
            else:
                expected = _KEY_WORDS.get(key, "a number, 0 or more")
                diag.append(
                    _bad(key, f"`{key}` must be {expected}; got {_int_brief(whole)}", where)
                )
            return None
    elif isinstance(value, numbers.Rational):
        return _from_fraction(value, key, diag, where, hint)
    elif isinstance(value, numbers.Real) and hasattr(value, "as_integer_ratio"):
        return _from_binary_float(value, key, diag, where, hint)
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        words = f"`{key}` is the complex number {value}, not a real number"
    else:
        words = f"`{key}` is a {type(value).__name__}, which cannot be read as an exact number"
    diag.append(_bad(key, words, where, hint=hint))
    return None


def _from_fraction(
    value: numbers.Rational, key: str, diag: list[Diagnostic], where: dict[str, Any], hint: str
) -> Decimal | None:
    """The exact Decimal of a fraction whose value is a decimal with at most USAGE_PLACES places."""
    num, den = int(value.numerator), int(value.denominator)
    shown = f"{_int_brief(num)}/{_int_brief(den)}"
    if num >= den * _INT_LIMIT:
        diag.append(_size_error(key, shown, where))
        return None
    # A decimal has only 2s and 5s in its denominator; its places are the
    # larger count.  The 5s are counted only as far as the bound.
    twos = (den & -den).bit_length() - 1
    rest, fives = den >> twos, 0
    while rest % 5 == 0 and fives <= USAGE_PLACES:
        rest //= 5
        fives += 1
    places = max(twos, fives)
    if rest != 1 or places > USAGE_PLACES:
        diag.append(
            _bad(
                key,
                f"`{key}` is the fraction {shown}, which is not a decimal "
                f"number with at most {USAGE_PLACES} decimal places",
                where,
                hint=hint,
            )
        )
        return None
    # Exact: den divides num * 10**places.  From text, so no context rounds it.
    return Decimal(f"{num * 10**places // den}E-{places}")


def _from_binary_float(
    value: Any, key: str, diag: list[Diagnostic], where: dict[str, Any], hint: str
) -> Decimal | None:
    """A float (Python's, numpy's of any width) as the decimal it prints as, if exactly that."""
    try:
        num, den = value.as_integer_ratio()
    except (OverflowError, ValueError):  # infinities and NaN
        diag.append(_bad(key, f"`{key}` must be a finite number, not {value}", where))
        return None
    shown = repr(value) if type(value) is float else str(value)  # numpy's repr names its type
    exact = Fraction(num, den)
    if exact >= _INT_LIMIT:
        # Any float this large is a whole number (or a half-integer near 10**15):
        # say which, not that it prints otherwise.
        whole = _fraction_text(exact)
        diag.append(
            _size_error(key, whole if len(whole) <= 40 else f"the binary float {shown}", where)
        )
        return None
    try:
        written = Decimal(shown)
        matches = written.is_finite() and Fraction(written) == exact
    except InvalidOperation:
        matches = False
    if not matches:
        diag.append(
            _bad(
                key,
                f"`{key}` is the binary float {shown}, which is not exactly {shown}",
                where,
                hint=f'pass a Decimal or a decimal string such as "{shown}"',
            )
        )
        return None
    return written


def _fraction_text(value: Fraction) -> str:
    """A binary fraction (its denominator a power of 2) written out exactly in decimal."""
    places = value.denominator.bit_length() - 1
    return str(Decimal(f"{value.numerator * 5**places}E-{places}"))


def _int_brief(n: int) -> str:
    """An int for a message: a long one by its first digits and its length."""
    if n.bit_length() <= 130:  # at most 40 digits
        return str(n)
    # The first digits without writing out the rest, which Python refuses
    # past 4300 digits: 10**k is below |n|, and |n| // 10**k has 21 digits or more.
    k = int(n.bit_length() * 0.30102999) - 21
    lead = str(abs(n) // 10**k)
    return f"{'-' if n < 0 else ''}{lead[:20]}… ({len(lead) + k} digits)"


def _brief(text: str) -> str:
    """A number's text for a message: a long one by its first digits and its length."""
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text)} characters)"


def _size_error(key: str, shown: str, where: dict[str, Any]) -> Diagnostic:
    return _bad(
        key,
        f"`{key}` is too large ({shown})",
        where,
        hint=f"usage values must be below {LIMIT_TEXT}",
    )


def _places_error(key: str, shown: str, where: dict[str, Any]) -> Diagnostic:
    return _bad(
        key,
        f"`{key}` has too many decimal places ({shown})",
        where,
        hint=f"usage values may have at most {USAGE_PLACES} decimal places",
    )


def _bad(key: str, message: str, where: dict[str, Any], hint: str | None = None) -> Diagnostic:
    line = where["lines"].get(key.split(".")[0], 0)
    return Diagnostic("E401", message, where["source"], line, 1 if line else 0, hint=hint, key=key)


_KEY_WORDS = {
    "mau": "a whole number of users, 0 or more",
    "peak_connections": "a whole number of connections, 0 or more",
    "voice_minutes": "a number of minutes, 0 or more",
    "video_minutes": "a number of minutes, 0 or more",
    "contract": "a contract id (text)",
    "account": "an account id (text)",
    "period": "a month such as 2026-08, or {start: 2026-08-01, end: 2026-08-31}",
}


def _validate(
    data: Mapping[str, Any], meters: tuple[MeterInfo, ...], source: str, lines: Mapping[str, int]
) -> Usage:
    where = {"source": source, "lines": lines}
    if not isinstance(data, Mapping):
        raise PricingError(
            Diagnostic(
                "E400",
                "usage must be a mapping of keys to values, such as `mau: 26250`",
                source,
            )
        )
    diags: list[Diagnostic] = []
    clean = {str(k): _plain(v, str(k), diags, where) for k, v in data.items()}
    if diags:
        raise PricingError(diags)
    custom = tuple(sorted(m.usage_key for m in meters if not m.builtin))
    if not _plainly_valid(clean, custom):
        _schema_errors(clean, custom, diags, where)
    if diags:
        raise PricingError(diags)

    period = None
    raw_period = clean.get("period")
    if raw_period is not None:
        try:
            if isinstance(raw_period, str):
                period = Period.parse(raw_period)
            else:
                period = Period(
                    date.fromisoformat(raw_period["start"]), date.fromisoformat(raw_period["end"])
                )
                if period.end < period.start:
                    raise ValueError("the period ends before it starts")
        except (ValueError, KeyError) as exc:
            raise PricingError(_bad("period", f"bad `period`: {exc}", where)) from None
    values: dict[str, Decimal] = {}
    for m in meters:
        if m.usage_key in clean:
            value = _to_decimal(clean[m.usage_key], m.usage_key, where)
            if not within_limits(value, places=None):
                diags.append(_size_error(m.usage_key, _show(value), where))
            elif not within_limits(value, places=USAGE_PLACES):
                diags.append(_places_error(m.usage_key, _show(value), where))
            values[m.usage_key] = value
    if diags:
        raise PricingError(diags)
    return Usage(
        MappingProxyType(values),
        period,
        clean.get("contract"),
        clean.get("account"),
        source,
    )


# Plain text the schema's patterns accept, anchored at both ends (the schema's
# `$` would also let a trailing newline through, so these accept less, never more).
_MONTH_TEXT = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])\Z")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_COUNT_TEXT = re.compile(r"[0-9]+\Z")
_QUANTITY_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?\Z")


@cache
def _wholes(custom: tuple[str, ...]) -> Mapping[str, bool]:
    """Each usage key's meter, whole or not, as `_validator` builds its schema:
    the built-in meters, then the custom keys (never whole), which take
    precedence as properties do there."""
    whole = {m.usage_key: m.whole for m in BUILTIN_METERS}
    whole.update(dict.fromkeys(custom, False))
    return MappingProxyType(whole)


def _plainly_valid(clean: Mapping[str, Any], custom: tuple[str, ...]) -> bool:
    """True only for usage the schema certainly accepts (a sound, fast subset of it).

    Most usage is plain, and proving that here saves importing jsonschema (a
    third of `pricing rate`'s start-up).  Anything this does not recognise is
    judged by the schema itself, which also words the errors.
    """
    whole = _wholes(custom)
    for key, v in clean.items():
        if key in whole:
            if type(v) is int:
                if v < 0:
                    return False
            elif type(v) is Decimal:
                if v < 0 or (whole[key] and v != v.to_integral_value()):
                    return False
            elif type(v) is str:
                if not (_COUNT_TEXT if whole[key] else _QUANTITY_TEXT).match(v):
                    return False
            else:
                return False
        elif key in ("account", "contract"):
            if type(v) is not str or not v:
                return False
        elif key == "period":
            if type(v) is str:
                if not _MONTH_TEXT.match(v):
                    return False
            elif type(v) is dict:
                if v.keys() != {"start", "end"}:
                    return False
                if not all(type(d) is str and _DATE_TEXT.match(d) for d in v.values()):
                    return False
            else:
                return False
        else:
            return False
    return True


def _schema_errors(
    clean: Mapping[str, Any],
    custom: tuple[str, ...],
    diags: list[Diagnostic],
    where: dict[str, Any],
) -> None:
    """Add a diagnostic for each key the usage schema refuses."""
    validator = _validator(custom)
    known = list(validator.schema["properties"])
    seen: set[str] = set()
    for err in sorted(validator.iter_errors(clean), key=lambda e: [str(p) for p in e.path]):
        if err.validator == "additionalProperties" and not err.path:
            for key in clean:
                if key not in validator.schema["properties"] and key not in seen:
                    seen.add(key)
                    diags.append(
                        _bad(
                            key,
                            f"unknown usage key `{key}`" + did_you_mean(key, known),
                            where,
                            hint="usage keys are: " + ", ".join(known),
                        )
                    )
            continue
        key = str(err.path[0]) if err.path else ""
        if key in seen:
            continue
        seen.add(key)
        got = clean.get(key)
        expected = _KEY_WORDS.get(key, "a number, 0 or more")
        hint = _separator_hint(got) if key not in ("account", "contract", "period") else None
        diags.append(_bad(key, f"`{key}` must be {expected}; got {_show(got)}", where, hint=hint))


# `1,000` in YAML is text, and so is "1,000" in JSON: numbers as people write
# them, with a thousands separator (a comma, a space, an apostrophe or `_`).
_GROUPED = re.compile(r"[0-9]{1,3}(?:([, '_])[0-9]{3})(?:\1[0-9]{3})*(\.[0-9]+)?\Z")
_COMMA_NUMBER = re.compile(r"[0-9][0-9.]*,[0-9,.]*\Z")


def _separator_hint(got: Any) -> str | None:
    """How to write a number given as text with separators, or None."""
    if not isinstance(got, str):
        return None
    text = got.strip()
    if _GROUPED.match(text):
        return f"write {re.sub('[^0-9.]', '', text)} (no thousands separator)"
    if _COMMA_NUMBER.match(text):
        return "write numbers without commas; the decimal point is `.`"
    return None


# Bounds that keep every product of a usage value and a price exact in the
# rating context (100 digits): far beyond any real bill, far below trouble.
LIMIT = Decimal(10) ** 15
LIMIT_TEXT = "1,000,000,000,000,000"
MAX_PLACES = 12
# Usage may be finer than prices, but not without end: 1E-999999 would make
# a million-character explanation.  With at most 60 places, a usage value
# times a price still fits the 100 digits rating computes with.
USAGE_PLACES = 60
_INT_LIMIT = int(LIMIT)
# Ints past this many bits (about 3000 digits) are refused before the schema
# sees them: its messages write them out, which Python refuses past 4300 digits.
_HUGE_BITS = 10_000


def within_limits(value: Decimal, places: int | None = MAX_PLACES) -> bool:
    """Small enough (and, for ruleset numbers, coarse enough) to rate exactly.

    Usage values are checked for size first (``places=None``), then against
    USAGE_PLACES; should one still carry more digits than rating can multiply
    exactly, rating says so.
    """
    # copy_abs, not abs(): abs() rounds in the current context, and an
    # exponent like 1E+999999999999999999 would overflow it.
    if not value.is_finite() or value.copy_abs() >= LIMIT:
        return False
    exponent = value.as_tuple().exponent
    return places is None or (isinstance(exponent, int) and exponent >= -places)


def _to_decimal(v: Any, key: str, where: dict[str, Any]) -> Decimal:
    """A validated meter value (an int, a Decimal or decimal text) as a Decimal, exactly."""
    if isinstance(v, Decimal):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return Decimal(v)
    if isinstance(v, str):
        try:
            return Decimal(v)  # from text: exact, whatever the context
        except InvalidOperation:
            pass
    # Never zero, never a guess: what validation let through but cannot be
    # read is refused like any other bad value.
    raise PricingError(
        _bad(key, f"`{key}` cannot be read as an exact number; got {_show(v)}", where)
    )


def _show(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "nothing"
    if isinstance(v, (list, dict)):
        return "a list" if isinstance(v, list) else "a mapping"
    return str(v)


# ------------------------------------------------------------------- reading


class _AnchorRefused(Exception):
    """An anchor or alias in a usage file, refused as the loader meets it."""

    def __init__(self, anchor: str, mark: Any, key: str | None) -> None:
        super().__init__(anchor)
        self.anchor, self.mark, self.key = anchor, mark, key


class _ExactLoader(yaml.SafeLoader):
    """YAML with exact numbers, refused duplicate keys and aliases, and key line numbers."""

    _depth = 0
    _top_key: str | None = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        # An alias is the same node again: a file of a few hundred bytes can
        # nest them into a value of billions of items, which every later step
        # (the schema's messages first) would walk.  A usage file has no use
        # for them, so the first anchor or alias ends the reading, before any
        # value is built.
        if self._depth == 1:
            # A key of the top mapping (index None), or the value under one.
            self._top_key = str(index.value) if isinstance(index, yaml.ScalarNode) else None
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorRefused(str(event.anchor), event.start_mark, self._top_key)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1 reads `010` as octal 8, `0x10` as 16 and `1:30` as 90 (base 60).
# Nobody means that in a usage file, so only plain decimal numbers are numbers.
_PLAIN_INT = re.compile(r"[-+]?[0-9][0-9_]*\Z")
_PLAIN_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?\Z")


def _not_plain(node: yaml.ScalarNode, text: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None,
        None,
        f"`{text}` is not a plain decimal number (YAML would read it as binary, octal, "
        "hexadecimal or base 60, or as text when it has a leading zero); write a number in "
        "decimal digits without leading zeros, or put text such as an account id in quotes",
        node.start_mark,
    )


def _yaml_float(loader: _ExactLoader, node: yaml.ScalarNode) -> Decimal | _Unreadable:
    raw = str(loader.construct_scalar(node))
    text = raw.replace("_", "").lower()
    if text in (".nan", ".inf", "+.inf", "-.inf"):
        return Decimal("NaN") if "nan" in text else Decimal("-Infinity" if "-" in text else "Inf")
    if not _PLAIN_FLOAT.match(raw):
        raise _not_plain(node, raw)
    return _decimal_text(text)


def _yaml_int(loader: _ExactLoader, node: yaml.ScalarNode) -> int | _Unreadable:
    raw = str(loader.construct_scalar(node))
    digits = raw.replace("_", "").lstrip("+-")
    if not _PLAIN_INT.match(raw) or (len(digits) > 1 and digits.startswith("0")):
        raise _not_plain(node, raw)
    return _int_text(raw.replace("_", ""))


def _decimal_text(text: str) -> Decimal | _Unreadable:
    """A number's text as a Decimal; one whose exponent Decimal cannot hold, for validation
    to refuse by its key."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return _Unreadable(text)


def _int_text(text: str) -> int | _Unreadable:
    """Digits as an int; past Python's conversion limit (thousands of digits), for validation
    to refuse by its key."""
    try:
        return int(text)
    except ValueError:
        return _Unreadable(text)


def _yaml_mapping(loader: _ExactLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name such as `mau`", key_node.start_mark
            )
        if key in out:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"the key `{key}` appears twice", mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str) and node is loader._root:  # type: ignore[attr-defined]
            loader._lines[key] = key_node.start_mark.line + 1  # type: ignore[attr-defined]
    return out


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _yaml_float)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _yaml_int)
# YAML 1.1 reads `010` as octal but `08` and `09` (not octal) as the text "08",
# which would then pass as a decimal string.  Resolve every leading-zero number
# as an int so `_yaml_int` refuses them all alike.
_ExactLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"\A[-+]?0[0-9_]+\Z"), list("-+0")
)
_ExactLoader.add_constructor("tag:yaml.org,2002:map", _yaml_mapping)


def _read_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    try:
        loader = _ExactLoader(text)
    except yaml.YAMLError as exc:  # e.g. control characters, refused as it reads
        raise PricingError(Diagnostic("E400", f"this is not valid YAML: {exc}", source)) from None
    loader._lines = {}  # type: ignore[attr-defined]
    try:
        node = loader.get_single_node()
        loader._root = node  # type: ignore[attr-defined]
        data = loader.construct_document(node) if node is not None else None
        return data, loader._lines  # type: ignore[attr-defined]
    except _AnchorRefused as exc:
        raise PricingError(
            Diagnostic(
                "E400",
                f"usage files cannot use YAML anchors or aliases (`&{exc.anchor}`, "
                f"`*{exc.anchor}`)",
                source,
                exc.mark.line + 1,
                exc.mark.column + 1,
                hint="write each value out in full",
                key=exc.key,
            )
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        col = mark.column + 1 if mark else 0
        raise PricingError(
            Diagnostic(
                "E400", f"this is not valid YAML: {exc.problem or exc.context}", source, line, col
            )
        ) from None
    except yaml.YAMLError as exc:
        raise PricingError(Diagnostic("E400", f"this is not valid YAML: {exc}", source)) from None
    except RecursionError:
        raise PricingError(
            Diagnostic("E400", "this usage file is nested too deeply", source)
        ) from None
    except (ValueError, ArithmeticError) as exc:
        # A value YAML recognises but cannot build, such as the date 2026-02-30.
        raise PricingError(
            Diagnostic("E400", f"this usage file has a value that cannot be read: {exc}", source)
        ) from None
    finally:
        loader.dispose()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number that can be billed")


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key `{k}` appears twice")
        out[k] = v
    return out


def _read_json(text: str, source: str) -> Any:
    try:
        return json.loads(
            text,
            parse_float=_decimal_text,
            parse_int=_int_text,
            parse_constant=_reject_constant,
            object_pairs_hook=_json_pairs,
        )
    except json.JSONDecodeError as exc:
        raise PricingError(
            Diagnostic(
                "E400",
                f"this is not valid JSON: {exc.msg}",
                source,
                exc.lineno,
                exc.colno,
                hint=_json_comma_hint(exc.doc, exc.pos),
            )
        ) from None
    except ValueError as exc:
        raise PricingError(Diagnostic("E400", f"this is not valid usage: {exc}", source)) from None
    except RecursionError:
        raise PricingError(
            Diagnostic("E400", "this usage file is nested too deeply", source)
        ) from None


_DIGITS_AND_COMMAS = re.compile(r"[0-9]+(?:,[0-9]+)+(?:\.[0-9]+)?")


def _json_comma_hint(text: str, pos: int) -> str | None:
    """A hint when JSON stops at a comma inside a number, as in `{"mau": 1,000}`."""
    # Only the line that failed is searched: a JSON Lines record, or one
    # line of a file.
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)]
    for m in _DIGITS_AND_COMMAS.finditer(line):
        if m.start() < pos - start <= m.end():
            return _separator_hint(m.group())
    return None


def parse_usage_text(
    text: str, source: str = "<usage>", meters: Iterable[MeterInfo] = BUILTIN_METERS
) -> Usage:
    """Parse usage given as YAML or JSON text (JSON is tried when the text starts with `{`)."""
    lines: dict[str, int] = {}
    if source.endswith(".json") or text.lstrip().startswith("{"):
        data = _read_json(text, source)
    else:
        data, lines = _read_yaml(text, source)
    if data is None:
        raise PricingError(Diagnostic("E400", "the usage file is empty", source))
    return Usage.from_mapping(data, meters=meters, source=source, lines=lines)


def load_usage_file(path: str, meters: Iterable[MeterInfo] = BUILTIN_METERS) -> Usage:
    """Read a usage file (``-`` for standard input)."""
    import sys

    if path == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise PricingError(
                Diagnostic(
                    "E402", f"standard input is not UTF-8 text (byte {exc.start})", "<stdin>"
                )
            ) from None
        return parse_usage_text(text.removeprefix("\ufeff"), "<stdin>", meters)
    if not path:
        raise PricingError(Diagnostic("E402", "the usage file name is empty", "--usage"))
    try:
        with open(path, encoding="utf-8-sig") as fh:  # -sig: a BOM is not content
            text = fh.read()
    except FileNotFoundError:
        raise PricingError(Diagnostic("E402", "usage file not found", path)) from None
    except IsADirectoryError:
        raise PricingError(
            Diagnostic("E402", "this is a directory; give a usage file", path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PricingError(Diagnostic("E402", f"cannot read the usage file: {exc}", path)) from None
    return parse_usage_text(text, path, meters)
