"""Progress on standard error, for runs long enough to want it (`pricing batch`, `pricing meter`).

:class:`ProgressLine` draws: one line rewritten in place on a terminal,
otherwise a line per step and per 10% (a log keeps a readable trace).
:class:`Poller` runs a function every so often on a background thread while
a query runs, since the query itself blocks the thread that started it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Poller", "ProgressLine"]


class ProgressLine:
    """``line(step, fraction)`` shows ``WHAT STEP 45% (12s)``; ``fraction`` None is unknown."""

    def __init__(self, stream: TextIO, what: str) -> None:
        self._stream = stream
        self._what = what
        self._tty = stream.isatty()
        self._last: tuple[str, int] = ("", -1)
        self._start = time.monotonic()
        self._dirty = False

    def __call__(self, step: str, fraction: float | None) -> None:
        bucket = -1 if fraction is None else int(min(max(fraction, 0.0), 1.0) * 100)
        elapsed = time.monotonic() - self._start
        done = "" if bucket < 0 else f" {bucket}%"
        text = f"{self._what} {step}{done} ({elapsed:.0f}s)"
        if self._tty:
            self._stream.write("\r\033[K" + text)
            self._dirty = True
        elif (step, bucket // 10) != (self._last[0], self._last[1] // 10):
            self._stream.write(text + "\n")
        self._last = (step, bucket)
        self._stream.flush()

    def finish(self) -> None:
        """Clear the rewritten line, so that what follows starts on a clean one."""
        if self._dirty:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._dirty = False


class Poller:
    """``with Poller(tick, every):`` calls ``tick()`` every ``every`` seconds, after ``delay``."""

    def __init__(self, tick: Callable[[], None], every: float, delay: float = 0.0) -> None:
        self._tick = tick
        self._every = every
        self._delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name="pricing-progress", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self._every):
            if time.monotonic() - started >= self._delay:
                self._tick()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
