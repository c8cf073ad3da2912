"""A cheap fingerprint of what the feed has written: the screens' shared figures are
recomputed when it changes, not on a timer.

One query of index-backed maxima (the newest event change, hazard change, patrol and
position ping), plus the current minute: overdue counts and "today" move with the
clock, and a minute is the screens' resolution for them. Two consumers can commit
out of apply-time order, so a change may hide behind an equal maximum; callers keep a
live page's tick as a second test (``Services.shared(fresh_after_ms=...)``) and a
bounded TTL.
"""
from __future__ import annotations

import time

from sqlalchemy import func, select

from .schema import event, hazard, patrol, position

# How long a result keyed by feed_version may be reused: the minute in the fingerprint already
# ends it within a minute; this bounds the out-of-order commits the fingerprint cannot see.
MAX_AGE_S = 60.0


def feed_version(engine) -> str:
    stmt = select(select(func.max(event.c.updated_at)).scalar_subquery(),
                  select(func.max(hazard.c.updated_at)).scalar_subquery(),
                  select(func.max(patrol.c.at)).scalar_subquery(),
                  select(func.max(position.c.at)).scalar_subquery())
    with engine.connect() as conn:
        row = conn.execute(stmt).one()
    return "|".join(str(v) for v in row) + f"|{int(time.time() // 60)}"
