"""The metering SQL: one text, run unchanged by DuckDB and by Spark SQL.

Each engine first exposes the events of a kind as a view named
``pricing_meter_<kind>`` with the canonical column names (see
``docs/metering.md``).  A column is text (``VARCHAR``/``STRING``), a native
timestamp, or a native integer; the queries below pick the matching parse
expression for each.  The text relies only on what both dialects share:
``regexp_extract``, ``try_cast``, ``unix_micros`` and the type name
``timestamp_ltz`` (DuckDB gets the last two as a macro and a type alias,
created by its engine module), window sums, ``GREATEST``/``LEAST`` and
``DECIMAL(38,0)`` sums.

Every query returns rows of ``(section, key, value, example)``:

- ``rows``: ``key`` is a bad-row reason, or NULL for usable rows; ``value``
  the number of rows; ``example`` one id from those rows.
- ``conflict``: rows that share an id but disagree (reason ``conflicting_id``).
- ``duplicates``: exact duplicate rows that were counted once.
- ``mau``, ``peak``, ``account``, ``voice``, ``video``: ``key`` is an account.

Timestamps become UTC epoch microseconds (BIGINT) before any arithmetic,
so both engines compare and subtract the same integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from ._options import Cycle, MeterOptions

__all__ = ["TIMESTAMP_PATTERN", "calls_sql", "connections_sql", "logins_sql"]

#: What a timestamp written as text must look like: ISO 8601 with a ``T`` or a
#: space, seconds, up to 9 fraction digits (kept to the microsecond), and an
#: optional ``Z`` or ``±HH[[:]MM]`` offset (none means UTC).  Both engines
#: parse more than this, and not the same more (``2026-08-01``, hour 24, an
#: offset of +19:00), so the shared pattern decides, and ``try_cast`` only
#: rejects dates that do not exist (such as February 30).  The pattern has no
#: backslash, because Spark and DuckDB read backslashes in literals differently.
TIMESTAMP_PATTERN = (
    "^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]"
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?"
    "(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?"
)
_COUNT_PATTERN = "^[0-9]{1,9}"

Families = Mapping[str, str]  # canonical column -> "string" | "timestamp" | "integer"


def _full_match(column: str, pattern: str) -> str:
    # regexp_extract of the anchored pattern equals the whole text exactly when
    # the pattern matches all of it; this avoids an end anchor, which Java's
    # regex ($ also matches before a final newline) and RE2 read differently.
    return f"regexp_extract({column}, '{pattern}', 0) = {column}"


def _micros(column: str, family: str) -> str:
    if family == "timestamp":
        return f"unix_micros(CAST({column} AS timestamp_ltz))"
    return (
        f"CASE WHEN {_full_match(column, TIMESTAMP_PATTERN)} "
        f"THEN unix_micros(try_cast({column} AS timestamp_ltz)) END"
    )


def _count(column: str, family: str) -> str:
    # Up to 9 digits either way, so a count means the same in every format
    # and the products with durations stay far from any overflow.
    if family == "integer":
        return f"CASE WHEN {column} BETWEEN 0 AND 999999999 THEN CAST({column} AS BIGINT) END"
    return f"CASE WHEN {_full_match(column, _COUNT_PATTERN)} THEN try_cast({column} AS BIGINT) END"


def _missing(column: str, family: str) -> str:
    if family == "string":
        # Empty or only spaces.  Not trim(): DuckDB's also strips other
        # Unicode spaces, Spark's only ' '.
        return f"({column} IS NULL OR {_full_match(column, '^ *')})"
    return f"({column} IS NULL)"


LOGINS = """
WITH n AS (
  SELECT account, user_id AS id,
         {t} AS t, {t_missing} AS t_missing
  FROM pricing_meter_logins
), c AS (
  SELECT account, id, t,
         CASE WHEN {account_missing} THEN 'missing_account'
              WHEN {id_missing} THEN 'missing_user_id'
              WHEN t_missing THEN 'missing_timestamp'
              WHEN t IS NULL THEN 'bad_timestamp'
         END AS reason
  FROM n
), g AS (
  -- One pass: rows per reason and account, and each account's distinct users
  -- with a login in the cycle (the first login in the cycle makes a user
  -- active; later ones change nothing, so counting distinct users is exact).
  SELECT reason, account, COUNT(*) AS n_rows, MIN(id) AS example,
         COUNT(DISTINCT CASE WHEN reason IS NULL AND t >= {start} AND t < {end}
                             THEN id END) AS mau
  FROM c
  GROUP BY reason, account
)
SELECT 'rows' AS section, reason AS key, SUM(n_rows) AS value, MIN(example) AS example
FROM g GROUP BY reason
UNION ALL
SELECT 'mau', account, SUM(mau), NULL FROM g WHERE reason IS NULL GROUP BY account
"""

CONNECTIONS = """
WITH n AS (
  SELECT account, connection_id AS id,
         {s} AS s, {s_missing} AS s_missing,
         {e} AS e, {e_missing} AS e_missing
  FROM pricing_meter_connections
), c AS (
  SELECT account, id, s, e,
         CASE WHEN {account_missing} THEN 'missing_account'
              WHEN {id_missing} THEN 'missing_connection_id'
              WHEN s_missing THEN 'missing_timestamp'
              WHEN s IS NULL OR (e IS NULL AND NOT e_missing) THEN 'bad_timestamp'
              WHEN e < s THEN 'end_before_start'
         END AS reason
  FROM n
), g AS (
  -- One row per connection id.  Exact duplicates collapse into it; copies
  -- that disagree (other times, or one open and one closed) are not guessed
  -- at but reported as conflicting.
  SELECT reason, account, id, COUNT(*) AS copies,
         MIN(s) AS s_min, MAX(s) AS s_max, MIN(e) AS e_min, MAX(e) AS e_max,
         COUNT(e) AS ended
  FROM c
  GROUP BY reason, account, id
), k AS (
  SELECT reason, account, id, copies, s_min AS s, e_min AS e,
         (s_min = s_max AND (ended = 0 OR (ended = copies AND e_min = e_max))) AS agree
  FROM g
), clipped AS (
  -- A connection is the half-open interval [s, e), clipped to the cycle.  One
  -- with no disconnect stays open to {open_until}.
  SELECT account,
         GREATEST(s, {start}) AS s,
         LEAST(COALESCE(e, {open_end}), {end}) AS e
  FROM k
  WHERE reason IS NULL AND agree
), ev AS (
  SELECT account, s AS t, 1 AS d FROM clipped WHERE s < e
  UNION ALL
  SELECT account, e AS t, -1 AS d FROM clipped WHERE s < e
), running AS (
  -- The sweep: at equal instants the disconnect (-1) sorts before the
  -- connect (+1), so a connection that ends when another starts is never
  -- counted together with it.
  SELECT account,
         SUM(d) OVER (PARTITION BY account ORDER BY t, d
                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS open_now
  FROM ev
)
SELECT 'rows' AS section, reason AS key, SUM(copies) AS value, MIN(id) AS example
FROM k GROUP BY reason
UNION ALL
SELECT 'conflict', NULL, SUM(copies), MIN(id) FROM k WHERE reason IS NULL AND NOT agree
UNION ALL
SELECT 'duplicates', NULL, SUM(copies - 1), NULL FROM k WHERE reason IS NULL AND agree
UNION ALL
SELECT 'account', account, 0, NULL FROM k WHERE reason IS NULL AND agree GROUP BY account
UNION ALL
SELECT 'peak', account, MAX(open_now), NULL FROM running GROUP BY account
"""

CALLS = """
WITH n AS (
  SELECT account, call_id AS id, kind,
         {s} AS s, {s_missing} AS s_missing,
         {e} AS e, {e_missing} AS e_missing,
         {p} AS p
  FROM pricing_meter_calls
), c AS (
  SELECT account, id, kind, s, e, p,
         CASE WHEN {account_missing} THEN 'missing_account'
              WHEN {id_missing} THEN 'missing_call_id'
              WHEN s_missing OR e_missing THEN 'missing_timestamp'
              WHEN s IS NULL OR e IS NULL THEN 'bad_timestamp'
              WHEN kind IS NULL OR kind NOT IN ('voice', 'video') THEN 'unknown_kind'
              WHEN e < s THEN 'end_before_start'
              WHEN {p_check} THEN 'bad_participants'
         END AS reason
  FROM n
), g AS (
  -- One row per call id, as for connections.
  SELECT reason, account, id, COUNT(*) AS copies,
         MIN(kind) AS kind_min, MAX(kind) AS kind_max, MIN(s) AS s_min, MAX(s) AS s_max,
         MIN(e) AS e_min, MAX(e) AS e_max, MIN(p) AS p_min, MAX(p) AS p_max
  FROM c
  GROUP BY reason, account, id
), k AS (
  SELECT reason, account, id, copies, kind_min AS kind, s_min AS s, e_min AS e, p_min AS p,
         (kind_min = kind_max AND s_min = s_max AND e_min = e_max AND p_min = p_max) AS agree
  FROM g
), d AS (
  -- The part of the call inside the cycle (a call across a boundary is split
  -- there), in microseconds.
  SELECT account, kind, p,
         GREATEST(LEAST(e, {end}) - GREATEST(s, {start}), 0) AS dur
  FROM k
  WHERE reason IS NULL AND agree
)
SELECT 'rows' AS section, reason AS key, SUM(copies) AS value, MIN(id) AS example
FROM k GROUP BY reason
UNION ALL
SELECT 'conflict', NULL, SUM(copies), MIN(id) FROM k WHERE reason IS NULL AND NOT agree
UNION ALL
SELECT 'duplicates', NULL, SUM(copies - 1), NULL FROM k WHERE reason IS NULL AND agree
UNION ALL
-- Each call rounded up to a whole {unit_name} ({unit} microseconds), times
-- its participants when minutes count per participant.  DECIMAL(38,0) so the
-- sum cannot overflow in either engine.
SELECT kind, account,
       SUM(CAST(dur + ({unit} - dur % {unit}) % {unit} AS DECIMAL(38,0)) * p), NULL
FROM d GROUP BY kind, account
"""


def _common(families: Families, cycle: Cycle) -> dict[str, str]:
    return {
        "account_missing": _missing("account", families["account"]),
        "start": str(cycle.start_us),
        "end": str(cycle.end_us),
    }


def logins_sql(families: Families, cycle: Cycle) -> str:
    """MAU per account, and the row counts per reason."""
    return LOGINS.format(
        **_common(families, cycle),
        id_missing=_missing("id", "string"),
        t=_micros("timestamp", families["timestamp"]),
        t_missing=_missing("timestamp", families["timestamp"]),
    )


def _interval(families: Families, start: str, end: str) -> dict[str, str]:
    """The placeholders of a query over rows with an id and a start and end time."""
    return {
        "id_missing": _missing("id", "string"),
        "s": _micros(start, families[start]),
        "s_missing": _missing(start, families[start]),
        "e": _micros(end, families[end]),
        "e_missing": _missing(end, families[end]),
    }


def connections_sql(families: Families, cycle: Cycle, options: MeterOptions) -> str:
    """Peak concurrent connections per account, and the row counts."""
    if options.idle_timeout is None:
        open_end, open_until = str(cycle.end_us), "the end of the cycle"
    else:
        timeout = options.idle_timeout // timedelta(microseconds=1)
        open_end, open_until = f"s + {timeout}", f"its connect + {timeout} microseconds"
    return CONNECTIONS.format(
        **_common(families, cycle),
        **_interval(families, "connected_at", "disconnected_at"),
        open_end=open_end,
        open_until=open_until,
    )


def calls_sql(families: Families, cycle: Cycle, options: MeterOptions) -> str:
    """Voice and video call time per account in microseconds, and the row counts."""
    if options.minutes_per == "participant":
        p = _count("participants", families["participants"])
        p_check = "p IS NULL OR p < 1"
    else:
        # Minutes per call: participants play no part, so none are read.
        p, p_check = "1", "FALSE"
    return CALLS.format(
        **_common(families, cycle),
        **_interval(families, "started_at", "ended_at"),
        p=p,
        p_check=p_check,
        unit=str(options.rounding_us),
        unit_name=options.call_rounding,
    )
