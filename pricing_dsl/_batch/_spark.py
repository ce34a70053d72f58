"""The Spark engine: Spark reads the usage file; executors rate it with the python engine's code.

1. *Read.*  Spark reads JSON Lines and CSV as lines of bytes, split at
   ``\\n`` only, exactly where Python splits them, and Parquet as rows with
   their row index.  A first pass, in the JVM only, counts the lines of each
   split of the file, so that every line gets its line number on the
   executor that reads it.
2. *Rate.*  Executors turn each line (or row) into a record with the same
   code as the python engine (``_records.py``) and rate it with
   ``rate_record``, so values, line items and error messages are the same.
   Consecutive records form a chunk that carries its output lines, already
   formatted, its errors and its totals per currency.
3. *Write.*  The chunks are shuffled into buckets of consecutive lines and
   sorted within each bucket; the driver pulls them bucket by bucket (so it
   holds a bucket or two at a time), checks that they cover every line of the
   file once and in order, and writes them.

Executors need pricing-dsl installed (the same version).  They get the
ruleset itself, pickled, and unpickle it once per Python worker.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from .._cache import dump_ruleset, load_ruleset
from .._decimal import CONTEXT
from .._errors import Diagnostic
from .._ruleset import Ruleset
from .._spark_session import SparkUnavailable, error_message, open_session, task_fraction
from ._progress import Progress
from ._python import rows_scratch, rows_to_parquet
from ._records import (
    BOM,
    Outcome,
    Record,
    _not_utf8,
    flat_period,
    jsonl_record,
    rate_record,
    read_csv,
    record_from_cells,
)
from ._rows import CSV_HEADER, Row, csv_line, json_line
from ._tally import BatchError, CannotReadInPlace, Tally

__all__ = ["run_spark", "ship_ruleset"]

# A chunk is at most this many records, or this much output text: small
# enough for the shuffle's batches, large enough that the driver's work per
# chunk does not count.
RECORDS_PER_CHUNK = 500
CHUNK_CHARS = 1 << 18
# Lines per bucket: the driver holds one bucket's output at a time.
LINES_PER_BUCKET = 25_000
# Tasks per core, so that cores finish together; splits of a text file are at
# least SPLIT_BYTES_MIN (and at most Spark's default, 128 MB); a Parquet file
# is repartitioned into tasks of at most ROWS_PER_TASK rows.
TASKS_PER_CORE = 4
SPLIT_BYTES_MIN = 1 << 20
SPLIT_BYTES_MAX = 128 << 20
ROWS_PER_TASK = 50_000
_ROW_INDEX = "__pricing_batch_row_index"
# Characters Hadoop reads as a glob in a path.
_GLOB = re.compile(r"([\\*?\[\]{}])")


# ------------------------------------------------------------ the ruleset


def ship_ruleset(rules: Ruleset) -> bytes:
    """The ruleset as bytes for executors: its contracts, meters and add-ons, pickled.

    The caches (compiled contracts) and the tests are left out: executors
    fill their own caches, and do not run tests.
    """
    return dump_ruleset(rules, tests=False)


# Rulesets unpickled by this Python worker, by the hash of their bytes.  Spark
# reuses workers from task to task, so each is unpickled (and its contracts
# compiled by the fast path) once per worker, not once per task.
_RULESETS: dict[str, Ruleset] = {}
_RULESETS_KEPT = 8


def _ruleset(job: _Job) -> Ruleset:
    rules = _RULESETS.get(job.key)
    if rules is None:
        if len(_RULESETS) >= _RULESETS_KEPT:
            _RULESETS.clear()
        loaded = load_ruleset(job.ruleset)  # bytes the driver pickled, never user input
        rules = _RULESETS[job.key] = loaded
    return rules


# ------------------------------------------------------ on the executors


@dataclass(frozen=True, slots=True)
class _Job:
    """What each executor needs to rate its lines; sent with every task."""

    ruleset: bytes
    key: str
    in_fmt: str
    out_fmt: str
    header: tuple[str, ...]  # CSV: the header line's columns
    first_lines: tuple[tuple[int, int], ...]  # text: (split start, its first line's number)
    lines: int  # lines (rows for Parquet) in the file
    buckets: int
    chunk_records: int
    chunk_chars: int

    def bucket(self, first: int) -> int:
        """The bucket of a chunk that starts at line ``first``: buckets hold consecutive lines."""
        return min(self.buckets - 1, (first - 1) * self.buckets // max(self.lines, 1))


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The outcome of lines ``first`` to ``last`` of the input, counted as Tally counts."""

    first: int
    last: int
    records: int
    rated: int
    failed: int
    lines: int
    text: str  # the output lines, each ending in "\n" (JSON Lines for Parquet output)
    errors: tuple[tuple[int, Diagnostic], ...]
    totals: tuple[tuple[str, Decimal], ...]
    spanning: int  # CSV lines that end inside a quoted field


class _ChunkBuilder:
    def __init__(self, first: int) -> None:
        self.first = self.last = first
        self.records = self.rated = self.failed = self.lines = self.spanning = 0
        self.parts: list[str] = []
        self.size = 0
        self.errors: list[tuple[int, Diagnostic]] = []
        self.totals: dict[str, Decimal] = {}

    def full(self, job: _Job) -> bool:
        return self.records >= job.chunk_records or self.size >= job.chunk_chars

    def add(
        self,
        line: int,
        record: Record | None,
        spanning: bool,
        rate: Callable[[Any], Outcome],
        fmt: Callable[[Row], str],
    ) -> None:
        """Add one line: a record, or None for a blank line (or the CSV header)."""
        self.last = line
        self.spanning += spanning
        if record is None:
            return
        # What Tally.outcome does with a record, for the driver to add up.
        self.records += 1
        outcome = Outcome(errors=(record.error,)) if record.error is not None else rate(record.data)
        if outcome.errors:
            self.failed += 1
            self.errors.extend((line, d) for d in outcome.errors)
            return
        self.rated += 1
        self.lines += len(outcome.rows)
        for row in outcome.rows:
            text = fmt(row) + "\n"
            self.parts.append(text)
            self.size += len(text)
            self.totals[row[3]] = CONTEXT.add(self.totals.get(row[3], Decimal(0)), Decimal(row[9]))

    def chunk(self) -> _Chunk:
        return _Chunk(
            first=self.first,
            last=self.last,
            records=self.records,
            rated=self.rated,
            failed=self.failed,
            lines=self.lines,
            text="".join(self.parts),
            errors=tuple(self.errors),
            totals=tuple(sorted(self.totals.items())),
            spanning=self.spanning,
        )


class _Asked:
    """Set when the csv module asks for a line after the one it was given."""

    def __init__(self) -> None:
        self.more = False

    def lines(self, text: str) -> Iterator[str]:
        yield text
        # Reached only if the reader wants another line: a quoted field goes on.
        self.more = True


def _csv_record(line: int, raw: bytes, header: tuple[str, ...]) -> tuple[Record | None, bool]:
    """One line as ``read_csv`` reads a record that is one line; None if blank.

    Also whether a quoted field runs on past the line: then the record is
    not one line, and the file cannot be read line by line.
    """
    # read_csv hands the csv module each line with its "\n" ("\r\n" stays),
    # decoded, or decoded with replacement characters when it is not UTF-8.
    data = raw + b"\n"
    bad: UnicodeDecodeError | None = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc
        text = data.decode("utf-8", "replace")
    asked = _Asked()
    try:
        row = next(csv.reader(asked.lines(text)), None)
    except csv.Error as exc:
        error = Diagnostic("E400", f"this CSV line cannot be read: {exc}")
        return Record(line, error=error), asked.more
    if not row:
        return None, asked.more
    if bad is not None:
        return _not_utf8(line, bad), asked.more
    return record_from_cells(line, header, row), asked.more


def _plain(value: Any) -> Any:
    """A Parquet value as DuckDB gives it to the python engine (bytes, not bytearray)."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _records(job: _Job, rows: Iterable[Any]) -> Iterator[tuple[int, Record | None, bool]]:
    """(line, record or None for a blank line, whether a CSV quoted field runs on)."""
    if job.in_fmt == "parquet":
        for row in rows:
            values = row.asDict(recursive=True)
            line = int(values.pop(_ROW_INDEX)) + 1
            # A null is a missing value, as parquet_rows reads it.
            data = {k: _plain(v) for k, v in values.items() if v is not None}
            yield line, Record(line, flat_period(data)), False
        return
    first = dict(job.first_lines)
    seen: dict[int, int] = {}
    for block, raw in rows:
        # A split's lines reach its task in file order.
        n = seen.get(block, 0)
        seen[block] = n + 1
        line = first[block] + n
        if job.in_fmt == "jsonl":
            yield line, jsonl_record(line, bytes(raw)), False
        elif line == 1:
            yield line, None, False  # the header, read by the driver
        else:
            record, runs_on = _csv_record(line, bytes(raw), job.header)
            yield line, record, runs_on


def _rate_partition(job: _Job, rows: Iterable[Any]) -> Iterator[tuple[int, _Chunk]]:
    """Rate one partition's lines into chunks of consecutive lines, keyed by bucket."""
    rules = _ruleset(job)
    whole = {m.usage_key: m.whole for m in rules.meters}

    def rate(data: Any) -> Outcome:
        return rate_record(rules, data, whole)

    fmt = csv_line if job.out_fmt == "csv" else json_line
    builder: _ChunkBuilder | None = None
    for line, record, runs_on in _records(job, rows):
        # A chunk holds consecutive lines only: a partition may hold splits
        # that are not next to each other in the file.
        if builder is not None and (line != builder.last + 1 or builder.full(job)):
            yield job.bucket(builder.first), builder.chunk()
            builder = None
        if builder is None:
            builder = _ChunkBuilder(line)
        builder.add(line, record, runs_on, rate, fmt)
    if builder is not None:
        yield job.bucket(builder.first), builder.chunk()


def _same(bucket: int) -> int:
    """The partition of a bucket: bucket b is partition b, so partitions are in line order."""
    return bucket


def _in_order(pairs: Iterable[tuple[int, _Chunk]]) -> Iterator[_Chunk]:
    """One bucket's chunks, by their first line."""
    return iter(sorted((chunk for _, chunk in pairs), key=lambda c: c.first))


# ------------------------------------------------------------ the driver


def _csv_header(path: str) -> tuple[str, ...]:
    """The columns of a CSV usage file's header line; () for an empty file.

    A header the python engine refuses is refused with its error, raised by
    its own reader; a header with a quoted field that spans lines cannot be
    read line by line (CannotReadInPlace).
    """
    # The python engine's reader raises its errors for a bad header; only
    # its first record is read.
    with contextlib.closing(read_csv(path)) as records:  # type: ignore[type-var]
        next(records, None)
    with open(path, "rb") as fh:
        first = fh.readline()
    if not first:
        return ()
    if first.startswith(BOM):
        first = first[len(BOM) :]
    asked = _Asked()
    # read_csv has checked that the line is UTF-8 and a readable header.
    row = next(csv.reader(asked.lines(first.decode("utf-8"))), [])
    if asked.more:
        raise CannotReadInPlace("its header line has a quoted field that spans lines")
    return tuple(row)


_TRACEBACK = "Traceback (most recent call last):"


def _python_error(text: str) -> str | None:
    """The last line of the first Python traceback in ``text`` (``ValueError: …``), if any."""
    if _TRACEBACK not in text:
        return None
    found = None
    for line in text.split(_TRACEBACK, 1)[1].splitlines():
        if line.startswith(("\tat ", "Driver stacktrace")):
            break
        if line.strip() and not line.startswith((" ", "\t")):
            found = line.strip()
    return found


def _spark_error(exc: BaseException) -> str:
    """What went wrong in a failed Spark job, in one line.

    A task's Python error is deep in the Java exception's causes; otherwise
    the innermost cause says most (the outer ones say that a job failed).
    """
    java = getattr(exc, "java_exception", None)
    if java is None:
        return _python_error(str(exc)) or error_message(exc)
    innermost = None
    with contextlib.suppress(Exception):  # the JVM may already be gone
        for _ in range(20):
            text = str(java.toString())
            found = _python_error(text)
            if found:
                return found
            innermost = text
            java = java.getCause()
            if java is None:
                break
    if innermost and innermost.strip():
        return innermost.strip().splitlines()[0]
    return error_message(exc)


def _count(tally: Tally, chunk: _Chunk) -> None:
    """Add a chunk's records to the tally, as Tally.outcome adds them one by one."""
    tally.records += chunk.records
    tally.rated += chunk.rated
    tally.failed_records += chunk.failed
    tally.lines += chunk.lines
    tally.errors.extend(chunk.errors)
    for currency, amount in chunk.totals:
        tally.add(currency, amount)


def _poll(spark: Any) -> Callable[[], float]:
    def fraction() -> float:
        done = task_fraction(spark)
        return -1.0 if done is None else done

    return fraction


def _to_parquet(scratch: str, out_path: str, lines: int) -> None:
    """JSON Lines of output rows into Parquet, as the python engine converts them."""
    from .._duckdb import connect

    con = connect()
    try:
        rows_to_parquet(con, scratch, out_path, lines)
    finally:
        con.close()


class _Run:
    """One batch run on a Spark session."""

    def __init__(
        self,
        spark: Any,
        rules: Ruleset,
        usage_path: str,
        in_fmt: str,
        header: tuple[str, ...],
        progress: Progress,
    ) -> None:
        self.spark = spark
        self.rules = rules
        self.in_fmt = in_fmt
        self.header = header
        self.progress = progress
        # A local path as a URI: the default file system may be HDFS, and
        # Hadoop would read [, ], {, }, *, ? as a glob.
        self.uri = "file://" + _GLOB.sub(r"\\\1", str(Path(usage_path).resolve()))

    def frame(self) -> tuple[Any, tuple[tuple[int, int], ...], int]:
        """The input as a DataFrame; the first line of each split; the number of lines."""
        from pyspark.sql import functions as F

        reader = self.spark.read
        if self.in_fmt == "parquet":
            frame = reader.parquet(self.uri).select(
                "*", F.col("_metadata.row_index").alias(_ROW_INDEX)
            )
            total = int(frame.count())
            # A Parquet file splits only between row groups, and a small file
            # has one.  Every row carries its row number, so the rows can be
            # dealt out to every core: the output is put in order afterwards.
            tasks = max(
                TASKS_PER_CORE * self.spark.sparkContext.defaultParallelism,
                math.ceil(total / ROWS_PER_TASK),
            )
            return frame.repartition(tasks), (), total
        # Split at "\n" only, as Python splits a file into lines (Spark's
        # default also splits at a lone "\r"); the bytes as they are, so that
        # a line that is not UTF-8 gets the python engine's error.
        frame = (
            reader.format("text")
            .option("lineSep", "\n")
            .load(self.uri)
            .select(
                F.col("_metadata.file_block_start").alias("block"),
                F.col("value").cast("binary").alias("raw"),
            )
        )
        counts = sorted(
            (int(block), int(n)) for block, n in frame.groupBy("block").count().collect()
        )
        first_lines = []
        total = 0
        for block, n in counts:
            first_lines.append((block, total + 1))
            total += n
        return frame, tuple(first_lines), total

    def rate(self, out: Any, out_fmt: str, tally: Tally) -> None:
        """Rate the file on Spark and write its lines to ``out`` in input order."""
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        self.progress.stage("reading", _poll(self.spark))
        try:
            frame, first_lines, total = self.frame()
        except (PySparkException, Py4JError) as exc:
            # A Parquet type Spark does not support, say: Python reads it.
            raise CannotReadInPlace(f"Spark cannot read it: {_spark_error(exc)}") from None
        shipped = ship_ruleset(self.rules)
        buckets = max(1, math.ceil(total / LINES_PER_BUCKET))
        job = _Job(
            ruleset=shipped,
            key=hashlib.sha256(shipped).hexdigest(),
            in_fmt=self.in_fmt,
            out_fmt=out_fmt,
            header=self.header,
            first_lines=first_lines,
            lines=total,
            buckets=buckets,
            chunk_records=RECORDS_PER_CHUNK,
            chunk_chars=CHUNK_CHARS,
        )
        chunks = (
            frame.rdd.mapPartitions(partial(_rate_partition, job))
            .partitionBy(buckets, _same)
            .mapPartitions(_in_order, preservesPartitioning=True)
        )
        self.progress.stage("rating", _poll(self.spark))
        done = [0]
        expected = 1
        for chunk in chunks.toLocalIterator(prefetchPartitions=True):
            if chunk.spanning:
                raise CannotReadInPlace("it has quoted fields that span lines")
            if chunk.first != expected:
                raise BatchError(
                    f"Spark returned line {chunk.first} where line {expected} was due; "
                    "nothing was written"
                )
            if expected == 1:
                self.progress.stage("writing", lambda: done[0] / max(total, 1))
            expected = chunk.last + 1
            done[0] = chunk.last
            out.write(chunk.text)
            _count(tally, chunk)
        if expected != total + 1:
            raise BatchError(
                f"Spark returned {expected - 1} of the {total} lines; nothing was written"
            )


def _split_bytes(path: str, cores: int) -> int:
    """The split size that gives every core a few tasks of a text file."""
    size = os.path.getsize(path)
    wanted = math.ceil(size / max(1, TASKS_PER_CORE * cores))
    return min(SPLIT_BYTES_MAX, max(SPLIT_BYTES_MIN, wanted))


def run_spark(
    rules: Ruleset,
    usage_path: str,
    in_fmt: str,
    out_path: str,
    out_fmt: str,
    progress: Progress,
    *,
    master: str | None = None,
    session: Any = None,
) -> Tally:
    """Rate a usage file on Spark into ``out_path``.

    ``session`` lends a Spark session; otherwise the active one is used, or
    one is started on ``master`` (see ``_spark_session``).  Raises
    CannotReadInPlace when Spark cannot split the file into Python's
    records (the python engine then rates it), BatchError when Spark is not
    available or a job fails.
    """
    if ":" in str(Path(usage_path).resolve()):
        # Hadoop takes what precedes a colon for a URI scheme, even in a file name.
        raise CannotReadInPlace("Hadoop cannot open a path with a colon in it")
    header = _csv_header(usage_path) if in_fmt == "csv" else ()
    if out_fmt == "parquet":
        import duckdb  # noqa: F401 - needed for the output; fail before the work, not after
    try:
        handle = open_session("pricing batch", master=master, session=session, python_workers=True)
    except SparkUnavailable as exc:
        raise BatchError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    spark = handle.session
    sc = spark.sparkContext
    # Our jobs carry a tag, so that a failed or interrupted run cancels them
    # on a borrowed session, and only them.
    tag = f"pricing-batch-{secrets.token_hex(4)}"
    tally = Tally()
    scratch: str | None = None
    try:
        sc.addJobTag(tag)
        if in_fmt != "parquet":
            # Small enough splits that the cores share the work evenly; the
            # setting is put back when the run ends (on a borrowed session).
            split = _split_bytes(usage_path, sc.defaultParallelism)
            handle.set_for_run("spark.sql.files.maxPartitionBytes", str(split))
        target = out_path
        if out_fmt == "parquet":
            scratch = target = rows_scratch(out_path)
        with open(target, "w", encoding="utf-8", newline="") as out:
            if out_fmt == "csv":
                out.write(CSV_HEADER + "\n")
            _Run(spark, rules, usage_path, in_fmt, header, progress).rate(out, out_fmt, tally)
        if scratch is not None:
            _to_parquet(scratch, out_path, tally.lines)
    except (PySparkException, Py4JError) as exc:
        with contextlib.suppress(Exception):
            sc.cancelJobsWithTag(tag)
        raise BatchError(f"Spark stopped: {_spark_error(exc)}") from None
    except BaseException:
        with contextlib.suppress(Exception):
            sc.cancelJobsWithTag(tag)
        raise
    finally:
        if scratch is not None and os.path.exists(scratch):
            os.unlink(scratch)
        with contextlib.suppress(Exception):
            sc.removeJobTag(tag)
        handle.close()
    return tally
