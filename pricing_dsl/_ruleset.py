"""Loading rulesets, and the :class:`Ruleset` that billing systems embed."""

from __future__ import annotations

import gc
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import _ast as A
from ._checker import CheckResult, check
from ._compile import CompiledContract, Shapes
from ._errors import Diagnostic, PricingError, attach_source
from ._invoice import Invoice
from ._parser import parse
from ._plan import Catalog, Plans
from ._policy import Approval, Policy, PolicyResult, RecordedException, check_policies
from ._rating import issue_invoice, rate
from ._statement import Statement, build_statement, has_commitments
from ._suggest import did_you_mean
from ._terms import AddonInfo, MeterInfo, ResolvedContract
from ._usage import Period, Usage, usage_schema

__all__ = ["Ruleset", "check_paths", "load", "loads"]

UsageLike = Usage | Mapping[str, Any]
# Usage by month, for statements: {"2026-08": usage, …} or usage records with periods.
UsageHistory = Mapping[Any, UsageLike] | Iterable[UsageLike]


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Checked plans and contracts, ready to rate.

    Immutable: every field is a frozen value or a read-only mapping, and
    rating keeps its state on the stack, so one ``Ruleset`` can be shared by
    any number of threads.
    """

    contracts: Mapping[str, ResolvedContract]
    meters: tuple[MeterInfo, ...]
    addons: Mapping[str, AddonInfo]
    tests: tuple[A.TestDecl, ...]
    files: tuple[str, ...]
    # Finance guardrails (`_policy.py`): the policies, each contract's
    # approvals, and the policy violations those approvals turned into
    # recorded exceptions.
    policies: tuple[Policy, ...] = ()
    approvals: Mapping[str, tuple[Approval, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    exceptions: tuple[RecordedException, ...] = ()
    # Caches filled on first use.  Only ever added to, and each entry is
    # built from immutable data, so a race can at worst build one twice.
    _compiled: dict[str, CompiledContract] = field(default_factory=dict, repr=False, compare=False)
    _periods: dict[str, Period] = field(default_factory=dict, repr=False, compare=False)
    # Generated code by plan shape, shared by every contract.
    _shapes: Shapes = field(default_factory=Shapes, repr=False, compare=False)

    @property
    def _catalog(self) -> Catalog:
        return Catalog(self.meters, self.addons)

    @property
    def contract_ids(self) -> list[str]:
        """Every plan and contract id, sorted."""
        return sorted(self.contracts)

    def contract(self, contract_id: str) -> ResolvedContract:
        """The resolved terms of a plan or contract; PricingError if it does not exist."""
        if not isinstance(contract_id, str):
            raise PricingError(
                Diagnostic(
                    "E301",
                    f"a contract id is text, not {type(contract_id).__name__}",
                    key="contract",
                )
            )
        found = self.contracts.get(contract_id)
        if found is None:
            known = ", ".join(self.contract_ids) or "none"
            raise PricingError(
                Diagnostic(
                    "E301",
                    f"no plan or contract `{contract_id}`"
                    + did_you_mean(contract_id, self.contracts),
                    hint=f"this ruleset has: {known}",
                    key="contract",
                )
            )
        return found

    def usage(self, usage: UsageLike, source: str = "<usage>") -> Usage:
        """Validate usage for this ruleset's meters."""
        if isinstance(usage, Usage):
            return usage
        return Usage.from_mapping(usage, meters=self.meters, source=source)

    def rate(self, contract_id: str, usage: UsageLike) -> Invoice:
        """Rate one period of usage into invoice lines (fees, usage and adjustments).

        ``usage`` is a :class:`Usage` or a mapping such as
        ``{"period": "2026-08", "mau": 26250}``.  Plain, valid mappings take
        the compiled fast path; everything else, and every error, goes
        through the reference interpreter.
        """
        if type(usage) is dict and type(contract_id) is str:
            compiled = self._compiled.get(contract_id)
            if compiled is None and contract_id in self.contracts:
                compiled = self._compile(contract_id)
            if compiled is not None:
                fast = compiled.rate(usage, self._periods)
                if fast is not None:
                    return fast
        return rate(
            self.contract(contract_id), self.usage(usage), self._catalog, self._plans(contract_id)
        )

    def rate_reference(self, contract_id: str, usage: UsageLike) -> Invoice:
        """Rate with the reference interpreter only (the fast path's yardstick)."""
        return rate(
            self.contract(contract_id), self.usage(usage), self._catalog, self._plans(contract_id)
        )

    def _compile(self, contract_id: str) -> CompiledContract:
        compiled = CompiledContract(Plans(self.contracts[contract_id], self._catalog), self._shapes)
        return self._compiled.setdefault(contract_id, compiled)

    def _plans(self, contract_id: str) -> Plans | None:
        """The contract's plans, kept with its compiled rater (None for an unknown id)."""
        if type(contract_id) is not str or contract_id not in self.contracts:
            return None
        compiled = self._compiled.get(contract_id)
        return (compiled or self._compile(contract_id)).plans

    def invoice(
        self,
        contract_id: str,
        issue_date: date | str,
        usage: UsageLike,
        history: UsageHistory | None = None,
    ) -> Invoice:
        """The invoice issued on ``issue_date`` (the 1st of month M+1).

        It bills fixed fees in advance for M+1 and ``usage`` (of month M) in arrears.
        ``issue_date`` is a ``date`` or an ISO date string.

        A contract with ``commit``, ``prepaid`` or ``credit`` carries balances
        from invoice to invoice, so its invoice depends on the ones before:
        ``history`` is the usage of the term's earlier months (as
        :meth:`statement` takes it; an empty mapping when there was none),
        and the invoice is the statement's invoice for ``issue_date``.
        Without ``history`` such a contract is refused (E307).
        """
        if isinstance(issue_date, str):
            try:
                issue_date = date.fromisoformat(issue_date)
            except ValueError:
                raise PricingError(
                    Diagnostic("E304", f"`{issue_date}` is not a date (YYYY-MM-DD)")
                ) from None
        if not isinstance(issue_date, date):
            raise PricingError(
                Diagnostic("E304", f"the issue date must be a date, not {issue_date!r}")
            )
        c = self.contract(contract_id)
        if has_commitments(c):
            return self._invoice_with_history(c, issue_date, self.usage(usage), history)
        return issue_invoice(
            c,
            issue_date,
            self.usage(usage),
            self._catalog,
            self._plans(contract_id),
        )

    def _invoice_with_history(
        self, c: ResolvedContract, issue_date: date, usage: Usage, history: UsageHistory | None
    ) -> Invoice:
        if history is None:
            raise PricingError(
                Diagnostic(
                    "E307",
                    f"`{c.id}` has commitments or credits, so its invoice depends on the "
                    "invoices before it",
                    key="contract",
                    hint="use `Ruleset.statement` (`pricing statement`), or pass the usage of "
                    "the earlier months as `history=` (an empty mapping if there was none)",
                )
            )
        term = c.static_terms[("term",)].value
        first, last = term[0].replace(day=1), Period.month(term[1].year, term[1].month).end
        if issue_date.day != 1 or not first <= issue_date <= last + timedelta(days=1):
            # A date no invoice of the term has: the words of an ordinary invoice (E304, E302).
            issue_invoice(c, issue_date, usage, self._catalog, self._plans(c.id))
        month = Period.month(*_previous_month(issue_date))
        records = _usage_records(self, history)
        for key, earlier in records:
            when = key or earlier.period
            if when is not None and when.start >= month.start:
                raise PricingError(
                    Diagnostic(
                        "E309",
                        f"the history holds usage for {when}, but the invoice issued on "
                        f"{issue_date} bills {month}",
                        earlier.source,
                        key="period",
                        hint=f"give as history the usage of the months before {month}",
                    )
                )
        if usage.period is not None and usage.period != month:
            issue_invoice(c, issue_date, usage, self._catalog, self._plans(c.id))  # E305
        if month.end >= term[0]:
            # The first invoice of a term bills no usage: like `issue_invoice`, ignore it.
            records.append((month, usage))
        return self._statement(c, records, issue_date).invoices[-1]

    def statement(
        self,
        contract_id: str,
        usages: UsageHistory,
        through: date | str | None = None,
    ) -> Statement:
        """Every invoice of a contract's term, in issue order, and the ledger of its balances.

        ``usages`` is the usage by month: a mapping from a month (``"2026-08"``,
        a :class:`Period` or a ``date`` in the month) to usage, or an iterable
        of usage records that each carry a ``period`` of one calendar month.
        A month with no usage is billed as none.  ``through`` (``"YYYY-MM"``
        or a ``date``) stops at the invoice issued that month; by default
        the statement runs to the invoice after the term's last month.

        Each invoice is what :meth:`invoice` issues for its date given the
        months before it, with the ``prepaid``, ``credit.applied`` and
        ``commit.true_up`` lines of the contract's commitments and credits;
        the ledger lists every movement of a credit balance.  Works for any
        contract with a term (E307 without one).
        """
        c = self.contract(contract_id)
        return self._statement(c, _usage_records(self, usages), _through(through))

    def _statement(
        self,
        c: ResolvedContract,
        records: list[tuple[Period | None, Usage]],
        through: date | None,
    ) -> Statement:
        from ._statement import _months_of_usage

        return build_statement(
            c, _months_of_usage(records), self._catalog, self._plans(c.id), through
        )

    def usage_schema(self) -> dict[str, Any]:
        """The JSON Schema of usage for this ruleset, custom meters included."""
        return usage_schema(self.meters)


def _previous_month(d: date) -> tuple[int, int]:
    return (d.year, d.month - 1) if d.month > 1 else (d.year - 1, 12)


def _month_key(key: object) -> Period:
    """A mapping key of statement usage: ``"YYYY-MM"``, a Period or a date in the month."""
    if isinstance(key, Period):
        return key
    if isinstance(key, date):
        return Period.month(key.year, key.month)
    if isinstance(key, str):
        try:
            period = Period.parse(key)
        except ValueError:
            period = None
        if period is not None:
            return period
    raise PricingError(
        Diagnostic(
            "E306",
            f"a statement's usage is keyed by month, not by {key!r}",
            key="period",
            hint='key each month\'s usage by "YYYY-MM"',
        )
    )


def _usage_records(rules: Ruleset, usages: UsageHistory) -> list[tuple[Period | None, Usage]]:
    if isinstance(usages, Mapping):
        return [(_month_key(k), rules.usage(v, source=f"<usage {k}>")) for k, v in usages.items()]
    if isinstance(usages, (str, bytes)) or not isinstance(usages, Iterable):
        raise PricingError(
            Diagnostic(
                "E306",
                f"a statement's usage is a mapping by month or an iterable of usage records, "
                f"not {type(usages).__name__}",
                hint='pass {"2026-08": {"mau": 100}, …} or a list of usage with periods',
            )
        )
    return [(None, rules.usage(u, source=f"<usage {n}>")) for n, u in enumerate(usages, 1)]


def _through(through: date | str | None) -> date | None:
    if through is None or isinstance(through, date):
        return through
    try:
        period = Period.parse(through) if isinstance(through, str) else None
    except ValueError:
        period = None
    if period is None or not period.is_calendar_month:
        raise PricingError(
            Diagnostic(
                "E308",
                f"`{through}` is not a month",
                key="through",
                hint="give the month of the last invoice as YYYY-MM",
            )
        )
    return period.start


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)) or not str(p):
            raise PricingError(
                Diagnostic(
                    "E001",
                    f"not a file or directory name: {p!r}",
                    hint="give .pricing files or directories that hold them",
                )
            )
        path = Path(p)
        if path.is_dir():
            found = sorted(q for q in path.rglob("*.pricing") if q.is_file())
            if not found:
                raise PricingError(
                    Diagnostic("E001", "no .pricing files in this directory", str(path))
                )
            out.extend(found)
        elif path.is_file():
            out.append(path)
        elif path.exists():
            raise PricingError(
                Diagnostic(
                    "E001",
                    "this is not a regular file",
                    str(path),
                    hint="give .pricing files or directories that hold them",
                )
            )
        else:
            raise PricingError(
                Diagnostic(
                    "E001",
                    "no such file or directory",
                    str(path),
                    hint="give .pricing files or directories that hold them",
                )
            )
    # The same file named twice (a folder and a file in it) is read once.
    unique: dict[Path, Path] = {}
    for path in out:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8-sig")  # -sig: a byte-order mark is not content
    except UnicodeDecodeError as exc:
        raise PricingError(
            Diagnostic("E002", f"this file is not UTF-8 text (byte {exc.start})", str(path))
        ) from None
    except OSError as exc:
        raise PricingError(
            Diagnostic("E002", f"cannot read this file: {exc.strerror}", str(path))
        ) from None


_ALLOW = re.compile(r"#.*\bpricing:\s*allow\b(.*)")


def _allowed(d: Diagnostic, texts: Mapping[str, list[str]]) -> bool:
    """A warning is silenced by `# pricing: allow W106` on its line or the line above."""
    lines = texts.get(d.path, [])
    for n in (d.line, d.line - 1):
        if 0 < n <= len(lines):
            m = _ALLOW.search(lines[n - 1])
            if m and d.code in re.findall(r"W\d+", m.group(1)):
                return True
    return False


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a ruleset, where no one can notice.

    Parsing allocates hundreds of thousands of small objects and no cycles
    worth collecting; with the collector on, its repeated full passes take
    about twice the CPU time to load a 100,000-line ruleset.  Reference
    counting still frees everything as usual.

    The collector's switch is process-wide, so it is touched only when the
    calling thread is the process's only Python thread: nothing else can run
    while the collector is off, and it is back on before loading returns.
    With other threads alive (an embedding application's workers, a web
    server), loading leaves the collector alone and is slower instead.
    """
    if not gc.isenabled() or threading.active_count() > 1:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _build(
    sources: Sequence[tuple[str, str]], warnings: bool = False
) -> tuple[Ruleset | None, list[Diagnostic]]:
    with _no_gc_pauses():
        try:
            return _build_unpaused(sources, warnings)
        except RecursionError:
            # Hundreds of nested conditions or `extends` levels: say so plainly.
            return None, [
                Diagnostic(
                    "E108",
                    "the ruleset nests too deeply to check (conditions, blocks or `extends` "
                    "chains hundreds of levels deep)",
                    sources[0][0] if sources else "",
                    hint="split long conditions, and keep `extends` chains short",
                )
            ]


Parse = Callable[[str, str], tuple[A.File | None, list[Diagnostic]]]
Lint = Callable[[list[A.File], CheckResult], list[Diagnostic]]


def analyse(
    sources: Sequence[tuple[str, str]],
    warnings: bool = False,
    parse_file: Parse | None = None,
    lint_files: Lint | None = None,
) -> tuple[list[A.File], CheckResult, PolicyResult, list[Diagnostic]]:
    """Parse, check and (with ``warnings``) lint sources: files, check, policies, findings.

    The one place that decides which findings a ruleset reports, shared by
    loading, `pricing check` and the language server.  ``parse_file(text,
    path)`` stands in for the parser, and ``lint_files(files, result)`` for
    the linter, so a caller may reuse the trees and warnings of what has not
    changed (the language server does).
    """
    files: list[A.File] = []
    diags: list[Diagnostic] = []
    for name, text in sources:
        tree, errs = (parse_file or parse)(text, name)
        diags.extend(errs)
        if tree is not None:
            files.append(tree)
    result = check(files)
    policy = PolicyResult()
    # Semantic errors are only trustworthy when every file parsed; a file with a
    # syntax error may hold the very definition another file refers to.
    if not diags:
        diags.extend(result.diagnostics)
        # Policies judge resolved contracts, so they run after the checker.
        policy = check_policies(files, result)
        diags.extend(policy.errors)
        if warnings and not diags:
            from ._lint import lint

            texts = {name: text.splitlines() for name, text in sources}
            found = (lint_files or lint)(files, result)
            diags.extend(d for d in found if not _allowed(d, texts))
            diags.extend(d for d in policy.warnings if not _allowed(d, texts))
    else:
        parsed = {f.path for f in files}
        diags.extend(
            d for d in result.diagnostics if d.path in parsed and d.code not in ("E201", "E207")
        )
    order = {name: i for i, (name, _) in enumerate(sources)}
    diags.sort(key=lambda d: (order.get(d.path, len(order)), d.line, d.column))
    return files, result, policy, attach_source(diags, dict(sources))


def _build_unpaused(
    sources: Sequence[tuple[str, str]], warnings: bool
) -> tuple[Ruleset | None, list[Diagnostic]]:
    _files, result, policy, diags = analyse(sources, warnings)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        return None, diags
    return (
        Ruleset(
            contracts=MappingProxyType(dict(result.contracts)),
            meters=result.meters,
            addons=result.addons,
            tests=result.tests,
            files=tuple(name for name, _ in sources),
            policies=policy.policies,
            approvals=MappingProxyType(dict(policy.approvals)),
            exceptions=policy.exceptions,
        ),
        diags,
    )


def check_paths(
    *paths: str | os.PathLike[str], warnings: bool = False
) -> tuple[Ruleset | None, list[Diagnostic]]:
    """Parse and check files without raising: the ruleset (if usable) and every diagnostic.

    With ``warnings``, also look for legal but suspicious clauses (``W…`` codes).
    """
    sources = []
    read_errors: list[Diagnostic] = []
    for path in _expand(paths):
        try:
            sources.append((str(path), _read(path)))
        except PricingError as exc:
            read_errors.extend(exc.diagnostics)
    ruleset, diags = _build(sources, warnings)
    if read_errors:
        return None, read_errors + diags
    return ruleset, diags


def load(*paths: str | os.PathLike[str], cache: bool = False) -> Ruleset:
    """Load ``.pricing`` files and directories (searched recursively) as one ruleset.

    With ``cache``, a checked ruleset is kept in the user's cache folder, keyed
    by the content of its files, and read back while they are unchanged (see
    docs/python-api.md; ``PRICING_DSL_NO_CACHE=1`` turns it off).
    """
    if not paths:
        raise PricingError(Diagnostic("E001", "no ruleset files given"))
    if cache:
        found = _load_cached(paths)
        if found is not None:
            return found
    ruleset, diags = check_paths(*paths)
    if ruleset is None:
        raise PricingError([d for d in diags if d.severity == "error"])
    return ruleset


def _load_cached(paths: Sequence[str | os.PathLike[str]]) -> Ruleset | None:
    """The ruleset from the cache, or built and cached; None to load it the usual way.

    The ruleset is built from the very bytes the key is computed from, so an
    entry always matches the files it names.  Anything out of the ordinary (a
    file that cannot be read, text that is not UTF-8, errors in the ruleset)
    is left to the usual loading, which reports it.
    """
    from ._cache import read_cached, write_cached

    raw: list[tuple[str, bytes]] = []
    for path in _expand(paths):
        try:
            raw.append((str(path), path.read_bytes()))
        except OSError:
            return None
    # Unpickling builds as many objects as parsing: pause the collector as
    # loading does (only where that is safe, see _no_gc_pauses).
    with _no_gc_pauses():
        found = read_cached(raw)
    if found is not None:
        return found
    try:
        sources = [(name, data.decode("utf-8-sig")) for name, data in raw]
    except UnicodeDecodeError:
        return None
    ruleset, _ = _build(sources)
    if ruleset is not None:
        write_cached(raw, ruleset)
    return ruleset


def loads(text: str, filename: str = "<string>") -> Ruleset:
    """Load a ruleset from text; ``filename`` is used in error locations."""
    ruleset, diags = _build([(filename, text)])
    if ruleset is None:
        raise PricingError([d for d in diags if d.severity == "error"])
    return ruleset
