"""The VS Code extension's TextMate grammar highlights every keyword of pricing.lark."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LARK = ROOT / "pricing_dsl" / "pricing.lark"
TEXTMATE = ROOT / "editors" / "vscode" / "syntaxes" / "pricing.tmLanguage.json"


def keywords() -> list[str]:
    """The grammar's keywords: its alphabetic string literals, read at test time."""
    return sorted(set(re.findall(r'"([A-Za-z_]+)"', LARK.read_text("utf-8"))))


def keyword_patterns() -> list[re.Pattern[str]]:
    grammar = json.loads(TEXTMATE.read_text("utf-8"))
    return [
        re.compile(p["match"])
        for p in grammar["patterns"]
        if "match" in p and p.get("name", "").startswith(("keyword.", "storage.type."))
    ]


def test_every_keyword_of_the_grammar_is_highlighted() -> None:
    patterns = keyword_patterns()
    missing = [
        kw
        for kw in keywords()
        if not any((m := p.search(kw)) is not None and m.group() == kw for p in patterns)
    ]
    assert keywords(), "no keywords found in pricing.lark"
    assert not missing, (
        f"keywords missing from {TEXTMATE.name}: {missing}; "
        "run `python editors/vscode/scripts/grammar.py`"
    )


def test_names_are_not_highlighted_as_keywords() -> None:
    # `planet` and `per_seat` are names; a keyword pattern must match whole words only.
    for p in keyword_patterns():
        assert p.search("planet per_seat") is None, p.pattern


def test_the_extension_declares_the_language() -> None:
    package = json.loads((TEXTMATE.parent.parent / "package.json").read_text("utf-8"))
    (language,) = package["contributes"]["languages"]
    assert (language["id"], language["extensions"]) == ("pricing", [".pricing"])
    config = json.loads((TEXTMATE.parent.parent / "language-configuration.json").read_text())
    assert config["comments"] == {"lineComment": "#"}
