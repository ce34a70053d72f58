"""Finance guardrails: policies, the violations `pricing check` reports, and approvals.

Every expected value is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_dsl._errors import Diagnostic
from pricing_dsl._ruleset import Ruleset, _build, check_paths

from .conftest import DATA

CATALOG = """\
currency USD

plan pro "Pro" {
  base 529.00 per month
  mau included 10_000 overage 0.12 per user
  concurrency 5% overage 1.00 per connection
  voice 0.001 per minute
  video 0.003 per minute
}
"""
# The catalog is 9 lines and a blank one; a policy starts at line 11.


def build(policy: str, contracts: str) -> tuple[Ruleset | None, list[Diagnostic]]:
    text = CATALOG + "\n" + policy + "\n" + contracts
    return _build([("p.pricing", text)], warnings=True)


def errors(policy: str, contracts: str) -> list[tuple[str, int, str]]:
    _, diags = build(policy, contracts)
    return [(d.code, d.line, d.message) for d in diags if d.severity == "error"]


def codes(policy: str, contracts: str) -> list[str]:
    _, diags = build(policy, contracts)
    return [d.code for d in diags]


def contract(body: str, name: str = "c", parent: str = "pro") -> str:
    return f"contract {name} extends {parent} {{\n{body}\n}}\n"


FLOOR = 'policy "Finance limits 2026" {\n  mau overage at least 0.06 per user\n}\n'  # line 12
VIDEO = 'policy "Media" {\n  video at least 0.0015 per minute\n}\n'
CONC = 'policy "Connections" {\n  concurrency at least 3%\n}\n'
INCLUDED = 'policy "Free users" {\n  mau included at most 100_000\n}\n'
DISCOUNT = 'policy "Discounts" {\n  discount at most 20% on usage\n}\n'
TERM = 'policy "Terms" {\n  term at most 36 months\n}\n'


# ------------------------------------------------------ the acceptance example


def test_guardrails_acceptance_example() -> None:
    case = DATA / "acceptance" / "guardrails-9001"
    expected = json.loads((case / "expected.json").read_text())
    from pricing_dsl._checker import check
    from pricing_dsl._parser import parse
    from pricing_dsl._policy import check_policies

    tree, errs = parse((case / "ruleset.pricing").read_text(), "ruleset.pricing")
    assert not errs and tree is not None
    result = check_policies([tree], check([tree]))
    got_errors = []
    for d in result.errors:
        assert d.code == "E241"
        got_errors.append(d)
    assert [(d.line, d.column) for d in got_errors] == [(25, 3), (30, 11)]
    # The findings as expected.json states them, through the exceptions API.
    assert [e.to_dict()["contract"] for e in result.exceptions] == ["signed"]
    assert [
        {k: e.to_dict()[k] for k in ("contract", "term", "reference", "effective", "limit")}
        for e in result.exceptions
    ] == expected["approvals"]
    # Each error says the contract, term, effective value and limit of expected.json.
    for d, exp in zip(got_errors, expected["errors"], strict=True):
        value, unit = exp["effective"].split(" per ")
        assert f"{value} per {unit} " in d.message
        assert f"policy floor {exp['limit'].removeprefix('at least ')}" in d.message
        assert f"`{exp['contract']}`" in (d.hint or "")
        assert f"for {exp['term']}`" in (d.hint or "")
    clean = {d.hint.split("`")[3] for d in got_errors if d.hint}
    assert clean.isdisjoint(expected["clean"])


def test_guardrails_acceptance_example_through_check() -> None:
    ruleset, diags = check_paths(
        DATA / "acceptance" / "guardrails-9001" / "ruleset.pricing", warnings=True
    )
    assert ruleset is None
    assert [(d.code, d.line) for d in diags] == [("E241", 25), ("E241", 30)]
    assert diags[0].message == (
        "net MAU overage 0.079 per user (0.10 less 21%) is below the policy floor 0.08 per "
        f"user (Sales limits, {DATA / 'acceptance' / 'guardrails-9001' / 'ruleset.pricing'}:12)"
    )


# ----------------------------------------------------------- each limit kind


@pytest.mark.parametrize(
    ("policy", "body", "expected"),
    [
        # Net price floors: at the floor is within it; one step of the 9th decimal below is not.
        (FLOOR, "  mau overage 0.06 per user", []),
        (FLOOR, "  mau overage 0.059999999 per user", ["E241"]),
        (VIDEO, "  video 0.0015 per minute", []),
        (VIDEO, "  video 0.001499999 per minute", ["E241"]),
        # A percentage allowance floor.
        (CONC, "  concurrency 3%", []),
        (CONC, "  concurrency 2.99%", ["E242"]),
        # An allowance ceiling; concurrency 5% of 100_001 users does not matter here.
        (INCLUDED, "  mau included 100_000", []),
        (INCLUDED, "  mau included 100_001", ["E242"]),
        # The total percentage discount reaching a usage line.
        (DISCOUNT, "  discount 20% on usage", []),
        (DISCOUNT, "  discount 20.000000001% on usage", ["E243"]),
        (DISCOUNT, "  discount 10% on usage\n  discount 10% on voice", []),
        (DISCOUNT, "  discount 10% on usage\n  discount 10.5% on voice", ["E243"]),
        (DISCOUNT, "  discount 50% on base", []),  # base is not a usage line
        # 2026-01-01 to 2028-12-31 is 36 months; a day more makes 37.
        (TERM, "  term 2026-01-01 to 2028-12-31", []),
        (TERM, "  term 2026-01-01 to 2029-01-01", ["E244"]),
        (TERM, "  term 2026-07-15 to 2029-07-14", []),
        (TERM, "  term 2026-07-15 to 2029-07-15", ["E244"]),
    ],
)
def test_limit_at_and_past(policy: str, body: str, expected: list[str]) -> None:
    assert codes(policy, contract(body)) == expected


def test_floor_message_points_at_the_rate() -> None:
    got = errors(FLOOR, contract("  mau included 25000 overage 0.05 per user"))
    # contract c starts at line 15 (policy: 11-13, blank 14)
    assert got == [
        (
            "E241",
            16,
            "the MAU overage 0.05 per user is below the policy floor 0.06 per user "
            "(Finance limits 2026, p.pricing:12)",
        )
    ]


def test_discount_message() -> None:
    got = errors(DISCOUNT, contract("  discount 15% on usage\n  discount 10% on mau_overage"))
    assert got == [
        (
            "E243",
            16,  # the deeper of the two discounts that reach mau_overage
            "the percentage discounts reaching `mau_overage` add up to 25% (10% on mau_overage "
            "+ 15% on usage), above the policy maximum 20% (Discounts, p.pricing:12)",
        )
    ]


def test_term_and_allowance_messages() -> None:
    [(code, line, message)] = errors(TERM, contract("  term 2026-01-01 to 2029-01-01"))
    assert (code, line) == ("E244", 16)
    assert message.startswith("the term 2026-01-01 to 2029-01-01 runs 37 months, above")
    [(code, line, message)] = errors(INCLUDED, contract("  mau included 100_001"))
    assert message.startswith("the mau allowance 100001 users is above the policy maximum 100000")
    conc = 'policy "C" {\n  concurrency included at most 4_000\n}\n'
    # 5% of 100_000 included users = 5000 free connections, above 4000.
    [(code, line, message)] = errors(conc, contract("  mau included 100_000"))
    assert code == "E242" and "5000 connections (floor(100000 × 5%))" in message


# ------------------------------------------ inheritance, `from` and `when`


def test_inherited_rate_is_held_to_the_floor() -> None:
    cheap = "plan cheap extends pro {\n  mau overage 0.05 per user\n}\n"  # lines 15-17
    got = errors(FLOOR, cheap + contract("  base 500.00 per month", parent="cheap"))
    # The plan itself is not checked; the contract is, at its `extends`.
    assert len(got) == 1
    code, line, message = got[0]
    assert (code, line) == ("E241", 18)
    assert message.endswith("(set at p.pricing:16, inherited by `c`)")


def test_a_from_block_is_held_to_the_floor() -> None:
    body = "  from 2027-01-01 {\n    mau overage 0.055 per user\n  }"
    assert [(c, ln) for c, ln, _ in errors(FLOOR, contract(body))] == [("E241", 17)]


def test_a_when_rule_is_held_to_the_floor_even_if_never_triggered() -> None:
    body = "  when mau > 100_000_000 {\n    mau overage 0.04 per user\n  }"
    assert [(c, ln) for c, ln, _ in errors(FLOOR, contract(body))] == [("E241", 17)]


def test_a_when_discount_combines_with_the_rate_in_force() -> None:
    # 0.08 less 30% = 0.056 when the rule holds; 0.08 alone is fine.
    body = "  mau overage 0.08 per user\n  when mau > 500_000 {\n    discount 30% on usage\n  }"
    [(code, line, message)] = errors(FLOOR, contract(body))
    assert (code, line) == ("E241", 18)
    assert message.startswith("net MAU overage 0.056 per user (0.08 less 30%)")


def test_a_later_layer_that_overrides_is_not_combined_with_what_it_replaced() -> None:
    # The `from` block replaces the rate and the discount together: 0.10 less 40% never applies.
    body = (
        "  mau overage 0.10 per user\n  discount 40% on mau_overage\n"
        "  from 2027-01-01 {\n    mau overage 0.20 per user\n  }"
    )
    # 0.10 less 40% = 0.06 (ok); from 2027: 0.20 less 40% = 0.12 (ok).
    assert errors(FLOOR, contract(body)) == []


def test_stacked_discounts_add_up_as_rating_does() -> None:
    # 0.08 less (16% + 10%) = 0.0592; compounding would give 0.06048 and pass.
    body = "  mau overage 0.08 per user\n  discount 10% on usage\n  discount 16% on mau_overage"
    [(code, line, message)] = errors(FLOOR, contract(body))
    assert (code, line) == ("E241", 18)
    assert message.startswith("net MAU overage 0.0592 per user (0.08 less 26% (16% + 10%))")
    ok = "  mau overage 0.08 per user\n  discount 10% on usage\n  discount 15% on mau_overage"
    assert errors(FLOOR, contract(ok)) == []  # 0.08 x 0.75 = 0.06 exactly


def test_every_tier_meets_the_floor() -> None:
    tiers = (
        "  mau overage graduated {{\n    up to 50_000 at 0.08 per user\n"
        "    above at {last} per user\n  }}"
    )
    assert errors(FLOOR, contract(tiers.format(last="0.06"))) == []
    [(code, line, message)] = errors(FLOOR, contract(tiers.format(last="0.05")))
    assert (code, line) == ("E241", 16)
    assert "0.05 per user in the tier above the last bound" in message


def test_plans_are_not_held_to_policies() -> None:
    assert codes(FLOOR, "plan cheap extends pro {\n  mau overage 0.01 per user\n}\n") == []


def test_price_floors_bind_only_contracts_in_the_policy_files_currency() -> None:
    eur = (
        "currency EUR\nplan eu {\n  mau included 1 overage 0.01 per user\n"
        "  concurrency 1.00 per connection\n  voice 0.001 per minute\n  video 0.003 per minute\n}\n"
        "contract e extends eu {\n  base 1 per month\n}\n"
    )
    policy = "currency USD\n" + FLOOR
    diags = _build([("eu.pricing", eur), ("p.pricing", policy)], warnings=True)[1]
    assert diags == []
    nocur = _build([("eu.pricing", eur), ("p.pricing", FLOOR)], warnings=True)[1]
    assert [d.code for d in nocur] == ["E241"]


# ------------------------------------------------------------------ approvals


def test_an_approval_records_the_exception() -> None:
    body = '  mau overage 0.05 per user\n  approved "FIN-1234" for mau overage'
    ruleset, diags = build(FLOOR, contract(body))
    assert diags == [] and ruleset is not None
    [exc] = ruleset.exceptions
    assert exc.to_dict() == {
        "contract": "c",
        "term": "mau overage",
        "policy": "Finance limits 2026",
        "limit": "at least 0.06 per user",
        "effective": "0.05 per user",
        "reference": "FIN-1234",
        "approved_limit": None,
        "clause": "p.pricing:16:15",
        "policy_clause": "p.pricing:12:3",
        "approval": "p.pricing:17:3",
    }


def test_an_approval_for_the_meter_covers_its_price() -> None:
    body = '  mau overage 0.05 per user\n  approved "FIN-1" for mau'
    assert codes(FLOOR, contract(body)) == []


def test_an_approval_within_its_limit() -> None:
    body = (
        '  mau overage 0.045 per user\n  approved "FIN-1234" for mau overage down to 0.045 per user'
    )
    ruleset, diags = build(FLOOR, contract(body))
    assert diags == [] and ruleset is not None
    assert ruleset.exceptions[0].to_dict()["approved_limit"] == "down to 0.045 per user"


def test_an_approval_whose_limit_is_exceeded() -> None:
    body = (
        '  mau overage 0.044 per user\n  approved "FIN-1234" for mau overage down to 0.045 per user'
    )
    [(code, line, message)] = errors(FLOOR, contract(body))
    assert (code, line) == ("E245", 16)
    assert message.endswith(
        'and past the approved limit `down to 0.045 per user` ("FIN-1234", p.pricing:17)'
    )


@pytest.mark.parametrize(
    ("policy", "body"),
    [
        (DISCOUNT, '  discount 25% on usage\n  approved "D" for discount up to 24%'),
        (TERM, '  term 2026-01-01 to 2029-12-31\n  approved "T" for term up to 47 months'),
        (INCLUDED, '  mau included 150_000\n  approved "I" for mau included up to 149_999 users'),
        (CONC, '  concurrency 2%\n  approved "C" for concurrency down to 2.5%'),
    ],
)
def test_approval_limits_of_each_kind(policy: str, body: str) -> None:
    assert codes(policy, contract(body)) == ["E245"]
    loosened = (
        body.replace("24%", "25%")
        .replace("47 months", "48 months")
        .replace("149_999", "150_000")
        .replace("2.5%", "2%")
    )
    assert codes(policy, contract(loosened)) == []


def test_a_stale_approval_is_a_warning() -> None:
    body = '  mau overage 0.07 per user\n  approved "FIN-9" for mau overage'
    ruleset, diags = build(FLOOR, contract(body))
    assert ruleset is not None
    assert [(d.code, d.severity, d.line) for d in diags] == [("W110", "warning", 17)]
    assert diags[0].message == (
        'approval "FIN-9" for `mau overage` matches no policy violation in `c`'
    )


def test_an_approval_for_another_term_does_not_cover() -> None:
    body = '  mau overage 0.05 per user\n  approved "FIN-1" for mau included'
    # (Warnings such as W110 are looked for only in a ruleset without errors.)
    assert codes(FLOOR, contract(body)) == ["E241"]


def test_approvals_are_not_inherited() -> None:
    parent = contract('  mau overage 0.05 per user\n  approved "FIN-1" for mau overage', "a")
    child = contract("  base 1 per month", "b", parent="a")
    assert [c for c, _, _ in errors(FLOOR, parent + child)] == ["E241"]


# ------------------------------------------------------------------- Hypothesis

RATES = st.sampled_from(["0.05", "0.06", "0.07", "0.08", "0.1", "0.12", "0.059999999"])
PCTS = st.sampled_from(["0", "5", "10", "15", "20", "25", "40"])


@st.composite
def guarded(draw: st.DrawFn) -> str:
    lines = [f"  mau overage {draw(RATES)} per user"]
    if draw(st.booleans()):
        lines.append(f"  discount {draw(PCTS)}% on mau_overage")
    if draw(st.booleans()):
        lines.append(f"  discount {draw(PCTS)}% on usage")
    if draw(st.booleans()):
        inner = [f"    mau overage {draw(RATES)} per user"]
        if draw(st.booleans()):
            inner.append(f"    discount {draw(PCTS)}% on usage")
        lines += [f"  when mau > {draw(st.integers(0, 200_000))} {{", *inner, "  }"]
    if draw(st.booleans()):
        inner = [f"    discount {draw(PCTS)}% on mau_overage"]
        lines += ["  from 2026-09-01 {", *inner, "  }"]
    return "\n".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=guarded(),
    usages=st.lists(
        st.tuples(st.integers(0, 400_000), st.sampled_from(["2026-08", "2026-10"])),
        min_size=1,
        max_size=4,
    ),
)
def test_a_clean_contract_never_rates_below_the_floor(
    body: str, usages: list[tuple[int, str]]
) -> None:
    ruleset, diags = build(FLOOR, contract(body))
    if ruleset is None:
        assert any(d.code == "E241" for d in diags)
        return
    floor = Decimal("0.06")
    for mau, period in usages:
        invoice = ruleset.rate("c", {"mau": mau, "period": period})
        lines = {ln.code: ln for ln in invoice.lines}
        line = lines["mau_overage"]
        if line.quantity == 0:
            continue
        net = line.amount
        if "discount.mau_overage" in lines:
            net += lines["discount.mau_overage"].amount
        if "discount.usage" in lines:
            # A group discount takes its exact share of each line it reaches.
            usage_pct = -lines["discount.usage"].amount
            usage_total = sum((ln.amount for ln in invoice.lines if ln.kind == "usage"), Decimal(0))
            if usage_total:
                net -= usage_pct * line.amount / usage_total
        # Two roundings (the line and its discount) move it by at most half a cent each.
        assert net >= floor * line.quantity - Decimal("0.015"), (body, mau, period)


# ------------------------------------------------------- pricing check --approvals


def test_check_approvals_lists_the_shipped_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pricing_dsl._cli import main

    from .conftest import RULESETS

    assert main(["check", "--approvals", str(RULESETS)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "Contract",
        "Term",
        "Policy",
        "limit",
        "Effective",
        "Reference",
        "Approved",
        "at",
    ]
    rows = {" ".join(line.split()[:3]): line for line in out[1:-1]}
    assert rows["globex mau overage"].split()[:7] == [
        "globex",
        "mau",
        "overage",
        "at",
        "least",
        "0.06",
        "per",
    ]
    assert "FIN-2026-014 (down to 0.05 per user)" in rows["globex mau overage"]
    assert "FIN-2026-015" in rows["globex video at"]
    # The pricing models' examples record theirs (rulesets/contracts/models.pricing).
    assert "FIN-2026-202 (up to 50%)" in rows["ramp discount at"]
    assert [line.split()[0] for line in out[1:-1]] == ["fine", "globex", "globex", "ramp", "tiers"]
    assert out[-1] == "5 recorded exceptions"


def test_check_approvals_json_matches_its_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import jsonschema
    from referencing import Registry, Resource

    from pricing_dsl._cli import main

    from .conftest import ROOT, RULESETS

    assert main(["check", "--approvals", "--format", "json", str(RULESETS)]) == 0
    report = json.loads(capsys.readouterr().out)
    schemas = ROOT / "pricing_dsl" / "schemas"
    schema = json.loads((schemas / "approvals.schema.json").read_text())
    diag = json.loads((schemas / "diagnostics.schema.json").read_text())
    registry: Registry[Any] = Registry().with_resource(diag["$id"], Resource.from_contents(diag))
    jsonschema.Draft202012Validator(schema, registry=registry).validate(report)
    assert report["ok"] is True
    assert [(e["contract"], e["term"], e["reference"]) for e in report["exceptions"]] == [
        ("fine", "video", "FIN-2026-203"),
        ("globex", "mau overage", "FIN-2026-014"),
        ("globex", "video", "FIN-2026-015"),
        ("ramp", "discount", "FIN-2026-202"),
        ("tiers", "mau overage", "FIN-2026-201"),
    ]
    assert report["exceptions"][2]["effective"] == "0 per minute"
    assert report["exceptions"][2]["limit"] == "at least 0.0015 per minute"
    # A price per block of minutes is held to the floor per minute.
    assert report["exceptions"][0]["effective"] == "0.0005859375 per minute"


def test_check_approvals_with_errors_lists_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pricing_dsl._cli import main

    path = DATA / "acceptance" / "guardrails-9001" / "ruleset.pricing"
    assert main(["check", "--approvals", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["exceptions"] == []
    assert [d["code"] for d in report["diagnostics"]] == ["E241", "E241"]


# ------------------------------------------------------------- export and fmt


def test_export_includes_policies_and_approvals() -> None:
    import jsonschema

    from pricing_dsl._export import export

    from .conftest import ROOT, RULESETS

    rules = pricing_dsl_load(RULESETS)
    data = export(rules, "globex")
    schema = json.loads((ROOT / "pricing_dsl" / "schemas" / "export.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    [policy] = data["policies"]
    assert policy["name"] == "Finance limits 2026"
    assert policy["limits"][0] == {
        "kind": "floor",
        "term": "mau overage",
        "limit": "at least 0.06 per user",
        "value": "0.06",
        "targets": [],
        "currency": "USD",
        "source": f"{RULESETS / 'policy.pricing'}:7:3",
    }
    assert [(a["reference"], a["for"], a["bound"]) for a in data["contracts"][0]["approvals"]] == [
        ("FIN-2026-014", "mau overage", "down to 0.05 per user"),
        ("FIN-2026-015", "video", "down to 0 per minute"),
    ]


def pricing_dsl_load(path: object) -> Ruleset:
    from pricing_dsl import load

    return load(str(path))


def test_fmt_lays_out_policies_and_approvals() -> None:
    from pricing_dsl._format import format_text

    messy = (
        'policy   "P"  {\n'
        "mau   overage at least 0.06 per user\n"
        "      discount at most 20%  on usage ,addons\n"
        "term at most 36   months\n"
        "}\n"
        "contract c extends pro {\n"
        '     approved "FIN-1"   for mau overage   down to 0.05 per user\n'
        "}\n"
    )
    tidy = (
        'policy "P" {\n'
        "  mau overage at least 0.06 per user\n"
        "  discount at most 20% on usage, addons\n"
        "  term at most 36 months\n"
        "}\n"
        "contract c extends pro {\n"
        '  approved "FIN-1" for mau overage down to 0.05 per user\n'
        "}\n"
    )
    assert format_text(messy) == tidy
    assert format_text(tidy) == tidy
