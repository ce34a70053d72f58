"""`pricing batch --ledger-in/--ledger-out`: commitments and credits across monthly runs.

A batch run rates each record as one period (``Ruleset.rate``), with no
memory.  For accounts whose contract has ``commit``, ``prepaid`` or
``credit``, this post-pass reads the rated line items back, walks each
account's months in order with its balances and its contract year's
committed spend from the previous run's ledger, adds the ``prepaid``,
``credit.applied`` and ``commit.true_up`` rows after each month's lines, and
returns the new ledger.  The balances move through the statements' own
:class:`~pricing_dsl._statement.Balances`, in the same order, so a month's
credit and true-up are those of the statement whenever the rated month and
the issued invoice agree (docs/batch.md says when).

The ledger is a JSON document, ``schemas/ledger.schema.json``.  Each account
records the last month applied; a run that would apply that month again,
or skip one, is refused before anything is written.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from .._decimal import CONTEXT, EXACT, ROUNDING
from .._errors import Diagnostic, PricingError
from .._invoice import decimal_text
from .._plan import QUANTUM
from .._ruleset import Ruleset
from .._statement import (
    Balances,
    ContractYear,
    commitments_of,
    contract_years,
    has_commitments,
    line_kind,
    on_usage_side,
)
from .._terms import ResolvedContract
from .._usage import Period
from ._rows import COLUMNS, CSV_HEADER, Row, canon, csv_line, json_line
from ._tally import Tally

__all__ = ["FORMAT", "apply_ledger", "read_ledger"]

FORMAT = "pricing-dsl ledger"
VERSION = 1
ZERO = Decimal(0)


@dataclass(slots=True)
class Account:
    """One account's state between runs."""

    account: str
    contract: str
    month: date  # the first day of the last month applied
    balances: list[tuple[str, int | None, Decimal]]
    year: int  # the contract year of `month`
    spend: Decimal  # that year's committed spend so far
    movements: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "contract": self.contract,
            "month": f"{self.month:%Y-%m}",
            "balances": [
                {"kind": kind, "year": year, "amount": decimal_text(amount)}
                for kind, year, amount in self.balances
            ],
            "committed_spend": {"year": self.year, "amount": decimal_text(self.spend)},
            "movements": self.movements,
        }


def _bad(path: str, message: str, hint: str) -> PricingError:
    return PricingError(Diagnostic("E630", message, path, hint=hint))


# Plain decimal text, as decimal_text writes amounts; short enough to add up exactly.
_AMOUNT = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,12})?")


def _decimal(value: Any, path: str, where: str, signed: bool = False) -> Decimal:
    try:
        if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
            raise InvalidOperation
        d = Decimal(value)
        if d < 0 and not signed:
            raise InvalidOperation
        return d
    except InvalidOperation:
        raise _bad(
            path,
            f"{where}: {value!r} is not an amount",
            'amounts are decimal strings such as "12.50", as pricing batch writes them',
        ) from None


_UNCHANGED = "give the --ledger-out of the previous run, unchanged"


def _field(item: Any, key: str, kind: Any, path: str, where: str) -> Any:
    """``item[key]``, of type ``kind``, or E630 naming what is wrong."""
    if not isinstance(item, dict) or key not in item:
        raise _bad(path, f"{where} has no `{key}`", _UNCHANGED)
    value = item[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(path, f"{where}: `{key}` has the wrong type ({value!r})", _UNCHANGED)
    return value


def read_ledger(path: str | Path) -> dict[str, Account]:
    """The accounts of a ledger file written by ``pricing batch --ledger-out``."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise _bad(
            name, "ledger file not found", "give the --ledger-out of the previous run"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _bad(
            name,
            f"cannot read this ledger: {exc}",
            "give the --ledger-out of the previous run, unchanged",
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(
            name, "this is not a pricing-dsl ledger", "give the --ledger-out of a previous run"
        )
    if data.get("version") != VERSION:
        raise _bad(
            name,
            f"ledger version {data.get('version')!r} is not {VERSION}",
            "write the ledger with this version of pricing-dsl",
        )
    accounts: dict[str, Account] = {}
    items = data.get("accounts")
    if not isinstance(items, list):
        raise _bad(name, "the ledger has no list of accounts", "give an unchanged ledger file")
    for n, item in enumerate(items, 1):
        where = f"account {n}"
        account = _field(item, "account", str, name, where)
        contract = _field(item, "contract", str, name, where)
        month_text = _field(item, "month", str, name, where)
        try:
            month: Period | None = Period.parse(month_text)
        except ValueError:
            month = None
        if month is None or not month.is_calendar_month:
            raise _bad(name, f"{where}: `month` {month_text!r} is not YYYY-MM", _UNCHANGED)
        spend = _field(item, "committed_spend", dict, name, where)
        year = _field(spend, "year", int, name, f"{where}, committed spend")
        amount = _decimal(
            _field(spend, "amount", str, name, f"{where}, committed spend"),
            name,
            f"{where}, committed spend",
            signed=True,
        )
        balances = []
        for b in _field(item, "balances", list, name, where):
            kind = _field(b, "kind", str, name, f"{where}, balance")
            if kind not in ("credit", "rollover", "prepaid"):
                raise _bad(name, f"{where}: {kind!r} is not a kind of balance", _UNCHANGED)
            b_year = _field(b, "year", (int, type(None)), name, f"{where}, balance")
            b_amount = _field(b, "amount", str, name, f"{where}, balance")
            balances.append((kind, b_year, _decimal(b_amount, name, f"{where}, balance")))
        if account in accounts:
            raise _bad(name, f"account `{account}` is in the ledger twice", _UNCHANGED)
        accounts[account] = Account(account, contract, month.start, balances, year, amount)
    return accounts


# ------------------------------------------------------------------ rows


def _read_rows(path: str, fmt: str) -> list[Row]:
    """The rows a batch engine wrote, in order."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            return [tuple(json.loads(line)[c] for c in COLUMNS) for line in fh if line.strip()]
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)  # the header
            return [_row_of_text(r) for r in reader]
    from .._duckdb import connect
    from ._sql import sql_string

    con = connect()
    try:
        cols = ", ".join(COLUMNS)
        got = con.execute(f"SELECT {cols} FROM read_parquet({sql_string(path)})").fetchall()
    finally:
        con.close()
    return [tuple(r) for r in got]


def _row_of_text(r: Sequence[str]) -> Row:
    """A CSV row: an empty cell is None where a value may be missing."""
    account, contract, period, currency, code, desc, qty, unit, price, amount = r
    return (
        account or None,
        contract,
        period or None,
        currency,
        code,
        desc,
        qty,
        unit,
        price or None,
        amount,
    )


def _write_rows(path: str, fmt: str, rows: Sequence[Row]) -> None:
    if fmt == "parquet":
        from .._duckdb import connect
        from ._python import rows_scratch, rows_to_parquet

        scratch = rows_scratch(path)
        try:
            with open(scratch, "w", encoding="utf-8", newline="") as fh:
                fh.writelines(json_line(r) + "\n" for r in rows)
            con = connect()
            try:
                rows_to_parquet(con, scratch, path, len(rows))
            finally:
                con.close()
        finally:
            Path(scratch).unlink(missing_ok=True)
        return
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            fh.write(CSV_HEADER + "\n")
            fh.writelines(csv_line(r) + "\n" for r in rows)
        else:
            fh.writelines(json_line(r) + "\n" for r in rows)


def _records(rows: Sequence[Row]) -> Iterator[list[Row]]:
    """Consecutive rows of one account, contract and period: one rated record."""
    group: list[Row] = []
    for row in rows:
        if group and row[:3] != group[0][:3]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


# ------------------------------------------------------------------ months


def _refuse(message: str, hint: str, account: str | None) -> PricingError:
    return PricingError(
        Diagnostic("E631", message, key="account" if account is None else "", hint=hint)
    )


def _month_of(c: ResolvedContract, account: str | None, period: str | None) -> date:
    try:
        p = Period.parse(period) if period is not None else None
    except ValueError:
        p = None
    if p is None or not p.is_calendar_month:
        raise _refuse(
            f"account `{account}` of `{c.id}` has a record for {period or 'no period'}: "
            "a ledger applies whole calendar months",
            "give `period: YYYY-MM` to the records of contracts with commitments or credits",
            account,
        )
    return p.start


def _next(d: date) -> date:
    return (d + timedelta(days=32)).replace(day=1)


@dataclass(slots=True)
class _Walk:
    """One account's months of this run, applied in order to its state."""

    rules: Ruleset
    c: ResolvedContract
    account: str
    state: Account | None
    usage_codes: frozenset[str]
    ledger: str = ""  # the --ledger-in file, for errors in it
    balances: Balances = field(default_factory=Balances)
    term: Period = field(init=False)
    years: tuple[ContractYear, ...] = field(init=False)

    def __post_init__(self) -> None:
        t = self.c.static_terms[("term",)].value
        self.term = Period(t[0], t[1])
        self.years = contract_years(self.term)
        if self.state is not None:
            self.check_state(self.state)
            self.balances = Balances.from_state(self.state.balances)

    def check_state(self, state: Account) -> None:
        """Refuse a ledger entry pricing batch could not have written (E630).

        It passes the schema yet would bill the wrong money: amounts finer
        than the currency, two balances of one kind and year, or years that
        are not the contract years of its month.
        """
        where = f"account `{state.account}`"
        quantum = Decimal(1).scaleb(-self.c.minor_units)
        amounts = [state.spend, *(amount for _, _, amount in state.balances)]
        if any(a != a.quantize(quantum, context=CONTEXT) for a in amounts):
            raise _bad(
                self.ledger,
                f"{where}: the ledger has an amount finer than the currency's "
                f"{self.c.minor_units} decimal places",
                _UNCHANGED,
            )
        in_term = self.term.start.replace(day=1) <= state.month <= self.term.end
        year = self.year_of(state.month).number if in_term else None
        if year is None or state.year not in (year, year + 1):
            raise _bad(
                self.ledger,
                f"{where}: the committed spend's year {state.year} is not the contract year "
                f"of {state.month:%Y-%m}",
                _UNCHANGED,
            )
        seen: set[tuple[str, int | None]] = set()
        for kind, b_year, _ in state.balances:
            wrong_year = (b_year is None) != (kind == "credit") or (
                b_year is not None and b_year not in (year, year + 1)
            )
            if (kind, b_year) in seen or wrong_year:
                raise _bad(
                    self.ledger,
                    f"{where}: the {kind} balance of year {b_year} is listed twice or "
                    f"does not belong to {state.month:%Y-%m}",
                    _UNCHANGED,
                )
            seen.add((kind, b_year))

    def year_of(self, month: date) -> ContractYear:
        return next(y for y in self.years if y.first_month <= month <= y.last_month)

    def expected(self) -> date:
        if self.state is None:
            return self.term.start.replace(day=1)
        return _next(self.state.month)

    def apply(self, month: date, rows: list[Row]) -> list[Row]:
        """The rows of one month, then the rows its commitments and credits add."""
        c, account = self.c, self.account
        if self.state is not None and month <= self.state.month:
            raise PricingError(
                Diagnostic(
                    "E632",
                    f"{month:%Y-%m} is already applied to account `{account}`: "
                    f"its ledger is at {self.state.month:%Y-%m}",
                    hint="run this month with the ledger written before it (the previous "
                    "month's --ledger-out), so no balance is drawn down twice",
                )
            )
        if month != self.expected():
            where = (
                f"its ledger is at {self.state.month:%Y-%m}"
                if self.state is not None
                else f"it has no ledger yet, and its term starts in {self.term.start:%Y-%m}"
            )
            raise _refuse(
                f"account `{account}` of `{c.id}` cannot go to {month:%Y-%m}: {where}, so "
                f"the next month to apply is {self.expected():%Y-%m}",
                "run the months in order, one after the other, each with the ledger of the "
                "month before",
                account,
            )
        terms = commitments_of(c)
        commit, prepaid, promo = terms.get("commit"), terms.get("prepaid"), terms.get("credit")
        year = self.year_of(month)
        spend = (
            self.state.spend if self.state is not None and self.state.year == year.number else ZERO
        )
        mode = ROUNDING[c.static_terms[("rounding",)].value]

        def rnd(d: Decimal) -> Decimal:
            return d.quantize(QUANTUM[c.minor_units], mode, CONTEXT) + ZERO

        head = rows[0][:4]
        extra: list[Row] = []
        before = len(self.balances.entries)
        # Grants first: this month's usage is paid from its own year's credit.
        if promo is not None and month == self.term.start.replace(day=1):
            self.balances.grant(month, "credit", None, promo.value.amount)
        if prepaid is not None and month == year.first_month:
            amount = rnd(CONTEXT.multiply(prepaid.value.amount, year.factor))
            factor = year.factor.quantize(Decimal("0.000001"), context=CONTEXT)
            extra.append(
                (
                    *head,
                    "prepaid",
                    f"Prepaid credit, year {year.number}",
                    canon(Decimal(1) if year.factor == 1 else factor),
                    "year",
                    decimal_text(prepaid.value.amount),
                    decimal_text(amount),
                )
            )
            self.balances.grant(month, "prepaid", year.number, amount)
        usage_net = ZERO
        total = ZERO
        for row in rows:
            code, amount = row[4], Decimal(row[9])
            total += amount
            side = on_usage_side(code, line_kind(code, self.usage_codes), self.usage_codes, True)
            if side:
                usage_net += amount
            if side or commit is None or not commit.value.on_usage:
                spend += amount
        if prepaid is not None or promo is not None:
            payable = min(max(usage_net, ZERO), max(total, ZERO))
            applied, _ = self.balances.pay(month, year.number, payable)
            extra.append(
                (
                    *head,
                    "credit.applied",
                    "Credit applied",
                    "1",
                    "adjustment",
                    None,
                    decimal_text(rnd(-applied)),
                )
            )
        if month == year.last_month:
            if commit is not None:
                owed = rnd(CONTEXT.multiply(commit.value.amount, year.factor))
                extra.append(
                    (
                        *head,
                        "commit.true_up",
                        f"Commitment true-up, year {year.number} ({year.start} to {year.end})",
                        "1",
                        "adjustment",
                        None,
                        decimal_text(rnd(max(ZERO, owed - spend))),
                    )
                )
            nxt = next((y for y in self.years if y.number == year.number + 1), None)
            self.balances.close_year(
                month,
                year.number,
                None if nxt is None else nxt.number,
                prepaid is not None and prepaid.value.rollover,
            )
        if month == self.term.end.replace(day=1):
            self.balances.expire_promotional(month)
        moves = [
            {
                "period": f"{e.date:%Y-%m}",
                "reason": e.reason,
                "amount": decimal_text(e.amount),
                "balance": decimal_text(e.balance),
                "year": e.year,
            }
            for e in self.balances.entries[before:]
        ]
        movements = (self.state.movements if self.state is not None else []) + moves
        self.state = Account(
            account,
            c.id,
            month,
            self.balances.state(),
            year.number,
            spend,
            movements,
        )
        return rows + extra


def apply_ledger(
    rules: Ruleset,
    out_path: str,
    out_fmt: str,
    tally: Tally,
    ledger_in: str | Path | None,
) -> str:
    """Add the commitment and credit rows to a run's output; the new ledger's text.

    Rewrites ``out_path`` (a temporary file the caller renames) and updates
    ``tally``'s line count and totals.  Raises PricingError (E630-E632),
    before anything is renamed, for a ledger it cannot read or a month it
    cannot apply.
    """
    with localcontext(EXACT):
        return _apply(rules, out_path, out_fmt, tally, ledger_in)


def _apply(
    rules: Ruleset,
    out_path: str,
    out_fmt: str,
    tally: Tally,
    ledger_in: str | Path | None,
) -> str:
    accounts = read_ledger(ledger_in) if ledger_in is not None else {}
    for kept in accounts.values():
        kept.movements = []
    usage_codes = frozenset(m.line_code for m in rules.meters)
    records = list(_records(_read_rows(out_path, out_fmt)))
    # Each account's months are applied in month order, whatever the file's order.
    mine: dict[str, list[tuple[date, int]]] = {}
    contract_of: dict[str, ResolvedContract] = {}
    for n, record in enumerate(records):
        account, contract, period = record[0][:3]
        c = rules.contracts.get(contract)
        if c is None or not has_commitments(c):
            continue
        if account is None:
            raise _refuse(
                f"a record of `{contract}` for {period} names no account, so its balances "
                "cannot be carried",
                "give every record of a contract with commitments or credits an `account`",
                None,
            )
        known = contract_of.setdefault(account, c)
        state = accounts.get(account)
        if known.id != contract or (state is not None and state.contract != contract):
            other = known.id if known.id != contract else state.contract if state else contract
            raise _refuse(
                f"account `{account}` is rated on `{contract}` but is on `{other}`",
                "a ledger follows one contract per account; start a new account id for "
                "a new contract",
                account,
            )
        mine.setdefault(account, []).append((_month_of(c, account, period), n))
    added: dict[int, list[Row]] = {}
    for account in sorted(mine):
        months = sorted(mine[account])
        for (a, _), (b, _) in itertools.pairwise(months):
            if a == b:
                raise _refuse(
                    f"account `{account}` has two records for {a:%Y-%m}",
                    "give each account one record per month",
                    account,
                )
        walk = _Walk(
            rules,
            contract_of[account],
            account,
            accounts.get(account),
            usage_codes,
            "" if ledger_in is None else str(ledger_in),
        )
        for month, n in months:
            added[n] = walk.apply(month, records[n])[len(records[n]) :]
        final = walk.state
        assert final is not None
        accounts[account] = final
    out: list[Row] = []
    for n, record in enumerate(records):
        out.extend(record)
        for row in added.get(n, ()):
            out.append(row)
            tally.lines += 1
            tally.add(row[3], Decimal(row[9]))
    _write_rows(out_path, out_fmt, out)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "accounts": [accounts[a].to_dict() for a in sorted(accounts)],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
