"""`run_batch`: one usage file in, one file of line items and one error file out."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._duckdb import interrupted
from .._errors import Diagnostic, PricingError
from .._files import temp_beside as _temp_beside
from .._files import write_atomic
from .._ruleset import Ruleset
from ._progress import Progress
from ._records import file_format
from ._rows import csv_line
from ._tally import BatchError, CannotReadInPlace, Tally

__all__ = ["ENGINES", "BatchError", "BatchSummary", "BatchUsageError", "run_batch"]

ENGINES = ("duckdb", "python", "spark")
# How the summary names an engine that handed the file to the python engine.
_ENGINE_NAMES = {"duckdb": "DuckDB", "spark": "Spark"}
ERROR_COLUMNS = ("line", "code", "key", "message", "hint")


class BatchUsageError(BatchError, ValueError):
    """The run was asked for something it cannot do (a bad option, file name or format): E621.

    Still a ``ValueError``, as it always was, and a ``PricingError`` too.
    """

    code = "E621"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a batch run did.  ``totals`` sums every written line's amount per currency."""

    engine: str
    records: int
    rated: int
    failed: int
    interpreted: int
    reasons: tuple[tuple[str, int], ...]
    totals: tuple[tuple[str, Decimal], ...]
    lines: int
    errors: int
    out_path: str
    errors_path: str
    notes: tuple[str, ...]
    seconds: float

    def render(self) -> str:
        """The summary as printed on standard error."""
        out = [
            f"pricing batch: {self.records:,} record{_s(self.records)}: {self.rated:,} rated, "
            f"{self.failed:,} failed"
        ]
        if self.interpreted:
            out.append(
                f"  {self.interpreted:,} rated one by one by the interpreter rather than by SQL:"
            )
            out += [f"    {n:>9,}  {why}" for why, n in self.reasons]
        out += [f"  total {cur} {amount:,}" for cur, amount in self.totals]
        out.append(f"  {self.lines:,} line item{_s(self.lines)} written to {self.out_path}")
        if self.failed:
            out.append(f"  {self.errors:,} error{_s(self.errors)} written to {self.errors_path}")
        out += [f"  note: {n}" for n in self.notes]
        out.append(f"  engine {self.engine}, {self.seconds:.1f} s")
        return "\n".join(out) + "\n"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _format_of(path: str, what: str, allowed: tuple[str, ...]) -> str:
    fmt = file_format(path)
    if fmt is None or fmt not in allowed:
        names = ", ".join(f".{a}" for a in allowed)
        raise BatchUsageError(f"cannot tell the format of the {what} `{path}`: name it {names}")
    return fmt


def _write_errors(path: Path, fmt: str, errors: list[tuple[int, Diagnostic]]) -> None:
    ordered = sorted(enumerate(errors), key=lambda p: (p[1][0], p[0]))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            fh.write(",".join(ERROR_COLUMNS) + "\n")
        for _, (line, d) in ordered:
            if fmt == "csv":
                fh.write(csv_line((str(line), d.code, d.key, d.message, d.hint)) + "\n")
            else:
                fh.write(
                    json.dumps(
                        {
                            "line": line,
                            "code": d.code,
                            "key": d.key,
                            "message": d.message,
                            "hint": d.hint,
                        },
                        ensure_ascii=False,
                        separators=(",", ":"),
                    )
                    + "\n"
                )


def _replace_both(first: tuple[Path, Path], second: tuple[Path, Path]) -> None:
    """Rename two finished temporary files onto their targets: both, or neither.

    If the second rename fails, the first target gets its old content back
    (or is removed, if it did not exist), so the output never moves on while
    the error file stays behind.
    """
    (tmp, target), (tmp2, target2) = first, second
    backup = _temp_beside(target) if target.exists() else None
    moved = False
    try:
        if backup is not None:
            os.replace(target, backup)
            moved = True
        os.replace(tmp, target)
        os.replace(tmp2, target2)
    except BaseException:
        if moved:
            assert backup is not None
            os.replace(backup, target)
        elif backup is None and not tmp.exists():
            target.unlink()  # the new output, where there was none
        raise
    finally:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _ledger_paths(
    ledger_in: str | os.PathLike[str] | None,
    ledger_out: str | os.PathLike[str] | None,
    taken: set[Path],
) -> tuple[Path | None, Path] | None:
    """The ledger files of a run, checked before any work (None: no ledger)."""
    if ledger_out is None:
        if ledger_in is not None:
            raise BatchUsageError("--ledger-in needs --ledger-out: where to write the new ledger")
        return None
    out = Path(ledger_out)
    source = None if ledger_in is None else Path(ledger_in)
    for path in (out, source):
        if path is not None and path.resolve() in taken:
            raise BatchUsageError(
                "the ledger files must differ from the usage, output and error files"
            )
    if not out.parent.is_dir():
        raise BatchUsageError(f"the directory of `{out}` does not exist")
    if out.is_dir():
        raise BatchUsageError(f"the ledger `{out}` is a directory: give a file name")
    return source, out


def default_errors_path(out_path: str | os.PathLike[str]) -> Path:
    """``lines.csv`` -> ``lines.errors.jsonl``, in the same directory."""
    out = Path(out_path)
    return out.with_name(out.stem + ".errors.jsonl")


def run_batch(
    ruleset: Ruleset,
    usage_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    engine: str = "duckdb",
    errors_path: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    spark_master: str | None = None,
    spark_session: Any = None,
    ledger_in: str | os.PathLike[str] | None = None,
    ledger_out: str | os.PathLike[str] | None = None,
) -> BatchSummary:
    """Rate every record of a usage file into a file of line items.

    Formats follow the file names: ``.jsonl`` (or ``.ndjson``), ``.csv``,
    ``.parquet``.  Records that cannot be rated go to ``errors_path``
    (default: ``<out stem>.errors.jsonl``; ``.csv`` also works) with their
    input line number, and never stop the run.  Both files are written
    under temporary names and renamed when the run succeeds.

    ``engine`` is ``duckdb``, ``python`` or ``spark``.  The spark engine
    runs on ``spark_session`` if given, else on the active session, else on
    a session it starts on ``spark_master`` (default: spark-submit's master,
    or local).

    With ``ledger_out``, accounts whose contract has commitments or credits
    carry their balances and committed spend from ``ledger_in`` (the previous
    run's ``ledger_out``) and get their ``prepaid``, ``credit.applied`` and
    ``commit.true_up`` rows (see ``_ledger.py`` and docs/batch.md); the new
    ledger is written last, atomically, once the output is in place.

    Raises BatchUsageError for a bad request, PricingError when the usage
    file is missing or its CSV header is unusable, BatchError when the run
    cannot complete.
    """
    started = time.monotonic()
    if engine not in ENGINES:
        raise BatchUsageError(
            f"unknown engine `{engine}`: use {', '.join(ENGINES[:-1])} or {ENGINES[-1]}"
        )
    if spark_master is not None and engine != "spark":
        raise BatchUsageError(
            f"--spark-master is for --engine spark, not {engine}: give both, or neither"
        )
    usage = Path(usage_path)
    out = Path(out_path)
    errs = Path(errors_path) if errors_path is not None else default_errors_path(out)
    in_fmt = _format_of(str(usage), "usage file", ("jsonl", "csv", "parquet"))
    out_fmt = _format_of(str(out), "output file", ("jsonl", "csv", "parquet"))
    err_fmt = _format_of(str(errs), "error file", ("jsonl", "csv"))
    if not usage.exists():
        raise PricingError(Diagnostic("E402", "usage file not found", str(usage)))
    if not usage.is_file():
        raise PricingError(Diagnostic("E402", "this is not a file; give a usage file", str(usage)))
    resolved = {usage.resolve(), out.resolve(), errs.resolve()}
    if len(resolved) != 3:
        raise BatchUsageError("the usage file, the output file and the error file must differ")
    ledger = _ledger_paths(ledger_in, ledger_out, resolved)
    # Every destination is checked before the work, so a long run never
    # ends in "cannot write", and one file is never replaced without the other.
    for target, what in ((out, "output file"), (errs, "error file")):
        if not target.parent.is_dir():
            raise BatchUsageError(f"the directory of `{target}` does not exist")
        if target.is_dir():
            raise BatchUsageError(f"the {what} `{target}` is a directory: give a file name")
    tmp_out: Path | None = None
    tmp_err: Path | None = None
    progress = Progress(enabled=not quiet and sys.stderr.isatty())
    notes: list[str] = []
    used = engine
    try:
        tmp_out = _temp_beside(out)
        tmp_err = _temp_beside(errs)
        with progress:
            tally, why = _rate(
                ruleset,
                str(usage),
                in_fmt,
                str(tmp_out),
                out_fmt,
                engine,
                progress,
                spark_master=spark_master,
                spark_session=spark_session,
            )
        if why is not None:
            used = "python (fallback)"
            notes.append(
                f"not rated by {_ENGINE_NAMES[engine]} ({why}); the python engine rated {usage}"
            )
        ledger_text = None
        if ledger is not None:
            from ._ledger import apply_ledger

            ledger_text = apply_ledger(ruleset, str(tmp_out), out_fmt, tally, ledger[0])
        _write_errors(tmp_err, err_fmt, tally.errors)
        _replace_both((tmp_out, out), (tmp_err, errs))
        if ledger is not None and ledger_text is not None:
            # Last: a run that stops before this leaves the old ledger, and running
            # the month again with it gives the same output.
            write_atomic(ledger[1], ledger_text)
            notes.append(f"ledger written to {ledger[1]}")
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename).resolve() == usage.resolve():
            raise PricingError(
                Diagnostic("E402", f"cannot read the usage file: {exc.strerror}", str(usage))
            ) from None
        raise BatchError(f"cannot write the output: {exc}") from None
    finally:
        for tmp in (tmp_out, tmp_err):
            if tmp is not None and tmp.exists():
                tmp.unlink()
    return BatchSummary(
        engine=used,
        records=tally.records,
        rated=tally.rated,
        failed=tally.failed_records,
        interpreted=tally.interpreted,
        reasons=tuple(sorted(tally.reasons.items(), key=lambda p: (-p[1], p[0]))),
        totals=tuple(sorted(tally.totals.items())),
        lines=tally.lines,
        errors=len(tally.errors),
        out_path=str(out),
        errors_path=str(errs),
        notes=tuple(notes + tally.notes),
        seconds=time.monotonic() - started,
    )


def _rate(
    rules: Ruleset,
    usage: str,
    in_fmt: str,
    tmp_out: str,
    out_fmt: str,
    engine: str,
    progress: Progress,
    *,
    spark_master: str | None,
    spark_session: Any,
) -> tuple[Tally, str | None]:
    """The tally, and why the engine handed the file to the python engine (or None)."""
    try:
        from ._python import run_python

        try:
            if engine == "duckdb":
                from ._duck import run_duckdb

                return run_duckdb(rules, usage, in_fmt, tmp_out, out_fmt, progress), None
            if engine == "spark":
                from ._spark import run_spark

                tally = run_spark(
                    rules,
                    usage,
                    in_fmt,
                    tmp_out,
                    out_fmt,
                    progress,
                    master=spark_master,
                    session=spark_session,
                )
                return tally, None
        except CannotReadInPlace as exc:
            return run_python(rules, usage, in_fmt, tmp_out, out_fmt, progress), str(exc)
        return run_python(rules, usage, in_fmt, tmp_out, out_fmt, progress), None
    except RuntimeError as exc:
        # DuckDB reports Ctrl-C during a query as a RuntimeError; the CLI
        # answers a KeyboardInterrupt with `pricing: interrupted` and 130.
        if interrupted(exc):
            raise KeyboardInterrupt from None
        raise
    except ImportError as exc:
        if exc.name != "duckdb":
            raise
        hint = "; or use --engine python" if "parquet" not in (in_fmt, out_fmt) else ""
        raise BatchError(f"this needs the `duckdb` package (pip install duckdb){hint}") from None
