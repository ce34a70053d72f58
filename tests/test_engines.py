"""The compiled fast path agrees with the reference interpreter, to the cent.

Hypothesis writes random contracts -- flat and tiered rates, allowances,
`when` rules, adjustments, rounding modes, currencies with 0 and 2 minor
digits -- and random usage, and both engines must give identical lines.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl

from .strategies import model_ruleset, model_usage_for, ruleset, usage_for


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_agrees_with_interpreter(data: st.DataObject) -> None:
    text, points = data.draw(ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    for n in range(data.draw(st.integers(1, 8))):
        record = data.draw(usage_for(points, n))
        fast = rules.rate("c", dict(record))
        reference = rules.rate_reference("c", dict(record))
        assert fast.amounts == reference.amounts
        assert [str(a) for a in fast.amounts.values()] == [str(ln.amount) for ln in reference.lines]
        assert fast.total == reference.total
        assert str(fast.total) == str(reference.total)
        assert fast.rules_applied == reference.rules_applied
        # What a billing run writes, computed without the interpreter, is the
        # interpreter's, down to each number's written form.
        assert fast._lines is None or fast._lines == reference.lines
        assert [tuple(map(str, item)) for item in fast._items()] == [
            tuple(map(str, item)) for item in reference._items()
        ]
        # The lines built on demand are the interpreter's own.
        assert [ln.to_dict() for ln in fast.lines] == [ln.to_dict() for ln in reference.lines]
        assert fast.total == sum((ln.amount for ln in fast.lines), Decimal(0))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_agrees_with_interpreter_on_pricing_models(data: st.DataObject) -> None:
    # Blocks, tier fees, line minimums, caps on any line or group,
    # time-limited discounts, quarterly and yearly fees: the fast path runs the
    # plan's own arithmetic for them, and must give the interpreter's lines.
    text, points = data.draw(model_ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    for n in range(data.draw(st.integers(1, 6))):
        record = data.draw(model_usage_for(points, n))
        try:
            reference = rules.rate_reference("c", dict(record))
        except pricing_dsl.PricingError as exc:  # a period outside the term
            with pytest.raises(pricing_dsl.PricingError) as info:
                rules.rate("c", dict(record))
            assert info.value.codes == exc.codes
            continue
        fast = rules.rate("c", dict(record))
        assert [ln.to_dict() for ln in fast.lines] == [ln.to_dict() for ln in reference.lines]
        assert [tuple(map(str, item)) for item in fast._items()] == [
            tuple(map(str, item)) for item in reference._items()
        ]
        assert fast.rules_applied == reference.rules_applied
        assert str(fast.total) == str(reference.total)
        # The total is the sum of the rounded lines, adjustments included.
        assert reference.total == sum((ln.amount for ln in reference.lines), Decimal(0))
        # Every line is rounded once, to the currency's minor unit.
        places = 0 if "currency JPY" in text else 2
        assert all(-ln.amount.as_tuple().exponent == places for ln in reference.lines)  # type: ignore[operator]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_issued_invoices_bill_the_fees_that_rate_bills(data: st.DataObject) -> None:
    # An invoice issued on the first of M+1 bills M+1's fees in advance: the
    # same fee lines (quarterly and yearly intervals included) as rating M+1.
    text, points = data.draw(model_ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    record = data.draw(model_usage_for(points, 0))
    year, month = map(int, record.pop("period").split("-"))
    issued = date(year + month // 12, month % 12 + 1, 1)
    usage = {k: v for k, v in record.items() if k not in ("account", "contract")}

    def fees(inv: pricing_dsl.Invoice) -> list[tuple[str, str, str, str]]:
        return [
            (ln.code, str(ln.quantity), str(ln.amount), str(ln.service_period))
            for ln in inv.lines
            if ln.kind == "fee"
        ]

    try:
        invoice = rules.invoice("c", issued, dict(usage))
    except pricing_dsl.PricingError as exc:
        assert exc.codes == ["E302"]  # neither month overlaps the term
        return
    assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))
    try:
        rated = rules.rate("c", {**usage, "period": issued.isoformat()[:7]})
    except pricing_dsl.PricingError as exc:
        assert exc.codes == ["E302"]  # M+1 is after the term: no fees
        assert fees(invoice) == []
        return
    assert fees(invoice) == fees(rated)


def test_the_fast_path_is_taken_for_plain_usage() -> None:
    rules = pricing_dsl.load("rulesets")
    invoice = rules.rate("acme", {"period": "2026-08", "mau": 26250})
    # Lazily built: nothing materialised until asked for.
    assert invoice._lines is None
    assert invoice.total == Decimal("1391.50")  # 529 + 112.50 + 500 + 250
    assert invoice.lines[1].code == "mau_overage"


def test_a_mutated_usage_dict_does_not_change_an_invoice() -> None:
    rules = pricing_dsl.load("rulesets")
    record: dict[str, object] = {"period": "2026-08", "mau": 26250}
    invoice = rules.rate("acme", record)
    record["mau"] = 0
    assert invoice.line("mau_overage").amount == Decimal("112.50")


def test_partial_periods_and_errors_fall_back_to_the_interpreter() -> None:
    rules = pricing_dsl.load("rulesets")
    partial = rules.rate("acme", {"period": "2026-07", "mau": 0})
    assert partial.line("base").amount == Decimal("290.10")  # 529 x 17/31
    try:
        rules.rate("acme", {"period": "2026-08", "mau": -1})
    except pricing_dsl.PricingError as exc:
        assert exc.codes == ["E401"]
    else:  # pragma: no cover
        raise AssertionError("negative MAU was accepted")


def _other_form(data: st.DataObject, record: dict[str, object]) -> dict[str, object]:
    """The same record with some meter values written as Decimals or decimal strings."""
    out = dict(record)
    for key, value in record.items():
        if key in ("account", "contract", "period"):
            continue
        form = data.draw(st.sampled_from(["as is", "Decimal", "text"]))
        if form == "Decimal":
            out[key] = Decimal(value)  # type: ignore[arg-type]
        elif form == "text":
            out[key] = f"{Decimal(value):f}"  # type: ignore[arg-type]
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_exact_form_of_a_value_rates_alike(data: st.DataObject) -> None:
    # Ints, Decimals and decimal strings all take the fast path, and each
    # gives the interpreter's lines for the same numbers.
    text, points = data.draw(ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    record = data.draw(usage_for(points, 0))
    varied = _other_form(data, record)
    try:
        expected = rules.rate_reference("c", dict(record))
    except pricing_dsl.PricingError as exc:
        with pytest.raises(pricing_dsl.PricingError) as info:
            rules.rate("c", dict(varied))
        assert info.value.codes == exc.codes
        return
    got = rules.rate("c", dict(varied))
    assert got.to_dict() == expected.to_dict()
    assert rules.rate_reference("c", dict(varied)).to_dict() == expected.to_dict()


def test_decimal_strings_and_other_integers_take_the_fast_path() -> None:
    rules = pricing_dsl.load("rulesets")
    plain = rules.rate("acme", {"period": "2026-08", "mau": 26250, "video_minutes": 96500.5})
    for usage in (
        {"period": "2026-08", "mau": "26250", "video_minutes": "96500.5"},
        {"period": "2026-08", "mau": Decimal(26250), "video_minutes": "96500.50"},
        {"period": "2026-08", "mau": _Integer(26250), "video_minutes": Decimal("96500.5")},
    ):
        invoice = rules.rate("acme", usage)
        assert invoice._lines is None, usage  # lazily built: the fast path rated it
        assert invoice.to_dict() == plain.to_dict()
        assert invoice.line("video").quantity == Decimal("96500.5")
        assert str(invoice.line("video").quantity) == "96500.5"  # one canonical form


class _Integer(int):
    """An integer type other than int itself, as numpy's and pandas' are."""


@pytest.mark.parametrize(
    "odd",
    [
        {"account": ""},
        {"account": None},
        {"account": 7},
        {"contract": ""},
        {"contract": ["acme"]},
        {"mau": True},
        {"mau": "26250"},
        {"mau": Decimal("26250.5")},
        {"voice_minutes": Decimal("-0")},
        {"voice_minutes": Decimal("NaN")},
        {"sms": 1},
        {"period": "2026-8"},
        {"period": None},
    ],
    ids=repr,
)
def test_odd_values_are_judged_by_the_interpreter(odd: dict[str, object]) -> None:
    # The fast path must accept nothing the interpreter refuses, and must give
    # the interpreter's answer where the interpreter accepts an unusual form.
    rules = pricing_dsl.load("rulesets")
    usage = {"period": "2026-08", "mau": 26250, **odd}
    try:
        expected = rules.rate_reference("acme", usage)
    except pricing_dsl.PricingError as exc:
        with pytest.raises(pricing_dsl.PricingError) as info:
            rules.rate("acme", usage)
        assert info.value.codes == exc.codes
    else:
        assert rules.rate("acme", usage).to_dict() == expected.to_dict()
