"""Values that embedders pass to Ruleset.rate, and numbers beyond Decimal's range in files.

Every value is either rated exactly as given or refused with a usage
diagnostic (E401, naming the key): never rounded, never read as zero, never
a traceback.
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl import PricingError, Usage
from pricing_dsl._usage import parse_usage_text

RULES = """currency USD
meter sms "SMS" unit message
plan p "P" {
  mau included 0 overage 0.10 per user
  voice 0.001 per minute
  video 0.003 per minute
  sms 0.01 per message
}
"""
# The usage line and its unit price for each key (concurrency's 1.00 is the default).
LINES = {
    "mau": ("mau_overage", Fraction("0.10")),
    "peak_connections": ("concurrency_overage", Fraction(1)),
    "voice_minutes": ("voice", Fraction("0.001")),
    "video_minutes": ("video", Fraction("0.003")),
    "sms": ("sms", Fraction("0.01")),
}
WHOLE = {"mau", "peak_connections"}


@pytest.fixture(scope="module")
def rules() -> pricing_dsl.Ruleset:
    return pricing_dsl.loads(RULES, "r.pricing")


def _one(call: Any) -> pricing_dsl.Diagnostic:
    with pytest.raises(PricingError) as info:
        call()
    assert len(info.value.diagnostics) == 1, info.value
    return info.value.diagnostics[0]


def _both(rules: pricing_dsl.Ruleset) -> tuple[Any, Any]:
    return rules.rate, rules.rate_reference


# --------------------------------------------------------- accepted exactly


@pytest.mark.parametrize(
    ("key", "value", "quantity", "amount"),
    [
        # 80000.5 x 0.003 = 240.0015 -> 240.00
        ("video_minutes", Fraction(160001, 2), "80000.5", "240.00"),
        # 1/8 minute x 0.001 = 0.000125 -> 0.00
        ("voice_minutes", Fraction(1, 8), "0.125", "0.00"),
        # 41234 x 0.10 = 4123.40
        ("mau", Fraction(82468, 2), "41234", "4123.40"),
        # 10**-60 is the finest a usage value may be: 0.00
        ("voice_minutes", Decimal("1E-60"), "1E-60", "0.00"),
        ("voice_minutes", "0." + "0" * 59 + "1", "1E-60", "0.00"),
    ],
)
def test_exact_values_are_rated_as_given(
    rules: pricing_dsl.Ruleset, key: str, value: object, quantity: str, amount: str
) -> None:
    code = LINES[key][0]
    for rate in _both(rules):
        inv = rate("p", {"period": "2026-08", key: value})
        line = next(ln for ln in inv.lines if ln.code == code)
        assert line.quantity == Decimal(quantity)
        assert line.amount == Decimal(amount)


def test_numpy_values_are_read_like_python_values(rules: pricing_dsl.Ruleset) -> None:
    np = pytest.importorskip("numpy")
    for rate in _both(rules):
        # 41234 x 0.10 = 4123.40; 80000.5 x 0.003 = 240.0015 -> 240.00;
        # 2 x 1.00 = 2.00; 0.5 x 0.01 = 0.005 -> 0.01 (half up)
        inv = rate(
            "p",
            {
                "mau": np.int64(41234),
                "video_minutes": np.float64(80000.5),
                "peak_connections": np.uint8(2),
                "sms": np.float32(0.5),
            },
        )
        assert {c: str(a) for c, a in inv.amounts.items()} == {
            "mau_overage": "4123.40",
            "concurrency_overage": "2.00",
            "voice": "0.00",
            "video": "240.00",
            "sms": "0.01",
        }
        assert inv.lines[3].quantity == Decimal("80000.5")


def test_numpy_values_are_refused_like_python_values(rules: pricing_dsl.Ruleset) -> None:
    np = pytest.importorskip("numpy")
    cases = [
        ("voice_minutes", np.float64(0.1), "is the binary float 0.1, which is not exactly 0.1"),
        # float32's 0.1 is 0.100000001490116119384765625.
        ("voice_minutes", np.float32(0.1), "is the binary float 0.1, which is not exactly 0.1"),
        ("mau", np.True_, "is true, not a number"),
        ("voice_minutes", np.float64("nan"), "must be a finite number, not nan"),
        ("video_minutes", np.complex128(3), "is the complex number (3+0j), not a real number"),
        ("mau", np.int64(-3), "must be a whole number of users, 0 or more; got -3"),
        ("mau", np.float64(2.0**127), "is too large (170141183460469231731687303715884105728)"),
        # An Integral to numpy, but a span of time, not a count.
        (
            "sms",
            np.timedelta64(5, "D"),
            "is a timedelta64, which cannot be read as an exact number",
        ),
    ]
    for key, value, words in cases:
        for rate in _both(rules):
            d = _one(lambda rate=rate, key=key, value=value: rate("p", {key: value}))
            assert (d.code, d.key) == ("E401", key)
            assert d.message == f"`{key}` {words}"


# ----------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        # Once read as 0 (a conversion error turned into zero).
        ("video_minutes", Fraction(1, 3), "is the fraction 1/3, which is not a decimal number"),
        ("video_minutes", Fraction(10**20, 3), "is too large (100000000000000000000/3)"),
        ("voice_minutes", Fraction(1, 2**61), "which is not a decimal number with at most 60"),
        ("mau", Fraction(1, 2), "must be a whole number of users, 0 or more; got 0.5"),
        ("voice_minutes", complex(3, 0), "is the complex number (3+0j), not a real number"),
        ("voice_minutes", 1j, "is the complex number 1j, not a real number"),
        # Once accepted, with a million-character explanation.
        ("voice_minutes", Decimal("1E-999999"), "has too many decimal places (1E-999999)"),
        ("voice_minutes", Decimal("1E-61"), "has too many decimal places (1E-61)"),
        ("voice_minutes", "0." + "0" * 60 + "1", "has too many decimal places"),
        ("mau", 2.0**127, "is too large (170141183460469231731687303715884105728)"),
        ("mau", 1e300, "is too large (the binary float 1e+300)"),
    ],
)
def test_values_that_are_not_exact_decimals_are_refused(
    rules: pricing_dsl.Ruleset, key: str, value: object, words: str
) -> None:
    calls = [rules.rate_reference, lambda c, u: Usage.from_mapping(u, meters=rules.meters)]
    if not isinstance(value, Decimal):
        # A Decimal with more than 60 places still takes the compiled fast
        # path of Ruleset.rate, which rates it exactly (see the property test).
        calls.append(rules.rate)
    for call in calls:
        d = _one(lambda call=call: call("p", {key: value}))
        assert (d.code, d.key) == ("E401", key)
        assert words in d.message


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        # Python will not write out an int past 4300 digits: these raised ValueError.
        ("mau", -(10**5000), "must be a whole number of users, 0 or more; got -1000"),
        ("sms", Fraction(10**5000, 3), "is too large (10000000000000000000… (5001 digits)/3)"),
        ("sms", Fraction(1, 3**5000), "is the fraction 1/40389976297871553397… (2386 digits)"),
        ("mau", 10**5000, "is too large (10000000000000000000… (5001 digits))"),
    ],
    ids=["negative-int", "large-fraction", "fine-fraction", "large-int"],
)
def test_numbers_too_long_to_print_are_refused_by_their_first_digits(
    rules: pricing_dsl.Ruleset, key: str, value: object, words: str
) -> None:
    for rate in _both(rules):
        d = _one(lambda rate=rate: rate("p", {key: value}))
        assert (d.code, d.key) == ("E401", key)
        assert words in d.message


def test_an_unreadable_value_is_refused_never_zero() -> None:
    from pricing_dsl._usage import _to_decimal

    where = {"source": "u.yaml", "lines": {"sms": 3}}
    with pytest.raises(PricingError) as info:
        _to_decimal("1,000", "sms", where)
    d = info.value.diagnostics[0]
    assert (d.code, d.path, d.line, d.key) == ("E401", "u.yaml", 3, "sms")


# ------------------------------------------------ the property: exact or refused


def _independent(value: Any) -> Fraction | None:
    """The exact value a caller means by `value`, or None if it has none.

    Written apart from pricing_dsl: Fraction arithmetic on the value itself.
    A float means the decimal it prints as, and only if it is exactly that.
    """
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return None
    if isinstance(value, complex) or type(value).__name__.startswith("complex"):
        return None
    if isinstance(value, str):
        return Fraction(value)
    if isinstance(value, Decimal):
        return Fraction(value) if value.is_finite() else None
    if isinstance(value, (int, Fraction)) or type(value).__name__.startswith(("int", "uint")):
        return Fraction(int(value.numerator), int(value.denominator))
    num, den = value.as_integer_ratio()  # a float of some width
    printed = Fraction(repr(value) if type(value) is float else str(value))
    return printed if printed == Fraction(num, den) else None


def _billable(key: str, value: Any, exact: Fraction | None) -> bool:
    """Whether usage rules accept this value for `key` (language.md, usage input)."""
    if exact is None or not 0 <= exact < 10**15:
        return False
    if key in WHOLE and isinstance(value, str) and not value.isdigit():
        return False  # a string of users or connections is whole digits: "1000.0" is refused
    if key in WHOLE and exact.denominator != 1:
        return False
    places = 0
    while (exact * 10**places).denominator != 1:
        places += 1
        if places > 60:
            return False
    # A value written with more than 60 decimal places is refused even when
    # they are zeros (`0E-61`, "0.000…0"): the bound is on what is written.
    if isinstance(value, (str, Decimal)):
        exponent = Decimal(value).as_tuple().exponent
        if isinstance(exponent, int) and exponent < -60:
            return False
    return True


def _numpy_values() -> st.SearchStrategy[Any]:
    try:
        import numpy as np
    except ImportError:
        return st.nothing()
    return st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(np.int64),
        st.integers(0, 255).map(np.uint8),
        st.floats(allow_nan=False, allow_infinity=False).map(np.float64),
        st.floats(width=32, allow_nan=False, allow_infinity=False).map(np.float32),
        st.booleans().map(np.bool_),
        st.complex_numbers(allow_nan=False, allow_infinity=False).map(np.complex128),
    )


_fine_decimals = st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.integers(-(10**20), 10**20),
    st.integers(-70, 20),
)
_fractions = st.builds(
    Fraction,
    st.integers(-(10**17), 10**17),
    st.one_of(
        st.sampled_from([1, 2, 3, 4, 5, 7, 8, 10, 16, 25, 125, 1000, 2**60, 2**61, 5**61]),
        st.integers(1, 10**6),
    ),
)
_values = st.one_of(
    st.integers(-(10**16), 10**16),
    st.integers(0, 10**6),
    _fine_decimals,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.from_regex(r"[0-9]{1,16}(\.[0-9]{1,64})?", fullmatch=True),
    _fractions,
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(0, 10**6).map(lambda f: round(f, 2)),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.booleans(),
    _numpy_values(),
)


_RULES = pricing_dsl.loads(RULES, "r.pricing")


@settings(max_examples=400, deadline=None)
@given(key=st.sampled_from(sorted(LINES)), value=_values)
@example(key="mau", value=Decimal("0E-61"))  # zero, but written with 61 places: refused
def test_a_value_is_rated_exactly_or_refused_never_altered(key: str, value: Any) -> None:
    rules = _RULES
    exact = _independent(value)
    billable = _billable(key, value, exact)
    for rate in (rules.rate_reference, rules.rate):
        try:
            inv = rate("p", {key: value})
        except PricingError as exc:
            d = exc.diagnostics[0]
            assert (d.code, d.key) == ("E401", key), exc
            assert not billable, f"{value!r} refused: {exc}"
            continue
        line_code, price = LINES[key]
        line = next(ln for ln in inv.lines if ln.code == line_code)
        assert exact is not None and Fraction(line.quantity) == exact, (value, line.quantity)
        # Half up to cents, by hand: the amount is exact too.
        cents = (exact * price * 100 + Fraction(1, 2)).__floor__()
        assert Fraction(line.amount) == Fraction(cents, 100)
        assert billable, f"{value!r} rated as {line.quantity}"


# ------------------------------------------- numbers past Decimal's range in files


@pytest.mark.parametrize(
    ("text", "source", "line", "words"),
    [
        ('{"mau": 1e9999999999999999999}', "u.json", 0, "is too large (1e9999999999999999999)"),
        ('{"sms": 1e-9999999999999999999}', "u.json", 0, "has too many decimal places"),
        ("mau: 1.0e+9999999999999999999\n", "u.yaml", 1, "is too large (1.0e+9999999999999999999)"),
        ("period: 2026-08\nsms: 1" + "0" * 5000 + "\n", "u.yaml", 2, "is too large (1000000"),
        ('{"sms": 1' + "0" * 5000 + "}", "u.json", 0, "is too large (1000000"),
    ],
)
def test_numbers_past_decimals_range_are_too_large(
    text: str, source: str, line: int, words: str
) -> None:
    key = "sms" if "sms" in text else "mau"
    meters = pricing_dsl.loads(RULES, "r.pricing").meters
    d = _one(lambda: parse_usage_text(text, source, meters))
    assert (d.code, d.path, d.line, d.key) == ("E401", source, line, key)
    assert words in d.message


def test_a_json_exponent_past_decimals_range_is_a_usage_error_in_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pricing_dsl._cli import main

    usage = tmp_path / "u.json"
    usage.write_text('{"period": "2026-08", "mau": 1e9999999999999999999}')
    rulesets = str(Path(__file__).resolve().parent.parent / "rulesets")
    assert main(["rate", rulesets, "--contract", "starter", "--usage", str(usage)]) == 1
    err = capsys.readouterr().err
    assert f"{usage}: mau: error[E401]: `mau` is too large (1e9999999999999999999)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_json_exponent_past_decimals_range_fails_its_record_only(
    tmp_path: Path, engine: str
) -> None:
    pytest.importorskip("duckdb")
    from pricing_dsl._batch import run_batch

    usage = tmp_path / "u.jsonl"
    usage.write_text(
        '{"contract": "starter", "period": "2026-08", "mau": 1e9999999999999999999}\n'
        '{"contract": "starter", "period": "2026-08", "mau": 5}\n'
    )
    out, errors = tmp_path / "o.jsonl", tmp_path / "e.jsonl"
    rules = pricing_dsl.load(Path(__file__).resolve().parent.parent / "rulesets")
    summary = run_batch(rules, usage, out, errors_path=errors, engine=engine, quiet=True)
    assert (summary.records, summary.rated, summary.failed) == (2, 1, 1)
    [error] = map(json.loads, errors.read_text().splitlines())
    assert (error["line"], error["code"], error["key"]) == (1, "E401", "mau")
    assert error["message"] == "`mau` is too large (1e9999999999999999999)"
    assert out.read_text()  # the good record's lines


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_hugeint_parquet_value_is_too_large_by_its_value(tmp_path: Path, engine: str) -> None:
    duckdb = pytest.importorskip("duckdb")
    from pricing_dsl._batch import run_batch

    usage = tmp_path / "u.parquet"
    con = duckdb.connect()
    # DuckDB writes a HUGEINT column to Parquet as DOUBLE: 2**127 - 1 becomes
    # the double 2**127, which was refused as "the binary float 1.7e+38".
    con.execute(
        "COPY (SELECT 'starter' AS contract, '2026-08' AS period, "
        "170141183460469231731687303715884105727::HUGEINT AS mau) "
        f"TO '{usage}' (FORMAT PARQUET)"
    )
    con.close()
    rules = pricing_dsl.load(Path(__file__).resolve().parent.parent / "rulesets")
    errors = tmp_path / "e.jsonl"
    run_batch(rules, usage, tmp_path / "o.jsonl", errors_path=errors, engine=engine, quiet=True)
    [error] = map(json.loads, errors.read_text().splitlines())
    assert (error["code"], error["key"]) == ("E401", "mau")
    assert error["message"] == "`mau` is too large (170141183460469231731687303715884105728)"
