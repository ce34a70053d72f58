"""`pricing batch`: usage for many accounts from one file, rated into a file of line items.

Two engines: ``duckdb`` compiles each contract's terms to SQL over exact
DECIMAL columns and lets DuckDB read and write the files in place; records
the SQL cannot rate exactly go to the interpreter, one by one.  ``python``
rates every record through ``Ruleset.rate``.  Both write the same lines.
DuckDB is imported only when a run needs it.  See docs/batch.md.
"""

from ._run import ENGINES, BatchError, BatchSummary, BatchUsageError, run_batch

__all__ = ["ENGINES", "BatchError", "BatchSummary", "BatchUsageError", "run_batch"]
