"""W106 probes only the points whose totals can matter, and finds what an exhaustive walk finds.

`_lint._points_to_rate` decides which probe points to rate; forcing it to
say "all of them" gives the exhaustive walk the check used to do, which is
the yardstick here.  The cases that must stay exhaustive are ones where a
total does fall by a cent between two points with the same `when` layers
applied, so a pruning rule that skipped them would lose the warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_dsl import _lint
from pricing_dsl._checker import check
from pricing_dsl._parser import parse
from pricing_dsl._rating import rate
from pricing_dsl._terms import MeterInfo, ResolvedContract
from pricing_dsl._usage import Period

from .strategies import ruleset


def _lint_of(text: str) -> list[tuple[str, int, str]]:
    tree, errors = parse(text, "t.pricing")
    assert tree is not None and not errors, errors
    result = check([tree])
    assert not result.diagnostics, [d.render() for d in result.diagnostics]
    return [(d.code, d.line, d.message) for d in _lint.lint([tree], result)]


@contextmanager
def _exhaustive() -> Iterator[None]:
    """Rate every probe point, as the check did before it pruned."""

    def every(
        c: ResolvedContract, meter: MeterInfo, period: Period | None, points: list[Decimal]
    ) -> list[bool]:
        return [True] * len(points)

    with mock.patch.object(_lint, "_points_to_rate", every):
        yield


@contextmanager
def _counting_rates() -> Iterator[list[Decimal]]:
    """The usage values the W106 walk rates, in order."""
    rated: list[Decimal] = []

    def counted(c: Any, usage: Any, catalog: Any, plans: Any = None) -> Any:
        rated.extend(usage.values.values())
        return rate(c, usage, catalog, plans)

    with mock.patch.object(_lint, "rate", counted):
        yield rated


def _same_as_exhaustive(text: str) -> list[tuple[str, int, str]]:
    pruned = _lint_of(text)
    with _exhaustive():
        assert pruned == _lint_of(text)
    return pruned


def _w106(found: list[tuple[str, int, str]]) -> list[str]:
    return [message for code, _, message in found if code == "W106"]


# ------------------------------------------------------------ pruned


BENCH_LIKE = """currency USD
plan base "Base" {
  base 99.00 per month
  mau included 1000 overage 0.12 per user
}
contract c "C" extends base {
  mau included 3000 overage graduated {
    up to 100000 at 0.10 per user
    above at 0.08 per user
  }
  when mau > 200000 {
    mau overage 0.05 per user
  }
  minimum 1000.00 per month
}
"""


def test_a_monotone_run_is_rated_only_where_the_layers_change() -> None:
    # Graduated rate, one discount-free `when`: the total can only fall where
    # the `when` starts to apply, so the walk rates the last point before it
    # and the first after it, and finds the same drop.
    with _counting_rates() as rated:
        found = _lint_of(BENCH_LIKE)
    assert _w106(found) == [
        "the total goes down as `mau` goes up: 17799.00 at 200000, but 9949.05 at 200001"
    ]
    assert rated == [Decimal(200000), Decimal(200001)]
    with _exhaustive(), _counting_rates() as every:
        assert _lint_of(BENCH_LIKE) == found
    assert len(every) > 10


def test_one_monotone_run_rates_one_point() -> None:
    text = (
        'currency USD\nplan p "P" {\n  mau included 10 overage 0.10 per user\n'
        "  when mau >= 0 {\n    base 5 per month\n  }\n}\n"
    )
    with _counting_rates() as rated:
        assert _w106(_lint_of(text)) == []
    assert len(rated) == 1


def test_only_the_run_ends_around_a_change_are_rated() -> None:
    # No drop: the total rises at the threshold.  The run before it is rated
    # at its last point, the run after it at its first.
    text = (
        'currency USD\nplan p "P" {\n  mau included 10 overage 0.10 per user\n'
        "  when mau > 500 {\n    base 5 per month\n  }\n}\n"
    )
    with _counting_rates() as rated:
        assert _w106(_same_as_exhaustive(text)) == []
    assert rated[:2] == [Decimal(500), Decimal(501)]


# ------------------------------------------------------------ not pruned


def test_two_percentage_discounts_on_the_line_are_probed_point_by_point() -> None:
    # Each discount rounds on its own: 45% + 45% of 0.01 rounds to nothing,
    # of 0.02 to 0.02, so the total falls inside the run below 100.
    text = """currency USD
rounding half_even
plan p "P" {
  mau included 1 overage 0.01 per user
  discount 45% on mau_overage
  discount 45% on usage
  when mau > 100 {
    base 1 per month
  }
}
"""
    assert _w106(_same_as_exhaustive(text)) == [
        "the total goes down as `mau` goes up: 0.10 at 99, but 0.09 at 100"
    ]


def test_a_minimum_on_a_rounding_tie_is_probed_point_by_point() -> None:
    # Topping up to 3.335 rounds half-even from the subtotal: to 3.34 from
    # 0.00, to 3.33 from 0.01.
    text = """currency USD
rounding half_even
plan p "P" {
  mau included 0
  voice 0.01 per minute
  minimum 3.335 per month
  when voice_minutes > 1000 {
    base 10 per month
  }
}
"""
    assert _w106(_same_as_exhaustive(text)) == [
        "the total goes down as `voice_minutes` goes up: 3.34 at 0, but 3.33 at 1"
    ]


def test_a_cap_on_the_probed_line_is_probed_point_by_point() -> None:
    # The group discount is taken exactly from the capped line but rounded
    # on the subtotal, so above the cap the total wobbles by a cent.
    text = """currency USD
plan p "P" {
  mau included 0 overage 0.015 per user
  discount 50% on usage
  voice 0.015 per minute
  cap mau_overage 1 per month
  when mau > 1000 {
    base 10 per month
  }
}
"""
    assert _w106(_same_as_exhaustive(text)) == [
        "the total goes down as `mau` goes up: 11.00 at 1001, but 10.99 at 2002"
    ]


def test_a_volume_table_is_probed_point_by_point() -> None:
    text = """currency USD
plan p "P" {
  mau included 1000
  video volume {
    up to 100_000 at 0.003 per minute
    above at 0.0025 per minute
  }
}
"""
    with _counting_rates() as rated:
        found = _lint_of(text)
    assert _w106(found) == [
        "the total goes down as `video_minutes` goes up: 300.00 at 100000, but 250.00 at 100001"
    ]
    assert rated == [Decimal(n) for n in (0, 1, 99999, 100000, 100001)]


def test_probe_points_too_large_for_the_bound_are_all_rated() -> None:
    # `when` thresholds are not size-checked; past 10**20 the argument that
    # rating cannot fail at a skipped point no longer holds.
    text = (
        'currency USD\nplan p "P" {\n  mau included 10 overage 0.10 per user\n'
        "  when mau > 100_000_000_000_000_000_000 {\n    base 5 per month\n  }\n}\n"
    )
    with _counting_rates() as rated:
        assert _w106(_same_as_exhaustive(text)) == []
    points = len(rated) // 2
    assert rated[:points] == rated[points:]  # pruned walk = exhaustive walk


# ------------------------------------------------------------ agreement


@st.composite
def _edgy_ruleset(draw: st.DrawFn) -> str:
    """Contracts where rounding and adjustments come within a cent of a fall."""
    price = st.sampled_from(["0", "0.005", "0.01", "0.015", "0.1", "0.333", "1"])
    bounds = st.lists(st.integers(1, 300), min_size=1, max_size=3, unique=True)

    def rate(unit: str) -> str:
        if draw(st.booleans()):
            return f"{draw(price)} per {unit}"
        rows = [f"    up to {b} at {draw(price)} per {unit}" for b in sorted(draw(bounds))]
        mode = draw(st.sampled_from(["graduated", "volume"]))
        return f"{mode} {{\n" + "\n".join(rows) + f"\n    above at {draw(price)} per {unit}\n  }}"

    def clause() -> str:
        return draw(
            st.sampled_from(
                [
                    f"discount {draw(st.sampled_from(['12.5', '33.3', '45', '50']))}% on "
                    + draw(st.sampled_from(["mau_overage", "usage", "voice", "base"])),
                    f"discount {draw(st.sampled_from(['0.005', '0.5', '3.33']))} per month",
                    f"cap {draw(st.sampled_from(['mau_overage', 'voice']))} "
                    f"{draw(st.sampled_from(['0.005', '0.03', '1']))} per month",
                    f"minimum {draw(st.sampled_from(['0.005', '3.335', '10.01']))} per month",
                    f"base {draw(price)} per month",
                    f"mau overage {rate('user')}",
                    f"voice {rate('minute')}",
                ]
            )
        )

    lines = [
        f"currency {draw(st.sampled_from(['USD', 'JPY', 'BHD']))}",
        f"rounding {draw(st.sampled_from(['half_up', 'half_even']))}",
        'plan p "P" {',
        f"  mau included {draw(st.integers(0, 50))} overage {rate('user')}",
        f"  voice included {draw(st.integers(0, 20))} minutes",
        f"  voice {rate('minute')}",
    ]
    term = draw(st.sampled_from(["", "2026-07-10 to 2027-07-09", "2026-07-01 to 2026-12-31"]))
    if term:
        lines.append(f"  term {term}")
    lines += [f"  {clause()}" for _ in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(1, 3))):
        meter = draw(st.sampled_from(["mau", "voice_minutes"]))
        op = draw(st.sampled_from([">", ">=", "<", "<=", "==", "!="]))
        lines.append(f"  when {meter} {op} {draw(st.integers(0, 300))} {{\n    {clause()}\n  }}")
    return "\n".join([*lines, "}"]) + "\n"


def _same_as_exhaustive_if_clean(text: str) -> None:
    """_same_as_exhaustive for a text that checks clean, parsed and checked once.

    The lint only reads the tree and the check's result, so the pruned and
    the exhaustive walk can share them: a third of the time of an example.
    """
    tree, errors = parse(text, "t.pricing")
    if tree is None or errors:
        return
    result = check([tree])
    if result.diagnostics:
        return
    pruned = _lint.lint([tree], result)
    with _exhaustive():
        assert pruned == _lint.lint([tree], result)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=ruleset())
def test_same_warnings_as_the_exhaustive_walk(case: tuple[str, list[int]]) -> None:
    text, _ = case
    _same_as_exhaustive_if_clean(text)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(text=_edgy_ruleset())
def test_same_warnings_as_the_exhaustive_walk_near_a_cent(text: str) -> None:
    _same_as_exhaustive_if_clean(text)
