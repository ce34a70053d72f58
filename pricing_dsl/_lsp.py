"""`pricing lsp`: the language server's answers, as plain functions of texts and positions.

Everything an editor asks -- the diagnostics of a workspace, hover text,
definitions, references, completions, quick fixes, test results -- is
worked out here from the package's own parser, checker, linter, formatter
and test runner, with no second implementation of the language.  The
functions take texts and 0-based positions and return plain data, so they
are tested without an editor; :mod:`._lsp_server` turns them into the
Language Server Protocol with pygls.

Positions here are 0-based lines and 0-based columns counted in characters
(code points), the way the parser counts them (minus one).  The protocol
layer converts them to the client's encoding (UTF-16 by default).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from . import _ast as A
from ._checker import CheckResult, possible_lines
from ._errors import Diagnostic, PricingError, Span
from ._incremental import IncrementalParser
from ._parser import split_comment
from ._ruleset import Ruleset, _no_gc_pauses, analyse
from ._terms import STANDARD, ResolvedContract

if TYPE_CHECKING:
    from ._plan import MeterCharge

__all__ = [
    "Analysis",
    "Completion",
    "Edit",
    "Lens",
    "Location",
    "Project",
    "Range",
    "code_lenses",
    "completions",
    "definition",
    "format_document",
    "hover",
    "quick_fixes",
    "references",
]


# ------------------------------------------------------------------ plain data


@dataclass(frozen=True, slots=True)
class Range:
    """0-based start and end (exclusive), lines and character columns."""

    start_line: int
    start_char: int
    end_line: int
    end_char: int

    @staticmethod
    def of_span(span: Span) -> Range:
        if span.line <= 0:
            return Range(0, 0, 0, 0)
        end_line = span.end_line if span.end_line >= span.line else span.line
        end = span.end_column if span.end_column > 0 else span.column + 1
        return Range(span.line - 1, max(span.column - 1, 0), end_line - 1, max(end - 1, 0))

    @staticmethod
    def of_diagnostic(d: Diagnostic) -> Range:
        if d.line <= 0:
            return Range(0, 0, 0, 0)
        end_line = d.end_line if d.end_line >= d.line else d.line
        end = d.end_column if d.end_column > 0 else d.column + 1
        if end_line == d.line and end <= d.column:
            end = d.column + 1
        return Range(d.line - 1, max(d.column - 1, 0), end_line - 1, max(end - 1, 0))


@dataclass(frozen=True, slots=True)
class Location:
    path: str
    range: Range


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ``range`` of the file at ``path`` with ``text``."""

    path: str
    range: Range
    text: str


@dataclass(frozen=True, slots=True)
class Fix:
    """A quick fix: a title and the edits that make it."""

    title: str
    edits: tuple[Edit, ...]
    diagnostic: Diagnostic


@dataclass(frozen=True, slots=True)
class Completion:
    label: str
    kind: str  # "keyword" | "contract" | "addon" | "meter" | "unit" | "line" | "usage"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Lens:
    """A test block's result, shown above its first line."""

    range: Range
    title: str
    passed: bool | None  # None: the test could not run
    details: str


# -------------------------------------------------------------- the workspace


@dataclass(frozen=True, slots=True)
class Analysis:
    """One checked state of a project: its texts, trees, check and findings."""

    texts: Mapping[str, str]
    trees: Mapping[str, A.File]  # files that parse now
    result: CheckResult
    diagnostics: Mapping[str, tuple[Diagnostic, ...]]  # every file's findings, by path
    ruleset: Ruleset | None  # None while the project has errors
    # Plans and contracts as last checked, kept while a file is half-typed and
    # does not parse: completion still knows a contract's lines and its peers.
    remembered: Mapping[str, ResolvedContract] = field(default_factory=dict)
    # False while the warnings of changed plans and contracts are still to come.
    complete: bool = True

    def tree(self, path: str) -> A.File | None:
        return self.trees.get(path)


class Project:
    """The ``.pricing`` files under one folder, checked together as `pricing check DIR` does.

    Open documents override the files on disk.  Each file's parse is kept
    while its text is unchanged, and a changed file re-parses only the
    declarations that changed (:mod:`._incremental`), so a keystroke
    re-parses one declaration and re-checks the namespace.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.disk: dict[str, str] = {}
        self.open: dict[str, str] = {}
        self._parsed: dict[str, tuple[str, A.File | None, list[Diagnostic]]] = {}
        self._parsers: dict[str, IncrementalParser] = {}
        self._lint = LintMemo()
        self._analysis: Analysis | None = None
        self._remembered: dict[str, ResolvedContract] = {}
        if root is not None:
            self.rescan()

    def rescan(self) -> None:
        """Read every ``.pricing`` file under the root again."""
        self.disk.clear()
        if self.root is not None and self.root.is_dir():
            for path in sorted(self.root.rglob("*.pricing")):
                self.reload(str(path))
        self._analysis = None

    def reload(self, path: str) -> None:
        """Read one file from disk again (created, changed or deleted)."""
        try:
            self.disk[path] = Path(path).read_text("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            # Unreadable or gone: `pricing check` would report it; an editor
            # cannot show a finding for a file it cannot open, so leave it out.
            self.disk.pop(path, None)
        self._analysis = None

    def contains(self, path: str) -> bool:
        if self.root is None:
            return path in self.open or path in self.disk
        try:
            Path(path).relative_to(self.root)
        except ValueError:
            return False
        return True

    def set_text(self, path: str, text: str) -> None:
        self.open[path] = text
        self._analysis = None

    def close(self, path: str) -> None:
        self.open.pop(path, None)
        if self.root is not None:
            self.reload(path)
        self._analysis = None

    def sources(self) -> list[tuple[str, str]]:
        texts = dict(self.disk)
        texts.update(self.open)
        # In path order, as `pricing check DIR` reads them.
        return sorted(texts.items())

    def _parse(self, text: str, path: str) -> tuple[A.File | None, list[Diagnostic]]:
        found = self._parsed.get(path)
        if found is not None and found[0] == text:
            return found[1], list(found[2])
        parser = self._parsers.get(path)
        if parser is None:
            parser = self._parsers[path] = IncrementalParser()
        tree, diags = parser(text, path)
        self._parsed[path] = (text, tree, list(diags))
        return tree, diags

    def analysis(self, lint: bool = True) -> Analysis:
        """The checked state of the project's current texts (kept until a text changes).

        With ``lint=False`` the linter is run again on a few of the plans
        and contracts that changed (:class:`LintMemo`), not on more: their
        warnings are left out, the answer's ``complete`` is False, and it is
        not kept.  The language server publishes that first, right after a
        keystroke, and the whole analysis once typing pauses for longer.
        """
        if self._analysis is None:
            self._lint.partial = not lint
            self._lint.linted = self._lint.pending = 0  # the linter runs only on a clean check
            try:
                an = analyse_sources(self.sources(), self._parse, self._lint)
            finally:
                self._lint.partial = False
            if self._lint.pending:
                return replace(an, complete=False)
            old = self._remembered
            self._remembered = {**old, **an.result.contracts} if an.trees else old
            if len(an.trees) == len(an.texts):
                self._remembered = dict(an.result.contracts)  # every file parsed: exact
            self._analysis = replace(an, remembered=MappingProxyType(dict(self._remembered)))
            live = {p for p, _ in self.sources()}
            for gone in set(self._parsed) - live:
                del self._parsed[gone]
            for gone in set(self._parsers) - live:
                del self._parsers[gone]
        return self._analysis


def analyse_sources(
    sources: Sequence[tuple[str, str]], parse_file: Any = None, lint_files: Any = None
) -> Analysis:
    """Check sources with the checker and linter `pricing check` uses; never raises."""
    texts = dict(sources)
    with _no_gc_pauses():
        try:
            files, result, _policy, diags = analyse(
                sources, warnings=True, parse_file=parse_file, lint_files=lint_files
            )
        except RecursionError:
            files, result = [], _empty_result()
            diags = [
                Diagnostic(
                    "E108",
                    "the ruleset nests too deeply to check (conditions, blocks or `extends` "
                    "chains hundreds of levels deep)",
                    sources[0][0] if sources else "",
                    hint="split long conditions, and keep `extends` chains short",
                )
            ]
        except PricingError as exc:  # the parser's E000: a bug, reported, not raised
            files, result, diags = [], _empty_result(), list(exc.diagnostics)
    by_path: dict[str, list[Diagnostic]] = {p: [] for p in texts}
    for d in diags:
        by_path.setdefault(d.path, []).append(d)
    ruleset = None
    if not any(d.severity == "error" for d in diags):
        ruleset = Ruleset(
            contracts=MappingProxyType(dict(result.contracts)),
            meters=result.meters,
            addons=result.addons,
            tests=result.tests,
            files=tuple(texts),
        )
    return Analysis(
        texts=texts,
        trees={f.path: f for f in files},
        result=result,
        diagnostics={p: tuple(ds) for p, ds in by_path.items()},
        ruleset=ruleset,
    )


# A declaration's `extends` chain, as declarations, and the warnings it got.
_Linted = tuple[tuple[A.PlanDecl | None, ...], list[Diagnostic]]


class LintMemo:
    """The linter's warnings, kept per plan and contract while what they come from is unchanged.

    :func:`._lint.lint` judges each plan or contract on its own, from its
    declaration, its resolved terms and the catalog.  Its resolved terms come
    from the declarations of its `extends` chain and the catalog's top-level
    statements (meters, add-ons, currency, rounding).  So one declaration's
    warnings are those of ``lint`` run on it alone, and they are kept while
    those declarations are equal -- as trees, spans and spellings included;
    the trees of unchanged declarations are the very same objects, so the
    comparison is mostly identity.  A keystroke in one contract lints that
    contract again (and those that extend it), not the whole workspace.
    """

    def __init__(self) -> None:
        self._catalog: tuple[Any, ...] = ()
        self._kept: dict[tuple[str, str], _Linted] = {}
        self.linted = 0  # declarations linted by the last call, for tests and the benchmark
        # While set, only the first ``quick`` declarations whose warnings are
        # not kept are linted; the others are only counted in ``pending``.
        # A keystroke in one contract is linted at once (a few milliseconds);
        # one in a plan that hundreds of contracts extend is not.
        self.partial = False
        self.quick = 8
        self.pending = 0

    def __call__(self, files: list[A.File], result: CheckResult) -> list[Diagnostic]:
        from ._lint import lint

        catalog = tuple(
            d
            for f in files
            for d in f.decls
            if not isinstance(d, (A.PlanDecl, A.TestDecl, A.PolicyDecl))
        )
        if catalog != self._catalog:
            self._catalog, self._kept = catalog, {}
        plans: dict[str, A.PlanDecl] = {}
        for f in files:
            for d in f.decls:
                if isinstance(d, A.PlanDecl):
                    plans.setdefault(d.id.text, d)
        out: list[Diagnostic] = []
        kept: dict[tuple[str, str], _Linted] = {}
        self.linted = self.pending = 0
        for f in files:
            for decl in f.decls:
                if not isinstance(decl, A.PlanDecl):
                    continue
                c = result.contracts.get(decl.id.text)
                if c is None or c.span != decl.span:
                    continue  # the linter passes it over too
                chain = (decl, *(plans.get(x) for x in c.chain[1:]))
                key = (f.path, decl.id.text)
                found = self._kept.get(key)
                if found is None or found[0] != chain:
                    if self.partial and self.linted >= self.quick:
                        self.pending += 1
                        continue
                    found = (chain, lint([A.File(f.path, (decl,))], result))
                    self.linted += 1
                kept[key] = found
                out.extend(found[1])
        self._kept = kept
        return out


def _empty_result() -> CheckResult:
    return CheckResult(MappingProxyType({}), (), MappingProxyType({}), (), ())


# ------------------------------------------------------------------- symbols


@dataclass(frozen=True, slots=True)
class Symbol:
    """One occurrence of a name: its kind, whether it defines the name, and its context."""

    kind: str  # "contract" | "addon" | "meter" | "usage" | "line"
    name: str
    span: Span
    defines: bool
    owner: str | None = None  # the plan or contract (or test's contract) it appears in
    stmt: Any = None  # the clause it heads, for hovers on clauses


def _body(stmts: Sequence[A.Stmt]) -> Iterator[A.Stmt]:
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, (A.WhenBlock, A.FromBlock)):
            yield from _body(stmt.body)


def _expr_refs(e: A.Expr) -> Iterator[A.Word]:
    if isinstance(e, A.RefExpr):
        yield e.name
    elif isinstance(e, A.BinaryExpr):
        yield from _expr_refs(e.left)
        yield from _expr_refs(e.right)
    elif isinstance(e, A.NotExpr):
        yield from _expr_refs(e.operand)


def symbols(tree: A.File) -> Iterator[Symbol]:
    """Every named occurrence in a file, in text order."""
    for decl in tree.decls:
        if isinstance(decl, A.AddonStmt):
            yield Symbol("addon", decl.id.text, decl.id.span, True, stmt=decl)
        elif isinstance(decl, A.MeterDecl):
            yield Symbol("meter", decl.id.text, decl.id.span, True, stmt=decl)
        elif isinstance(decl, A.PlanDecl):
            owner = decl.id.text
            yield Symbol("contract", owner, decl.id.span, True, owner, decl)
            if decl.parent is not None:
                yield Symbol("contract", decl.parent.text, decl.parent.span, False, owner, decl)
            for stmt in _body(decl.body):
                yield from _stmt_symbols(stmt, owner)
        elif isinstance(decl, A.TestDecl):
            named = decl.contract.text if decl.contract is not None else None
            if decl.contract is not None:
                yield Symbol("contract", named or "", decl.contract.span, False, named, decl)
            for key, _num in decl.usage:
                yield Symbol("usage", key.text, key.span, False, named, decl)
            for exp in decl.expectations:
                if exp.field != "error":
                    yield Symbol("line", exp.target.text, exp.target.span, False, named, exp)


def _stmt_symbols(stmt: A.Stmt, owner: str) -> Iterator[Symbol]:
    if isinstance(stmt, A.MeterTerm):
        yield Symbol("meter", stmt.meter.text, stmt.meter.span, False, owner, stmt)
    elif isinstance(stmt, A.AddonStmt):
        yield Symbol("addon", stmt.id.text, stmt.id.span, False, owner, stmt)
    elif isinstance(stmt, A.AddonsStmt):
        for w in stmt.ids:
            yield Symbol("addon", w.text, w.span, False, owner, stmt)
    elif isinstance(stmt, A.DiscountPercent):
        for w in stmt.targets:
            yield Symbol("line", w.text, w.span, False, owner, stmt)
    elif isinstance(stmt, A.CapStmt):
        yield Symbol("line", stmt.line.text, stmt.line.span, False, owner, stmt)
    elif isinstance(stmt, A.WhenBlock):
        for w in _expr_refs(stmt.condition):
            yield Symbol("usage", w.text, w.span, False, owner, stmt)


def _inside(span: Span, line: int, char: int) -> bool:
    """Whether the 0-based position is on the span (its end included, as editors expect)."""
    r = Range.of_span(span)
    if (line, char) < (r.start_line, r.start_char):
        return False
    return (line, char) <= (r.end_line, r.end_char)


def symbol_at(an: Analysis, path: str, line: int, char: int) -> Symbol | None:
    tree = an.tree(path)
    if tree is None:
        return None
    for sym in symbols(tree):
        if _inside(sym.span, line, char):
            return sym
    return None


def _meter_of(an: Analysis, sym: Symbol) -> str:
    """The meter id a symbol names (conditions and usage blocks name usage keys)."""
    if sym.kind == "usage":
        for m in an.result.meters:
            if m.usage_key == sym.name:
                return m.id
    return sym.name


def _key(an: Analysis, sym: Symbol) -> tuple[str, str]:
    if sym.kind in ("meter", "usage"):
        return ("meter", _meter_of(an, sym))
    return (sym.kind, sym.name)


def definition(an: Analysis, path: str, line: int, char: int) -> list[Location]:
    """Where the name under the cursor is defined: plan, contract, add-on or meter."""
    sym = symbol_at(an, path, line, char)
    if sym is None or sym.kind == "line":
        return []
    want = _key(an, sym)
    out = []
    for p in sorted(an.trees):
        for other in symbols(an.trees[p]):
            if other.defines and _key(an, other) == want:
                out.append(Location(p, Range.of_span(other.span)))
    return out


def references(
    an: Analysis, path: str, line: int, char: int, include_declaration: bool = True
) -> list[Location]:
    """Every occurrence of the name under the cursor, in every file of the project."""
    sym = symbol_at(an, path, line, char)
    if sym is None:
        return []
    want = _key(an, sym)
    out = []
    for p in sorted(an.trees):
        for other in symbols(an.trees[p]):
            if _key(an, other) != want or (other.defines and not include_declaration):
                continue
            if sym.kind == "line" and other.owner != sym.owner:
                continue  # a line code means something only within its contract
            out.append(Location(p, Range.of_span(other.span)))
    return out


# --------------------------------------------------------------------- hover


def _where(span: Span, root: Path | None = None) -> str:
    if span is STANDARD or span.line <= 0:
        return "standard rates"
    path = span.path
    if root is not None:
        with contextlib.suppress(ValueError):  # a file outside the folder keeps its path
            path = str(Path(path).relative_to(root))
    return f"{path}:{span.line}"


def _value_text(key: tuple[str, ...], value: Any) -> str:
    from ._export import _value

    shown = _value(key, value)
    if isinstance(shown, dict):
        if "tiers" in shown:
            rows = [
                f"up to {t['up_to']} at {t['price']}" if t["up_to"] else f"above at {t['price']}"
                for t in shown["tiers"]
            ]
            return f"{shown['mode']} ({'; '.join(rows)})"
        if "price" in shown:
            return str(shown["price"])
        if "percent" in shown:
            return f"{shown['percent']}%"
        if "kind" in shown:
            return f"{shown['value']}%" if shown["kind"] == "percent" else f"{shown['value']}"
        if "start" in shown:
            return f"{shown['start']} to {shown['end']}"
    if isinstance(shown, list):
        return ", ".join(shown) or "none"
    return str(shown)


def _term_name(key: tuple[str, ...]) -> str:
    return " ".join(key)


def _contract_hover(an: Analysis, c: ResolvedContract, root: Path | None) -> str:
    head = f"**{c.kind} `{c.id}`** {c.name!r}" if c.name else f"**{c.kind} `{c.id}`**"
    out = [head.replace("'", '"')]
    if len(c.chain) > 1:
        out.append(f"extends {' → '.join(f'`{p}`' for p in c.chain[1:])}")
    out.append(f"currency {c.currency}")
    out.append("")
    out.append("| term | value | from |")
    out.append("| --- | --- | --- |")
    for key, s in c.static_terms.items():
        out.append(f"| {_term_name(key)} | {_value_text(key, s.value)} | {_where(s.span, root)} |")
    for layer in c.layers:
        if not layer.conditional:
            continue
        out.append("")
        out.append(f"*{layer.label}* ({_where(layer.span, root)}):")
        for key, s in layer.patch.items():
            value = _value_text(key, s.value)
            out.append(f"- {_term_name(key)} = {value} ({_where(s.span, root)})")
    return "\n".join(out)


def _enclosing(tree: A.File, span: Span) -> tuple[A.PlanDecl | None, bool]:
    """The plan or contract holding a clause, and whether the clause is inside a `when`/`from`."""
    for decl in tree.decls:
        if isinstance(decl, A.PlanDecl) and decl.span.line <= span.line <= decl.span.end_line:
            for stmt in decl.body:
                if isinstance(stmt, (A.WhenBlock, A.FromBlock)) and (
                    stmt.span.line < span.line <= stmt.span.end_line
                ):
                    return decl, True
            return decl, False
    return None, False


def _clause_hover(an: Analysis, tree: A.File, stmt: A.Stmt, root: Path | None) -> str | None:
    from ._lint import _stmt_keys

    decl, conditional = _enclosing(tree, stmt.span)
    if decl is None:
        return None
    c = an.result.contracts.get(decl.id.text)
    meters = {m.id: m for m in an.result.meters}
    keys = _stmt_keys(stmt, meters)
    if c is None or not keys:
        return None
    if conditional:
        # Under its condition, the clause replaces what the contract says otherwise.
        before = c.static_terms
        whose = f"`{c.id}` outside this block"
    elif decl.parent is not None and decl.parent.text in an.result.contracts:
        before = an.result.contracts[decl.parent.text].static_terms
        whose = f"`{decl.parent.text}`"
    else:
        before = c.layers[0].patch if c.layers else {}
        whose = "the standard rates"
    out = []
    for key in keys:
        old = before.get(key)
        if old is None:
            out.append(f"sets {_term_name(key)}, which {whose} does not set")
        else:
            out.append(
                f"overrides {_term_name(key)} = {_value_text(key, old.value)} "
                f"from {whose} ({_where(old.span, root)})"
            )
    return "\n\n".join(out)


def line_formula(an: Analysis, contract_id: str, code: str) -> str | None:
    """How a contract computes one of its lines, written out from its rating plan."""
    from ._invoice import decimal_text
    from ._plan import Catalog, build_plan

    c = an.result.contracts.get(contract_id)
    if c is None:
        return None
    try:
        plan = build_plan(c, c.static_terms, Catalog(an.result.meters, an.result.addons))
    except Exception:  # terms the checker rejected: no plan to show
        return None
    for fee in plan.fees:
        if fee.code == code:
            how = (
                "per month × months of the period (prorated by days for a partial month)"
                if fee.per == "month"
                else f"per {fee.per}, billed in advance in the month each {fee.per} of the "
                "term starts (prorated by days when the term ends inside it)"
            )
            return f"`{code}` = {decimal_text(fee.price)} {how}\n\nfrom {', '.join(fee.sources)}"
    for m in plan.meters:
        if m.meter.line_code != code:
            continue
        used = m.meter.usage_key
        a = m.allowance
        if a.kind == "included":
            free = f"{decimal_text(a.units)} included"
        elif a.kind == "percent":
            free = f"floor({decimal_text(a.units)} MAU × {decimal_text(a.percent)}%) included"
        else:
            free = "0 included"
        billable = f"max(0, {used} − {free})"
        if m.mode == "flat":
            text = f"{billable} × {_price_text(m, 0)}"
        else:
            rows = []
            for k, up_to in enumerate(m.bounds):
                bound = "above" if up_to is None else f"up to {decimal_text(up_to)}"
                rows.append(f"- {bound}: {_price_text(m, k)}")
            how = (
                "each unit priced in the tier it falls in"
                if m.mode == "graduated"
                else "every billable unit priced at the tier that holds the whole usage"
            )
            text = f"{billable} priced {m.mode} ({how}):\n" + "\n".join(rows)
        return f"`{code}` = {text}\n\nfrom {', '.join(m.sources)}"
    for step in plan.adjustments:
        if step.code != code:
            continue
        v = decimal_text(step.value)
        if step.kind == "pct":
            text = f"−{v}% × the `{step.target}` line(s)"
        elif step.kind == "fixed":
            text = f"−min({v}, subtotal)"
        elif step.kind == "cap":
            text = f"−max(0, `{step.target}` net of percentage discounts − {v})"
        elif step.kind == "line_min":
            text = f"max(0, {v} − `{step.target}` net of percentage discounts)"
        else:
            text = f"max(0, {v} − subtotal)"
        return f"`{code}` = {text}\n\nfrom {_where(step.source.span)}"
    return None


def _price_text(m: MeterCharge, k: int) -> str:
    """Tier ``k``'s price as a hover shows it: per unit or per block, and its flat fee."""
    from ._invoice import decimal_text

    block, down = m.block(k)
    fee = m.fee(k)
    unit = m.meter.unit
    how = "whole blocks" if down else "started blocks"
    text = f"{decimal_text(m.prices[k])} per " + (
        unit if block is None else f"{decimal_text(block)} {unit}s ({how})"
    )
    return text + ("" if fee is None else f" plus {decimal_text(fee)}")


def hover(
    an: Analysis, path: str, line: int, char: int, root: Path | None = None
) -> tuple[str, Range] | None:
    """Markdown for the position: resolved terms, what a clause overrides, a line's formula."""
    tree = an.tree(path)
    if tree is None:
        return None
    sym = symbol_at(an, path, line, char)
    if sym is not None:
        where = Range.of_span(sym.span)
        if sym.kind == "contract":
            c = an.result.contracts.get(sym.name)
            return (_contract_hover(an, c, root), where) if c is not None else None
        if sym.kind == "line":
            if sym.owner is None:
                return None
            text = line_formula(an, sym.owner, sym.name)
            return (text, where) if text else None
        if sym.kind == "addon" and sym.defines:
            info = an.result.addons.get(sym.name)
            if info is not None:
                from ._invoice import decimal_text

                return (
                    f"**add-on `{info.id}`** {info.name} — {decimal_text(info.price)} per month",
                    where,
                )
        if sym.kind in ("meter", "usage") and isinstance(sym.stmt, (A.MeterDecl, A.TestDecl)):
            mid = _meter_of(an, sym)
            for m in an.result.meters:
                if m.id == mid:
                    return (
                        f"**meter `{m.id}`** {m.name}: usage key `{m.usage_key}`, unit "
                        f"{m.unit}, invoice line `{m.line_code}`",
                        where,
                    )
    # A clause of a plan or contract: what it overrides.
    for decl in tree.decls:
        if not isinstance(decl, A.PlanDecl) or not _inside(decl.span, line, char):
            continue
        for stmt in _body(decl.body):
            if isinstance(stmt, (A.WhenBlock, A.FromBlock)):
                continue
            if stmt.span.line - 1 == line:
                text = _clause_hover(an, tree, stmt, root)
                if text:
                    return text, Range.of_span(stmt.span)
    return None


# ---------------------------------------------------------------- completion

_WORD_BEFORE = re.compile(r"[A-Za-z_][\w.]*\Z")


def _offset(text: str, line: int, char: int) -> int:
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return min(pos + char, end)


def _accepted_keywords(prefix: str) -> set[str] | None:
    """The keywords the grammar accepts after ``prefix``, from Lark's interactive parser."""
    from lark.exceptions import UnexpectedInput

    from ._parser import _keyword, _lark

    try:
        ip = _lark().parse_interactive(prefix)
        ip.exhaust_lexer()
        names = ip.accepts()  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        return None
    return {kw for kw in (_keyword(n) for n in names) if kw}


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _block_heads(text: str, offset: int) -> list[str]:
    """The code of each line that opened a still-open `{` before ``offset``, outermost first."""
    from ._parser import _open_braces

    out = []
    for brace in _open_braces(text, 0, offset):
        out.append(split_comment(text[_line_start(text, brace) : brace + 1])[0].strip())
    return out


def completions(an: Analysis, path: str, text: str, line: int, char: int) -> list[Completion]:
    """What may be typed at the position: keywords the grammar accepts there, and names."""
    from ._parser import _open_braces

    offset = _offset(text, line, char)
    start_of_line = _line_start(text, offset)
    before = text[start_of_line:offset]
    partial = _WORD_BEFORE.search(before)
    typed = before[: partial.start()] if partial else before
    code = split_comment(typed)[0]
    if "#" in typed and code != typed:
        return []  # inside a comment
    tokens = code.split()
    opened = _open_braces(text, 0, start_of_line)
    heads = _block_heads(text, start_of_line)
    # Feed the parser the enclosing top-level block from its first line up to the cursor.
    top = _line_start(text, opened[0]) if opened else start_of_line
    prefix = text[top:start_of_line] + typed
    out: list[Completion] = []
    seen: set[str] = set()

    def add(label: str, kind: str, detail: str = "") -> None:
        if label not in seen:
            seen.add(label)
            out.append(Completion(label, kind, detail))

    result = an.result
    meters = result.meters
    contracts = {**an.remembered, **result.contracts}
    owner = _owner(text, heads, opened)
    last = tokens[-1] if tokens else ""
    in_test = bool(heads) and heads[0].startswith("test")
    if last == "extends" or (in_test and tokens == ["contract"]):
        for cid, c in sorted(contracts.items()):
            add(cid, "contract", f"{c.kind} {c.name}")
    elif (
        last == "addons"
        or (tokens[:1] == ["addons"] and last.endswith(","))
        or (heads and tokens == ["addon"])
    ):
        for aid, info in sorted(result.addons.items()):
            add(aid, "addon", info.name)
    elif last == "on" or (tokens[:1] == ["discount"] and "on" in tokens and last.endswith(",")):
        lines = (
            set(possible_lines(contracts[owner], {m.id: m for m in meters}))
            if owner in contracts
            else {m.line_code for m in meters}
        )
        for code_ in sorted(lines | {"addons", "usage"}):
            add(code_, "line")
    elif last in ("cap", "minimum"):
        lines = (
            set(possible_lines(contracts[owner], {m.id: m for m in meters}))
            if owner in contracts
            else {m.line_code for m in meters}
        )
        for code_ in sorted(
            c for c in lines | {"addons", "usage"} if "." not in c or c.startswith("addon.")
        ):
            add(code_, "line")
    elif last == "expect":
        if owner in contracts:
            for code_ in sorted(possible_lines(contracts[owner], {m.id: m for m in meters})):
                add(code_, "line")
        add("total", "line", "the invoice total")
        add("error", "keyword")
    elif last in ("per", "unit") or (len(tokens) >= 3 and tokens[-2] == "included"):
        if last == "per":
            for interval in ("month", "quarter", "year"):
                add(interval, "unit")
        for m in meters:
            add(m.unit, "unit", m.name)
            if last not in ("per", "unit"):
                add(m.unit + "s", "unit", m.name)
    elif heads and heads[-1].startswith("usage"):
        for m in meters:
            add(m.usage_key, "usage", m.name)
    elif tokens[:1] == ["when"]:
        for m in meters:
            add(m.usage_key, "usage", m.name)
        add("period", "keyword")
    elif not tokens and heads and heads[0].split()[:1] in (["plan"], ["contract"]):
        for m in meters:
            add(m.id, "meter", m.name)
    accepted = _accepted_keywords(prefix)
    for kw in sorted(accepted or ()):
        add(kw, "keyword")
    return out


def _owner(text: str, heads: list[str], opened: list[int]) -> str | None:
    """The plan or contract the cursor is in, or the contract a test block names."""
    if not heads:
        return None
    words = heads[0].split()
    if words[:1] in (["plan"], ["contract"]) and len(words) > 1:
        return words[1]
    if words[:1] == ["test"]:
        m = re.compile(r"^[ \t]*contract[ \t]+([A-Za-z_]\w*)", re.M).search(text, opened[0])
        if m is not None:
            return m.group(1)
    return None


# ---------------------------------------------------------------- quick fixes

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
_QUOTED = re.compile(r"`([^`]+)`")
_COMMA_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CURLY = "\u201c\u201d\u2018\u2019"


def quick_fixes(d: Diagnostic, text: str) -> list[Fix]:
    """The edits that fix a finding, where the finding says what the fix is."""
    lines = text.splitlines()
    if not 0 < d.line <= len(lines):
        return []
    src = lines[d.line - 1]
    r = Range.of_diagnostic(d)
    found = _DID_YOU_MEAN.search(d.message) or _DID_YOU_MEAN.search(d.hint or "")
    if found is not None and r.start_line == r.end_line:
        better = found.group(1)
        written = src[r.start_char : r.end_char]
        if re.fullmatch(r"[A-Za-z_][\w.]*", written):
            edit = Edit(d.path, r, better)
        else:
            # The span covers a whole clause: replace the misspelt name inside it.
            wrong = next(
                (w for w in _QUOTED.findall(d.message) if w != better and w in written), None
            )
            if wrong is None:
                return []
            at = r.start_char + written.index(wrong)
            edit = Edit(d.path, Range(r.start_line, at, r.start_line, at + len(wrong)), better)
        return [Fix(f"Change to `{better}`", (edit,), d)]
    if d.code == "E102":
        for m in _COMMA_NUMBER.finditer(src):
            if m.start() <= r.start_char < m.end():
                fixed = m.group().replace(",", "_")
                where = Range(r.start_line, m.start(), r.start_line, m.end())
                return [Fix(f"Write `{fixed}`", (Edit(d.path, where, fixed),), d)]
        return []
    if d.code == "E101":
        edits = tuple(
            Edit(d.path, Range(r.start_line, i, r.start_line, i + 1), '"')
            for i, ch in enumerate(src)
            if ch in _CURLY
        )
        return [Fix("Use straight double quotes", edits, d)] if edits else []
    if d.code == "E100" and d.message.startswith("unexpected space before `%`"):
        space = re.search(r"[ \t]+\Z", src[: r.start_char])
        if space is not None:
            where = Range(r.start_line, space.start(), r.start_line, r.start_char)
            return [Fix("Remove the space before `%`", (Edit(d.path, where, ""),), d)]
    return []


# ------------------------------------------------------------ lenses, format


def code_lenses(an: Analysis, path: str) -> list[Lens]:
    """Each `test` block's result: pass, or fail with the differences."""
    from ._testing import _run_one

    tree = an.tree(path)
    if tree is None:
        return []
    out = []
    for decl in tree.decls:
        if not isinstance(decl, A.TestDecl):
            continue
        r = Range.of_span(decl.span)
        where = Range(r.start_line, r.start_char, r.start_line, r.start_char)
        if an.ruleset is None:
            out.append(Lens(where, "test not run: the ruleset has errors", None, ""))
            continue
        outcome = _run_one(an.ruleset, decl)
        if outcome.passed:
            out.append(Lens(where, "✓ test passes", True, ""))
        else:
            first = outcome.failures[0].splitlines()[0]
            more = f" (+{len(outcome.failures) - 1} more)" if len(outcome.failures) > 1 else ""
            out.append(
                Lens(where, f"✗ test fails: {first}{more}", False, "\n".join(outcome.failures))
            )
    return out


def format_document(text: str, path: str) -> str | None:
    """The text in `pricing fmt`'s layout; None if it does not parse (nothing to format)."""
    from ._format import format_text

    try:
        return format_text(text, path)
    except PricingError:
        return None


def whole(text: str) -> Range:
    """The range of a whole text."""
    lines = text.split("\n")
    return Range(0, 0, len(lines) - 1, len(lines[-1]))
