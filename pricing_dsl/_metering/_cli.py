"""`pricing meter`: usage records from raw event logs, for `pricing rate` or a batch."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from .._errors import Diagnostic, PricingError
from .._output import diagnostics_text
from .._progress import ProgressLine
from . import ENGINES
from ._inputs import _URI, resolve
from ._options import KINDS, MeterOptions, parse_duration, parse_map

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Compute one usage record per account (mau, peak_connections, voice_minutes,
video_minutes) for one billing cycle from raw event files, as JSON Lines or
as a directory of YAML usage files.  Definitions and column names:
docs/metering.md.
"""


def add_parser(subparsers: Any) -> None:
    """Add the `meter` command to the `pricing` command's subparsers."""
    p = subparsers.add_parser(
        "meter",
        help="compute usage (MAU, peak connections, minutes) from raw event logs",
        description=_DESCRIPTION,
    )
    events = p.add_argument_group("events (give at least one kind)")
    for kind, columns in (
        ("logins", "account, user_id, timestamp"),
        ("connections", "account, connection_id, connected_at, disconnected_at"),
        ("calls", "account, call_id, kind, started_at, ended_at, participants"),
    ):
        events.add_argument(
            f"--{kind}",
            nargs="+",
            action="extend",
            metavar="PATH",
            help=f"{kind} files, directories or globs ({columns})",
        )
    events.add_argument(
        "--input-format",
        choices=("parquet", "csv", "jsonl"),
        help="the format of every input (default: from each file's name)",
    )
    events.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=NAME",
        help="read COLUMN from NAME in the files, e.g. user_id=uid or calls.kind=type; repeatable",
    )
    events.add_argument("--strict", action="store_true", help="fail on any bad row")

    cycle = p.add_argument_group("cycle")
    cycle.add_argument(
        "--period",
        required=True,
        metavar="PERIOD",
        help="a month (2026-08) or START..END, both days included (2026-08-01..2026-08-15)",
    )
    cycle.add_argument(
        "--tz", default="UTC", help="the time zone of the cycle's days (default: UTC)"
    )

    rules = p.add_argument_group("definitions")
    rules.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        help="close a connection with no disconnect after this long (30m, 2h, 1d; "
        "default: it stays open to the end of the cycle)",
    )
    rules.add_argument(
        "--call-rounding",
        choices=("second", "minute"),
        default="second",
        help="round each call up to the whole second (default) or minute",
    )
    rules.add_argument(
        "--minutes-per",
        choices=("call", "participant"),
        default="call",
        help="count minutes once per call (default) or once per participant",
    )

    out = p.add_argument_group("output and engine")
    out.add_argument(
        "--out",
        default="-",
        metavar="PATH",
        help="a .jsonl file (default: - for standard output), or a directory for YAML files",
    )
    out.add_argument(
        "--out-format",
        choices=("jsonl", "yaml"),
        help="jsonl (one file) or yaml (one file per account in a directory); default: from --out",
    )
    out.add_argument(
        "--engine",
        choices=ENGINES,
        default="duckdb",
        help="duckdb (embedded, the default) or spark (pip install 'pricing-dsl[spark]')",
    )
    out.add_argument(
        "--spark-master",
        metavar="URL",
        help="the Spark master to run on (default: local, or spark-submit's)",
    )
    out.add_argument(
        "--memory-limit", metavar="SIZE", help="DuckDB's memory limit, e.g. 4GB (default: DuckDB's)"
    )
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on standard error (default: when it is a terminal)",
    )
    out.add_argument(
        "-q", "--quiet", action="store_true", help="print no summary, only warnings and errors"
    )
    p.set_defaults(func=run, subparser=p)


def _out_format(path: str, chosen: str | None) -> str:
    if chosen is not None:
        return chosen
    if path == "-" or path.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return "yaml"
    raise PricingError(
        Diagnostic(
            "E611",
            "cannot tell whether to write JSON Lines or YAML files here",
            path,
            key="out",
            hint="name a .jsonl file, end a directory with /, or give --out-format",
        )
    )


def _check_out(path: str, fmt: str) -> None:
    # Checked before the run, so a long run never ends in "cannot write".
    if fmt == "jsonl":
        if path == "-":
            return
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path) or not os.path.isdir(parent):
            why = (
                "is a directory" if os.path.isdir(path) else "is in a directory that does not exist"
            )
            raise PricingError(Diagnostic("E611", f"the output file {why}", path, key="out"))
    elif path == "-" or os.path.isfile(path):
        raise PricingError(
            Diagnostic(
                "E611",
                "YAML output is one file per account; give a directory",
                path,
                key="out",
            )
        )


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _check_not_input(path: str, fmt: str, args: argparse.Namespace, input_format: Any) -> None:
    """E611 when the output would overwrite an input file (through any name for it)."""
    if path == "-":
        return
    for kind in KINDS:
        paths = getattr(args, kind)
        if not paths:
            continue
        for f in resolve(kind, paths, input_format).files:
            if _URI.match(f):
                continue
            if fmt == "jsonl":
                clash = _same_file(path, f)
                what = f"the output would overwrite the {kind} file {f}"
            else:
                # One <account>.yaml per account goes into the directory.
                clash = f.lower().endswith(".yaml") and _same_file(path, os.path.dirname(f) or ".")
                what = f"the output directory holds the {kind} file {f}, which it could overwrite"
            if clash:
                raise PricingError(
                    Diagnostic(
                        "E611",
                        what,
                        path,
                        key="out",
                        hint="write the usage records somewhere else",
                    )
                )


class _Progress(ProgressLine):
    """Progress on standard error: one rewritten line on a terminal, else a line per 10%."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream, "metering")


def run(args: argparse.Namespace) -> int:
    """Run `pricing meter`; 0 on success, 1 on errors (diagnostics on standard error)."""
    from . import meter

    progress: _Progress | None = None
    try:
        options = MeterOptions(
            tz=args.tz,
            idle_timeout=parse_duration(args.idle_timeout) if args.idle_timeout else None,
            call_rounding=args.call_rounding,
            minutes_per=args.minutes_per,
            column_map=parse_map(args.map),
            strict=args.strict,
            input_format=args.input_format,
            spark_master=args.spark_master,
            memory_limit=args.memory_limit,
        )
        fmt = _out_format(args.out, args.out_format)
        _check_out(args.out, fmt)
        _check_not_input(args.out, fmt, args, options.input_format)
        show = args.progress if args.progress is not None else sys.stderr.isatty()
        progress = _Progress(sys.stderr) if show else None
        try:
            result = meter(
                args.logins,
                args.connections,
                args.calls,
                period=args.period,
                engine=args.engine,
                options=options,
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.finish()
        sources = {
            kind: ", ".join(getattr(args, kind))
            for kind in ("logins", "connections", "calls")
            if getattr(args, kind)
        }
        sys.stderr.write(diagnostics_text(result.diagnostics(sources)))
        written = result.write(args.out, fmt)
    except PricingError as exc:
        sys.stderr.write(diagnostics_text(exc.diagnostics))
        return 1
    if not args.quiet:
        sys.stderr.write(result.summary())
        if fmt == "yaml":
            n = len(written)
            sys.stderr.write(f"  wrote {n} usage file{'s' if n != 1 else ''} to {args.out}\n")
        elif args.out != "-":
            sys.stderr.write(f"  wrote {len(result.records)} records to {args.out}\n")
    return 0
