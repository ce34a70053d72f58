"""Write syntaxes/pricing.tmLanguage.json, with every keyword of pricing.lark.

Run from the repository root after changing the grammar:

    python editors/vscode/scripts/grammar.py

Keywords are the grammar's alphabetic string literals ("plan", "when"...);
each is highlighted as a declaration, a control word or an operator word,
and any keyword not listed below is highlighted as a plain keyword, so a
new construct is never left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
LARK = HERE.parent.parent / "pricing_dsl" / "pricing.lark"

DECLARATIONS = {"plan", "contract", "addon", "meter", "test", "currency", "rounding"}
OPERATORS = {"and", "or", "not"}
CONTROL = {"extends", "when", "from", "expect", "usage", "period", "error"}


def keywords(grammar: str) -> list[str]:
    return sorted(set(re.findall(r'"([A-Za-z_]+)"', grammar)))


def alternation(words: list[str]) -> str:
    return r"\b(?:" + "|".join(sorted(words, key=lambda w: (-len(w), w))) + r")\b"


def build() -> dict[str, object]:
    words = keywords(LARK.read_text("utf-8"))
    decl = [w for w in words if w in DECLARATIONS]
    ops = [w for w in words if w in OPERATORS]
    control = [w for w in words if w in CONTROL]
    other = [w for w in words if w not in DECLARATIONS | OPERATORS | CONTROL]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "Pricing",
        "scopeName": "source.pricing",
        "fileTypes": ["pricing"],
        "patterns": [
            {"name": "comment.line.number-sign.pricing", "match": "#.*$"},
            {
                "name": "string.quoted.double.pricing",
                "begin": '"',
                "end": '"|$',
                "patterns": [{"name": "constant.character.escape.pricing", "match": r"\\."}],
            },
            {"name": "constant.numeric.date.pricing", "match": r"\b\d{4}-\d{2}(?:-\d{2})?\b"},
            {
                "name": "constant.numeric.percent.pricing",
                "match": r"\b\d(?:_?\d)*(?:\.\d(?:_?\d)*)?%",
            },
            {"name": "constant.numeric.pricing", "match": r"\b\d(?:_?\d)*(?:\.\d(?:_?\d)*)?\b"},
            {"name": "storage.type.pricing", "match": alternation(decl)},
            {"name": "keyword.control.pricing", "match": alternation(control)},
            {"name": "keyword.operator.word.pricing", "match": alternation(ops)},
            {"name": "keyword.other.pricing", "match": alternation(other)},
            {"name": "keyword.operator.comparison.pricing", "match": r"[<>]=?|[=!]="},
            {"name": "keyword.operator.arithmetic.pricing", "match": r"[-+*/]"},
            {"name": "punctuation.section.block.pricing", "match": r"[{}]"},
            {"name": "variable.other.pricing", "match": r"\b[A-Za-z_][A-Za-z0-9_]*\b"},
        ],
    }


if __name__ == "__main__":
    out = HERE / "syntaxes" / "pricing.tmLanguage.json"
    out.write_text(json.dumps(build(), indent=2) + "\n", "utf-8")
    print(f"wrote {out}")
