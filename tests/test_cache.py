"""The per-user cache of checked rulesets: used when safe, never stale, never trusted if odd."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest

import pricing_dsl
from pricing_dsl import _cache, _ruleset

RULES = """currency USD
plan p "P" {
  base 10.00 per month
  mau included 100 overage 0.50 per user
}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PRICING_DSL_NO_CACHE", raising=False)
    yield tmp_path / "cache" / "pricing-dsl"


@pytest.fixture
def ruleset(tmp_path: Path) -> Path:
    path = tmp_path / "rules" / "p.pricing"
    path.parent.mkdir()
    path.write_text(RULES, "utf-8")
    return path


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("ruleset-*.pickle"))


def _builds() -> mock._patch[mock.MagicMock]:
    """Count how often a ruleset is parsed and checked."""
    return mock.patch.object(_ruleset, "_build", side_effect=_ruleset._build)


def test_a_second_load_reads_the_checked_ruleset_back(folder: Path, ruleset: Path) -> None:
    with _builds() as build:
        first = pricing_dsl.load(ruleset, cache=True)
        second = pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 1
    assert len(_entries(folder)) == 1
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct(_entries(folder)[0].stat().st_mode & 0o777) == "0o600"
    usage = {"period": "2026-08", "mau": 150}
    assert second.rate("p", usage).to_dict() == first.rate("p", usage).to_dict()
    assert second.rate("p", usage).total == Decimal("35.00")  # 10.00 + 50 x 0.50


def test_every_field_of_a_ruleset_survives_the_cache(folder: Path) -> None:
    fresh = pricing_dsl.load("rulesets")
    pricing_dsl.load("rulesets", cache=True)
    cached = pricing_dsl.load("rulesets", cache=True)
    assert cached is not fresh
    # Every data field, compared by value; the caches are not data.
    names = [f.name for f in dataclasses.fields(fresh) if not f.name.startswith("_")]
    assert {"contracts", "policies", "approvals", "exceptions"} <= set(names)
    for name in names:
        got, want = getattr(cached, name), getattr(fresh, name)
        if isinstance(want, Mapping):
            got, want = dict(got), dict(want)
        assert got == want, name
    assert cached.exceptions  # the shipped rulesets record approved exceptions


def test_a_changed_file_is_checked_again(folder: Path, ruleset: Path) -> None:
    pricing_dsl.load(ruleset, cache=True)
    ruleset.write_text(RULES.replace("0.50", "0.60"), "utf-8")
    with _builds() as build:
        rules = pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 1
    assert rules.rate("p", {"mau": 150}).total == Decimal("40.00")  # 10.00 + 50 x 0.60
    assert len(_entries(folder)) == 2


def test_without_cache_nothing_is_written(folder: Path, ruleset: Path) -> None:
    pricing_dsl.load(ruleset)
    assert _entries(folder) == []


def test_the_environment_turns_it_off(
    folder: Path, ruleset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICING_DSL_NO_CACHE", "1")
    with _builds() as build:
        pricing_dsl.load(ruleset, cache=True)
        pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 2
    assert not folder.exists() or _entries(folder) == []


@pytest.mark.parametrize(
    "damage",
    [b"", b"not a pickle", b"\x80\x05K\x01.", b"\x80\x05\x95"],
    ids=["empty", "text", "an int", "truncated"],
)
def test_a_corrupt_entry_is_ignored_and_replaced(
    folder: Path, ruleset: Path, damage: bytes
) -> None:
    pricing_dsl.load(ruleset, cache=True)
    (entry,) = _entries(folder)
    entry.write_bytes(damage)
    with _builds() as build:
        rules = pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 1
    assert rules.rate("p", {"mau": 150}).total == Decimal("35.00")
    assert entry.read_bytes() != damage


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_an_entry_others_may_write_is_not_trusted(folder: Path, ruleset: Path) -> None:
    pricing_dsl.load(ruleset, cache=True)
    (entry,) = _entries(folder)
    entry.chmod(0o666)
    with _builds() as build:
        pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_folder_others_may_write_is_not_used(folder: Path, ruleset: Path) -> None:
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with _builds() as build:
        pricing_dsl.load(ruleset, cache=True)
        pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 2
    assert _entries(folder) == []


def test_an_entry_of_another_users_folder_is_not_used(
    folder: Path, ruleset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pricing_dsl.load(ruleset, cache=True)
    # Seen as another user: the folder and its files are not ours.
    monkeypatch.setattr(os, "getuid", lambda: 4242, raising=False)
    with _builds() as build:
        pricing_dsl.load(ruleset, cache=True)
    assert build.call_count == 1


def test_errors_are_reported_and_not_cached(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pricing"
    bad.write_text('plan p "P" { base -5 per month }\n', "utf-8")
    for _ in range(2):
        with pytest.raises(pricing_dsl.PricingError) as info:
            pricing_dsl.load(bad, cache=True)
        assert info.value.diagnostics[0].path == str(bad)
    assert _entries(folder) == []


def test_the_key_covers_names_bytes_and_code() -> None:
    a = _cache.key([("a.pricing", b"x")])
    assert a == _cache.key([("a.pricing", b"x")])
    assert a != _cache.key([("b.pricing", b"x")])
    assert a != _cache.key([("a.pricing", b"y")])
    assert a != _cache.key([("a.pricing", b"x"), ("b.pricing", b"")])
    # Name and content boundaries cannot be shifted into each other.
    assert _cache.key([("ab", b"c")]) != _cache.key([("a", b"bc")])
    with mock.patch.object(_cache, "_code_fingerprint", return_value="other code"):
        assert _cache.key([("a.pricing", b"x")]) != a


def test_pricing_batch_uses_the_cache(
    folder: Path, ruleset: Path, tmp_path: Path, pricing_cmd: str
) -> None:
    import subprocess

    usage = tmp_path / "usage.jsonl"
    usage.write_text('{"contract": "p", "period": "2026-08", "mau": 150}\n', "utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(folder.parent)}
    for n in range(2):
        out = tmp_path / f"out{n}.jsonl"
        done = subprocess.run(
            [
                pricing_cmd,
                "batch",
                str(ruleset),
                "--usage",
                str(usage),
                "--out",
                str(out),
                "--engine",
                "python",
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert '"amount":"25.00"' in out.read_text("utf-8")  # 50 x 0.50
    assert len(_entries(folder)) == 1
