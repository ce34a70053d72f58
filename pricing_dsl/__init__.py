"""pricing-dsl: a small language for usage-based pricing, and an exact rating engine.

Load plans and contracts once, then rate many accounts::

    import pricing_dsl
    rules = pricing_dsl.load("rulesets/")
    invoice = rules.rate("acme", {"period": "2026-08", "mau": 26250})
    print(invoice.total)
"""

from ._errors import Diagnostic, PricingError
from ._invoice import Explanation, Invoice, Line
from ._ruleset import Ruleset, load, loads
from ._metering import BadRows, MeterOptions, MeterResult, UsageRecord, meter
from ._usage import Period, Usage

__all__ = [
    "BadRows",
    "Diagnostic",
    "Explanation",
    "Invoice",
    "Line",
    "MeterOptions",
    "MeterResult",
    "Period",
    "PricingError",
    "Ruleset",
    "Usage",
    "UsageRecord",
    "load",
    "loads",
    "meter",
]

__version__ = "0.1.0"
