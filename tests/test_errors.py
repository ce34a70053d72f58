"""Every error a ruleset or a rating call can cause: code, position and plain words.

Each ``data/invalid/*.pricing`` file starts with one header comment per
expected error, in the order they are reported::

    # expect: E204 6:38 | `mau` is priced per user

``CODE LINE:COLUMN`` must match the diagnostic exactly (lines count the
header comments too); the text after ``|`` must appear in its message.
``pricing_dsl.loads`` must raise ``PricingError`` with exactly those errors.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import pricing_dsl
from pricing_dsl import PricingError

from .conftest import DATA

INVALID = DATA / "invalid"
FILES = sorted(INVALID.glob("*.pricing"))
EXPECT = re.compile(r"# expect: (?P<code>E\d{3}) (?P<line>\d+):(?P<col>\d+) \| (?P<words>.+)$")

# Lark's own names for tokens and rules: a message meant for people never shows them.
TOKEN_NAMES = re.compile(
    r"\b(NAME|NUMBER|PERCENT|STRING|DATE|COMPARE|LBRACE|RBRACE|LPAR|RPAR|COMMA|DOT|"
    r"_NL|_sep|\$END|_OR|_AND|_NOT|PERIOD_TEXT|OVERAGE|GRADUATED|VOLUME|MINUS|PLUS|STAR|SLASH)\b"
)


def _expectations(path: Path) -> list[tuple[str, int, int, str]]:
    out = []
    for text in path.read_text("utf-8").splitlines():
        m = EXPECT.match(text)
        if m is None:
            break
        out.append((m["code"], int(m["line"]), int(m["col"]), m["words"].strip()))
    return out


def _diagnostics(text: str, filename: str) -> list[pricing_dsl.Diagnostic]:
    with pytest.raises(PricingError) as info:
        pricing_dsl.loads(text, filename)
    return list(info.value.diagnostics)


def test_error_cases_were_found() -> None:
    assert FILES, f"no error cases under {INVALID}"
    for path in FILES:
        assert _expectations(path), f"{path.name} has no `# expect:` header"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_error_case(path: Path) -> None:
    expected = _expectations(path)
    diags = _diagnostics(path.read_text("utf-8"), path.name)
    got = [(d.code, d.line, d.column) for d in diags]
    assert got == [(c, ln, col) for c, ln, col, _ in expected]
    for d, (_, _, _, words) in zip(diags, expected, strict=True):
        assert words in d.message, (d.code, d.message)
        assert d.severity == "error"
        assert d.path == path.name
        assert d.message[:1].islower() or d.message[:1] in '`"(', d.message
        assert not TOKEN_NAMES.search(d.message), f"token name in: {d.message}"
        # The rendering names the place and carries the source line and a caret.
        rendered = d.render()
        assert rendered.startswith(f"{path.name}:{d.line}:{d.column}: error[{d.code}]: ")
        assert "^" in rendered


def test_syntax_errors_are_reported_in_words() -> None:
    diags = _diagnostics("currency USD\nplan p {\n  mau included 1000 )\n}\n", "w.pricing")
    assert [d.code for d in diags] == ["E100"]
    assert (diags[0].line, diags[0].column) == (3, 21)
    assert diags[0].message.startswith("unexpected `)`; expected ")
    assert not TOKEN_NAMES.search(diags[0].message + (diags[0].hint or ""))


def test_a_misspelt_keyword_is_a_syntax_error_with_a_suggestion() -> None:
    diags = _diagnostics(
        "currency USD\nplan p {\n  mau incuded 1000 overage 0.12 per user\n}\n", "k.pricing"
    )
    assert diags[0].line == 3
    assert "included" in diags[0].message + (diags[0].hint or "")


def _plan(*lines: str) -> str:
    return (
        'currency USD\nmeter sms "SMS" unit message\nplan p {\n  mau included 1000\n'
        + "".join(f"  {line}\n" for line in lines)
        + "}\n"
    )


@pytest.mark.parametrize(
    ("line", "code", "column", "hint"),
    [
        # Issue 17: `concurrency 6` suggested `0.12 per user`, though a number
        # alone on concurrency is most likely a forgotten `%`.
        (
            "concurrency 6",
            "E106",
            16,
            "write `6%` for an allowance of 6% of the included users, "
            "or `6 per connection` for a price per connection",
        ),
        (
            "concurrency 5 overage 1.00 per connection",
            "E106",
            17,
            "write `5%` for an allowance of 5% of the included users",
        ),
        # Issue 17: a space before `%` got "unexpected character" and no hint.
        ("concurrency 6 %", "E100", 17, "write the `%` right after the number: `6%`"),
        ("discount 12.5 % on voice", "E100", 17, "write the `%` right after the number: `12.5%`"),
        # Issue 17: a currency sign got E100 and no hint to drop it.
        (
            "base $50 per month",
            "E100",
            8,
            "write 50.00 without the `$`; prices carry no currency sign, as the currency "
            "is set once, with a line such as `currency USD`",
        ),
        (
            "minimum \u20ac1_000.50 per month",
            "E100",
            11,
            "write 1_000.50 without the `\u20ac`; prices carry no currency sign, as the "
            "currency is set once, with a line such as `currency EUR`",
        ),
        (
            "voice \u00a3 0.01 per minute",
            "E100",
            9,
            "write 0.01 without the `\u00a3`; prices carry no currency sign, as the "
            "currency is set once, with a line such as `currency GBP`",
        ),
    ],
)
def test_slips_get_a_hint_that_fixes_them(line: str, code: str, column: int, hint: str) -> None:
    (d,) = _diagnostics(_plan(line), "s.pricing")
    assert (d.code, d.line, d.column) == (code, 5, column)
    assert d.hint == hint


def test_a_price_per_connection_on_concurrency_is_not_a_slip() -> None:
    rules = pricing_dsl.loads(_plan("concurrency 6 per connection"))
    assert rules.contract_ids == ["p"]


@pytest.mark.parametrize(
    ("line", "code", "column", "message"),
    [
        # Issue 17: `sms_count` got "did you mean `discount`?" (a keyword, and in
        # usage files `account`), though the meter `sms` is declared.
        (
            "sms_count 0.01 per message",
            "E208",
            3,
            "unknown meter or term `sms_count`; did you mean `sms`?",
        ),
        (
            "minimun 5.00 per month",
            "E208",
            3,
            "unknown meter or term `minimun`; did you mean `minimum`?",
        ),
        (
            "vioce 0.001 per minute",
            "E208",
            3,
            "unknown meter or term `vioce`; did you mean `voice`?",
        ),
    ],
)
def test_a_misspelt_meter_suggests_a_declared_meter_first(
    line: str, code: str, column: int, message: str
) -> None:
    (d,) = _diagnostics(_plan(line), "m.pricing")
    assert (d.code, d.line, d.column, d.message) == (code, 5, column, message)


def test_a_misspelt_usage_key_in_a_test_suggests_the_meter() -> None:
    """Issue 17: a test's `usage { sms_count 5 }` got no suggestion at all."""
    text = _plan("sms 0.01 per message") + (
        'test "t" {\n  contract p\n  period 2026-08\n  usage {\n    sms_count 5\n  }\n'
        "  expect total 0.05\n}\n"
    )
    (d,) = _diagnostics(text, "t.pricing")
    assert (d.code, d.line, d.column) == ("E231", 11, 5)
    assert d.message == "unknown usage key `sms_count`; did you mean `sms`?"


USAGE_KEYS = ["account", "contract", "period", "mau", "peak_connections", "voice_minutes", "sms"]


@pytest.mark.parametrize(
    ("word", "groups", "best"),
    [
        ("sms_count", [USAGE_KEYS], "sms"),  # not `account`, spelt more alike
        ("voice", [USAGE_KEYS], "voice_minutes"),
        ("voice_minute", [["voice", "voice_minutes"]], "voice_minutes"),
        ("mua", [USAGE_KEYS], "mau"),
        ("MAU", [USAGE_KEYS], "mau"),
        ("sms_count", [["mau", "sms"], ["discount"]], "sms"),  # declared meters first
        ("minimun", [["mau", "sms"], ["minimum"]], "minimum"),
        ("smscount", [["mau", "sms"], ["discount"]], "sms"),  # by prefix, as a last resort
        ("storage", [["mau", "sms"], ["discount"]], None),
    ],
)
def test_suggestions(word: str, groups: list[list[str]], best: str | None) -> None:
    from pricing_dsl._suggest import suggest

    assert suggest(word, *groups) == best


def test_a_misspelt_usage_key_suggests_the_meter_when_rating() -> None:
    """Issue 17: `sms_count` in usage got "did you mean `account`?"."""
    rules = pricing_dsl.loads(_plan("sms 0.01 per message"))
    with pytest.raises(PricingError) as info:
        rules.rate("p", {"period": "2026-08", "mau": 5, "sms_count": 5})
    (d,) = info.value.diagnostics
    assert d.code == "E401"
    assert d.message == "unknown usage key `sms_count`; did you mean `sms`?"


def test_several_files_report_their_own_paths(tmp_path: Path) -> None:
    (tmp_path / "a.pricing").write_text("currency USD\nplan p {\n  base -1 per month\n}\n")
    (tmp_path / "b.pricing").write_text("currency USD\nplan q {\n  mau included 1,000\n}\n")
    with pytest.raises(PricingError) as info:
        pricing_dsl.load(tmp_path)
    # A syntax error in b does not hide a's independent errors, and each names its file.
    found = {(Path(d.path).name, d.code) for d in info.value.diagnostics}
    assert ("b.pricing", "E102") in found
    assert ("a.pricing", "E205") in found


def test_error_text_renders_every_diagnostic() -> None:
    text = (INVALID / "several-independent-errors.pricing").read_text("utf-8")
    with pytest.raises(PricingError) as info:
        pricing_dsl.loads(text, "s.pricing")
    rendered = str(info.value)
    for code in ("E204", "E205", "E207", "E201"):
        assert f"error[{code}]" in rendered
    assert info.value.codes == ["E204", "E205", "E207", "E201"]


# ----------------------------------------------------------------- rating errors

RULES = """currency USD
plan starter "Starter" {
  mau included 1000
}
contract acme "Acme" extends starter {
  term 2026-07-15 to 2027-07-14
}
contract beta "Beta" extends starter {
  from 2027-01-01 {
    base 10.00 per month
  }
}
contract gamma "Gamma" extends starter {
  when period.start >= 2027-01-01 {
    base 10.00 per month
  }
}
"""


@pytest.fixture(scope="module")
def rules() -> pricing_dsl.Ruleset:
    return pricing_dsl.loads(RULES, "r.pricing")


def _rating_error(call: object) -> pricing_dsl.Diagnostic:
    assert callable(call)
    with pytest.raises(PricingError) as info:
        call()
    assert len(info.value.diagnostics) == 1
    return info.value.diagnostics[0]


def test_unknown_contract_lists_those_that_exist(rules: pricing_dsl.Ruleset) -> None:
    d = _rating_error(lambda: rules.rate("acem", {"period": "2026-08"}))
    assert d.code == "E301"
    assert "`acem`" in d.message and "did you mean `acme`?" in d.message
    assert d.hint is not None
    for cid in ("acme", "beta", "gamma", "starter"):
        assert cid in d.hint
    assert d.key == "contract"


def test_unknown_contract_when_issuing_an_invoice(rules: pricing_dsl.Ruleset) -> None:
    d = _rating_error(lambda: rules.invoice("nope", date(2026, 9, 1), {}))
    assert d.code == "E301"


@pytest.mark.parametrize(
    "period", ["2027-08", "2026-06", {"start": "2027-07-15", "end": "2027-07-31"}]
)
def test_period_outside_the_term(rules: pricing_dsl.Ruleset, period: object) -> None:
    d = _rating_error(lambda: rules.rate("acme", {"period": period, "mau": 5}))
    assert d.code == "E302"
    assert "outside the term" in d.message and "2026-07-15 to 2027-07-14" in d.message
    assert d.key == "period"


def test_periods_touching_the_term_are_rated(rules: pricing_dsl.Ruleset) -> None:
    # The first and last days of the term are inside it (the term is inclusive).
    for start, end in (("2026-07-01", "2026-07-15"), ("2027-07-14", "2027-07-31")):
        invoice = rules.rate("acme", {"period": {"start": start, "end": end}})
        assert invoice.codes[0] == "mau_overage"


def test_invoice_with_nothing_to_bill_gives_the_issue_dates(rules: pricing_dsl.Ruleset) -> None:
    d = _rating_error(lambda: rules.invoice("acme", date(2027, 9, 1), {}))
    assert d.code == "E302"
    assert d.hint is not None and "2026-07-01" in d.hint and "2027-08-01" in d.hint
    d = _rating_error(lambda: rules.invoice("acme", date(2026, 6, 1), {}))
    assert d.code == "E302"


@pytest.mark.parametrize(
    ("contract", "words"),
    [("acme", "has a term"), ("beta", "2027-01-01"), ("gamma", "depends on the period")],
)
def test_a_period_is_needed(rules: pricing_dsl.Ruleset, contract: str, words: str) -> None:
    d = _rating_error(lambda: rules.rate(contract, {"mau": 5}))
    assert d.code == "E303"
    assert words in d.message
    assert d.key == "period"
    assert d.hint is not None and "period" in d.hint


def test_a_plan_without_dates_needs_no_period(rules: pricing_dsl.Ruleset) -> None:
    # 1 user over the allowance x 0.12 (standard rate); no term, no from, no period rule.
    assert rules.rate("starter", {"mau": 1001}).total == Decimal("0.12")


@pytest.mark.parametrize("day", [date(2026, 8, 15), date(2026, 8, 31), date(2026, 9, 2)])
def test_invoices_are_issued_on_the_first(rules: pricing_dsl.Ruleset, day: date) -> None:
    d = _rating_error(lambda: rules.invoice("starter", day, {}))
    assert d.code == "E304"
    assert f"not on {day}" in d.message
    first = day.replace(day=1)
    assert d.hint is not None and str(first) in d.hint


def test_invoice_usage_must_be_for_the_month_before(rules: pricing_dsl.Ruleset) -> None:
    d = _rating_error(lambda: rules.invoice("starter", date(2026, 8, 1), {"period": "2026-08"}))
    assert d.code == "E305"
    assert "2026-07" in d.message and d.key == "period"


def test_a_price_beyond_exact_arithmetic_is_refused() -> None:
    # A 201-digit base fee once loaded and then made every rating raise InvalidOperation.
    text = "currency USD\nplan p {\n  mau included 1\n  base 9" + "9" * 200 + " per month\n}\n"
    try:
        rules = pricing_dsl.loads(text, "big.pricing")
    except PricingError as exc:
        assert exc.diagnostics[0].line == 4
        return
    with pytest.raises(PricingError):
        rules.rate("p", {})


@pytest.mark.parametrize("day", [date(9999, 12, 1), date(1, 1, 1), date(9999, 12, 15)])
def test_invoice_dates_at_the_calendar_edges(rules: pricing_dsl.Ruleset, day: date) -> None:
    # These once escaped as OverflowError or ValueError (a traceback from `pricing invoice`).
    d = _rating_error(lambda: rules.invoice("starter", day, {}))
    assert d.code == "E304"
