"""Scope: the region a viewer may see, enforced in every query.

Region codes are fixed width per level, so a region's descendants are exactly
the codes that start with its code. The prefix test is written as a range
(code >= scope and code < scope + '~') so both SQLite and PostgreSQL use the
ordinary B-tree index on the column.
"""
from __future__ import annotations

from sqlalchemy import and_, true


def in_scope(column, scope: str | None):
    if not scope:
        return true()
    return and_(column >= scope, column < scope + "~")


def code_in_scope(code: str | None, scope: str | None) -> bool:
    if not scope:
        return True
    return bool(code) and code.startswith(scope)
