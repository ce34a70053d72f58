"""Incremental parsing for the language server: re-parse only the declarations that changed.

A file is cut into chunks at the starts of lines that open a top-level
block (`plan`, `contract`, `policy`, `test` …), found with the parser's
scanner for strings, comments and braces (:func:`._parser._lexemes`, built
from the grammar's own patterns), so a brace inside a string or a comment
never counts.  Each chunk is parsed on
its own by the same parser, :func:`._parser.parse`, padded so that its line
numbers are the file's; its result is kept, keyed by its text, and reused
while the text is unchanged, its spans moved when lines above it were added
or removed.

The result is the one :func:`._parser.parse` gives for the whole file: the
same tree and the same diagnostics at the same positions.  Why that holds:

- Every chunk starts at the start of a line, outside any block, and ends
  with a line break.  A statement at the top level is one line, so at such
  a point the parser of the whole file has just read a separator after a
  declaration, and no token spans the cut (strings and comments end with
  their line).  A chunk is parsed after one stand-in declaration on line 1
  (then dropped), so it starts in that same parser state.
- If every chunk parses, the file parses, into their declarations in order.
- A chunk with syntax errors is parsed again with a stray `}` after it: the
  parser's recovery reports that `}` (E104) only if it left the parser at
  the top level, where the next chunk starts.  If it does not -- recovery
  gave up inside the chunk, or the nesting it left is not the text's -- the
  whole file is parsed instead.  Errors then add up in file order, up to
  the parser's limit per file, as in one pass.

The first text a parser sees is parsed whole, which is faster than chunk by
chunk; if it parses, its declarations are kept as the chunks' results (a
file that parses is the sequence of its chunks' declarations).

Whatever is unsure falls back to parsing the whole file: braces that do not
balance (a `{` being typed, a `}` deleted), numbers with exponents (E105:
the parser reports those of the whole file before any other error), syntax
errors in the first declaration together with errors elsewhere.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right
from functools import cache
from typing import Any

from . import _ast as A
from ._errors import Diagnostic, Span
from ._parser import _MAX_SYNTAX_ERRORS, _lark, parse

__all__ = ["IncrementalParser", "chunks"]

# Line 1 of every padded chunk after the first: a declaration that always
# parses, so the chunk starts where the whole file's parser would be.
_STAND_IN = "currency X"
# After a chunk with errors: a `}` that only the top level rejects (E104).
_PROBE = "}\n"


@cache
def _scanner() -> re.Pattern[str]:
    """Strings, comments and braces, as :func:`._parser._lexemes` reads them.

    The same patterns (the grammar's STRING and COMMENT terminals), without
    its exponents, which hold no brace, quote or `#`, so they never hide
    one; and with a look-ahead that lets the regex engine skip the text in
    between at once, five times faster on a long file.
    """
    lark = _lark()
    string = lark.get_terminal("STRING").pattern.to_regexp()
    comment = lark.get_terminal("COMMENT").pattern.to_regexp()
    return re.compile(
        rf'(?=[{{}}"#])(?:(?P<string>{string})|(?P<comment>{comment})|(?P<brace>[{{}}]))'
    )


def chunks(source: str) -> list[tuple[int, str]] | None:
    """The file's chunks as (first line, text), or None where the braces do not balance.

    ``source`` ends with a line break.  A chunk starts at the line that
    opens a top-level block, the first chunk at the start of the file; it
    runs to the second such line, so that every later chunk follows at least
    one declaration, as the stand-in before it says.
    """
    cuts = [0]
    depth = 0
    last_brace = -1  # offset of the last brace seen, to know a line's start depth
    blocks = 0
    for m in _scanner().finditer(source):
        if m.lastgroup != "brace":
            continue
        at = m.start()
        if m.group() == "{":
            if depth == 0:
                line_start = source.rfind("\n", 0, at) + 1
                # The line must start outside any block: no brace before it on the line.
                if last_brace < line_start and line_start > cuts[-1] and blocks:
                    cuts.append(line_start)
                blocks += 1
            depth += 1
        else:
            depth -= 1
            if depth < 0:
                return None
        last_brace = at
    if depth != 0:
        return None
    out = []
    line = 1
    for start, end in zip(cuts, [*cuts[1:], len(source)], strict=True):
        text = source[start:end]
        out.append((line, text))
        line += text.count("\n")
    return out


def _shift_span(span: Span, by: int) -> Span:
    if span.line <= 0:
        return span
    return Span(span.path, span.line + by, span.column, span.end_line + by, span.end_column)


def _shift(value: Any, by: int) -> Any:
    """A tree (node, tuple of nodes, or plain value) with every span moved ``by`` lines."""
    if isinstance(value, Span):
        return _shift_span(value, by)
    if isinstance(value, tuple):
        return tuple(_shift(v, by) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _shift(getattr(value, f.name), by) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class _Parsed:
    """One chunk's parse: where it was parsed, its declarations, or its errors."""

    line: int
    decls: tuple[Any, ...]
    errors: tuple[Diagnostic, ...]
    settled: bool  # with errors: recovery left the parser at the top level


def _key(index: int, line: int, chunk: str) -> str:
    """A chunk's key: its text, and for the first chunk (parsed without a stand-in) its place."""
    return f"{line if index == 0 else 0}\0{chunk}"


def _seed(cut: list[tuple[int, str]], tree: A.File) -> dict[str, _Parsed]:
    """The chunks' results, from the parse of the whole file that they make up."""
    starts = [line for line, _ in cut]
    decls: list[list[Any]] = [[] for _ in cut]
    for decl in tree.decls:
        decls[bisect_right(starts, decl.span.line) - 1].append(decl)
    return {
        _key(i, line, chunk): _Parsed(line, tuple(found), (), True)
        for i, ((line, chunk), found) in enumerate(zip(cut, decls, strict=True))
    }


class IncrementalParser:
    """Parses successive versions of one file, reusing the chunks that did not change.

    Call it as :func:`._parser.parse` is called; the path must stay the same.
    """

    def __init__(self) -> None:
        self._kept: dict[str, _Parsed] = {}
        # What the last call did, for tests and the benchmark.
        self.reused = 0
        self.parsed = 0
        self.whole = False
        self._warm = False

    def __call__(self, text: str, path: str) -> tuple[A.File | None, list[Diagnostic]]:
        source = text if text.endswith("\n") else text + "\n"
        cut = chunks(source)
        self.reused = self.parsed = 0
        self.whole = cut is None
        if cut is None:
            # The chunks kept stay: the braces usually balance again a keystroke later.
            return parse(text, path)
        if not self._warm:
            # The first text: one pass over the whole file is faster than one
            # per chunk, and its declarations are the chunks' (see the module
            # docstring), so they are kept as the chunks' results.
            self._warm = self.whole = True
            whole = parse(text, path)
            if whole[0] is not None:
                self._kept = _seed(cut, whole[0])
            return whole
        kept: dict[str, _Parsed] = {}
        results: list[_Parsed] = []
        for i, (line, chunk) in enumerate(cut):
            key = _key(i, line, chunk)
            found = self._kept.get(key) or kept.get(key)
            if found is not None and (found.line == line or not found.errors):
                self.reused += 1
            else:
                found = self._parse_chunk(chunk, line, path, first=i == 0)
                self.parsed += 1
            kept[key] = found
            results.append(found)
        self._kept = kept
        errors: list[Diagnostic] = []
        failed = [r for r in results if r.errors]
        if failed and (
            not all(r.settled for r in failed)
            or (results[0].errors and len(failed) > 1)
            # The parser reports the exponents of the whole file before its other errors.
            or any(d.code == "E105" for r in failed for d in r.errors)
        ):
            # Recovery may not carry over from one chunk to the next as it
            # does in one pass: parse the whole file.
            self.whole = True
            return parse(text, path)
        for r in results:
            errors.extend(r.errors)
        if errors:
            return None, errors[:_MAX_SYNTAX_ERRORS]
        out: list[Any] = []
        for (line, _chunk), r in zip(cut, results, strict=True):
            out.extend(r.decls if r.line == line else _shift(r.decls, line - r.line))
        return A.File(path, tuple(out)), []

    @staticmethod
    def _parse_chunk(chunk: str, line: int, path: str, first: bool) -> _Parsed:
        pad = "" if first else _STAND_IN + "\n" * (line - 1)
        tree, errors = parse(pad + chunk, path)
        if tree is not None:
            return _Parsed(line, tree.decls if first else tree.decls[1:], (), True)
        # Errors: parse again with a stray `}` on the line after the chunk,
        # to learn whether recovery ends the chunk at the top level.
        probe_line = line + chunk.count("\n")
        _, probed = parse(pad + chunk + _PROBE, path)
        last = probed[-1] if probed else None
        settled = (
            last is not None
            and last.code == "E104"
            and (last.line, last.column) == (probe_line, 1)
            and all(d.line < probe_line for d in probed[:-1])
            and probed[:-1] == errors
        )
        return _Parsed(line, (), tuple(errors), settled)
