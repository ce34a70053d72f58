"""The progress of `pricing batch` on standard error.

It is drawn only when standard error is a terminal and the run is not
quiet, by a background thread that polls a function for the fraction done
(DuckDB's ``query_progress``, or the share of the input file read).  The
drawing is the one `pricing meter` uses (``pricing_dsl._progress``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from .._progress import Poller, ProgressLine

__all__ = ["Progress"]


class Progress:
    """``with Progress(enabled) as p: p.stage("rating", poll)``; draws nothing when disabled."""

    def __init__(self, enabled: bool, out: TextIO | None = None, delay: float = 0.5) -> None:
        self.enabled = enabled
        self.line = ProgressLine(out if out is not None else sys.stderr, "pricing batch:")
        self.label = ""
        self.poll: Callable[[], float] | None = None
        self.lock = threading.Lock()
        # Short runs never show a bar: nothing is drawn before ``delay``.
        self.poller = Poller(self._tick, 0.1, delay) if enabled else None

    def __enter__(self) -> Progress:
        if self.poller is not None:
            self.poller.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.poller is not None:
            self.poller.__exit__(*exc)
        self.line.finish()

    def stage(self, label: str, poll: Callable[[], float] | None = None) -> None:
        """Start a stage; ``poll`` returns the fraction done (0..1), or below 0 if unknown."""
        with self.lock:
            self.label = label
            self.poll = poll

    def _tick(self) -> None:
        with self.lock:
            label, poll = self.label, self.poll
        try:
            fraction = poll() if poll is not None else -1.0
        except Exception:  # a poll racing the end of a query is not worth a traceback
            fraction = -1.0
        self.line(label, None if fraction < 0 else fraction)
