"""pricing-dsl: a small language for usage-based pricing, and an exact rating engine.

Load plans and contracts once, then rate many accounts::

    import pricing_dsl
    rules = pricing_dsl.load("rulesets/")
    invoice = rules.rate("acme", {"period": "2026-08", "mau": 26250})
    print(invoice.total)
"""

from typing import TYPE_CHECKING, Any

from ._errors import Diagnostic, PricingError
from ._invoice import Explanation, Invoice, Line
from ._ruleset import Ruleset, load, loads
from ._statement import LedgerEntry, Statement, YearSummary
from ._usage import Period, Usage

if TYPE_CHECKING:
    from ._batch import BatchError, BatchSummary, BatchUsageError, run_batch
    from ._metering import BadRows, MeterOptions, MeterResult, UsageRecord, meter

_METERING = frozenset({"BadRows", "MeterOptions", "MeterResult", "UsageRecord", "meter"})
_BATCH = frozenset({"BatchError", "BatchSummary", "BatchUsageError", "run_batch"})


def __getattr__(name: str) -> Any:
    # Metering and batch runs are imported on first use, so `import
    # pricing_dsl` (and every `pricing rate`) does not pay for them.
    if name in _METERING:
        from . import _metering

        return getattr(_metering, name)
    if name in _BATCH:
        from . import _batch

        return getattr(_batch, name)
    raise AttributeError(f"module 'pricing_dsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _METERING | _BATCH)


__all__ = [
    "BadRows",
    "BatchError",
    "BatchSummary",
    "BatchUsageError",
    "Diagnostic",
    "Explanation",
    "Invoice",
    "LedgerEntry",
    "Line",
    "MeterOptions",
    "MeterResult",
    "Period",
    "PricingError",
    "Ruleset",
    "Statement",
    "Usage",
    "UsageRecord",
    "YearSummary",
    "load",
    "loads",
    "meter",
    "run_batch",
]

__version__ = "0.1.0"
