"""The one exception root, and the diagnostics it carries.

Every problem a user can cause -- a slip in a ruleset, a bad usage file, a
contract that does not exist -- becomes a :class:`Diagnostic` with a stable
code, a location and plain words.  Several diagnostics travel together in one
:class:`PricingError`, so ``pricing check`` can report every independent error
of a run at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Diagnostic", "PricingError", "Span"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based line and column, end column exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(path: str, line: int, column: int, width: int = 1) -> Span:
        return Span(path, line, column, line, column + max(width, 1))

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: what is wrong, where, and (where it helps) how to fix it.

    ``code`` is stable across releases (``E…`` for errors, ``W…`` for
    warnings) and documented in ``docs/diagnostics.md``.  ``path`` is a file
    name; ``line`` and ``column`` are 1-based, or 0 when the finding is about a
    whole file or a key rather than a position in text (usage files name the
    key in ``key``).
    """

    code: str
    message: str
    path: str = ""
    line: int = 0
    column: int = 0
    end_line: int = 0
    end_column: int = 0
    hint: str | None = None
    key: str | None = None
    severity: str = "error"
    source_line: str | None = None

    @staticmethod
    def at(
        code: str,
        message: str,
        span: Span | None,
        *,
        hint: str | None = None,
        severity: str = "error",
        source_line: str | None = None,
    ) -> Diagnostic:
        if span is None:
            return Diagnostic(code, message, hint=hint, severity=severity)
        return Diagnostic(
            code,
            message,
            span.path,
            span.line,
            span.column,
            span.end_line,
            span.end_column,
            hint=hint,
            severity=severity,
            source_line=source_line,
        )

    @property
    def location(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}"
        if self.key is not None:
            return f"{self.path}: {self.key}" if self.path else self.key
        return self.path

    def render(self) -> str:
        """Render as ``path:line:col: error: message`` plus the source line and a caret."""
        head = f"{self.location}: " if self.location else ""
        out = [f"{head}{self.severity}[{self.code}]: {self.message}"]
        if self.source_line is not None and self.line:
            text = self.source_line.rstrip("\n")
            out.append(f"  {text}")
            start = max(self.column - 1, 0)
            if self.end_line == self.line and self.end_column > self.column:
                width = self.end_column - self.column
            else:
                width = max(len(text) - start, 1)
            # Keep tabs under tabs so the caret lines up in a terminal.
            pad = "".join("\t" if ch == "\t" else " " for ch in text[:start])
            out.append(f"  {pad}{'^' * width}")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "key": self.key,
            "hint": self.hint,
        }


class PricingError(Exception):
    """The only exception pricing-dsl raises for bad input.

    ``diagnostics`` holds every finding; ``str(error)`` renders them all.
    """

    diagnostics: tuple[Diagnostic, ...]

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = (diagnostics,)
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @property
    def codes(self) -> Sequence[str]:
        return [d.code for d in self.diagnostics]


def attach_source(diags: Iterable[Diagnostic], sources: dict[str, str]) -> list[Diagnostic]:
    """Fill in ``source_line`` from the text of each file, for caret rendering."""
    out = []
    cache: dict[str, list[str]] = {}
    for d in diags:
        if d.source_line is None and d.line and d.path in sources:
            lines = cache.get(d.path)
            if lines is None:
                lines = cache[d.path] = sources[d.path].splitlines()
            if 0 < d.line <= len(lines):
                d = Diagnostic(
                    d.code,
                    d.message,
                    d.path,
                    d.line,
                    d.column,
                    d.end_line,
                    d.end_column,
                    hint=d.hint,
                    key=d.key,
                    severity=d.severity,
                    source_line=lines[d.line - 1],
                )
        out.append(d)
    return out
