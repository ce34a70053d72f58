"""The terms of rulesets/contracts/acme.pricing for 2026-08, copied by hand.

The hand-written baselines of bench_rate.py and bench_batch.py rate `acme`
from these, as an engineer would without pricing-dsl; both benchmarks first
check that the baseline and pricing-dsl give the same amounts.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

CENT = Decimal("0.01")
ZERO = Decimal(0)

BASE = Decimal("529.00")
MAU_INCLUDED = Decimal(25000)
MAU_RATE = Decimal("0.09")
# concurrency 8%: the allowance is 8% of the included MAU, rounded down.
CONC_ALLOWANCE = (MAU_INCLUDED * Decimal(8) / 100).to_integral_value(ROUND_FLOOR)
CONC_RATE = Decimal("1.00")
VOICE = Decimal("0.001")
VIDEO = Decimal("0.003")
HIPAA = Decimal("500.00")
E2E = Decimal("250.00")
