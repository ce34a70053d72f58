"""How fast the language server answers: first diagnostics, and a keystroke's re-check.

Run: python benchmarks/bench_lsp.py [--lines 5000] [--repeat 5]

1. Starts the installed `pricing lsp`, opens a file of the shipped rulesets
   (rulesets/) and times, from the `didOpen`, the first `publishDiagnostics`
   (target: under 1 s); also from starting the process.
2. Generates a ruleset of --lines lines (bench_check's catalog and contracts)
   in one file, checks it once, then changes one price (a keystroke) and
   times the re-check the server runs after it (target: under 100 ms).
   Two keystrokes: a price in one contract, and a price in the plan that
   every contract extends (so every contract's terms change).  For each:
   - before: parsing the whole file, then checking and linting everything
     (what the server did before incremental parsing and kept warnings);
   - after: the server's re-check (``Project.analysis``), split into the
     first publication (errors, and warnings of what did not change:
     ``analysis(lint=False)``) and the complete one, with the warnings of
     the changed plans and contracts, published after a longer pause.
   Reports the fastest of --repeat runs of each, and how many declarations
   were parsed and linted again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_check import CATALOG, contract

from pricing_dsl import _lsp as L
from pricing_dsl._parser import parse

ROOT = Path(__file__).resolve().parent.parent


async def first_diagnostics() -> tuple[float, float]:
    from lsprotocol import types as T
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    command = Path(sys.executable).parent / "pricing"
    cmd = str(command) if command.exists() else (shutil.which("pricing") or "pricing")
    client = LanguageClient("bench", "1")
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
        if not got.done():
            got.set_result(time.perf_counter())

    started = time.perf_counter()
    await client.start_io(cmd, "lsp")
    root = from_fs_path(str(ROOT / "rulesets"))
    await client.initialize_async(
        T.InitializeParams(
            capabilities=T.ClientCapabilities(),
            root_uri=root,
            workspace_folders=[T.WorkspaceFolder(uri=root or "", name="rulesets")],
        )
    )
    client.initialized(T.InitializedParams())
    path = ROOT / "rulesets" / "contracts" / "acme.pricing"
    opened = time.perf_counter()
    client.text_document_did_open(
        T.DidOpenTextDocumentParams(
            T.TextDocumentItem(
                uri=from_fs_path(str(path)) or "",
                language_id="pricing",
                version=1,
                text=path.read_text(),
            )
        )
    )
    arrived = await asyncio.wait_for(got, 60)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return arrived - opened, arrived - started


def _best(repeat: int, run: Callable[[int], object]) -> float:
    best = float("inf")
    for n in range(repeat):
        t = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - t)
    return best


def keystroke(lines: int, repeat: int) -> None:
    text = CATALOG
    i = 0
    while text.count("\n") < lines:
        text += contract(i)
        i += 1
    # Two places to type: a contract's minimum, and the base price of the plan
    # that every contract extends.
    anchor = "minimum 1000.00 per month\n}\n\n# Customer 7\n"
    assert anchor in text and "base 99.00" in text
    edits = {
        "a price in one contract": lambda n: text.replace(
            anchor, anchor.replace("1000.00", f"10{n + 10}.00"), 1
        ),
        "a price in the plan every contract extends": lambda n: text.replace(
            "base 99.00", f"base 9{n}.00", 1
        ),
        # Half-typed: `per` is missing, a syntax error.
        "a half-typed line in one contract": lambda n: text.replace(
            anchor, anchor.replace("1000.00 per", f"10{n + 10}.00 pe"), 1
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        big = str(Path(tmp) / "big.pricing")
        Path(big).write_text(text)
        project = L.Project(Path(tmp))
        t = time.perf_counter()
        project.analysis()
        print(f"first check of {text.count(chr(10))} lines: {time.perf_counter() - t:.3f} s")
        for label, edit in edits.items():

            def before(n: int, edit: Callable[[int], str] = edit) -> None:
                L.analyse_sources([(big, edit(n))])

            def quick(n: int, edit: Callable[[int], str] = edit) -> None:
                project.set_text(big, edit(n))
                project.analysis(lint=False)

            def complete(n: int, edit: Callable[[int], str] = edit, label: str = label) -> None:
                project.set_text(big, edit(n + repeat))  # not the text `quick` left
                an = project.analysis()
                errors = [
                    d.code for ds in an.diagnostics.values() for d in ds if d.severity == "error"
                ]
                assert len(errors) == ("half-typed" in label), errors

            def parse_only(n: int, edit: Callable[[int], str] = edit) -> None:
                parse(edit(n), big)

            t_before, t_parse = _best(repeat, before), _best(repeat, parse_only)
            t_quick, t_complete = _best(repeat, quick), _best(repeat, complete)
            parser = project._parsers[big]
            print(
                f"keystroke, {label}:\n"
                f"  before: {t_before * 1000:.0f} ms (parsing the whole file alone: "
                f"{t_parse * 1000:.0f} ms)\n"
                f"  after:  {t_quick * 1000:.0f} ms to the first publication, "
                f"{t_complete * 1000:.0f} ms to the complete one "
                f"({parser.parsed} of {parser.parsed + parser.reused} declarations parsed, "
                f"{project._lint.linted} linted again), best of {repeat}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    after_open, after_start = asyncio.run(first_diagnostics())
    print(
        f"first diagnostics of the shipped rulesets: {after_open * 1000:.0f} ms after didOpen "
        f"({after_start * 1000:.0f} ms after starting the server)"
    )
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min), on {os.cpu_count()} cores")
    keystroke(args.lines, args.repeat)


if __name__ == "__main__":
    main()
