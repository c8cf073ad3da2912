"""A case's clock: deadline, time left, 即将到期 (due soon), 超期 (overdue), overtime multiple.

Pure functions over a ``Timeline``: when the allowance started, how long it is (a taxonomy
``Deadline``), the suspensions (挂账: the clock stops) and the extensions (延期: a new
deadline). The allowance is kept as clock seconds (working seconds for working-time kinds),
so a suspension after an extension still moves the deadline, and "the last 20%" is a share
of the allowance as granted, extension included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .workcalendar import Due, WorkCalendar, merge

DEFAULT_DUE_SOON_SHARE = 0.2


@dataclass(frozen=True)
class Timeline:
    start: datetime                                  # when the allowance starts to run
    deadline: object                                 # taxonomy.Deadline (kind, amount)
    suspensions: tuple = ()                          # ((from, to or None), ...): 挂账 ... 恢复
    extensions: tuple = ()                           # ((granted_at, new deadline), ...): 延期
    finished_at: datetime | None = None              # the clock's end (e.g. feedback or closure)


@dataclass(frozen=True)
class Status:
    deadline: Due                 # the deadline now (after extensions and suspensions)
    allowance_s: float            # the allowance in clock seconds (extended, if it was)
    used_s: float                 # clock seconds used until now (or until finished)
    left_s: float                 # allowance - used (negative when overdue)
    due_soon: bool                # 即将到期: open, not overdue, within the last share of the allowance
    overdue: bool                 # 超期
    overtime_multiple: float      # overtime / allowance: 0 on time, 1.0 = late by a whole allowance
    provisional: bool
    unknown_years: tuple[int, ...] = field(default=())


def allowance(cal: WorkCalendar, tl: Timeline) -> float:
    """The allowance in clock seconds: the taxonomy's, or the last extension's new deadline
    measured from the start (less the suspensions before the extension was granted)."""
    seconds = cal.allowance_seconds(tl.deadline)
    working = tl.deadline.working
    for granted_at, new_deadline in sorted(tl.extensions, key=lambda e: e[0]):
        before = [(a, b if b is not None and b <= granted_at else granted_at)
                  for a, b in tl.suspensions if a < granted_at]
        seconds = cal.elapsed(working, tl.start, new_deadline, merge(before, until=granted_at)).seconds
    return seconds


def status(cal: WorkCalendar, tl: Timeline, now: datetime, *, due_soon_share: float = DEFAULT_DUE_SOON_SHARE) -> Status:
    """Where a case stands at ``now`` against its deadline. An open suspension has stopped the
    clock since it began: time left does not fall while the case is suspended."""
    working = tl.deadline.working
    end = tl.finished_at if tl.finished_at is not None and tl.finished_at <= now else now
    suspensions = merge(tl.suspensions, until=max(now, tl.start))
    allow = allowance(cal, tl)
    used = cal.elapsed(working, tl.start, end, suspensions)
    due = cal.add(working, tl.start, allow, suspensions)
    left = allow - used.seconds
    overdue = left < 0
    multiple = (-left / allow) if overdue and allow > 0 else 0.0
    open_ = tl.finished_at is None or tl.finished_at > now
    due_soon = open_ and not overdue and left <= due_soon_share * allow
    unknown = tuple(sorted(set(used.unknown_years) | set(due.unknown_years)))
    return Status(due, allow, used.seconds, left, due_soon, overdue, multiple, bool(unknown), unknown)
