"""The small helpers that fmt, meter and batch share: atomic writes, progress, SQL quoting."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import duckdb
import pytest

from pricing_dsl._batch._progress import Progress
from pricing_dsl._cli import main
from pricing_dsl._files import write_atomic
from pricing_dsl._progress import ProgressLine
from pricing_dsl._sqlquote import sql_ident, sql_string


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_fmt_keeps_the_file_permissions(tmp_path: Path) -> None:
    # tempfile.mkstemp makes owner-only files: a rewrite used to turn 0640 into 0600.
    path = tmp_path / "p.pricing"
    path.write_text("currency USD\nplan p {\n    base 1.00 per month\n}\n")
    path.chmod(0o640)
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == "currency USD\nplan p {\n  base 1.00 per month\n}\n"
    assert _mode(path) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.jsonl", "{}\n")
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "new.jsonl") == 0o644
    assert (tmp_path / "new.jsonl").read_text() == "{}\n"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()  # a rename over a directory fails
    with pytest.raises(OSError):
        write_atomic(target, "text")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_progress_off_a_terminal_is_a_line_per_step_and_per_ten_percent() -> None:
    out = io.StringIO()
    line = ProgressLine(out, "metering")
    for step, fraction in [("logins", None), ("logins", 0.05), ("logins", 0.12), ("calls", 0.0)]:
        line(step, fraction)
    line.finish()
    assert [s.split(" (")[0] for s in out.getvalue().splitlines()] == [
        "metering logins",
        "metering logins 5%",
        "metering logins 12%",
        "metering calls 0%",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_batch_progress_on_a_terminal_is_one_line_rewritten_then_cleared() -> None:
    out = _Terminal()
    with Progress(enabled=True, out=out, delay=0.0) as progress:
        progress.stage("rating", lambda: 0.5)
        deadline = time.monotonic() + 10
        while "50%" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    text = out.getvalue()
    assert "\r\033[Kpricing batch: rating 50% (" in text
    assert text.endswith("\r\033[K") and "\n" not in text


def test_disabled_progress_draws_nothing() -> None:
    out = _Terminal()
    with Progress(enabled=False, out=out, delay=0.0) as progress:
        progress.stage("rating", lambda: 0.5)
        time.sleep(0.3)
    assert out.getvalue() == ""


def test_sql_quoting_round_trips_through_duckdb() -> None:
    awkward = 'it\'s "quoted"; -- not a comment'
    con = duckdb.connect()
    try:
        row = con.execute(f"SELECT {sql_string(awkward)} AS {sql_ident(awkward)}").fetchone()
        names = [d[0] for d in con.description]
    finally:
        con.close()
    assert row == (awkward,) and names == [awkward]
