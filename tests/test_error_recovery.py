"""Bugs found while writing the rule, error, usage and CLI tests, now fixed.

Each test states the input and what must happen, so they stay fixed.
"""

from __future__ import annotations

import pytest

import pricing_dsl
from pricing_dsl import PricingError


def _codes(text: str) -> list[tuple[str, int, int]]:
    with pytest.raises(PricingError) as info:
        pricing_dsl.loads(text, "r.pricing")
    return [(d.code, d.line, d.column) for d in info.value.diagnostics]


# ------------------------------------------------------ checker: lost errors


def test_errors_in_children_of_a_broken_parent_are_reported() -> None:
    """test_errors.py.  Independent errors in a plan whose parent has an error are dropped.

    Actual: only [("E204", 3, 38)]; the E205 in `pro` and the E207 in `team` are never
    reported (the checker marks every descendant of a failed plan broken without
    checking its body), so an author fixes one error only to meet the next.
    """
    text = """currency USD
plan starter {
  mau included 1000 overage 0.12 per minute
}
plan pro extends starter {
  base -5.00 per month
}
plan team extends starter {
  addons hippa
}
"""
    assert _codes(text) == [("E204", 3, 38), ("E205", 6, 8), ("E207", 9, 10)]


def test_errors_in_a_contract_with_an_unknown_parent_are_reported() -> None:
    """test_errors.py.  Actual: only E201 and E209; the negative base fees are not reported."""
    text = """currency USD
plan starter {
  mau included 1000
}
contract acme extends startr {
  base -5.00 per month
}
contract beta {
  base -5.00 per month
}
"""
    assert _codes(text) == [
        ("E201", 5, 23),
        ("E205", 6, 8),
        ("E209", 8, 10),
        ("E205", 9, 8),
    ]


def test_a_misspelt_discount_target_is_reported_beside_other_errors() -> None:
    """test_errors.py.  Actual: only [("E205", 4, 8)]; the E222 for `vidoe` is dropped
    whenever the same body has any other error, though the two are independent."""
    text = """currency USD
plan p {
  mau included 1000
  base -1 per month
  discount 10% on vidoe
}
"""
    assert _codes(text) == [("E205", 4, 8), ("E222", 5, 19)]


def test_unknown_parent_hint_does_not_offer_the_plan_itself() -> None:
    """test_errors.py.  `contract acme extends startr` gets the hint
    "extend one of: acme, starter": acme cannot extend itself (that is E203).
    The E209 hint ("plans and contracts: acme, p") has the same slip."""
    with pytest.raises(PricingError) as info:
        pricing_dsl.loads(
            "currency USD\nplan starter {\n  mau included 1000\n}\n"
            "contract acme extends startr {\n  mau included 2000\n}\n"
        )
    (d,) = info.value.diagnostics
    assert d.code == "E201"
    assert d.hint is not None
    assert "acme" not in d.hint.replace("extend one of:", "")
