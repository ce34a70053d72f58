"""Usage input: exact numbers, strict values, and errors that name the file and key."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl import Period, PricingError, Usage
from pricing_dsl._usage import load_usage_file, parse_usage_text

ROOT = Path(__file__).resolve().parent.parent

RULES = """currency USD
meter sms "SMS" unit message
plan p "P" {
  mau included 100 overage 0.10 per user
  voice 0.001 per minute
  sms 0.01 per message
}
"""


@pytest.fixture(scope="module")
def rules() -> pricing_dsl.Ruleset:
    return pricing_dsl.loads(RULES, "r.pricing")


def _error(call: Any) -> list[pricing_dsl.Diagnostic]:
    with pytest.raises(PricingError) as info:
        call()
    return list(info.value.diagnostics)


def _one(call: Any) -> pricing_dsl.Diagnostic:
    diags = _error(call)
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


# ------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("mau", "26250", Decimal("26250")),
        ("peak_connections", "0", Decimal(0)),
        ("voice_minutes", "96500.5", Decimal("96500.5")),
        ("video_minutes", "0.10", Decimal("0.10")),
    ],
)
def test_decimal_strings_are_read_exactly(key: str, text: str, value: Decimal) -> None:
    usage = Usage.from_mapping({key: text})
    assert usage.values[key] == value
    assert str(usage.values[key]) == text  # the very digits given, no float in between


def test_a_missing_meter_counts_zero(rules: pricing_dsl.Ruleset) -> None:
    usage = Usage.from_mapping({"mau": 5})
    assert usage.get("voice_minutes") == 0
    assert usage.get("video_minutes") == 0
    assert "voice_minutes" not in usage.values
    inv = rules.rate("p", {"mau": 150})
    # 50 x 0.10 = 5.00; everything else missing -> 0.00 lines
    assert {c: str(a) for c, a in inv.amounts.items()} == {
        "mau_overage": "5.00",
        "concurrency_overage": "0.00",
        "voice": "0.00",
        "video": "0.00",
        "sms": "0.00",
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mau", -1),
        ("mau", 10.5),
        ("mau", Decimal("10.5")),
        ("mau", "10.5"),
        ("mau", "1000.0"),
        ("mau", "-5"),
        ("mau", " 5"),
        ("mau", "1_000"),
        ("mau", "1e3"),
        ("mau", ""),
        ("mau", None),
        ("mau", [1]),
        ("mau", {"a": 1}),
        ("peak_connections", -3),
        ("peak_connections", 2.5),
        ("voice_minutes", -0.5),
        ("voice_minutes", "-1"),
        ("video_minutes", "1,000"),
        ("sms", -1),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    rules: pricing_dsl.Ruleset, key: str, value: object
) -> None:
    for call in (
        lambda: Usage.from_mapping({key: value}, meters=rules.meters),
        lambda: rules.rate("p", {key: value}),  # the compiled fast path
        lambda: rules.rate_reference("p", {key: value}),
    ):
        d = _one(call)
        assert d.code == "E401"
        assert d.key == key
        assert f"`{key}`" in d.message


def test_whole_valued_numbers_are_whole(rules: pricing_dsl.Ruleset) -> None:
    assert Usage.from_mapping({"mau": 26250.0}).values["mau"] == 26250
    assert Usage.from_mapping({"mau": Decimal("26250.00")}).values["mau"] == 26250
    # 100 included, 26150 x 0.10
    assert rules.rate("p", {"mau": 26250.0}).amounts["mau_overage"] == Decimal("2615.00")


def test_fractional_users_say_whole_number() -> None:
    d = _one(lambda: Usage.from_mapping({"mau": Decimal("10.5")}))
    assert "whole number of users" in d.message and "10.5" in d.message


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("Infinity")]
)
def test_nan_and_infinity_are_refused(rules: pricing_dsl.Ruleset, value: object) -> None:
    for call in (
        lambda: Usage.from_mapping({"voice_minutes": value}),
        lambda: rules.rate("p", {"voice_minutes": value}),
    ):
        d = _one(call)
        assert d.code == "E401" and d.key == "voice_minutes"
        assert "finite number" in d.message


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("key", ["mau", "voice_minutes", "sms"])
def test_booleans_are_not_numbers(rules: pricing_dsl.Ruleset, key: str, value: bool) -> None:
    # bool is an int in Python; it must not slip through as 1 or 0.
    for call in (
        lambda: Usage.from_mapping({key: value}, meters=rules.meters),
        lambda: rules.rate("p", {key: value}),
    ):
        d = _one(call)
        assert d.code == "E401" and d.key == key
        assert f"is {str(value).lower()}, not a number" in d.message


@pytest.mark.parametrize("value", [0.1, 0.2, 1.1, 96500.3])
def test_lossy_floats_are_refused(rules: pricing_dsl.Ruleset, value: float) -> None:
    for call in (
        lambda: Usage.from_mapping({"voice_minutes": value}),
        lambda: rules.rate("p", {"voice_minutes": value}),
    ):
        d = _one(call)
        assert d.code == "E401" and d.key == "voice_minutes"
        assert "binary float" in d.message
        assert d.hint is not None and "Decimal" in d.hint


@pytest.mark.parametrize(
    ("value", "exact"), [(0.5, "0.5"), (96500.5, "96500.5"), (0.25, "0.25"), (3.0, "3.0")]
)
def test_exact_floats_are_accepted(rules: pricing_dsl.Ruleset, value: float, exact: str) -> None:
    assert Usage.from_mapping({"voice_minutes": value}).values["voice_minutes"] == Decimal(exact)
    # voice_minutes x 0.001, rounded half up
    want = (Decimal(exact) * Decimal("0.001")).quantize(Decimal("0.01"))
    assert rules.rate("p", {"voice_minutes": value}).amounts["voice"] == want


def test_unknown_key_suggests_the_closest(rules: pricing_dsl.Ruleset) -> None:
    d = _one(lambda: Usage.from_mapping({"voice_minute": 3}))
    assert d.code == "E401" and d.key == "voice_minute"
    assert "unknown usage key `voice_minute`; did you mean `voice_minutes`?" in d.message
    assert d.hint is not None and "mau" in d.hint and "video_minutes" in d.hint


def test_custom_meters_are_keys_only_where_declared(rules: pricing_dsl.Ruleset) -> None:
    d = _one(lambda: Usage.from_mapping({"sms": 3}))  # built-in meters only
    assert d.code == "E401" and d.key == "sms"
    assert Usage.from_mapping({"sms": 3}, meters=rules.meters).values["sms"] == 3
    d = _one(lambda: rules.rate("p", {"smss": 3}))
    assert "did you mean `sms`?" in d.message
    assert d.hint is not None and "sms" in d.hint


def test_several_bad_values_are_reported_together() -> None:
    diags = _error(lambda: Usage.from_mapping({"mau": -1, "peak_connections": 2.5, "x": 1}))
    assert sorted(d.key or "" for d in diags) == ["mau", "peak_connections", "x"]
    assert {d.code for d in diags} == {"E401"}


def test_account_and_contract_are_text(rules: pricing_dsl.Ruleset) -> None:
    usage = Usage.from_mapping({"account": "acme-main", "contract": "p"})
    assert (usage.account, usage.contract) == ("acme-main", "p")
    assert rules.rate("p", {"account": "acme-main"}).account == "acme-main"
    for key in ("account", "contract"):
        d = _one(lambda key=key: Usage.from_mapping({key: ""}))
        assert d.code == "E401" and d.key == key


def test_a_non_mapping_is_refused() -> None:
    d = _one(lambda: Usage.from_mapping([("mau", 1)]))  # type: ignore[arg-type]
    assert d.code == "E400"


# ------------------------------------------------------------------ periods


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("2026-08", date(2026, 8, 1), date(2026, 8, 31)),
        ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),
        ("2027-02", date(2027, 2, 1), date(2027, 2, 28)),
        ({"start": "2026-08-01", "end": "2026-08-15"}, date(2026, 8, 1), date(2026, 8, 15)),
        ({"start": "2026-08-15", "end": "2026-08-15"}, date(2026, 8, 15), date(2026, 8, 15)),
        (Period(date(2026, 8, 3), date(2026, 9, 2)), date(2026, 8, 3), date(2026, 9, 2)),
        (Period.month(2026, 12), date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_period_forms(period: object, start: date, end: date) -> None:
    usage = Usage.from_mapping({"period": period})
    assert usage.period == Period(start, end)


@pytest.mark.parametrize(
    "period",
    [
        "2026-13",
        "2026-00",
        "2026-8",
        "2026-08-01",
        "2026-08-01..2026-08-15",
        "August 2026",
        {"start": "2026-08-15", "end": "2026-08-01"},
        {"start": "2026-08-01"},
        {"start": "2026-08-01", "end": "2026-08-31", "extra": "x"},
        {"start": "2026-02-01", "end": "2026-02-30"},
        202608,
    ],
)
def test_bad_periods_are_refused(period: object) -> None:
    d = _one(lambda: Usage.from_mapping({"period": period}))
    assert d.code == "E401" and d.key == "period"
    assert "period" in d.message


def test_a_period_ending_before_it_starts_says_so() -> None:
    d = _one(lambda: Usage.from_mapping({"period": {"start": "2026-08-15", "end": "2026-08-01"}}))
    assert "ends before it starts" in d.message


# --------------------------------------------------------------- YAML, JSON


def test_yaml_numbers_are_exact_decimals() -> None:
    usage = parse_usage_text(
        "mau: 26250\nvoice_minutes: 0.1\nvideo_minutes: 96500.5\nsms: 0.3\n",
        "u.yaml",
        pricing_dsl.loads(RULES).meters,
    )
    assert usage.values == {
        "mau": Decimal(26250),
        "voice_minutes": Decimal("0.1"),
        "video_minutes": Decimal("96500.5"),
        "sms": Decimal("0.3"),
    }
    assert all(type(v) is Decimal for v in usage.values.values())
    assert str(usage.values["voice_minutes"]) == "0.1"


def test_json_numbers_are_exact_decimals() -> None:
    usage = parse_usage_text(
        '{"mau": 26250, "voice_minutes": 0.1, "video_minutes": 96500.5}', "u.json"
    )
    assert usage.values == {
        "mau": Decimal(26250),
        "voice_minutes": Decimal("0.1"),
        "video_minutes": Decimal("96500.5"),
    }
    assert all(type(v) is Decimal for v in usage.values.values())


def test_json_is_recognised_without_a_json_name() -> None:
    usage = parse_usage_text('  {"period": "2026-08", "mau": 7}', "<stdin>")
    assert usage.values == {"mau": 7} and str(usage.period) == "2026-08"


@pytest.mark.parametrize(
    ("text", "source"),
    [("mau: 5\nperiod: 2026-08\nmau: 6\n", "d.yaml"), ('{"mau": 5, "mau": 6}', "d.json")],
)
def test_duplicate_keys_are_refused(text: str, source: str) -> None:
    d = _one(lambda: parse_usage_text(text, source))
    assert d.code == "E400"
    assert "the key `mau` appears twice" in d.message
    assert d.path == source
    if source.endswith(".yaml"):
        assert d.line == 3  # the second `mau`


@pytest.mark.parametrize(
    ("text", "source", "words"),
    [
        ("voice_minutes: .nan\n", "n.yaml", "finite number"),
        ("voice_minutes: .inf\n", "n.yaml", "finite number"),
        ('{"voice_minutes": NaN}', "n.json", "NaN is not a number"),
        ('{"voice_minutes": Infinity}', "n.json", "Infinity is not a number"),
        ('{"voice_minutes": -Infinity}', "n.json", "Infinity is not a number"),
    ],
)
def test_nan_and_infinity_in_files(text: str, source: str, words: str) -> None:
    d = _one(lambda: parse_usage_text(text, source))
    assert d.code in ("E400", "E401")
    assert words in d.message and d.path == source


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("mau: true\n", "b.yaml"),
        ("mau: yes\n", "b.yaml"),  # YAML 1.1: yes is a boolean
        ("mau: off\n", "b.yaml"),
        ('{"mau": true}', "b.json"),
        ('{"mau": false}', "b.json"),
    ],
)
def test_booleans_in_files(text: str, source: str) -> None:
    d = _one(lambda: parse_usage_text(text, source))
    assert d.code == "E401" and d.key == "mau"
    assert "not a number" in d.message


@pytest.mark.parametrize(
    ("text", "source", "words"),
    [
        ("", "e.yaml", "empty"),
        ("# only a comment\n", "e.yaml", "empty"),
        ("- mau: 1\n", "l.yaml", "mapping"),
        ('[{"mau": 1}]', "l.json", "mapping"),
        ("mau: [1\n", "i.yaml", "not valid YAML"),
        ('{"mau": 1,}', "i.json", "not valid JSON"),
    ],
)
def test_files_that_are_not_usage(text: str, source: str, words: str) -> None:
    d = _one(lambda: parse_usage_text(text, source))
    assert d.code == "E400"
    assert words in d.message and d.path == source


def test_yaml_errors_carry_file_key_and_line() -> None:
    text = "# August\nperiod: 2026-08\n\nmau: 10.5\nvoice_minute: 3\n"
    diags = _error(lambda: parse_usage_text(text, "usage/acme.yaml"))
    found = {(d.key, d.line, d.column) for d in diags}
    assert found == {("mau", 4, 1), ("voice_minute", 5, 1)}
    for d in diags:
        assert d.code == "E401" and d.path == "usage/acme.yaml"
        assert d.render().startswith(f"usage/acme.yaml:{d.line}:1: error[E401]: ")


def test_json_errors_carry_file_and_key() -> None:
    d = _one(lambda: parse_usage_text('{"mau": -2}', "usage/acme.json"))
    assert (d.code, d.path, d.key) == ("E401", "usage/acme.json", "mau")
    assert d.render().startswith("usage/acme.json: mau: error[E401]: ")


def test_invalid_json_gives_its_position() -> None:
    d = _one(lambda: parse_usage_text('{\n  "mau": 1,\n}', "p.json"))
    assert (d.code, d.line) == ("E400", 3)


def test_usage_files_are_loaded_by_name(tmp_path: Path, rules: pricing_dsl.Ruleset) -> None:
    good = tmp_path / "u.yml"
    good.write_text("period: 2026-08\nmau: 150\nsms: 1000\n")
    usage = load_usage_file(str(good), rules.meters)
    assert usage.source == str(good)
    # 50 x 0.10 = 5.00; 1000 x 0.01 = 10.00
    assert rules.rate("p", usage).total == Decimal("15.00")
    d = _one(lambda: load_usage_file(str(tmp_path / "missing.yaml")))
    assert d.code == "E402" and d.path.endswith("missing.yaml")
    d = _one(lambda: load_usage_file(str(tmp_path)))
    assert d.code == "E402"
    bad = tmp_path / "bad.yaml"
    bad.write_text("mau: 1\nmau: 2\n")
    d = _one(lambda: load_usage_file(str(bad)))
    assert (d.code, d.path, d.line) == ("E400", str(bad), 2)


@pytest.mark.parametrize(
    "text", ["mau: 010\n", "mau: 0x10\n", "peak_connections: 1:30\n", "voice_minutes: 1e3\n"]
)
def test_yaml_numbers_that_are_not_plain_decimals(text: str) -> None:
    d = _one(lambda: parse_usage_text(text, "q.yaml"))
    assert d.code in ("E400", "E401")


@pytest.mark.parametrize("text", ["mau: 1\x00\n", "mau: 1\x07\n", "\x00", "mau: 1\ufffe\n"])
def test_control_characters_in_yaml_are_refused(text: str) -> None:
    d = _one(lambda: parse_usage_text(text, "c.yaml"))
    assert (d.code, d.path) == ("E400", "c.yaml")
    assert "not valid YAML" in d.message


@pytest.mark.parametrize(
    "usage",
    [{"voice_minutes": "9" * 120}, {"mau": int("9" * 120)}, {"period": "0000-01"}],
    ids=["voice-120-digits", "mau-120-digits", "year-zero"],
)
def test_values_beyond_exact_arithmetic_are_refused(
    rules: pricing_dsl.Ruleset, usage: dict[str, Any]
) -> None:
    # Both engines refuse them with E401 (they once raised InvalidOperation or ValueError,
    # and the fast path returned an unrounded 1.2E+119 for the huge `mau`).
    for call in (lambda: rules.rate("p", dict(usage)), lambda: rules.rate_reference("p", usage)):
        d = _one(call)
        assert d.code == "E401" and d.key == next(iter(usage))


def test_a_period_at_the_end_of_the_calendar_does_not_crash(rules: pricing_dsl.Ruleset) -> None:
    # 9999-12 once overflowed computing the day after 9999-12-31.
    for rate in (rules.rate, rules.rate_reference):
        try:
            rate("p", {"period": "9999-12"})
        except PricingError as exc:
            assert exc.codes == ["E401"]


# ------------------------------------------------- the schema's fast subset

_VALUES = st.one_of(
    st.integers(-2, 3),
    st.integers(0, 10**16),
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-1, max_value=3, places=3),
    st.sampled_from(
        ["", "0", "12", "1.5", "1.", ".5", "-1", "1e3", "12\n", "2026-08", "2026-13", "2026-08\n",
         "2026-08x", "2026-08-01", "2026-8", "acct", "٣", "2026-08-01x"]
    ),
    st.none(),
    st.booleans(),
    st.fixed_dictionaries(
        {"start": st.sampled_from(["2026-08-01", "2026-8-1", "2026-08-01x"]),
         "end": st.sampled_from(["2026-08-31", "2026-08-31\n"])}
    ),
    st.fixed_dictionaries({"start": st.just("2026-08-01")}),
)  # fmt: skip
_KEYS = ["mau", "peak_connections", "voice_minutes", "sms", "period", "account", "contract", "x"]


@settings(max_examples=1000, deadline=None)
@given(usage=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=2))
def test_the_fast_check_accepts_only_what_the_schema_accepts(
    rules: pricing_dsl.Ruleset, usage: dict[str, Any]
) -> None:
    # `pricing rate` skips jsonschema when this check passes, so it must never
    # pass usage the schema would refuse.
    from pricing_dsl._usage import _plainly_valid, _validator

    custom = tuple(m.usage_key for m in rules.meters if not m.builtin)
    if _plainly_valid(usage, custom):
        assert _validator(custom).is_valid(usage), usage


@pytest.mark.parametrize(
    "usage",
    [
        {"period": "2026-08", "mau": 26250, "voice_minutes": Decimal("0.5")},
        {"period": {"start": "2026-08-01", "end": "2026-08-15"}, "sms": "12.5"},
        {"account": "a-1", "contract": "p", "peak_connections": Decimal(3)},
    ],
)
def test_the_fast_check_knows_plain_usage(
    rules: pricing_dsl.Ruleset, usage: dict[str, Any]
) -> None:
    from pricing_dsl._usage import _plainly_valid

    assert _plainly_valid(usage, ("sms",))


def test_rating_one_invoice_imports_neither_metering_nor_batch() -> None:
    # `pricing rate` start-up: the CLI adds `meter` and `batch` only when asked,
    # and plain usage never needs jsonschema.
    code = (
        "import sys\n"
        "from pricing_dsl._cli import main\n"
        "usage = 'rulesets/examples/usage/acme-2026-08.yaml'\n"
        "code = main(['rate', 'rulesets/', '--usage', usage])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('pricing_dsl._metering',"
        " 'pricing_dsl._batch', 'jsonschema', 'duckdb')))\n"
        "print(code, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stderr.strip() == "0 []", done.stderr


def test_a_huge_exponent_is_too_large_not_a_crash() -> None:
    # abs() in the default context overflowed on this before.
    diag = _one(lambda: parse_usage_text('{"voice_minutes": 1e999999999999999999}', "u.json"))
    assert (diag.code, diag.key) == ("E401", "voice_minutes")
    assert "too large" in diag.message
    diag = _one(lambda: Usage.from_mapping({"mau": Decimal("1E+999999999999999999")}))
    assert (diag.code, diag.key) == ("E401", "mau")


def test_an_unquoted_id_with_a_leading_zero_is_refused_with_a_way_out() -> None:
    diag = _one(lambda: parse_usage_text("account: 0089\nmau: 5\n", "u.yaml"))
    assert diag.code == "E400"
    assert "put text such as an account id in quotes" in diag.message
    usage = parse_usage_text('account: "0089"\nmau: 5\n', "u.yaml")
    assert usage.account == "0089"


def test_the_fast_check_reads_meters_as_the_schema_does() -> None:
    from pricing_dsl._usage import _plainly_valid

    # The built-in MAU counts whole users, whatever meter list a caller passes.
    assert not _plainly_valid({"mau": Decimal("1.5")}, ())
    # A custom key is a quantity, as in the schema, where it replaces any
    # property of the same name.
    assert _plainly_valid({"sms": Decimal("1.5")}, ("sms",))
    assert not _plainly_valid({"sms": 1}, ())
    assert not _plainly_valid({"account": "acme"}, ("account",))


# ------------------------------------------------------- YAML anchors, aliases


def _alias_bomb(levels: int) -> str:
    """Under `mau`: a list of 9, then `levels` lists each of 9 aliases of the one before."""
    nested = ["&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    nested += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "period: 2026-08\nmau: [" + ", ".join(nested) + "]\n"


def test_a_yaml_alias_bomb_is_refused_before_any_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 9**7 items once expanded: the schema's messages walked them all (seconds,
    # hundreds of MB).  Validation must never see such a value.
    from pricing_dsl import _usage

    def no_validation(*_args: object) -> None:
        raise AssertionError("the bomb reached validation")

    monkeypatch.setattr(_usage, "_validate", no_validation)
    d = _one(lambda: parse_usage_text(_alias_bomb(7), "bomb.yaml"))
    assert (d.code, d.path, d.line, d.column, d.key) == ("E400", "bomb.yaml", 2, 7, "mau")
    assert "anchors or aliases (`&l0`, `*l0`)" in d.message
    assert d.hint == "write each value out in full"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        # A harmless alias is refused too: a usage file never needs one.
        ("account: &a acme\ncontract: *a\n", 1, "account"),
        ("mau: 5\naccount: x\ncontract: *a\n", 3, "contract"),  # an alias never defined
        ("&top\nmau: 5\n", 1, None),
        ("mau: 5\n? &k sms\n: 3\n", 2, None),
        ("period: {start: &d 2026-08-01, end: 2026-08-31}\n", 1, "period"),
    ],
)
def test_anchors_and_aliases_are_refused_naming_key_and_line(
    text: str, line: int, key: str | None
) -> None:
    d = _one(lambda: parse_usage_text(text, "a.yaml"))
    assert (d.code, d.path, d.line, d.key) == ("E400", "a.yaml", line, key)
    assert "anchors or aliases" in d.message


# ------------------------------------------------------ thousands separators


@pytest.mark.parametrize(
    ("text", "source", "hint"),
    [
        ("mau: 1,000\n", "u.yaml", "write 1000 (no thousands separator)"),
        ("voice_minutes: 12,345.5\n", "u.yaml", "write 12345.5 (no thousands separator)"),
        ('{"mau": "1,000"}', "u.json", "write 1000 (no thousands separator)"),
        ('{"sms": "1 000 000"}', "u.json", "write 1000000 (no thousands separator)"),
        (
            "voice_minutes: 1,5\n",
            "u.yaml",
            "write numbers without commas; the decimal point is `.`",
        ),
    ],
)
def test_a_number_with_a_separator_says_how_to_write_it(
    rules: pricing_dsl.Ruleset, text: str, source: str, hint: str
) -> None:
    d = _one(lambda: parse_usage_text(text, source, rules.meters))
    assert d.code == "E401" and "must be" in d.message
    assert d.hint == hint


def test_a_json_number_with_a_comma_says_how_to_write_it() -> None:
    # Not JSON at all: the parser stops at the comma, expecting the next key.
    d = _one(lambda: parse_usage_text('{"period": "2026-08",\n "mau": 26,250}', "u.json"))
    assert (d.code, d.line, d.column) == ("E400", 2, 12)
    assert d.hint == "write 26250 (no thousands separator)"
    # A comma that ends a number is just a comma.
    d = _one(lambda: parse_usage_text('{"mau": 1, 000}', "u.json"))
    assert d.code == "E400" and d.hint is None


def test_text_that_is_not_a_number_gets_no_separator_hint() -> None:
    d = _one(lambda: parse_usage_text('mau: "many"\n', "u.yaml"))
    assert d.code == "E401" and d.hint is None


class _NoRepr:
    def __repr__(self) -> str:
        raise AssertionError("a value inside a refused list was walked")


@pytest.mark.parametrize(
    ("usage", "key", "got"),
    [
        ({"mau": [_NoRepr()]}, "mau", "a list"),
        ({"mau": (_NoRepr(),)}, "mau", "a list"),
        ({"sms": {"a": _NoRepr()}}, "sms", "a mapping"),
        ({"period": {"start": [_NoRepr()], "end": "2026-08-31"}}, "period", "a mapping"),
    ],
)
def test_lists_and_mappings_from_python_are_refused_without_walking_them(
    rules: pricing_dsl.Ruleset, usage: dict[str, Any], key: str, got: str
) -> None:
    # Python can build what YAML aliases did: the same list nested level after
    # level (9**8 items in 8 small lists).  The schema's messages walked it.
    d = _one(lambda: Usage.from_mapping(usage, meters=rules.meters))
    assert (d.code, d.key) == ("E401", key)
    assert d.message.endswith(f"got {got}")
