"""Usage records: exact numbers, the project's usage format, and files ready for rating."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import pricing_dsl
from pricing_dsl import PricingError
from pricing_dsl._metering import UsageRecord, meter
from pricing_dsl._metering._result import file_name, minutes
from pricing_dsl._usage import Period, Usage, load_usage_file, parse_usage_text

from .conftest import DATA, write_events

ROOT = Path(__file__).resolve().parents[2]
CASE = DATA / "acceptance-9001"
AUGUST = Period.parse("2026-08")


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "0"),
        (60_000_000, "1"),
        (30_000_000, "0.5"),
        (6_000_000, "0.1"),
        (3_000_000, "0.05"),
        (1_000_000, "0.016667"),  # 1/60 is no finite decimal: to the millionth
        (2_000_000, "0.033333"),
        (61_000_000, "1.016667"),
        (95_538_000_000, "1592.3"),
        (3, "0.00000005"),  # a multiple of 3 microseconds is exact
        (10**22, "166666666666666.666667"),  # no loss of digits when large
    ],
)
def test_minutes_are_exact_or_rounded_to_the_millionth(micros: int, text: str) -> None:
    value = minutes(micros)
    assert isinstance(value, Decimal)
    assert format(value, "f") == text


def test_json_numbers_are_exact_never_floats() -> None:
    r = UsageRecord("acme", AUGUST, 27, 2, Decimal("1592.3"), Decimal("0.016667"))
    line = r.to_json()
    assert line == (
        '{"account": "acme", "period": "2026-08", "mau": 27, "peak_connections": 2, '
        '"voice_minutes": 1592.3, "video_minutes": 0.016667}'
    )
    data = json.loads(line, parse_float=Decimal)
    assert data["voice_minutes"] == Decimal("1592.3")
    assert Usage.from_mapping(data).get("video_minutes") == Decimal("0.016667")


def test_a_kind_not_given_leaves_its_meters_out(tmp_path: Path) -> None:
    result = meter(logins=CASE / "logins.jsonl", period="2026-08")
    assert set(result.records[0].to_dict()) == {"account", "period", "mau"}
    assert "voice_minutes" not in result.to_jsonl()


def test_every_record_is_valid_usage() -> None:
    result = meter(
        CASE / "logins.jsonl", CASE / "connections.jsonl", CASE / "calls.jsonl", period="2026-08"
    )
    lines = result.to_jsonl().splitlines()
    assert len(lines) == 4
    for line, record in zip(lines, result.records, strict=True):
        usage = parse_usage_text(line, "usage.json")
        assert usage.account == record.account
        assert usage.period == AUGUST
        assert usage.get("mau") == record.mau
        assert usage.get("voice_minutes") == record.voice_minutes


def test_yaml_files_round_trip_and_rate(tmp_path: Path) -> None:
    result = meter(
        CASE / "logins.jsonl", CASE / "connections.jsonl", CASE / "calls.jsonl", period="2026-08"
    )
    written = result.write(str(tmp_path / "usage"), "yaml")
    assert [Path(p).name for p in written] == [f"acct9001_{i}.yaml" for i in range(4)]
    rules = pricing_dsl.load(ROOT / "rulesets")
    for path, record in zip(written, result.records, strict=True):
        usage = load_usage_file(path)
        assert usage.account == record.account
        assert dict(usage.values) == {
            k: Decimal(v) for k, v in record.to_dict().items() if k not in ("account", "period")
        }
        invoice = rules.rate("acme", usage)
        assert invoice.total > 0


def test_a_custom_period_in_yaml_and_json() -> None:
    period = Period.parse("2026-08-10..2026-08-11")
    r = UsageRecord("a", period, mau=1)
    assert '"period": {"start": "2026-08-10", "end": "2026-08-11"}' in r.to_json()
    assert parse_usage_text(r.to_yaml(), "u.yaml").period == period
    assert parse_usage_text(r.to_json(), "u.json").period == period


@pytest.mark.parametrize(
    "account",
    [
        "plain",
        "with: colon",
        "quote \" and ' apostrophe",
        "ünïcødé",
        "line\nbreak",
        "sep\u2028arator",
        "# hash",
        "- dash",
        "007",
        "true",
        "a/b\\c",
        ".hidden",
        "tab\tbed",
    ],
)
def test_any_account_id_survives_a_yaml_file(account: str, tmp_path: Path) -> None:
    r = UsageRecord(account, AUGUST, mau=3, voice_minutes=Decimal("1.5"))
    usage = parse_usage_text(r.to_yaml(), "u.yaml")
    assert usage.account == account
    assert usage.get("voice_minutes") == Decimal("1.5")
    name = file_name(account)
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    path = tmp_path / name
    path.write_text(r.to_yaml(), encoding="utf-8")
    assert load_usage_file(str(path)).account == account


def test_account_ids_that_would_share_a_file(tmp_path: Path) -> None:
    rows = [
        {"account": "Acme", "user_id": "u", "timestamp": "2026-08-01T00:00:00Z"},
        {"account": "acme", "user_id": "u", "timestamp": "2026-08-01T00:00:00Z"},
    ]
    result = meter(logins=write_events(tmp_path, "logins", rows), period="2026-08")
    with pytest.raises(PricingError) as err:
        result.write(str(tmp_path / "out"), "yaml")
    assert err.value.codes == ["E611"]
    # JSON Lines has no such limit.
    result.write(str(tmp_path / "out.jsonl"), "jsonl")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


def test_the_summary_shows_the_options() -> None:
    from pricing_dsl._metering import MeterOptions

    result = meter(
        calls=CASE / "calls.jsonl",
        period="2026-08",
        options=MeterOptions(call_rounding="minute", minutes_per="participant"),
    )
    text = result.summary()
    assert "minutes each call rounded up to the whole minute, per participant" in text
    assert "calls: 91 rows (2 exact duplicates counted once)" in text
