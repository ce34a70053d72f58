"""`pricing batch` on the pricing models of issue 12, rated in SQL by the DuckDB engine.

Blocks, tier flat fees, line minimums, caps on fee lines and groups,
quarterly and yearly fees and time-limited discounts all compile to SQL:
every whole month inside a contract's term is rated without the
interpreter.  Each test runs both batch engines (``both`` also holds them
to the same bytes), compares the rows with ``Ruleset.rate``'s, and checks
amounts computed by hand.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl._usage import Period

from .conftest import DATA
from .test_batch import FORMATS, Row, both, read_rows, write_usage
from .test_batch_shapes import rate_rows, sql_of_run

duckdb = pytest.importorskip("duckdb", reason="the DuckDB engine needs the duckdb package")

MODELS = DATA / "acceptance" / "models-9001"

RULES = pricing_dsl.loads(
    """currency USD

addon hipaa "HIPAA compliance" 500.00 per month
addon sso "Single sign-on" 600.00 per quarter
meter sms "SMS notifications" unit message

plan metered "Metered" {
  base 0.00 per month
}

contract blk "Blocks" extends metered {
  sms included 100 overage 5.00 per 100 messages
  voice 10.00 per 60 minutes rounded down
  video 0.25 per 0.5 minutes
}

contract tb "Tier blocks and flat fees" extends metered {
  sms graduated {
    up to 1_000 at 1.00 per 100 messages plus 5.00
    above       at 0.50 per 1_000 messages rounded down plus 7.00
  }
  mau volume {
    up to 100 at 0.10 per user
    above     at 2.00 per 50 users plus 3.00
  }
}

contract tba "Tier blocks after an allowance" extends metered {
  sms included 150 overage graduated {
    up to 1_000 at 1.00 per 100 messages plus 5.00
    above       at 0.50 per 1_000 messages rounded down plus 7.00
  }
}

contract even "Half even" extends metered {
  rounding half_even
  sms 0.005 per 10 messages
  video 0.000585937500 per minute
}

contract lim "Line minimum and caps" extends metered {
  addons hipaa
  voice 0.01 per minute
  video 0.01 per minute
  discount 10% on video
  minimum video 50.00 per month
  cap usage 100.00 per month
  cap addon.hipaa 480.00 per month
  cap addons 450.00 per month
  minimum 600.00 per month
}

contract grp "Group discount, group minimum" extends metered {
  addons hipaa
  voice 0.01 per minute
  discount 50% on usage
  minimum addons 600.00 per month
  cap voice 25.00 per month
  cap addon.hipaa 550.00 per month
}

contract yr "Yearly, the term ends inside the year" extends metered {
  term 2026-01-01 to 2026-09-30
  base 12_000.00 per year
  addons sso
}

contract qt "Quarterly from mid-month, price changed" extends metered {
  term 2026-02-15 to 2026-12-31
  addons sso
  addon sso 900.00 per quarter
  from 2026-05-01 {
    addon sso 1_000.00 per quarter
  }
}

contract cal "Calendar quarters" extends metered {
  addons sso
}

contract promo "Time-limited discounts" extends metered {
  term 2026-07-15 to 2027-07-14
  base 1_000.00 per month
  voice 0.01 per minute
  discount 20% on base for 3 months
  discount 10% on usage until 2026-12-31
}
""",
    "models.pricing",
)


def run(
    records: list[dict[str, Any]], tmp: Path, out_fmt: str = "jsonl", rules: Any = RULES
) -> list[Row]:
    """Both engines on the records; the rows, once they are known to be the interpreter's."""
    usage = tmp / "u.jsonl"
    write_usage(usage, records)
    _py, dk = both(rules, usage, tmp, out_fmt)
    rows = read_rows(tmp / f"dk.{out_fmt}")
    assert rows == [row for r in records for row in rate_rows(rules, r)]
    assert dk.interpreted == 0, dk.reasons
    return rows


def lines(rows: list[Row], code: str) -> list[str]:
    """The amount of line ``code`` of each record, in order."""
    return [r[9] for r in rows if r[4] == code]


def by_record(
    rows: list[Row], records: list[dict[str, Any]], rules: Any = RULES
) -> list[dict[str, Row]]:
    """Each record's rows by line code."""
    out: list[dict[str, Row]] = []
    at = 0
    for r in records:
        n = len(rate_rows(rules, r))
        out.append({row[4]: row for row in rows[at : at + n]})
        at += n
    return out


# ------------------------------------------------------ acceptance cases


def test_models_acceptance_cases_are_rated_in_sql(tmp_path: Path) -> None:
    """tests/data/acceptance/models-9001, computed by hand, through both engines."""
    rules = pricing_dsl.load(MODELS / "ruleset.pricing")
    cases = json.loads((MODELS / "cases.json").read_text("utf-8"))["cases"]
    records = [{"contract": c["contract"], **c["usage"]} for c in cases]
    usage = tmp_path / "u.jsonl"
    write_usage(usage, records)
    _py, dk = both(rules, usage, tmp_path, "jsonl")
    rows = read_rows(tmp_path / "dk.jsonl")
    assert rows == [row for r in records for row in rate_rows(rules, r)]
    # Only ramp's first month is left to the interpreter: the term starts on
    # 2026-07-15, and the SQL rates whole months inside the term.
    assert dk.interpreted == 1
    assert dict(dk.reasons) == {"the period is only partly inside the contract's term": 1}
    for case, own in zip(cases, by_record(rows, records, rules), strict=True):
        amounts = {code: r[9] for code, r in own.items()}
        assert sum(Decimal(a) for a in amounts.values()) == Decimal(case["total"]), case
        for code, amount in case.get("lines", {}).items():
            assert amounts[code] == amount, (case, code)


# ----------------------------------------------------------------- blocks


def test_blocks_at_zero_one_block_and_one_unit_past(tmp_path: Path) -> None:
    usage = [
        # sms (100 free, blocks of 100 up), voice (60 down), video (0.5 up)
        (0, 0, "0"),
        (100, 59, "0.000001"),
        (200, 60, "0.5"),
        (201, 61, "0.500001"),
        (300, "119.999999", "1.25"),
        (999_999_999_999, 120, "999999999999.999999"),
    ]
    records = [
        {
            "contract": "blk",
            "period": "2026-08",
            "sms": s,
            "voice_minutes": Decimal(str(v)),
            "video_minutes": Decimal(w),
        }
        for s, v, w in usage
    ]
    rows = run(records, tmp_path)
    assert lines(rows, "sms") == ["0.00", "0.00", "5.00", "10.00", "10.00", "49999999995.00"]
    assert lines(rows, "voice") == ["0.00", "0.00", "10.00", "10.00", "10.00", "20.00"]
    assert lines(rows, "video") == ["0.00", "0.25", "0.25", "0.50", "0.75", "500000000000.00"]
    # The quantity is the billable units; no unit price (the amount is per block).
    sms = [r for r in rows if r[4] == "sms"]
    assert [(r[6], r[7], r[8]) for r in sms[2:4]] == [
        ("100", "message", None),
        ("101", "message", None),
    ]


@pytest.mark.parametrize("out_fmt", FORMATS)
def test_tier_blocks_and_flat_fees_at_the_bound_and_one_past(tmp_path: Path, out_fmt: str) -> None:
    records = [
        {"contract": "tb", "period": "2026-08", "sms": s, "mau": m}
        for s, m in ((0, 0), (1, 100), (1000, 101), (1001, 150), (2001, 151))
    ]
    rows = run(records, tmp_path, out_fmt)
    # Graduated: tier 1 per started 100 plus 5.00 always; tier 2 per whole
    # 1000 plus 7.00 once the usage is above 1000.
    assert lines(rows, "sms") == ["5.00", "6.00", "15.00", "22.00", "22.50"]
    # Volume: up to 100 users at 0.10 each; above, every user in started
    # blocks of 50 at 2.00, plus 3.00.
    assert lines(rows, "mau_overage") == ["0.00", "10.00", "9.00", "9.00", "11.00"]
    # The unit price is shown only where the amount is quantity x price.
    assert [r[8] for r in rows if r[4] == "mau_overage"] == ["0.10", "0.10", None, None, None]
    assert [r[8] for r in rows if r[4] == "sms"] == [None] * 5


def test_tier_blocks_after_an_allowance(tmp_path: Path) -> None:
    records = [
        {"contract": "tba", "period": "2026-08", "sms": s} for s in (0, 150, 151, 250, 251, 1001)
    ]
    rows = run(records, tmp_path)
    # The first tier's flat fee at zero usage; its units above the 150 free in
    # started blocks of 100; 1001 reaches the second tier (no whole block).
    assert lines(rows, "sms") == ["5.00", "5.00", "6.00", "6.00", "7.00", "21.00"]


def test_block_prices_round_half_even_and_twelve_decimal_rates(tmp_path: Path) -> None:
    records = [
        {"contract": "even", "period": "2026-08", "sms": s, "video_minutes": v}
        for s, v in ((10, 30720), (11, 1), (30, 0), (50, "853.333334"))
    ]
    rows = run(records, tmp_path)
    # 0.005 -> 0.00 and 0.025 -> 0.02 (half even), 0.01, 0.015 -> 0.02.
    assert lines(rows, "sms") == ["0.00", "0.01", "0.02", "0.02"]
    # 30720 x 0.0005859375 = 18; 853.333334 x 0.0005859375 = 0.50000000039...
    assert lines(rows, "video") == ["18.00", "0.00", "0.00", "0.50"]


# ---------------------------------------------------- line minimums and caps


def test_line_minimum_met_exactly_and_missed_by_a_cent_with_caps(tmp_path: Path) -> None:
    records = [
        {"contract": "lim", "period": "2026-08", "voice_minutes": v, "video_minutes": w}
        for v, w in ((0, 5556), (0, 5555), (20000, 0), (100000, 100000))
    ]
    rows = run(records, tmp_path)
    shown = ("voice", "video", "discount.video", "minimum.video", "cap.usage", "cap.addon.hipaa")
    shown += ("cap.addons", "minimum")
    got = [{c: r[9] for c, r in rec.items() if c in shown} for rec in by_record(rows, records)]
    assert got == [
        # video 55.56, 10% off -5.56: net 50.00, the minimum is met exactly.
        {
            "voice": "0.00",
            "video": "55.56",
            "discount.video": "-5.56",
            "minimum.video": "0.00",
            "cap.usage": "0.00",
            "cap.addon.hipaa": "-20.00",
            "cap.addons": "-50.00",
            "minimum": "120.00",
        },
        # video 55.55, -5.56 (5.555 rounded half up): net 49.99, one cent short.
        {
            "voice": "0.00",
            "video": "55.55",
            "discount.video": "-5.56",
            "minimum.video": "0.01",
            "cap.usage": "0.00",
            "cap.addon.hipaa": "-20.00",
            "cap.addons": "-50.00",
            "minimum": "120.00",
        },
        # No video: the 50.00 top-up counts towards the usage cap (250 - 100),
        # not towards the add-on caps.
        {
            "voice": "200.00",
            "video": "0.00",
            "discount.video": "0.00",
            "minimum.video": "50.00",
            "cap.usage": "-150.00",
            "cap.addon.hipaa": "-20.00",
            "cap.addons": "-50.00",
            "minimum": "70.00",
        },
        {
            "voice": "1000.00",
            "video": "1000.00",
            "discount.video": "-100.00",
            "minimum.video": "0.00",
            "cap.usage": "-1800.00",
            "cap.addon.hipaa": "-20.00",
            "cap.addons": "-50.00",
            "minimum": "70.00",
        },
    ]


def test_group_discount_counts_by_exact_share_and_minimums_count_in_caps(
    tmp_path: Path,
) -> None:
    records = [
        {"contract": "grp", "period": "2026-08", "voice_minutes": v} for v in (10001, 2000, 0)
    ]
    rows = run(records, tmp_path)
    codes = ("voice", "discount.usage", "cap.voice", "minimum.addons", "cap.addon.hipaa")
    got = [[rec[c][9] for c in codes] for rec in by_record(rows, records)]
    assert got == [
        # 100.01 less the exact 50.005 (not the rounded -50.01): net 50.005,
        # 25.005 above the cap -> -25.01.  The add-ons (500.00) are topped up
        # to 600.00, and the cap on their one line counts the top-up: -50.00.
        ["100.01", "-50.01", "-25.01", "100.00", "-50.00"],
        ["20.00", "-10.00", "0.00", "100.00", "-50.00"],
        ["0.00", "0.00", "0.00", "100.00", "-50.00"],
    ]


# ------------------------------------------------- quarterly and yearly fees


@pytest.mark.parametrize("out_fmt", FORMATS)
def test_yearly_fee_in_its_month_and_the_others_term_ending_inside(
    tmp_path: Path, out_fmt: str
) -> None:
    months = ("2026-01", "2026-02", "2026-04", "2026-07", "2026-09")
    records = [{"contract": "yr", "period": m} for m in months]
    rows = run(records, tmp_path, out_fmt)
    fees = [(r[4], r[6], r[7], r[8], r[9]) for r in rows if r[4] in ("base", "addon.sso")]
    assert fees == [
        # The year 2026 starts in January; the term ends 2026-09-30, 273 days in.
        ("base", "0.747945", "year", "12000.00", "8975.34"),
        ("addon.sso", "1", "quarter", "600.00", "600.00"),
        ("base", "0", "year", "12000.00", "0.00"),
        ("addon.sso", "0", "quarter", "600.00", "0.00"),
        ("base", "0", "year", "12000.00", "0.00"),
        ("addon.sso", "1", "quarter", "600.00", "600.00"),
        ("base", "0", "year", "12000.00", "0.00"),
        ("addon.sso", "1", "quarter", "600.00", "600.00"),
        ("base", "0", "year", "12000.00", "0.00"),
        ("addon.sso", "0", "quarter", "600.00", "0.00"),
    ]


def test_quarters_from_mid_month_with_a_dated_price_and_calendar_quarters(
    tmp_path: Path,
) -> None:
    months = ("2026-03", "2026-05", "2026-06", "2026-08", "2026-11", "2026-12")
    records = [{"contract": "qt", "period": m} for m in months]
    records += [{"contract": "cal", "period": m} for m in ("2026-01", "2026-02", "2026-10")]
    rows = run(records, tmp_path)
    sso = [(r[6], r[8], r[9]) for r in rows if r[4] == "addon.sso"]
    assert sso == [
        ("0", "900.00", "0.00"),
        # From 2026-05-01 the quarter costs 1000.00; quarters start on the 15th.
        ("1", "1000.00", "1000.00"),
        ("0", "1000.00", "0.00"),
        ("1", "1000.00", "1000.00"),
        # The quarter from 2026-11-15 is cut by the term at 2026-12-31: 47/92.
        ("0.51087", "1000.00", "510.87"),
        ("0", "1000.00", "0.00"),
        # Without a term, calendar quarters.
        ("1", "600.00", "600.00"),
        ("0", "600.00", "0.00"),
        ("1", "600.00", "600.00"),
    ]


# ----------------------------------------------------- time-limited discounts


def test_time_limited_discounts_last_month_and_the_month_after(tmp_path: Path) -> None:
    months = ("2026-09", "2026-10", "2026-12", "2027-01")
    records = [{"contract": "promo", "period": m, "voice_minutes": 1000} for m in months]
    rows = run(records, tmp_path)
    shown = ("base", "voice", "discount.base", "discount.usage")
    got = [{c: r[9] for c, r in rec.items() if c in shown} for rec in by_record(rows, records)]
    assert got == [
        # Month 3 of the term: both discounts.
        {
            "base": "1000.00",
            "voice": "10.00",
            "discount.base": "-200.00",
            "discount.usage": "-1.00",
        },
        {"base": "1000.00", "voice": "10.00", "discount.usage": "-1.00"},
        {"base": "1000.00", "voice": "10.00", "discount.usage": "-1.00"},
        {"base": "1000.00", "voice": "10.00"},
    ]


# --------------------------------------------- many contracts, one shape


def many_models(n: int) -> str:
    """N contracts of one shape using every construct, each with its own numbers and dates."""
    parts = [
        """currency USD

addon sso "Single sign-on" 600.00 per quarter
meter sms "SMS notifications" unit message

plan metered "Metered" {
  base 0.00 per month
}
"""
    ]
    for i in range(n):
        parts.append(
            f'contract c{i:04d} "Customer {i:04d}" extends metered {{\n'
            f"  term 2026-0{1 + i % 9}-{10 + i % 19} to 2027-12-31\n"
            f"  base {1000 + i}.00 per year\n"
            "  addons sso\n"
            f"  sms included {100 + i} overage {1 + i % 9}.00 per {10 + i % 90} messages\n"
            "  mau graduated {\n"
            f"    up to 1_000 at 0.0{1 + i % 9} per user plus {10 + i % 90}.00\n"
            f"    above at 0.01 per {1 + i % 9} users rounded down plus {10 + i % 90}.00\n"
            "  }\n"
            f"  minimum sms {50 + i % 50}.00 per month\n"
            f"  cap usage {500 + i % 400}.00 per month\n"
            f"  discount 1{i % 10}% on addons for {1 + i % 9} months\n"
            "}\n"
        )
    return "\n".join(parts)


def _statements(
    n: int, tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], pricing_dsl.Ruleset, list[dict[str, Any]]]:
    rules = pricing_dsl.loads(many_models(n), "many.pricing")
    records = [
        {
            "account": f"a{i:05d}",
            "contract": f"c{i % n:04d}",
            "period": ("2026-10", "2026-11", "2027-01", "2027-04")[i % 4],
            "mau": 900 + 37 * i,
            "sms": 90 + 13 * i,
        }
        for i in range(2 * n)
    ]
    return sql_of_run(rules, records, tmp / f"n{n:04d}", monkeypatch), rules, records


def test_sql_does_not_grow_with_contracts_using_the_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few, _, _ = _statements(20, tmp_path, monkeypatch)
    lots, rules, records = _statements(400, tmp_path, monkeypatch)
    # Statement by statement, the same SQL for 20 contracts and for 400: terms,
    # discounts' last days and the yearly and quarterly fees travel as data.
    assert [len(s) for s in few] == [len(s) for s in lots]
    assert not any("c0399" in s or "Customer 0399" in s for s in lots)
    rows = read_rows(tmp_path / "n0400" / "out.jsonl")
    assert rows == [row for r in records for row in rate_rows(rules, r)]


# ---------------------------------------------------------- random contracts

BLOCKS = ("1", "0.5", "0.25", "7", "60", "100", "1_000")
model_prices = st.decimals(
    min_value=0, max_value=20, places=4, allow_nan=False, allow_infinity=False
)


@st.composite
def priced_per(draw: st.DrawFn, unit: str) -> str:
    """A price per unit or per block, rounded up or down."""
    price = draw(model_prices)
    if draw(st.booleans()):
        return f"{price} per {unit}"
    block = draw(st.sampled_from(BLOCKS))
    if block == "1" and draw(st.booleans()):
        return f"{price} per {unit} rounded down"  # whole units only
    down = " rounded down" if draw(st.booleans()) else ""
    return f"{price} per {block} {unit}s{down}"


@st.composite
def model_rate(draw: st.DrawFn, unit: str, points: list[int]) -> str:
    """A flat rate or a tier table, with blocks and flat fees here and there."""
    if draw(st.booleans()):
        return draw(priced_per(unit))
    bounds = sorted(set(draw(st.lists(st.integers(1, 5_000), min_size=1, max_size=3))))
    points.extend(bounds)

    def fee() -> str:
        return f" plus {draw(model_prices)}" if draw(st.booleans()) else ""

    rows = [f"    up to {b} at {draw(priced_per(unit))}{fee()}" for b in bounds]
    rows.append(f"    above at {draw(priced_per(unit))}{fee()}")
    mode = draw(st.sampled_from(["graduated", "volume"]))
    return f"{mode} {{\n" + "\n".join(rows) + "\n  }"


@st.composite
def model_ruleset(draw: st.DrawFn) -> tuple[str, list[int], tuple[str, str] | None]:
    """A contract using the models of issue 12; usage points near its bounds; its term."""
    points: list[int] = []
    term = draw(st.sampled_from([None, ("2026-01-01", "2026-09-30"), ("2026-02-15", "2027-03-20")]))
    lines = []
    if term is not None:
        lines.append(f"  term {term[0]} to {term[1]}")
    base_per = draw(st.sampled_from(["month", "quarter", "year"]))
    lines.append(f"  base {draw(model_prices)} per {base_per}")
    allowance = draw(st.sampled_from(["", "included 150 overage ", "included 2.5 overage "]))
    lines.append(f"  sms {allowance}{draw(model_rate('message', points))}")
    lines.append(f"  video {draw(model_rate('minute', points))}")
    addons = draw(st.sampled_from(["h", "q", "h, q"]))
    lines.append(f"  addons {addons}")
    if draw(st.booleans()):
        lines.append(f"  addon q {draw(model_prices)} per year")
    targets = ["usage", "addons", "sms", "video", "base"]
    pct = draw(st.lists(st.sampled_from(targets), max_size=2, unique=True))
    for t in pct:
        limit = draw(st.sampled_from(["", " until 2026-10-31", " for 4 months" if term else ""]))
        lines.append(f"  discount {draw(st.integers(0, 45))}% on {t}{limit}")
    minimums = draw(st.lists(st.sampled_from(targets), max_size=2, unique=True))
    floor = {}
    for t in minimums:
        floor[t] = draw(st.integers(0, 400))
        lines.append(f"  minimum {t} {floor[t]}.00 per month")
    lines_of = [*targets, *(f"addon.{a}" for a in addons.split(", "))]
    for t in draw(st.lists(st.sampled_from(lines_of), max_size=3, unique=True)):
        lines.append(f"  cap {t} {floor.get(t, 0) + draw(st.integers(0, 600))}.00 per month")
    if draw(st.booleans()):
        lines.append(f"  discount {draw(st.integers(0, 300))}.00 per month")
    if draw(st.booleans()):
        lines.append(f"  minimum {draw(st.integers(0, 2000))}.00 per month")
    text = "\n".join(
        [
            "currency USD",
            f"rounding {draw(st.sampled_from(['half_up', 'half_even']))}",
            'meter sms "SMS" unit message',
            'addon h "H" 10.005 per month',
            'addon q "Q" 300.00 per quarter',
            'plan p "P" {',
            "  mau included 10 overage 0.5 per user",
            "}",
            'contract c "C" extends p {',
            *lines,
            "}",
        ]
    )
    near = sorted({p + d for p in points for d in (-1, 0, 1) if p + d >= 0})
    return text + "\n", near, term


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_model_contracts_agree_and_are_rated_in_sql(
    data: st.DataObject, tmp_path_factory: Any
) -> None:
    text, near, term = data.draw(model_ruleset())
    rules = pricing_dsl.loads(text, "generated.pricing")
    amounts = st.one_of(
        st.sampled_from([0, *near, 100, 101, 150, 151, 250, 251]),
        st.decimals(min_value=0, max_value=100_000, places=6),
    )
    months = [f"{y}-{m:02d}" for y in (2026, 2027) for m in range(1, 13)]
    records = [
        {
            "contract": "c",
            "period": data.draw(st.sampled_from(months)),
            "sms": data.draw(st.sampled_from([0, *near, 100, 101, 150, 151, 250, 251])),
            "video_minutes": data.draw(amounts),
        }
        for _ in range(data.draw(st.integers(1, 12)))
    ]
    tmp = tmp_path_factory.mktemp("models")
    usage = tmp / "u.jsonl"
    write_usage(usage, records)
    _py, dk = both(rules, usage, tmp, "jsonl")
    assert read_rows(tmp / "dk.jsonl") == [row for r in records for row in rate_rows(rules, r)]
    # Whole months inside the term are rated in SQL; the rest by the interpreter.
    periods = [Period.parse(r["period"]) for r in records]
    whole = [
        term is None
        or (date.fromisoformat(term[0]) <= p.start and p.end <= date.fromisoformat(term[1]))
        for p in periods
    ]
    rated = [bool(rate_rows(rules, r)) for r in records]
    assert dk.interpreted == sum(not w and ok for w, ok in zip(whole, rated, strict=True))
    assert set(dict(dk.reasons)) <= {"the period is only partly inside the contract's term"}
