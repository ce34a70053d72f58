"""`pricing batch`: the subcommand.  pricing_dsl._cli adds it with ``add_parser``.

Exit status: 0 when every record was rated; 1 when some records failed
(their errors are in the error file, the rest is written) or the run could
not complete; 2 for bad command-line use.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _output
from .._errors import PricingError
from .._ruleset import load
from ._run import ENGINES, BatchError, BatchUsageError, run_batch

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``batch`` to the `pricing` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "batch",
        help="rate a file of usage records for many accounts into a file of line items",
        description="Rate usage records (one per account and period, each naming its "
        "contract) into line items.  Formats follow the file names: .jsonl, .csv, .parquet.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help=".pricing files, or directories searched for them"
    )
    p.add_argument(
        "--usage", required=True, metavar="FILE", help="usage records: .jsonl, .csv or .parquet"
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="line items to write: .jsonl, .csv or .parquet"
    )
    p.add_argument(
        "--errors",
        metavar="FILE",
        help="records that could not be rated, with their line numbers (.jsonl or .csv; "
        "default: the output's name with .errors.jsonl)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="duckdb",
        help="duckdb: SQL compiled from the contracts (default); python: record by record; "
        "spark: Spark reads the file and its executors rate it (pip install 'pricing-dsl[spark]')",
    )
    p.add_argument(
        "--spark-master",
        metavar="URL",
        help="with --engine spark: the Spark master to run on "
        "(default: the active session, spark-submit's master, or local)",
    )
    p.add_argument(
        "--ledger-in",
        metavar="FILE",
        help="balances and committed spend per account, "
        "as the previous run's --ledger-out wrote them",
    )
    p.add_argument(
        "--ledger-out",
        metavar="FILE",
        help="carry commitments and credits: write the accounts' balances after this run here "
        "(JSON; see docs/batch.md)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no summary (a failed run still says so in one line)",
    )
    p.set_defaults(func=run, subparser=p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``pricing batch``; returns the exit status."""
    try:
        # A billing run starts with the catalog: read it back checked while unchanged.
        rules = load(*args.paths, cache=True)
        summary = run_batch(
            rules,
            args.usage,
            args.out,
            engine=args.engine,
            errors_path=args.errors,
            quiet=args.quiet,
            spark_master=args.spark_master,
            ledger_in=args.ledger_in,
            ledger_out=args.ledger_out,
        )
    except BatchUsageError as exc:
        parser = getattr(args, "subparser", None)
        if parser is not None:
            parser.print_usage(sys.stderr)
        sys.stderr.write(f"pricing: error: {exc}\n")
        return 2
    except BatchError as exc:
        sys.stderr.write(f"pricing batch: error: {exc}\n")
        return 1
    except PricingError as exc:
        sys.stderr.write(_output.diagnostics_text(exc.diagnostics))
        return 1
    if not args.quiet:
        sys.stderr.write(summary.render())
    elif summary.failed:
        sys.stderr.write(
            f"pricing batch: {summary.failed:,} of {summary.records:,} records failed; "
            f"see {summary.errors_path}\n"
        )
    return 1 if summary.failed else 0
