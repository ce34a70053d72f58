"""`pricing fmt`: one canonical layout for ruleset files.

The language is line-oriented, so formatting is too: each line keeps its
tokens and its comment exactly, and only the white space changes.  That
makes the formatter unable to change what a file means -- it never joins,
splits, reorders or respells a token -- and the tests check it anyway.

The layout: two spaces of indent per open brace; one space between tokens;
no space inside parentheses, before commas or around `.`; runs of catalog
lines (`addon`, `meter`) and tier rows aligned in columns; trailing comments
of consecutive lines aligned; at most one blank line in a row, none just
inside braces; one newline at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import PricingError
from ._parser import parse, split_comment

__all__ = ["format_text"]

_TOKEN = re.compile(
    r"""
    "(?:[^"\\\n]|\\.)*"                          # string
  | \d{4}-\d{2}(?:-\d{2})?(?:\.\.\d{4}-\d{2}-\d{2})?  # date or period
  | \d[\d_]*(?:\.\d[\d_]*)?%?                     # number or percentage
  | [A-Za-z_]\w*                                  # word
  | >=|<=|==|!=                                   # comparisons
  | \S                                            # any other single character
    """,
    re.VERBOSE,
)


@dataclass(slots=True)
class _Line:
    depth: int
    tokens: list[str]
    comment: str | None  # including the leading '#'
    blank: bool = False

    @property
    def head(self) -> str:
        return self.tokens[0] if self.tokens else ""


def _join(tokens: list[str], binary_minus: bool) -> str:
    out = ""
    prev = ""
    for i, tok in enumerate(tokens):
        if i == 0:
            out = tok
        elif (
            tok in (",", ")", ".")
            or prev in ("(", ".")
            or (prev == "-" and not binary_minus)
            or (tok == "}" and prev == "{")
        ):
            out += tok
        else:
            out += " " + tok
        prev = tok
    return out


def _code(line: _Line) -> str:
    return _join(line.tokens, binary_minus=line.head == "when")


def _align_runs(lines: list[_Line], rendered: list[str]) -> None:
    """Align columns in runs of consecutive similar lines."""
    i = 0
    while i < len(lines):
        ln = lines[i]
        kind = _column_kind(ln)
        if kind is None:
            i += 1
            continue
        j = i
        while j < len(lines) and _column_kind(lines[j]) == kind and lines[j].depth == ln.depth:
            j += 1
        if j - i > 1:
            _align(lines[i:j], rendered, i, kind)
        i = j


def _column_kind(ln: _Line) -> str | None:
    t = ln.tokens
    if not t:
        return None
    if t[0] == "addon" and len(t) >= 5 and t[-2] == "per":
        return "addon-named" if t[2].startswith('"') else "addon"
    if t[0] == "meter" and len(t) >= 4 and t[-2] == "unit":
        return "meter-named" if t[2].startswith('"') else "meter"
    if (t[0] == "up" and "at" in t) or (t[0] == "above" and "at" in t):
        return "tier"
    return None


def _align(run: list[_Line], rendered: list[str], start: int, kind: str) -> None:
    rows: list[list[str]] = []
    right: set[int] = set()
    for ln in run:
        t = ln.tokens
        if kind == "tier":
            at = t.index("at")
            rows.append([_join(t[:at], False), _join(t[at:], False)])
        elif kind in ("addon-named", "meter-named"):
            if kind == "addon-named":
                rows.append([t[0], t[1], t[2], _join(t[3:-2], False), _join(t[-2:], False)])
                right = {3}
            else:
                rows.append([t[0], t[1], t[2], _join(t[3:], False)])
        elif kind == "addon":
            rows.append([t[0], t[1], _join(t[2:-2], False), _join(t[-2:], False)])
            right = {2}
        else:
            rows.append([t[0], t[1], _join(t[2:], False)])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    indent = "  " * run[0].depth
    for n, row in enumerate(rows):
        cells = []
        for k, cell in enumerate(row):
            last = k == len(row) - 1
            if last:
                cells.append(cell)
            elif k in right:
                cells.append(cell.rjust(widths[k]))
            else:
                cells.append(cell.ljust(widths[k]))
        rendered[start + n] = indent + " ".join(cells)


def _align_comments(lines: list[_Line], rendered: list[str]) -> list[str]:
    out = list(rendered)
    i = 0
    while i < len(lines):
        if not (lines[i].tokens and lines[i].comment):
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].tokens and lines[j].comment:
            j += 1
        col = max(len(out[k]) for k in range(i, j)) + 2
        for k in range(i, j):
            out[k] = out[k].ljust(col) + lines[k].comment  # type: ignore[operator]
        i = j
    return out


def format_text(text: str, path: str = "<string>") -> str:
    """The canonical layout of a ruleset file.  Raises PricingError if it does not parse."""
    _tree, errors = parse(text, path)
    if errors:
        raise PricingError(errors)
    lines: list[_Line] = []
    depth = 0
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        # The parser's own reading of strings and comments, so a `#` or `\"`
        # inside a name is never taken for the start of a comment.
        code, comment = split_comment(raw)
        if comment is not None:
            comment = comment.rstrip()
        tokens = _TOKEN.findall(code)
        if not tokens and comment is None:
            lines.append(_Line(depth, [], None, blank=True))
            continue
        opens = tokens.count("{")
        closes = tokens.count("}")
        line_depth = depth - 1 if tokens and tokens[0] == "}" else depth
        lines.append(_Line(max(line_depth, 0), tokens, comment))
        depth += opens - closes
    # Blank lines: none at the start or end, none just inside braces, one at most in a row.
    kept: list[_Line] = []
    for ln in lines:
        if ln.blank:
            if not kept or kept[-1].blank or (kept[-1].tokens and kept[-1].tokens[-1] == "{"):
                continue
        elif ln.head == "}" and kept and kept[-1].blank:
            kept.pop()
        kept.append(ln)
    while kept and kept[-1].blank:
        kept.pop()
    rendered = ["" if ln.blank else "  " * ln.depth + _code(ln) for ln in kept]
    _align_runs(kept, rendered)
    for k, ln in enumerate(kept):
        if not ln.tokens and ln.comment is not None:
            rendered[k] = "  " * ln.depth + ln.comment
    rendered = _align_comments(kept, rendered)
    return (
        "\n".join(r.rstrip() if not kept[k].comment else r for k, r in enumerate(rendered)) + "\n"
    )
