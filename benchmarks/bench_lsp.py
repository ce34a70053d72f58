"""How fast the language server answers: first diagnostics, and a keystroke's re-check.

Run: python benchmarks/bench_lsp.py [--lines 5000] [--repeat 5]

1. Starts the installed `pricing lsp`, opens a file of the shipped rulesets
   (rulesets/) and times, from the `didOpen`, the first `publishDiagnostics`
   (target: under 1 s); also from starting the process.
2. Generates a ruleset of --lines lines (bench_check's catalog and contracts)
   in one file, checks it once, then changes one price (a keystroke) and
   times the re-check the server runs after it (target: under 100 ms), with
   the parse of the other files reused.  Reports the fastest of --repeat runs
   and the split between parsing and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_check import CATALOG, contract

from pricing_dsl import _lsp as L

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


def keystroke(lines: int, repeat: int) -> None:
    text = CATALOG
    i = 0
    while text.count("\n") < lines:
        text += contract(i)
        i += 1
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.pricing"
        big.write_text(text)
        project = L.Project(Path(tmp))
        t = time.perf_counter()
        project.analysis()
        print(f"first check of {text.count(chr(10))} lines: {time.perf_counter() - t:.3f} s")
        best = best_parse = float("inf")
        for n in range(repeat):
            changed = text.replace("base 99.00", f"base 9{n}.00", 1)
            t = time.perf_counter()
            L.parse(changed, str(big))
            parse_only = time.perf_counter() - t
            project.set_text(str(big), changed)
            t = time.perf_counter()
            an = project.analysis()
            took = time.perf_counter() - t
            errors = [d.code for ds in an.diagnostics.values() for d in ds if d.severity == "error"]
            assert not errors, errors
            best, best_parse = min(best, took), min(best_parse, parse_only)
        print(f"keystroke re-check: {best * 1000:.0f} ms (parsing the file alone: "
              f"{best_parse * 1000:.0f} ms), best of {repeat}")  # fmt: skip


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
    keystroke(args.lines, args.repeat)


if __name__ == "__main__":
    main()
