"""Input files: which files hold each kind of event, and in which format.

Local paths are resolved here, the same way for every engine: a file, a
directory (searched recursively), or a glob.  A URI such as ``s3://…`` or
``hdfs://…`` is passed to the engine untouched, since only the engine (a
Spark cluster, say) can list it.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import Diagnostic, PricingError
from .._suggest import did_you_mean
from ._options import COLUMNS, InputFormat, MeterOptions

__all__ = ["Column", "Source", "check_columns", "columns_for", "first_line", "resolve"]

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SUFFIXES: tuple[tuple[str, InputFormat], ...] = (
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".csv", "csv"),
    (".csv.gz", "csv"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "jsonl"),
    (".jsonl.gz", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".json.gz", "jsonl"),
)


@dataclass(frozen=True, slots=True)
class Source:
    """The files of one kind of event.  ``label`` is the path as the user gave it."""

    kind: str
    label: str
    files: tuple[str, ...]
    format: InputFormat


@dataclass(frozen=True, slots=True)
class Column:
    """One canonical column of a kind: where it comes from and what it holds.

    ``role`` is ``text`` (account, ids, kind), ``time`` (a timestamp) or
    ``count`` (participants).  Every column read must exist in CSV and
    Parquet files; JSON Lines objects may leave any key out (read as null).
    """

    name: str
    source: str
    role: str


_ROLES = {
    "timestamp": "time",
    "connected_at": "time",
    "disconnected_at": "time",
    "started_at": "time",
    "ended_at": "time",
    "participants": "count",
}


def columns_for(kind: str, options: MeterOptions) -> tuple[Column, ...]:
    """The columns read for ``kind`` under ``options``.

    ``participants`` is read only when minutes are counted per participant:
    with minutes per call it plays no part, so its absence is no error.
    """
    out = []
    for name in COLUMNS[kind]:
        if name == "participants" and options.minutes_per != "participant":
            continue
        out.append(Column(name, options.source_column(kind, name), _ROLES.get(name, "text")))
    return tuple(out)


def _format_of(path: str) -> InputFormat | None:
    lower = path.lower()
    for suffix, fmt in sorted(_SUFFIXES, key=lambda s: -len(s[0])):
        if lower.endswith(suffix):
            return fmt
    return None


def _hidden(name: str) -> bool:
    # Spark and Hadoop skip these too (_SUCCESS markers, .crc files).
    return name.startswith((".", "_"))


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in sorted(files):
            if not _hidden(name) and _format_of(name) is not None:
                found.append(os.path.join(root, name))
    return found


def _error(code: str, message: str, path: str, hint: str | None = None) -> PricingError:
    return PricingError(Diagnostic(code, message, path, hint=hint))


def resolve(kind: str, paths: Sequence[str], fmt: InputFormat | None) -> Source:
    """The files behind ``paths`` for ``kind``; E601 if none, E602 if the format is unclear."""
    label = ", ".join(paths)
    files: list[str] = []
    for path in paths:
        if _URI.match(path) and not path.startswith("file://"):
            files.append(path)
            continue
        local = path.removeprefix("file://")
        if glob.has_magic(local):
            matched = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
            if not matched:
                raise _error("E601", f"no {kind} files match this pattern", path)
            files.extend(matched)
        elif os.path.isdir(local):
            inside = _walk(local)
            if not inside:
                raise _error(
                    "E601",
                    f"this directory holds no {kind} files (.parquet, .csv, .jsonl or .json)",
                    path,
                )
            files.extend(inside)
        elif os.path.isfile(local):
            files.append(local)
        else:
            raise _error("E601", f"{kind} file not found", path)
    if not files:
        raise _error("E601", f"no {kind} files given", label)
    unique = tuple(dict.fromkeys(files))
    return Source(kind, label, unique, fmt if fmt is not None else _one_format(kind, label, unique))


def _one_format(kind: str, label: str, files: Sequence[str]) -> InputFormat:
    found: dict[InputFormat, str] = {}
    for f in files:
        fmt = _format_of(f)
        if fmt is None:
            raise _error(
                "E602",
                "cannot tell the format of this file from its name",
                f,
                hint="name files .parquet, .csv or .jsonl, or give --input-format",
            )
        found.setdefault(fmt, f)
    if len(found) > 1:
        raise _error(
            "E602",
            f"the {kind} files mix formats ({', '.join(sorted(found))}); give one format per kind",
            label,
        )
    return next(iter(found))


def check_columns(source: Source, columns: Sequence[Column], present: list[str]) -> None:
    """E607 for every column the files lack, naming the columns they have."""
    missing = [c for c in columns if c.source not in present]
    if not missing:
        return
    diags = []
    for c in missing:
        mapped = "" if c.source == c.name else f" (mapped from `{c.name}`)"
        hint = (
            f"map it to the name in your files, e.g. --map {source.kind}.{c.name}=NAME; "
            f"the columns are: {', '.join(present)}"
        )
        diags.append(
            Diagnostic(
                "E607",
                f"the {source.kind} files have no column `{c.source}`{mapped}"
                + did_you_mean(c.source, present),
                source.label,
                key=c.name,
                hint=hint,
            )
        )
    raise PricingError(diags)


def first_line(exc: BaseException) -> str:
    """The first line of an engine's error message: the part that says what went wrong."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
