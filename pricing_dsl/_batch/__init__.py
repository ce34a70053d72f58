"""`pricing batch`: usage for many accounts from one file, rated into a file of line items.

Three engines, all writing the same lines: ``duckdb`` compiles each
contract's terms to SQL over exact DECIMAL columns and lets DuckDB read and
write the files in place (records the SQL cannot rate exactly go to the
interpreter, one by one); ``python`` rates every record through
``Ruleset.rate``; ``spark`` has Spark read the file and rate the records on
its executors with the python engine's code.  DuckDB and PySpark are
imported only when a run needs them.  See docs/batch.md.
"""

from ._run import ENGINES, BatchError, BatchSummary, BatchUsageError, run_batch

__all__ = ["ENGINES", "BatchError", "BatchSummary", "BatchUsageError", "run_batch"]
