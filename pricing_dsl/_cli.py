"""The `pricing` command.  Thin: it parses arguments and calls the package."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from importlib import resources
from typing import NoReturn, TextIO

from . import _output
from ._errors import Diagnostic, PricingError
from ._ruleset import Ruleset, check_paths, load
from ._usage import load_usage_file

__all__ = ["main"]


_SCHEMAS = ("usage", "invoice", "export", "diagnostics", "approvals", "diff", "statement", "ledger")


class _Parser(argparse.ArgumentParser):
    """argparse, but with the project's wording and exit code 2 for bad use."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"pricing: error: {message}\n")


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help=".pricing files, or directories searched for them"
    )


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `pricing` parser; `meter` and `batch` are added unless ``command`` is another one."""
    parser = _Parser(
        prog="pricing",
        description="Check pricing rulesets and rate usage into exact invoice lines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check", help="check rulesets and report every error")
    _add_paths(p)
    p.add_argument("--format", choices=("text", "json", "github"), default="text")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument(
        "--approvals",
        action="store_true",
        help="also list every policy exception that an `approved` clause records",
    )
    p.set_defaults(func=_cmd_check, subparser=p)

    p = sub.add_parser("rate", help="rate one period of usage for a contract")
    _add_paths(p)
    p.add_argument("--contract", help="plan or contract id (default: `contract` in the usage)")
    p.add_argument(
        "--usage",
        required=True,
        metavar="FILE",
        help="usage file (YAML or JSON), or - for standard input",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--explain", action="store_true", help="show how each line was derived")
    p.set_defaults(func=_cmd_rate, subparser=p)

    p = sub.add_parser(
        "invoice",
        help="the invoice issued on a date: fees in advance, "
        "usage of the previous month in arrears",
    )
    _add_paths(p)
    p.add_argument("--contract", help="plan or contract id (default: `contract` in the usage)")
    p.add_argument(
        "--date",
        required=True,
        type=_iso_date,
        metavar="YYYY-MM-01",
        help="issue date, the first day of a month",
    )
    p.add_argument(
        "--usage", metavar="FILE", help="usage of the month before the issue date (default: none)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--explain", action="store_true", help="show how each line was derived")
    p.set_defaults(func=_cmd_invoice, subparser=p)

    p = sub.add_parser(
        "statement",
        help="every invoice of a contract's term, with its commitments, credits and ledger",
    )
    _add_paths(p)
    p.add_argument("--contract", required=True, metavar="ID", help="plan or contract id")
    p.add_argument(
        "--usage",
        required=True,
        metavar="DIR_OR_JSONL",
        help="the usage by month: a directory of usage files, or a JSON Lines file "
        "(records naming another contract are left out)",
    )
    p.add_argument(
        "--through", metavar="YYYY-MM", help="the month of the last invoice (default: the last)"
    )
    p.add_argument(
        "--account",
        metavar="ID",
        help="the account whose statement it is, when the usage holds several "
        "(records of other accounts are left out)",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--explain", action="store_true", help="show how each line was derived")
    p.set_defaults(func=_cmd_statement, subparser=p)

    p = sub.add_parser("test", help="run the `test` blocks of rulesets")
    _add_paths(p)
    p.add_argument(
        "--filter", metavar="PATTERN", help="only tests whose name matches (a glob, or a substring)"
    )
    p.add_argument("--format", choices=("text", "json", "junit"), default="text")
    p.add_argument(
        "--coverage", action="store_true", help="also list the clauses no test exercised"
    )
    p.set_defaults(func=_cmd_test, subparser=p)

    p = sub.add_parser("fmt", help="rewrite rulesets in the canonical layout")
    _add_paths(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file would change"
    )
    mode.add_argument("--diff", action="store_true", help="print the changes, change nothing")
    p.set_defaults(func=_cmd_fmt, subparser=p)

    p = sub.add_parser("diff", help="rate the same usage under two rulesets and compare")
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="OLD_PATH NEW_PATH, or with --base just the path(s) to compare",
    )
    p.add_argument("--base", metavar="REV", help="take the old ruleset from this git revision")
    p.add_argument(
        "--usage",
        required=True,
        metavar="DIR_OR_JSONL",
        help="a directory of usage files, or a JSON Lines file of usage records",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_diff, subparser=p)

    p = sub.add_parser("quote", help="lines and total of contracts as one meter varies")
    _add_paths(p)
    p.add_argument(
        "--contract",
        required=True,
        action="append",
        metavar="ID",
        help="plan or contract (repeat to compare several)",
    )
    p.add_argument("--vary", required=True, metavar="METER=LOW..HIGH")
    p.add_argument("--step", metavar="N", help="step between values (default: a tenth)")
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hold another usage key at a value (repeatable), e.g. period=2026-08",
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--plot", metavar="FILE.svg", help="draw the totals (needs matplotlib)")
    p.set_defaults(func=_cmd_quote, subparser=p)

    p = sub.add_parser("export", help="print the fully resolved terms of contracts as JSON")
    _add_paths(p)
    p.add_argument("--contract", help="only this plan or contract")
    p.set_defaults(func=_cmd_export, subparser=p)

    p = sub.add_parser("schema", help="print a JSON Schema")
    # Checked by _cmd_schema rather than by `choices`, whose message names
    # the argument by its internal name (`argument which: invalid choice`).
    p.add_argument("which", metavar="|".join(_SCHEMAS), help="the schema to print")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="for `usage`: rulesets whose custom meters to include",
    )
    p.set_defaults(func=_cmd_schema, subparser=p)

    p = sub.add_parser(
        "lsp", help="run the language server on standard input and output (for editors)"
    )
    p.set_defaults(func=_cmd_lsp, subparser=p)

    p = sub.add_parser(
        "serve", help="serve rating as an HTTP JSON API, with hot reload and a playground page"
    )
    _add_paths(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="require `Authorization: Bearer` with this file's token",
    )
    p.add_argument(
        "--max-body", type=int, default=1_000_000, metavar="BYTES", help="request size limit"
    )
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="time limit of one /v1/rate/batch request",
    )
    p.add_argument(
        "--poll-seconds",
        type=float,
        default=1.0,
        metavar="S",
        help="how often to look for edited files",
    )
    p.set_defaults(func=_cmd_serve, subparser=p)

    if command in sub.choices:
        # Rating one invoice should start fast: the metering and batch
        # packages are imported only when they may be asked for.
        return parser
    # Subcommands that live in their own subpackages, each with add_parser().
    import importlib

    for module in ("pricing_dsl._metering._cli", "pricing_dsl._batch._cli"):
        try:
            extra = importlib.import_module(module)
        except ImportError:  # pragma: no cover - both ship with the package
            continue
        extra.add_parser(sub)
    return parser


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _report(diags: Sequence[Diagnostic], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(_output.diagnostics_json(diags))
    elif fmt == "github":
        out.write(_output.diagnostics_github(diags))
    else:
        out.write(_output.diagnostics_text(diags))


def _cmd_check(args: argparse.Namespace) -> int:
    ruleset, diags = check_paths(*args.paths, warnings=True)
    errors = [d for d in diags if d.severity == "error" or args.strict]
    if args.approvals:
        return _check_approvals(args, ruleset, diags, bool(errors))
    _report(diags, args.format, sys.stdout if args.format != "text" else sys.stderr)
    if errors:
        if args.format == "text":
            n = len(errors)
            sys.stderr.write(f"{n} error{'s' if n != 1 else ''}\n")
        return 1
    if args.format == "text" and ruleset is not None:
        n = len(ruleset.contracts)
        sys.stderr.write(
            f"ok: {len(ruleset.files)} file{'s' if len(ruleset.files) != 1 else ''}, "
            f"{n} plan{'s' if n != 1 else ''} or contract{'s' if n != 1 else ''}\n"
        )
    return 0


def _check_approvals(
    args: argparse.Namespace, ruleset: Ruleset | None, diags: Sequence[Diagnostic], failed: bool
) -> int:
    """`pricing check --approvals`: the diagnostics, then the audit list of recorded exceptions."""
    exceptions = () if ruleset is None or failed else ruleset.exceptions
    if args.format == "json":
        # One document, so the list and the findings cannot be mixed up.
        sys.stdout.write(
            _output.dumps(
                {
                    "ok": not failed,
                    "exceptions": [e.to_dict() for e in exceptions],
                    "diagnostics": [d.to_dict() for d in diags],
                }
            )
        )
        return 1 if failed else 0
    _report(diags, args.format, sys.stdout if args.format != "text" else sys.stderr)
    if failed:
        if args.format == "text":
            n = sum(1 for d in diags if d.severity == "error" or args.strict)
            sys.stderr.write(f"{n} error{'s' if n != 1 else ''}; no list of approvals\n")
        return 1
    if args.format == "github":
        sys.stdout.write(_output.exceptions_github(exceptions))
    else:
        sys.stdout.write(_output.exceptions_text(exceptions))
    return 0


def _contract_id(args: argparse.Namespace, usage_contract: str | None) -> str:
    cid = args.contract or usage_contract
    if not cid:
        raise _UsageError(
            "no contract given: use --contract ID, or put `contract: ID` in the usage"
        )
    return str(cid)


class _UsageError(Exception):
    """Bad command-line use (exit 2)."""


def _cmd_rate(args: argparse.Namespace) -> int:
    rules = load(*args.paths)
    usage = load_usage_file(args.usage, rules.meters)
    inv = rules.rate(_contract_id(args, usage.contract), usage)
    _print_invoice(inv, args)
    return 0


def _cmd_invoice(args: argparse.Namespace) -> int:
    rules = load(*args.paths)
    usage = (
        load_usage_file(args.usage, rules.meters)
        if args.usage
        else rules.usage({}, source="<no usage>")
    )
    inv = rules.invoice(_contract_id(args, usage.contract), args.date, usage)
    _print_invoice(inv, args)
    return 0


def _cmd_statement(args: argparse.Namespace) -> int:
    from ._statement import statement_text
    from ._whatif import usage_records

    rules = load(*args.paths)
    rules.contract(args.contract)  # an unknown id is named before any usage is read
    records = [u for u in usage_records(args.usage, rules) if u.contract in (None, args.contract)]
    if args.account is not None:
        records = [u for u in records if u.account == args.account]
        if not records:
            raise _UsageError(
                f"no usage record of `{args.contract}` names the account `{args.account}`"
            )
    st = rules.statement(args.contract, records, through=args.through)
    if args.format == "json":
        sys.stdout.write(_output.dumps(st.to_dict(explain=True)))
    else:
        sys.stdout.write(statement_text(st, explain=args.explain))
    return 0


def _print_invoice(inv: object, args: argparse.Namespace) -> None:
    from ._invoice import Invoice

    assert isinstance(inv, Invoice)
    if args.format == "json":
        sys.stdout.write(_output.invoice_json(inv, explain=True))
    else:
        sys.stdout.write(_output.invoice_text(inv, explain=args.explain))


def _cmd_test(args: argparse.Namespace) -> int:
    from . import _testing

    rules = load(*args.paths)
    outcomes = _testing.run_tests(rules, args.filter)
    render = {
        "text": _testing.format_text,
        "json": _testing.format_json,
        "junit": _testing.format_junit,
    }[args.format]
    sys.stdout.write(render(outcomes))
    if args.coverage:
        missed = _testing.coverage(rules, outcomes)
        out = sys.stdout if args.format == "text" else sys.stderr
        out.write(
            f"coverage: {len(missed)} clause{'s' if len(missed) != 1 else ''} "
            "not exercised by any test\n"
        )
        for item in missed:
            out.write(f"  {item}\n")
    if not outcomes:
        sys.stderr.write("no tests matched\n" if args.filter else "no tests found\n")
        return 1 if args.filter else 0
    return 0 if all(o.passed for o in outcomes) else 1


def _cmd_fmt(args: argparse.Namespace) -> int:
    import difflib

    from ._files import write_atomic
    from ._format import format_text
    from ._ruleset import _expand, _read

    changed = []
    errors: list[Diagnostic] = []
    for path in _expand(args.paths):
        text = _read(path)
        try:
            new = format_text(text, str(path))
        except PricingError as exc:
            errors.extend(exc.diagnostics)
            continue
        if new == text:
            continue
        changed.append(str(path))
        if args.check:
            sys.stdout.write(f"would reformat {path}\n")
        elif args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    f"{path}",
                    f"{path} (formatted)",
                )
            )
        else:
            write_atomic(path, new)  # a crash never leaves half a file
            sys.stderr.write(f"reformatted {path}\n")
    if errors:
        from ._errors import attach_source

        sources = {d.path: _read(__import__("pathlib").Path(d.path)) for d in errors if d.path}
        sys.stderr.write(_output.diagnostics_text(attach_source(errors, sources)))
        return 1
    return 1 if changed and (args.check or args.diff) else 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from . import _whatif

    if args.base:
        old = _whatif.load_git_revision(args.base, args.paths)
        new = load(*args.paths)
    else:
        if len(args.paths) != 2:
            raise _UsageError("give OLD_PATH and NEW_PATH, or --base REV and the path(s)")
        old, new = load(args.paths[0]), load(args.paths[1])
    result = _whatif.diff(old, new, _whatif.usage_records(args.usage, new))
    sys.stdout.write(_whatif.dumps(result) if args.format == "json" else _whatif.diff_text(result))
    return 0


def _cmd_quote(args: argparse.Namespace) -> int:
    from . import _whatif

    try:
        meter, points = _whatif.quote_points(args.vary, args.step)
        fixes = [_whatif.parse_assignment(f, "--fix") for f in args.fix]
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    rules = load(*args.paths)
    try:
        fixed = _whatif.quote_keys(rules, meter, fixes)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    result = _whatif.quote(rules, args.contract, meter, points, fixed)
    if args.plot:
        _whatif.plot(result, args.plot)
    sys.stdout.write(_whatif.dumps(result) if args.format == "json" else _whatif.quote_text(result))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ._export import export

    rules = load(*args.paths)
    sys.stdout.write(_output.dumps(export(rules, args.contract)))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.which not in _SCHEMAS:
        from ._suggest import did_you_mean

        names = ", ".join(_SCHEMAS)
        guess = did_you_mean(args.which, _SCHEMAS)
        raise _UsageError(
            f"unknown schema `{args.which}`{guess} (choose one of {names})"
            if guess
            else f"unknown schema `{args.which}`; choose one of {names}"
        )
    if args.which == "usage" and args.paths:
        rules: Ruleset = load(*args.paths)
        sys.stdout.write(_output.dumps(rules.usage_schema()))
        return 0
    text = (
        resources.files("pricing_dsl")
        .joinpath(f"schemas/{args.which}.schema.json")
        .read_text("utf-8")
    )
    sys.stdout.write(_output.dumps(json.loads(text)))
    return 0


def _cmd_lsp(args: argparse.Namespace) -> int:
    # pygls is optional (the `lsp` extra): imported only when the server runs.
    try:
        from ._lsp_server import serve
    except ImportError as exc:
        sys.stderr.write(
            f"pricing: error: the language server needs pygls ({exc}); "
            "install it with: pip install 'pricing-dsl[lsp]'\n"
        )
        return 2
    return serve()


def _cmd_serve(args: argparse.Namespace) -> int:
    # Starlette and uvicorn are optional (the `serve` extra): imported only here.
    try:
        from ._serve import serve
    except ImportError as exc:
        sys.stderr.write(
            f"pricing: error: `pricing serve` needs Starlette and uvicorn ({exc}); "
            "install them with: pip install 'pricing-dsl[serve]'\n"
        )
        return 2
    return serve(
        args.paths,
        host=args.host,
        port=args.port,
        token_file=args.token_file,
        max_body=args.max_body,
        batch_seconds=args.batch_seconds,
        poll_seconds=args.poll_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `pricing` command; returns the exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    # The top-level parser takes no options but --help: a first word that is
    # not an option names the command.  Anything else (`-h rate`, `--`) gets
    # the whole parser, so help and errors list every command.
    first = words[0] if words and not words[0].startswith("-") else None
    parser = _build_parser(first)
    args = parser.parse_args(words)
    try:
        code: int = args.func(args)
        return code
    except PricingError as exc:
        sys.stderr.write(_output.diagnostics_text(exc.diagnostics))
        return 1
    except _UsageError as exc:
        getattr(args, "subparser", parser).print_usage(sys.stderr)
        sys.stderr.write(f"pricing: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("pricing: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away; that is not an error of ours.
        return 0


def entry() -> None:  # pragma: no cover - exercised through the installed script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
