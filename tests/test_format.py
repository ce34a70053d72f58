"""`pricing fmt`: canonical, idempotent, comment-preserving, meaning-preserving."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pricing_dsl
from pricing_dsl._format import format_text
from pricing_dsl._parser import parse

from .conftest import ROOT, RULESETS
from .strategies import model_ruleset

SHIPPED = sorted(RULESETS.rglob("*.pricing")) + sorted(
    p for p in (ROOT / "tests").rglob("*.pricing") if "invalid" not in p.parts
)


def _meaning(text: str, name: str) -> object:
    """The AST with positions blanked: what a file says, not where it says it."""
    tree, errors = parse(text, name)
    assert not errors
    return re.sub(r"Span\([^)]*\)", "", repr(tree))


def test_files_were_found() -> None:
    assert len(SHIPPED) >= 5


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files_are_formatted_and_keep_their_meaning(path: Path) -> None:
    text = path.read_text()
    once = format_text(text, str(path))
    assert format_text(once, str(path)) == once
    assert _meaning(once, "x") == _meaning(text, "x")
    comments = [ln.split("#", 1)[1] for ln in text.splitlines() if "#" in ln and '"' not in ln]
    for comment in comments:
        assert comment.rstrip() in once


def test_layout_rules() -> None:
    messy = (
        "\n\ncurrency   USD\n"
        'addon a "A"  1.00 per month   # first\n'
        'addon bb "Bee" 10.00 per month\n\n\n\n'
        'plan p "P"   {\n\n'
        "mau included 10 overage graduated {\n"
        "up to 5 at 0.1 per user\n"
        "  above at 0.2 per user\n"
        "}\n"
        "  when ( mau+1 ) > 5 and period.start < 2026-10-01 { base 1 per month }\n"
        "    addons a ,bb\n\n"
        "}\n\n"
    )
    assert format_text(messy) == (
        "currency USD\n"
        'addon a  "A"    1.00 per month  # first\n'
        'addon bb "Bee" 10.00 per month\n'
        "\n"
        'plan p "P" {\n'
        "  mau included 10 overage graduated {\n"
        "    up to 5 at 0.1 per user\n"
        "    above   at 0.2 per user\n"
        "  }\n"
        "  when (mau + 1) > 5 and period.start < 2026-10-01 { base 1 per month }\n"
        "  addons a, bb\n"
        "}\n"
    )


def test_a_file_that_does_not_parse_is_refused() -> None:
    with pytest.raises(pricing_dsl.PricingError) as info:
        format_text("plan p {\n", "bad.pricing")
    assert info.value.codes == ["E103"]


def test_a_hash_or_escaped_quote_inside_a_name_is_not_a_comment() -> None:
    """Issue 17: the formatter and the parser each had their own scanner for
    comments, and they disagreed on `\\"` inside a string.  Both now use one."""
    text = (
        'currency USD\nplan p   "12\\" screen # big" {   # the plan\n'
        "  mau included 1000 # users\n}\n"
    )
    assert format_text(text) == (
        'currency USD\nplan p "12\\" screen # big" {  # the plan\n'
        "  mau included 1000           # users\n}\n"
    )


LINES_WITH_STRINGS_AND_COMMENTS = [
    'plan p "12\\" screen # big" {  # note',
    'addon x "a#b" 5.00 per month',
    'meter m "x\\\\" unit y # c "q"',
    '  # only a comment "with a quote',
    'plan q "\\"#\\"" {',
    "  mau included 1000",
]


@pytest.mark.parametrize("line", LINES_WITH_STRINGS_AND_COMMENTS)
def test_comments_are_found_where_the_lexer_finds_them(line: str) -> None:
    """The shared scanner splits off the same comment as the grammar's lexer."""
    from pricing_dsl._parser import _lark, split_comment

    tokens = list(_lark().lex(line, dont_ignore=True))
    comment = next((t for t in tokens if t.type == "COMMENT"), None)
    if comment is None:
        assert split_comment(line) == (line, None)
    else:
        start = comment.start_pos or 0
        assert split_comment(line) == (line[:start], line[start:])


# Random layouts of a valid ruleset: white space, blank lines and comments
# shuffled in.  Formatting must be idempotent, keep every comment and never
# change what the file means -- or what it rates.
BASE = (RULESETS / "catalog.pricing").read_text()


@st.composite
def relayout(draw: st.DrawFn) -> str:
    out = []
    for line in BASE.splitlines():
        code, sep, comment = line.partition("#")
        tokens = code.split()
        if not tokens:
            out.append(draw(st.sampled_from(["", "   ", "\t"])) + sep + comment)
            continue
        spaces = [draw(st.sampled_from([" ", "  ", "\t", "   "])) for _ in tokens]
        indent = draw(st.sampled_from(["", " ", "    ", "\t"]))
        rebuilt = indent + "".join(t + s for t, s in zip(tokens, spaces, strict=True)).rstrip()
        if sep:
            rebuilt += draw(st.sampled_from([" ", "      "])) + sep + comment
        elif draw(st.integers(0, 9)) == 0:
            rebuilt += "  # note " + str(draw(st.integers(0, 99)))
        out.append(rebuilt)
        if draw(st.integers(0, 6)) == 0:
            out.append("")
    return "\n".join(out) + draw(st.sampled_from(["", "\n", "\n\n"]))


@settings(max_examples=60, deadline=None)
@given(text=relayout())
def test_fmt_is_idempotent_and_keeps_meaning(text: str) -> None:
    once = format_text(text)
    assert format_text(once) == once
    assert _meaning(once, "x") == _meaning(text, "x")
    for line in text.splitlines():
        if "#" in line:
            assert line.split("#", 1)[1].rstrip() in once
    before = pricing_dsl.loads(text)
    after = pricing_dsl.loads(once)
    usage = {"period": "2026-08", "mau": 60_001, "video_minutes": 100_001, "sms": 7}
    for cid in before.contract_ids:
        assert before.rate(cid, dict(usage)).amounts == after.rate(cid, dict(usage)).amounts


@st.composite
def models_relaid(draw: st.DrawFn) -> str:
    """A generated ruleset with the pricing models' syntax, its spacing and indentation shuffled."""
    text, _points = draw(model_ruleset())
    out = []
    for line in text.splitlines():
        tokens = line.split()
        spaces = [draw(st.sampled_from([" ", "  ", "\t"])) for _ in tokens]
        indent = draw(st.sampled_from(["", " ", "      ", "\t"]))
        out.append(indent + "".join(t + s for t, s in zip(tokens, spaces, strict=True)).rstrip())
    return "\n".join(out) + "\n"


@settings(max_examples=40, deadline=None)
@given(text=models_relaid())
def test_fmt_is_idempotent_on_the_pricing_models(text: str) -> None:
    # Blocks (`per 0.5 minutes rounded down`), tier fees (`plus 50.00`),
    # line minimums and caps on groups, `for N months` and `until DATE`,
    # `per quarter` and `per year`: formatting keeps each and is idempotent.
    once = format_text(text)
    assert format_text(once) == once
    assert _meaning(once, "x") == _meaning(text, "x")
    before = pricing_dsl.loads(text)
    after = pricing_dsl.loads(once)
    usage = {"period": "2026-08", "mau": 1_001, "video_minutes": "100.5", "sms": 101}
    try:
        want = before.rate("c", dict(usage)).amounts
    except pricing_dsl.PricingError as exc:
        with pytest.raises(pricing_dsl.PricingError) as info:
            after.rate("c", dict(usage))
        assert info.value.codes == exc.codes
    else:
        assert after.rate("c", dict(usage)).amounts == want


def test_fmt_check_and_diff_through_the_installed_command(pricing_cmd: str, tmp_path: Path) -> None:
    path = tmp_path / "messy.pricing"
    path.write_text("currency USD\nplan p {\nbase 1 per month\n  mau included 1\n}\n")
    check = subprocess.run(
        [pricing_cmd, "fmt", "--check", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 1 and "would reformat" in check.stdout
    diff = subprocess.run([pricing_cmd, "fmt", "--diff", str(path)], capture_output=True, text=True)
    assert diff.returncode == 1 and "+  base 1 per month" in diff.stdout
    write = subprocess.run([pricing_cmd, "fmt", str(path)], capture_output=True, text=True)
    assert write.returncode == 0
    assert path.read_text() == "currency USD\nplan p {\n  base 1 per month\n  mau included 1\n}\n"
    again = subprocess.run(
        [pricing_cmd, "fmt", "--check", str(path)], capture_output=True, text=True
    )
    assert again.returncode == 0
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
