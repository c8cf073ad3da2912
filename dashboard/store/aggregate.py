"""Grouped query results read as one row.

``keyed(conn, stmt)`` turns a grouped ``select(key, value, ...)`` into a
``{key: value}`` (or ``{key: [values...]}``) dict built by the database as a
single JSON document. Python's sqlite3 releases the GIL on every row it steps
over; a wall's per-grid counts are ~15,000 rows at city scale, and while other
requests of the same page load hold the GIL, each of those hand-offs waits its
turn: measured, the layout's counts took 0.9 s on a loaded server against
0.14 s alone. One row per query takes that cost away on both stores.
"""
from __future__ import annotations

import json

from sqlalchemy import func, select


def keyed(conn, stmt) -> dict:
    sub = stmt.subquery()
    key, *values = list(sub.c)
    sqlite = conn.dialect.name == "sqlite"
    if len(values) == 1:
        value = values[0]
    else:
        value = (func.json_array if sqlite else func.json_build_array)(*values)
    agg = (func.json_group_object if sqlite else func.json_object_agg)(key, value)
    doc = conn.execute(select(agg).where(key.is_not(None))).scalar()
    if doc is None:
        return {}
    return json.loads(doc) if isinstance(doc, (str, bytes)) else doc


def listed(conn, stmt) -> list:
    """The first column of ``stmt`` as a list, read as one JSON array."""
    sub = stmt.subquery()
    col = list(sub.c)[0]
    agg = (func.json_group_array if conn.dialect.name == "sqlite" else func.json_agg)(col)
    doc = conn.execute(select(agg)).scalar()
    if doc is None:
        return []
    return json.loads(doc) if isinstance(doc, (str, bytes)) else doc
