"""The README stays true.

Its two set-up commands: CI runs the test command verbatim.  Its tour: the
contract it prints is the shipped file, and rated it gives the invoice printed
under it, as worked out by hand.  Its Python API snippet: every value it shows
in a comment is what the code returns.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shlex
import subprocess
import tokenize
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()

# The tour's contract on the example usage (mau 26250, peak_connections 2140,
# voice_minutes 182000, video_minutes 96500.5; period 2026-08, a whole month
# inside the term, before the 2027 price change), worked out by hand:
TOUR_CONTRACT = "umbrella"
TOUR_AMOUNTS = {
    "base": Decimal("529.00"),
    "mau_overage": Decimal("112.50"),  # (26250 - 25000) x 0.09
    "concurrency_overage": Decimal("140.00"),  # 2140 - floor(25000 x 8%) = 140, x 1.00
    "voice": Decimal("182.00"),  # 182000 x 0.001
    "video": Decimal("289.50"),  # 96500.5 x 0.003 = 289.5015; the `when` needs 1,000,000
    "addon.hipaa": Decimal("500.00"),
    "addon.e2e_encryption": Decimal("250.00"),  # the contract's price, not the catalog's 299
    "discount.video": Decimal("-28.95"),  # 10% of 289.50
    "discount.voice": Decimal("-18.20"),  # 10% of 182.00
    "cap.concurrency_overage": Decimal("0.00"),  # 140.00 is under the 2,000.00 cap
    # Lines so far: 2003.00 - 28.95 - 18.20 = 1955.85, under the 3,000.00 minimum.
    "minimum": Decimal("1044.15"),  # 3000.00 - 1955.85
}
TOUR_TOTAL = Decimal("3000.00")

# The API snippet's acme on {mau 26250, peak_connections 2140}, by hand:
# base 529.00 + MAU overage 1250 x 0.09 = 112.50 + concurrency overage
# (2140 - floor(25000 x 8%)) x 1.00 = 140.00 + add-ons 500.00 + 250.00.
API_TOTAL = Decimal("1531.50")


def commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", README, re.S)[:2]


def plain_blocks() -> list[tuple[str, str]]:
    """Each code block with no language tag, with the paragraph just before it."""
    return [
        (m.group(1), m.group(2))
        for m in re.finditer(r"([^\n]+(?:\n[^\n]+)*)\n\n```\n(.*?)```", README, re.S)
    ]


def pricing_blocks() -> list[tuple[str, str]]:
    """The blocks of pricing language (every plain block but printed invoices)."""
    return [(p, b) for p, b in plain_blocks() if not b.startswith("Invoice for ")]


def invoice_blocks() -> dict[str, tuple[str, str]]:
    """Printed invoices by contract id, each with the command the paragraph names."""
    found = {}
    for paragraph, block in plain_blocks():
        if block.startswith("Invoice for "):
            contract = re.match(r"Invoice for .*\((\w+)\)\n", block)
            command = re.search(r"`(pricing rate [^`]+)`", paragraph)
            assert contract and command, block
            found[contract.group(1)] = (command.group(1), block.rstrip("\n"))
    return found


def printed_amounts(block: str) -> tuple[dict[str, Decimal], Decimal]:
    """The Amount column of a printed invoice, and its total."""
    amounts = {}
    for line in block.splitlines():
        row = re.match(r"  ([a-z][\w.]*)\s.*?\s(-?[\d,]+\.\d\d)$", line)
        if row:
            amounts[row.group(1)] = Decimal(row.group(2).replace(",", ""))
    total = re.search(r"^  Total\s+[A-Z]{3} ([\d,]+\.\d\d)$", block, re.M)
    assert total, block
    return amounts, Decimal(total.group(1).replace(",", ""))


def test_readme_opens_with_two_commands() -> None:
    first_block = README.index("```sh")
    # Nothing but a title and a sentence before the commands.
    assert len(README[:first_block].strip().splitlines()) <= 3
    run, test = commands()
    assert "pip install" in run and "pricing rate" in run
    assert "pip install" in test and "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = commands()
    # Any failure in the chain must end the run: `set -e` alone ignores all but
    # the chain's last command, and the linters run after it.
    assert f"\n{test} || exit 1\n" in (ROOT / ".ci" / "run").read_text()


def test_the_run_command_names_files_that_exist() -> None:
    run, _ = commands()
    for word in shlex.split(run.replace("&&", " ")):
        if word.startswith("rulesets/"):
            assert (ROOT / word).exists(), word


def test_the_tour_shows_shipped_files() -> None:
    """A block that names a file is that file; "an excerpt" keeps the file's lines in order."""
    named = 0
    for paragraph, block in pricing_blocks():
        path = re.search(r"`(rulesets/[\w/.-]+\.pricing)`", paragraph)
        if path is None:
            continue
        named += 1
        shipped = (ROOT / path.group(1)).read_text()
        if "an excerpt" in paragraph:
            lines = iter(shipped.splitlines())
            for line in block.splitlines():
                assert line in lines, f"{line!r} is not in {path.group(1)} (in this order)"
        else:
            assert block == shipped, path.group(1)
    assert named == len(pricing_blocks()) == 2


def test_the_tour_contract_is_worked_out_by_hand() -> None:
    amounts, total = printed_amounts(invoice_blocks()[TOUR_CONTRACT][1])
    assert amounts == TOUR_AMOUNTS
    assert total == TOUR_TOTAL == sum(TOUR_AMOUNTS.values())


def test_every_contract_in_the_readme_rates_as_printed(tmp_path: Path, pricing_cmd: str) -> None:
    """Each printed contract, run by its printed command: on the shipped rulesets and
    on the README's own text, the output is the invoice printed under it."""
    source = "\n".join(block for _, block in pricing_blocks())
    contracts = re.findall(r"^contract (\w+)", source, re.M)
    invoices = invoice_blocks()
    assert contracts == [TOUR_CONTRACT] and set(invoices) == set(contracts)
    own_text = tmp_path / "readme.pricing"
    own_text.write_text(source)
    for contract in contracts:
        command, printed = invoices[contract]
        args = shlex.split(command)
        assert args[:3] == ["pricing", "rate", "rulesets/"], command
        for rules in ("rulesets/", str(own_text)):
            result = subprocess.run(
                [pricing_cmd, "rate", rules, *args[3:]],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.rstrip("\n") == printed, rules


def _comments(code: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {t.start[0]: t.string[1:].strip() for t in tokens if t.type == tokenize.COMMENT}


def test_the_python_api_snippet_shows_what_it_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the snippet statement by statement; where an expression's comment is a
    Python value (``...`` eliding the rest), the expression's repr must match it."""
    (code,) = re.findall(r"```python\n(.*?)```", README, re.S)
    monkeypatch.chdir(ROOT)
    comments = _comments(code)
    namespace: dict[str, Any] = {}
    shown: dict[str, str] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for stmt in ast.parse(code).body:
            if not isinstance(stmt, ast.Expr):
                exec(compile(ast.Module([stmt], []), "README.md", "exec"), namespace)
                continue
            value = eval(compile(ast.Expression(stmt.value), "README.md", "eval"), namespace)
            comment = comments.get(stmt.lineno, "")
            expression = ast.get_source_segment(code, stmt.value) or ""
            if "matches schemas/invoice.schema.json" in comment:
                schema = json.loads((ROOT / "schemas" / "invoice.schema.json").read_text())
                jsonschema.validate(json.loads(json.dumps(value)), schema)
                shown[expression] = comment
                continue
            try:
                ast.parse(comment, mode="eval")
            except SyntaxError:
                continue  # prose, not a value
            head, elided, _ = comment.partition("...")
            if elided:
                assert repr(value).startswith(head), (expression, comment)
            else:
                assert repr(value) == comment, (expression, comment)
            shown[expression] = comment
    assert set(shown) == {"invoice.total", "invoice.amounts", "invoice.to_dict()"}
    assert namespace["invoice"].total == API_TOTAL
    # The error example prints rendered diagnostics, not a traceback.
    assert printed.getvalue().count("p.pricing:1:") == 2


def test_ci_also_lints_and_type_checks() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ".venv/bin/pip install -q '.[dev]'" in ci
    for tool in ("ruff check", "ruff format --check"):
        assert f".venv/bin/{tool} pricing_dsl tests benchmarks" in ci
    assert ".venv/bin/mypy" in ci
