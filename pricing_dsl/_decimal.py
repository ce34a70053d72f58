"""The decimal context every engine computes in, and the rounding modes."""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
)

__all__ = ["CONTEXT", "EXACT", "ROUNDING"]

# 100 significant digits keep every product of a price and a quantity exact;
# only proration divides, and its result is rounded once, on the line.  Our
# own context, never the caller's: a billing system may change its thread's.
CONTEXT = Context(
    prec=100, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}

# Products and sums of usage and prices must be exact: this context traps
# Inexact and Rounded, so a value with more digits than it holds raises
# instead of being rounded silently.  Rating runs in it; the few operations
# that round on purpose (proration, rounding a line) use CONTEXT explicitly.
EXACT = CONTEXT.copy()
EXACT.traps[Inexact] = True
EXACT.traps[Rounded] = True
