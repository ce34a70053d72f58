"""Did-you-mean suggestions for misspelt names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "suggest"]

# Names this short, found inside a longer word, are too likely to be chance.
_MIN_PART = 3
# Spelling similarity (difflib's ratio) of a slip (`voice_minute`), which
# beats a name the word is built from, and of a weaker likeness, which does not:
# `sms_count` is nearer `account` (0.62) than `sms` (0.5) by spelling alone.
_CLOSE = 0.8
_NEAR = 0.6


def suggest(word: str, candidates: Iterable[str], *more: Iterable[str]) -> str | None:
    """The closest candidate to ``word``, if any is reasonably close.

    ``candidates`` are searched first and each group in ``more`` after them,
    so a caller lists the names that matter most in that position first (the
    declared meters, say, before the keywords).  In each group, in turn: the
    same name in other capitals; a name spelt almost the same (`voice_minutes`
    for `voice_minute`); a name the word is built from with `_` (`sms` for
    `sms_count`, `voice_minutes` for `voice`); a name spelt somewhat alike;
    a name that the word starts with, or that starts with the word, or that
    it contains (`sms` for `smscount`).
    """
    pools = [sorted(set(c)) for c in (candidates, *more)]
    low = word.lower()
    for pool in pools:
        lowered = {c.lower(): c for c in pool}
        if low in lowered:
            return lowered[low]
        close = difflib.get_close_matches(word, pool, n=1, cutoff=_CLOSE)
        if close:
            return close[0]
        parts = [c for c in pool if _built_from(low, c.lower())]
        if parts:
            return max(parts, key=len)
        near = difflib.get_close_matches(word, pool, n=1, cutoff=_NEAR)
        if near:
            return near[0]
        if len(low) >= _MIN_PART:
            inside = [
                c
                for c in pool
                if len(c) >= _MIN_PART
                and (low.startswith(c.lower()) or c.lower().startswith(low) or c.lower() in low)
            ]
            if inside:
                return max(inside, key=len)
    return None


def _built_from(word: str, name: str) -> bool:
    """Whether one of ``word`` and ``name`` is the other with `_something` added."""
    short, long = sorted((word, name), key=len)
    return len(short) >= _MIN_PART and (long.startswith(short + "_") or long.endswith("_" + short))


def did_you_mean(word: str, candidates: Iterable[str], *more: Iterable[str]) -> str:
    """A sentence fragment such as ``; did you mean `pro`?``, or the empty string.

    ``more`` are further groups of names, searched after ``candidates`` (see
    :func:`suggest`).
    """
    best = suggest(word, candidates, *more)
    return f"; did you mean `{best}`?" if best else ""
