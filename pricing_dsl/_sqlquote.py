"""Quoting for the SQL text that metering and `pricing batch` build: one copy of each rule."""

from __future__ import annotations

__all__ = ["sql_ident", "sql_string"]


def sql_string(s: str) -> str:
    """A SQL string literal: each single quote in ``s`` is doubled."""
    return "'" + s.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier: each double quote in ``name`` is doubled."""
    return '"' + name.replace('"', '""') + '"'
