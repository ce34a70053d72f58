"""Seeing what a change costs: `pricing diff` between rulesets and `pricing quote` across usage."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ._decimal import CONTEXT
from ._errors import Diagnostic, PricingError
from ._export import export
from ._invoice import Invoice, decimal_text
from ._ruleset import Ruleset, load
from ._usage import MAX_PLACES, Usage, load_usage_file, parse_usage_text, within_limits

__all__ = ["diff", "load_git_revision", "quote", "usage_records"]

ZERO = Decimal(0)


# ------------------------------------------------------------------- inputs


def usage_records(source: str, rules: Ruleset) -> Iterator[Usage]:
    """Usage from a directory of YAML/JSON files, or from a JSON Lines file."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        if not files:
            raise PricingError(
                Diagnostic("E402", "no usage files (.yaml, .yml, .json) here", source)
            )
        for f in files:
            yield load_usage_file(str(f), rules.meters)
        return
    if not path.is_file():
        raise PricingError(Diagnostic("E402", "usage file not found", source))
    if path.suffix in (".yaml", ".yml", ".json"):
        yield load_usage_file(source, rules.meters)  # one record
        return
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            yield parse_usage_text(line, f"{source}:{n}", rules.meters)


def _git(args: Sequence[str], cwd: str | Path) -> bytes:
    """Run git and return its output as bytes; a failure is raised as CalledProcessError."""
    # --literal-pathspecs: a file name is a name, never a glob or a `:(magic)` spec.
    return subprocess.run(
        ["git", "--literal-pathspecs", *args], capture_output=True, check=True, cwd=cwd
    ).stdout


def load_git_revision(revision: str, paths: Sequence[str]) -> Ruleset:
    """The ruleset at ``paths`` as it was at a git revision."""
    if revision.startswith("-"):  # git would take it for an option
        raise PricingError(
            Diagnostic(
                "E403",
                f"`{revision}` is not a git revision",
                hint="give a revision of the repository that holds the rulesets",
            )
        )
    with tempfile.TemporaryDirectory(prefix="pricing-base-") as tmp:
        try:
            first = Path(paths[0]).resolve()
            cwd = first.parent if first.is_file() else first
            # Paths are given resolved, and git answers with names from the top
            # of the repository (--full-name), NUL-terminated and unquoted (-z),
            # so names with spaces or non-ASCII letters come back as they are.
            listing = _git(
                [
                    *("ls-tree", "-r", "-z", "--full-name", revision, "--"),
                    *(str(Path(p).resolve()) for p in paths),
                ],
                cwd,
            )
            files: list[tuple[str, str]] = []  # (name, blob id)
            for entry in listing.split(b"\0"):
                if not entry:
                    continue
                meta, _, name_bytes = entry.partition(b"\t")
                _mode, kind, blob = meta.decode("ascii").split(" ")
                name = os.fsdecode(name_bytes)
                if kind == "blob" and name.endswith(".pricing"):
                    files.append((name, blob))
            if not files:
                rels = ", ".join(paths)
                raise PricingError(
                    Diagnostic("E403", f"no .pricing files under {rels} at `{revision}`")
                )
            for name, blob in files:
                dest = Path(tmp, name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(_git(["cat-file", "blob", blob], cwd))
        except (subprocess.CalledProcessError, OSError, ValueError) as exc:
            if isinstance(exc, subprocess.CalledProcessError):
                text = os.fsdecode(exc.stderr or b"").strip() or f"git exited with {exc.returncode}"
            elif isinstance(exc, OSError) and exc.filename is not None:
                text = f"{exc.strerror}: {os.fsdecode(exc.filename)}"
            else:
                text = str(exc)
            raise PricingError(
                Diagnostic(
                    "E403",
                    f"cannot read `{revision}` from git: {text}",
                    hint="give a revision of the repository that holds the rulesets",
                )
            ) from None
        return load(*(Path(tmp, name) for name, _ in files))


# --------------------------------------------------------------------- diff


@dataclass(slots=True)
class _ContractDiff:
    currency: str = ""
    records: int = 0
    lines: dict[str, list[Decimal]] = field(default_factory=dict)  # code -> [old, new]
    errors: list[str] = field(default_factory=list)

    def add(self, side: int, inv: Invoice) -> None:
        self.currency = inv.currency
        for ln in inv.lines:
            pair = self.lines.setdefault(ln.code, [ZERO, ZERO])
            pair[side] += ln.amount
        tot = self.lines.setdefault("total", [ZERO, ZERO])
        tot[side] += inv.total


def _rate(rules: Ruleset, usage: Usage) -> Invoice | str:
    try:
        assert usage.contract is not None
        return rules.rate(
            usage.contract, rules.usage(dict(_usage_dict(usage)), source=usage.source)
        )
    except PricingError as exc:
        return "; ".join(f"{d.code} {d.message}" for d in exc.diagnostics)


def _usage_dict(u: Usage) -> Iterable[tuple[str, Any]]:
    yield from u.values.items()
    if u.period is not None:
        yield "period", u.period.to_json()
    if u.account is not None:
        yield "account", u.account


def diff(old: Ruleset, new: Ruleset, usages: Iterable[Usage]) -> dict[str, Any]:
    """Rate the same usage under two rulesets; amounts per contract and line code.

    Also the recorded policy exceptions (approved violations) that the new
    ruleset adds and removes, compared by their values.
    """
    per: dict[str, _ContractDiff] = {}
    for u in usages:
        if not u.contract:
            raise PricingError(
                Diagnostic("E404", "this usage record names no contract", u.source, key="contract")
            )
        d = per.setdefault(u.contract, _ContractDiff())
        d.records += 1
        for side, rules in enumerate((old, new)):
            result = _rate(rules, u)
            if isinstance(result, str):
                d.errors.append(f"{'old' if side == 0 else 'new'}: {u.source}: {result}")
            else:
                d.add(side, result)
    old_ids, new_ids = set(old.contracts), set(new.contracts)
    old_terms = {c["id"]: c for c in export(old)["contracts"]}
    new_terms = {c["id"]: c for c in export(new)["contracts"]}

    def strip(c: dict[str, Any]) -> Any:
        # Sources move when lines are inserted; only the values matter here.
        def clean(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items() if k not in ("source", "label")}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return clean(c)

    changed = sorted(
        cid for cid in old_ids & new_ids if strip(old_terms[cid]) != strip(new_terms[cid])
    )
    totals: dict[str, list[Decimal]] = {}
    contracts = []
    for cid in sorted(per):
        d = per[cid]
        if d.currency:
            t = totals.setdefault(d.currency, [ZERO, ZERO])
            t[0] += d.lines["total"][0]
            t[1] += d.lines["total"][1]
        contracts.append(
            {
                "contract": cid,
                "currency": d.currency,
                "records": d.records,
                "lines": [
                    {
                        "code": code,
                        "old": decimal_text(o),
                        "new": decimal_text(n),
                        "change": decimal_text(n - o),
                    }
                    for code, (o, n) in d.lines.items()
                ],
                "errors": d.errors,
            }
        )
    exceptions_old, exceptions_new = _exceptions(old), _exceptions(new)
    return {
        "contracts": contracts,
        "totals": [
            {
                "currency": cur,
                "old": decimal_text(o),
                "new": decimal_text(n),
                "change": decimal_text(n - o),
            }
            for cur, (o, n) in sorted(totals.items())
        ],
        "added": sorted(new_ids - old_ids),
        "removed": sorted(old_ids - new_ids),
        "changed_without_usage": [c for c in changed if c not in per],
        "exceptions": {
            "added": [_exception_dict(e) for e in sorted(exceptions_new - exceptions_old)],
            "removed": [_exception_dict(e) for e in sorted(exceptions_old - exceptions_new)],
        },
    }


# What identifies a recorded exception across two rulesets: its values, not
# where they are written.  Clauses move when lines are inserted, and the old
# side of `--base` is read from a temporary copy that is gone afterwards.
_EXCEPTION_FIELDS = (
    "contract",
    "term",
    "policy",
    "limit",
    "effective",
    "reference",
    "approved_limit",
)


def _exceptions(rules: Ruleset) -> set[tuple[str, ...]]:
    """The ruleset's recorded policy exceptions, as tuples of their value fields.

    A missing approved limit is kept as "" so that the tuples sort.
    """
    return {tuple(e.to_dict()[k] or "" for k in _EXCEPTION_FIELDS) for e in rules.exceptions}


def _exception_dict(values: tuple[str, ...]) -> dict[str, str | None]:
    d: dict[str, str | None] = dict(zip(_EXCEPTION_FIELDS, values, strict=True))
    d["approved_limit"] = d["approved_limit"] or None
    return d


def diff_text(result: dict[str, Any]) -> str:
    out: list[str] = []
    for c in result["contracts"]:
        out.append(
            f"{c['contract']} ({c['currency'] or '?'}, {c['records']} usage record"
            f"{'s' if c['records'] != 1 else ''})"
        )
        rows = [("line", "old", "new", "change")] + [
            (ln["code"], ln["old"], ln["new"], _signed(ln["change"]))
            for ln in c["lines"]
            if ln["code"] == "total" or ln["old"] != ln["new"]
        ]
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            out.append(f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}")
        for e in c["errors"]:
            out.append(f"  error {e}")
    if result["totals"]:
        out.append("Totals")
        for t in result["totals"]:
            out.append(
                f"  {t['currency']}  old {t['old']}  new {t['new']}  change {_signed(t['change'])}"
            )
    out.extend(_exceptions_text(result["exceptions"]))
    for label, key in (
        ("Contracts added", "added"),
        ("Contracts removed", "removed"),
        ("Changed, with no usage to rate", "changed_without_usage"),
    ):
        if result[key]:
            out.append(f"{label}: {', '.join(result[key])}")
    return "\n".join(out) + "\n"


def _exceptions_text(exceptions: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The recorded exceptions a change adds or removes, as one table.

    Rows sort by contract, term and limit, a removed row before an added one,
    so that an exception whose value or reference changed reads as its old
    row followed by its new row.
    """
    marked = [("removed", e) for e in exceptions["removed"]] + [
        ("added", e) for e in exceptions["added"]
    ]
    if not marked:
        return []
    marked.sort(
        key=lambda m: (
            m[1]["contract"],
            m[1]["term"],
            m[1]["policy"],
            m[1]["limit"],
            m[0] != "removed",
        )
    )
    rows = [("change", "contract", "term", "policy limit", "effective", "reference")]
    for change, e in marked:
        ref = e["reference"] + (f" ({e['approved_limit']})" if e["approved_limit"] else "")
        limit = f"{e['limit']} ({e['policy']})"
        rows.append((change, e["contract"], e["term"], limit, e["effective"], ref))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["Policy exceptions"]
    for r in rows:
        out.append(("  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(r))).rstrip())
    return out


def _signed(text: str) -> str:
    value = Decimal(text)
    if value == 0:
        return "no change"
    return text if value < 0 else f"+{text}"


# -------------------------------------------------------------------- quote


def parse_assignment(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"{what} must look like NAME=VALUE, not {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def quote_points(
    spec: str, step: str | None, whole: frozenset[str] = frozenset({"mau", "peak_connections"})
) -> tuple[str, list[Decimal]]:
    """``mau=0..100000`` (with an optional step) -> the meter and its values.

    The default step is a tenth of the range, at least 1 for whole-number meters.
    """
    name, rng = parse_assignment(spec, "--vary")
    try:
        lo_text, hi_text = rng.split("..", 1)
        lo, hi = Decimal(lo_text.replace("_", "")), Decimal(hi_text.replace("_", ""))
        inc = Decimal(step.replace("_", "")) if step else (hi - lo) / 10
        if not step and name in whole:
            inc = max(Decimal(1), inc.to_integral_value(rounding="ROUND_CEILING"))
        if not step and hi == lo:
            inc = Decimal(1)  # a single value: any positive step will do
    except (ValueError, InvalidOperation):
        raise ValueError(f"--vary needs a range such as mau=0..100000, not {rng!r}") from None
    if not (lo.is_finite() and hi.is_finite() and inc.is_finite()) or hi < lo or inc <= 0:
        raise ValueError("--vary needs LOW..HIGH with LOW <= HIGH, and a positive --step")
    if not all(within_limits(x) for x in (lo, hi, inc)):
        raise ValueError(
            f"--vary and --step need numbers below 10^15 with at most {MAX_PLACES} decimals"
        )
    if CONTEXT.divide(hi - lo, inc) > 100_000:
        raise ValueError("that range has more than 100000 steps; use a larger --step")
    points = []
    v = lo
    while v <= hi:
        points.append(v)
        v = CONTEXT.add(v, inc)  # exact: the default 28-digit context could stall here
    if points[-1] != hi:
        points.append(hi)
    return name, points


def quote_keys(rules: Ruleset, meter: str, fixes: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The ``--fix`` values by key, once ``--vary`` and ``--fix`` are known to name usage keys.

    Raises ValueError (bad command-line use) for a ``--vary`` key that is
    not a meter's usage key, a ``--fix`` key that is not a usage key, a key
    fixed twice, or a key both varied and fixed.
    """
    from ._suggest import suggest

    meters = [m.usage_key for m in rules.meters]
    keys = ["account", "contract", "period", *meters]
    # A meter's id (`voice`) is not its usage key (`voice_minutes`), but means it.
    by_id = {m.id: m.usage_key for m in rules.meters}

    def unknown(what: str, key: str, pool: list[str], kind: str) -> ValueError:
        guess = by_id.get(key) or suggest(key, pool)
        mean = f"; did you mean `{guess}`?" if guess else ""
        return ValueError(f"{what}: unknown usage key `{key}`{mean} ({kind}: {', '.join(pool)})")

    if meter not in meters:
        if meter in keys:
            raise ValueError(
                f"--vary: `{meter}` is not a meter; vary one of {', '.join(meters)}, "
                f"and hold `{meter}` with --fix"
            )
        raise unknown("--vary", meter, meters, "the meters' usage keys are")
    fixed: dict[str, str] = {}
    for key, value in fixes:
        if key == meter:
            raise ValueError(
                f"`--fix {key}` conflicts with `--vary {meter}`: a key is varied or fixed, not both"
            )
        if key not in keys:
            raise unknown("--fix", key, keys, "the usage keys are")
        if key in fixed:
            raise ValueError(f"--fix gives `{key}` twice")
        fixed[key] = value
    return fixed


def quote(
    rules: Ruleset,
    contracts: Sequence[str],
    meter: str,
    points: Sequence[Decimal],
    fixed: dict[str, Any],
) -> dict[str, Any]:
    """Each contract's lines and total as one meter varies."""
    out = []
    for cid in contracts:
        rows = []
        for p in points:
            usage = dict(fixed)
            usage[meter] = str(p)
            inv = rules.rate(cid, rules.usage(usage, source=f"--vary {meter}={p}"))
            rows.append(
                {
                    "value": decimal_text(p),
                    "lines": {ln.code: decimal_text(ln.amount) for ln in inv.lines},
                    "total": decimal_text(inv.total),
                }
            )
        out.append({"contract": cid, "currency": rules.contract(cid).currency, "rows": rows})
    return {"vary": meter, "fixed": {k: str(v) for k, v in fixed.items()}, "contracts": out}


def quote_text(result: dict[str, Any]) -> str:
    out = []
    for c in result["contracts"]:
        codes = list(c["rows"][0]["lines"]) if c["rows"] else []
        header = [result["vary"], *codes, "total"]
        rows = [header] + [
            [r["value"], *(r["lines"][k] for k in codes), r["total"]] for r in c["rows"]
        ]
        w = [max(len(r[i]) for r in rows) for i in range(len(header))]
        out.append(f"{c['contract']} ({c['currency']})")
        for r in rows:
            out.append("  " + "  ".join(f"{cell:>{w[i]}}" for i, cell in enumerate(r)))
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: str) -> None:
    """Draw each contract's total against the varied meter, on the same axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PricingError(
            Diagnostic(
                "E405",
                "--plot needs matplotlib",
                hint="install it with: pip install 'pricing-dsl[plot]'",
            )
        ) from None
    fig, ax = plt.subplots(figsize=(8, 5))
    currencies = set()
    for c in result["contracts"]:
        # Plotting is the one place numbers become floats: pixels, not money.
        xs = [float(r["value"]) for r in c["rows"]]
        ys = [float(r["total"]) for r in c["rows"]]
        ax.plot(xs, ys, marker=".", label=c["contract"])
        currencies.add(c["currency"])
    ax.set_xlabel(result["vary"])
    ax.set_ylabel(f"total ({', '.join(sorted(currencies))})")
    ax.set_title("Price curve")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path, format="svg")
    except OSError as exc:
        raise PricingError(
            Diagnostic("E405", f"cannot write the plot: {exc.strerror or exc}", path)
        ) from None
    finally:
        plt.close(fig)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"
