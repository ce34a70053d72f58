"""`test` blocks: expectations written next to the contracts, and their runner."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from . import _ast as A
from ._errors import PricingError
from ._invoice import Invoice, decimal_text
from ._ruleset import Ruleset
from ._terms import STANDARD

__all__ = ["TestOutcome", "coverage", "run_tests"]


@dataclass(frozen=True, slots=True)
class TestOutcome:
    name: str
    location: str
    passed: bool
    failures: tuple[str, ...]
    invoice: Invoice | None


def _usage_mapping(test: A.TestDecl) -> dict[str, Any]:
    data: dict[str, Any] = {key.text: num.value for key, num in test.usage}
    if test.period is not None:
        text = test.period.text
        if ".." in text:
            start, end = text.split("..", 1)
            data["period"] = {"start": start, "end": end}
        else:
            data["period"] = text
    return data


def _trace(invoice: Invoice, code: str) -> str:
    for ln in invoice.lines:
        if ln.code == code and ln.explanation is not None:
            ex = ln.explanation
            parts = [f"      = {ex.formula}", f"      exact {decimal_text(ex.exact)}"]
            parts += [f"      {d}" for d in ex.details]
            if ex.sources:
                parts.append(f"      from {', '.join(ex.sources)}")
            return "\n".join(parts)
    return ""


def _run_one(rules: Ruleset, test: A.TestDecl) -> TestOutcome:
    location = f"{test.span.path}:{test.span.line}"
    failures: list[str] = []
    invoice: Invoice | None = None
    error: PricingError | None = None
    if test.contract is None:
        return TestOutcome(test.name, location, False, ("the test names no contract",), None)
    try:
        invoice = rules.rate(test.contract.text, _usage_mapping(test))
    except PricingError as exc:
        error = exc
    for exp in test.expectations:
        where = f"line {exp.span.line}"
        if exp.field == "error":
            if error is None:
                failures.append(f"{where}: expected error {exp.target.text}, but rating succeeded")
            elif exp.target.text not in error.codes:
                failures.append(
                    f"{where}: expected error {exp.target.text}, got "
                    + "; ".join(f"{d.code}: {d.message}" for d in error.diagnostics)
                )
            continue
        if invoice is None:
            assert error is not None
            failures.append(
                f"{where}: rating failed: "
                + "; ".join(f"{d.code}: {d.message}" for d in error.diagnostics)
            )
            continue
        assert exp.value is not None
        expected: Decimal = exp.value.value
        code = exp.target.text
        if code == "total":
            actual: Decimal | None = invoice.total
        else:
            line = next((ln for ln in invoice.lines if ln.code == code), None)
            if line is None:
                failures.append(
                    f"{where}: the invoice has no `{code}` line (lines: {', '.join(invoice.codes)})"
                )
                continue
            actual = line.quantity if exp.field == "quantity" else line.amount
        if actual is not None and actual != expected:
            what = f"{code} {exp.field}" if code != "total" else "total"
            msg = f"{where}: {what}: expected {exp.value.text}, got {decimal_text(actual)}"
            trace = _trace(invoice, code) if code != "total" else ""
            failures.append(msg + ("\n" + trace if trace else ""))
    if error is not None and not test.expectations:
        failures.append(
            "rating failed: " + "; ".join(f"{d.code}: {d.message}" for d in error.diagnostics)
        )
    return TestOutcome(test.name, location, not failures, tuple(failures), invoice)


def run_tests(rules: Ruleset, pattern: str | None = None) -> list[TestOutcome]:
    """Run the ruleset's `test` blocks whose name matches ``pattern`` (glob or substring)."""
    out = []
    for test in rules.tests:
        if pattern and not (pattern in test.name or fnmatch.fnmatchcase(test.name, pattern)):
            continue
        out.append(_run_one(rules, test))
    return out


def coverage(rules: Ruleset, outcomes: Iterable[TestOutcome]) -> list[str]:
    """Clauses (rates, allowances, tiers, `when`/`from` blocks) that no test exercised."""
    clauses: dict[str, str] = {}
    for c in rules.contracts.values():
        for layer in c.layers:
            if layer.conditional:
                clauses[f"{layer.span.path}:{layer.span.line}"] = layer.label.split(" at ")[0]
            for key, value in layer.patch.items():
                if value.span is STANDARD or key[0] in ("rounding", "term", "addons"):
                    continue
                clauses.setdefault(f"{value.span.path}:{value.span.line}", " ".join(key))
    used: set[str] = set()
    for outcome in outcomes:
        inv = outcome.invoice
        if inv is None:
            continue
        for ln in inv.lines:
            if ln.explanation is not None:
                used.update(ln.explanation.sources)
        for label in inv.rules_applied:
            used.add(label.split(" at ", 1)[1].rsplit(":", 1)[0])
    return [f"{loc}: {what}" for loc, what in sorted(clauses.items()) if loc not in used]


def format_text(outcomes: list[TestOutcome]) -> str:
    lines = []
    for o in outcomes:
        lines.append(f"{'PASS' if o.passed else 'FAIL'}  {o.name}  ({o.location})")
        for f in o.failures:
            lines.append("    " + f.replace("\n", "\n    "))
    passed = sum(o.passed for o in outcomes)
    lines.append(f"{passed} passed, {len(outcomes) - passed} failed")
    return "\n".join(lines) + "\n"


def format_json(outcomes: list[TestOutcome]) -> str:
    return "".join(
        json.dumps(
            {
                "name": o.name,
                "location": o.location,
                "passed": o.passed,
                "failures": list(o.failures),
            }
        )
        + "\n"
        for o in outcomes
    )


def format_junit(outcomes: list[TestOutcome]) -> str:
    failed = sum(not o.passed for o in outcomes)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<testsuite name="pricing" tests="{len(outcomes)}" failures="{failed}">',
    ]
    for o in outcomes:
        out.append(f"  <testcase classname={quoteattr(o.location)} name={quoteattr(o.name)}>")
        if not o.passed:
            body = escape("\n".join(o.failures))
            out.append(
                f"    <failure message={quoteattr(o.failures[0].splitlines()[0])}>{body}</failure>"
            )
        out.append("  </testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"
