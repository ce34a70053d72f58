"""A progress bar on standard error, for runs long enough to want one.

It is drawn only when standard error is a terminal and the run is not
quiet, by a background thread that polls a function for the fraction done
(DuckDB's ``query_progress``, or the share of the input file read).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30


class Progress:
    """``with Progress(enabled) as p: p.stage("rating", poll)``; draws nothing when disabled."""

    def __init__(self, enabled: bool, out: TextIO | None = None, delay: float = 0.5) -> None:
        self.enabled = enabled
        self.out = out if out is not None else sys.stderr
        self.delay = delay  # short runs never show a bar
        self.label = ""
        self.poll: Callable[[], float] | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.drawn = False
        self.started = time.monotonic()

    def __enter__(self) -> Progress:
        if self.enabled:
            self.thread = threading.Thread(target=self._run, name="pricing-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if self.drawn:
            self.out.write("\r" + " " * (_WIDTH + 40) + "\r")
            self.out.flush()

    def stage(self, label: str, poll: Callable[[], float] | None = None) -> None:
        """Start a stage; ``poll`` returns the fraction done (0..1), or below 0 if unknown."""
        with self.lock:
            self.label = label
            self.poll = poll

    def _run(self) -> None:
        while not self.done.wait(0.1):
            if time.monotonic() - self.started < self.delay:
                continue
            with self.lock:
                label, poll = self.label, self.poll
            try:
                fraction = poll() if poll is not None else -1.0
            except Exception:  # a poll racing the end of a query is not worth a traceback
                fraction = -1.0
            if fraction < 0:
                bar, pct = "." * _WIDTH, "   "
            else:
                fraction = min(fraction, 1.0)
                filled = int(fraction * _WIDTH)
                bar, pct = "#" * filled + "." * (_WIDTH - filled), f"{int(fraction * 100):3d}%"
            self.out.write(f"\rpricing batch: [{bar}] {pct} {label:<20}")
            self.out.flush()
            self.drawn = True
