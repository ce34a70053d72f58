"""Incremental parsing: after any edit, the same tree and diagnostics as parsing the whole file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_dsl._incremental import IncrementalParser, _key, _scanner, _seed, chunks
from pricing_dsl._parser import _lexemes, parse

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "data" / "invalid"
FILES = sorted([*(ROOT / "rulesets").rglob("*.pricing"), *INVALID.glob("*.pricing")])
TEXTS = {p.relative_to(ROOT).as_posix(): p.read_text("utf-8") for p in FILES}
# Every shipped ruleset in one file: many declarations, so edits land far from the top.
BIG = "".join(t for name, t in sorted(TEXTS.items()) if name.startswith("rulesets/"))

LINES = st.sampled_from(
    ["}", "{", "plan p {", 'contract c "C" extends p {', "  base 5.00 per month", 'test "t" {',
     "  mau included 1_000 overage 0.12 per user", "  when mau > 5 {", "# a comment { brace",
     '  addon x "a { brace" 5.00 per month', "currency USD", "meter m unit x", "",
     "  usage { mau 1 }", "  expect total 5.00", "pln p {", "  base 5 per",
     "  discount 10 on voice", "  mau 1e5 per user", '  "unclosed {', "\u201cquoted\u201d",
     "  cap mau 1,000 per month", 'policy "p" {', "  }"]
)  # fmt: skip


def same_as_whole(parser: IncrementalParser, text: str, path: str = "f.pricing") -> None:
    assert parser(text, path) == parse(text, path)


@st.composite
def edits(draw: st.DrawFn, text: str) -> str:
    """The text after a few edits to random lines: replaced, inserted, deleted or retyped."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "char", "uncut"]))
        if kind == "insert" or at == len(lines):
            lines.insert(at, draw(LINES))
        elif kind == "replace":
            lines[at] = draw(LINES)
        elif kind == "delete":
            del lines[at]
        elif kind == "char":
            line = lines[at]
            col = draw(st.integers(0, len(line)))
            typed = draw(st.sampled_from(["", "x", "{", "}", "#", '"', " ", "9", "%", "\n"]))
            lines[at] = line[:col] + typed + line[col + 1 :]
        else:
            lines[at] = lines[at].replace("}", "")  # a block that runs into the next
    return "\n".join(lines)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_edits_of_the_shipped_and_invalid_files_parse_as_the_whole_file(
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    parser = IncrementalParser()
    same_as_whole(parser, text, name)
    for _ in range(data.draw(st.integers(1, 3))):  # successive versions reuse the last one's chunks
        text = data.draw(edits(text))
        same_as_whole(parser, text, name)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_edits_of_a_long_file_parse_as_the_whole_file(data: st.DataObject) -> None:
    parser = IncrementalParser()
    same_as_whole(parser, BIG)
    text = BIG
    for _ in range(data.draw(st.integers(1, 3))):
        text = data.draw(edits(text))
        same_as_whole(parser, text)


def test_a_keystroke_reparses_one_chunk() -> None:
    parser = IncrementalParser()
    parser(BIG, "f.pricing")
    changed = BIG.replace("base 99.00", "base 98.00", 1)
    assert changed != BIG
    assert parser(changed, "f.pricing") == parse(changed, "f.pricing")
    assert (parser.parsed, parser.whole) == (1, False)
    assert parser.reused == len(chunks(BIG) or []) - 1


def test_lines_added_above_move_the_reused_chunks() -> None:
    parser = IncrementalParser()
    parser(BIG, "f.pricing")
    changed = "# a new first line\n\n" + BIG
    # The first chunk changed; every other is reused, two lines further down.
    assert parser(changed, "f.pricing") == parse(changed, "f.pricing")
    assert parser.parsed == 1 and parser.reused > 5


TWO = "plan a {\n  base 5.00 per month\n}\n\nplan b {\n  base 6.00 per month\n}\n"


@pytest.mark.parametrize(
    "text",
    [
        TWO.replace("}\n\n", "\n\n", 1),  # a deleted `}`: plan b is inside plan a
        TWO.replace("plan b {", "plan b {{"),  # an added `{`
        TWO.replace("plan b {", "plan b"),  # a block that lost its `{`
        TWO.replace("}\n\n", "}}\n\n", 1),  # one `}` too many
        TWO.replace("\n\nplan b", "\n}\nplan b"),
        TWO.replace("plan b {", "plan b { }"),
        TWO.replace("base 5.00 per month", 'addon x "a { b" 5.00 per month'),  # a brace in a string
        TWO.replace("base 5.00 per month", "base 5.00 per month # {"),  # in a comment
        TWO.replace("base 5.00 per month", 'base 5.00 per month # "{'),
        TWO.replace("base 5.00 per month", '"{ unclosed'),
        TWO.replace("base 5.00 per month", "bse 5.00 per month"),  # errors in two chunks
        TWO.replace("base", "bse"),
        TWO.replace("plan a {", "pln a {").replace("plan b {", "pln b {"),
        TWO.replace("plan a", "currency\nplan a"),  # errors in the first chunk and later
        TWO.replace("plan a", "currency\nplan a").replace("base 6", "base 6 6"),
        TWO.replace("base 6.00", "base 6e3"),  # an exponent (E105)
        TWO.replace("6.00 per", "6.00 pr") + "plan c {\n  base 7e3 per month\n}\n",
        TWO.replace("base 6.00 per month", "base 6.00 per month # 6e3"),  # not a number
        TWO.replace("base 6.00 per month", 'addon x "6e3" 6.00 per month'),
        TWO + "plan c {\n" * 25,  # more errors than the parser reports
        TWO.replace("  base 5.00 per month\n", "  x\n" * 25),
        TWO.replace("plan a {", 'test "t" {\n  usage { mau 1 }\n}\nplan a {'),
        TWO.replace("\n", "\r\n"),
        TWO.rstrip("\n"),
        "",
        "\n\n",
        "}",
    ],
)
def test_edits_that_merge_or_split_declarations(text: str) -> None:
    parser = IncrementalParser()
    parser(TWO, "f.pricing")  # the chunks of the file before the edit are kept
    same_as_whole(parser, text)
    same_as_whole(parser, TWO)  # and back


def test_unbalanced_braces_parse_the_whole_file() -> None:
    parser = IncrementalParser()
    parser(TWO, "f.pricing")
    parser(TWO.replace("plan b {", "plan b {{"), "f.pricing")
    assert parser.whole


def test_braces_in_strings_and_comments_do_not_cut() -> None:
    text = '# a\nplan a {\n  addon x "}" 5.00 per month # }\n}\nplan b { # {\n}\n'
    assert [line for line, _ in chunks(text) or []] == [1, 5]


def braces(text: str, scanner: object) -> list[tuple[int, str]]:
    return [
        (m.start(), m.group())
        for m in scanner.finditer(text)  # type: ignore[attr-defined]
        if m.lastgroup in ("brace", "string", "comment")
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(['"', "#", "{", "}", "\\", "\n", "a", " ", "1e5", "\u201c"])).map(
        "".join
    )
)
def test_the_fast_scanner_reads_strings_comments_and_braces_as_the_parser(text: str) -> None:
    assert braces(text, _scanner()) == braces(text, _lexemes())


def test_the_fast_scanner_on_the_shipped_and_invalid_files() -> None:
    for text in TEXTS.values():
        assert braces(text, _scanner()) == braces(text, _lexemes())


@pytest.mark.parametrize("name", ["BIG", *sorted(n for n in TEXTS if n.startswith("rulesets/"))])
def test_the_first_parse_keeps_what_parsing_each_chunk_gives(name: str) -> None:
    """The first text is parsed whole, and its declarations kept as the chunks' results."""
    text = BIG if name == "BIG" else TEXTS[name]
    source = text if text.endswith("\n") else text + "\n"
    cut = chunks(source)
    tree, _ = parse(text, name)
    assert cut is not None and tree is not None
    each = {
        _key(i, line, chunk): IncrementalParser._parse_chunk(chunk, line, name, first=i == 0)
        for i, (line, chunk) in enumerate(cut)
    }
    assert _seed(cut, tree) == each
    assert name != "BIG" or len(cut) > 20
