"""The README's two set-up commands stay true: CI runs the test command verbatim."""

from __future__ import annotations

import re
import shlex

from .conftest import ROOT


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.*?)\n```", text, re.S)[:2]


def test_readme_opens_with_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```sh")
    # Nothing but a title and a sentence before the commands.
    assert len(text[:first_block].strip().splitlines()) <= 3
    run, test = commands()
    assert "pip install" in run and "pricing rate" in run
    assert "pip install" in test and "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = commands()
    assert test in (ROOT / ".ci" / "run").read_text()


def test_the_run_command_names_files_that_exist() -> None:
    run, _ = commands()
    for word in shlex.split(run.replace("&&", " ")):
        if word.startswith("rulesets/"):
            assert (ROOT / word).exists(), word
