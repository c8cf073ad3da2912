"""What the consumer needs of the case engine besides the rules: the clock and the duplicates.

``CaseContext`` is built once per consumer (from the settings, or the defaults): the working
calendar (dashboard/cases/workcalendar.py), the taxonomy, the 即将到期 share, the handling-unit
register (dashboard/cases/routing.py, loaded lazily and cached) and the duplicate index.

Deadlines are kept on the event row as instants (``deadline_at``, ``due_soon_at``) plus the clock
they run on (``deadline_basis``: natural_hours, working_hours or working_days) and the allowance in
that clock's seconds (``allowance_s``). A clock value is a number of seconds (working seconds since
2000 for working time, POSIX seconds for natural hours), so moving a deadline by a suspension or an
extension is arithmetic on clock values and one conversion back to an instant.

The duplicate index (``DuplicateIndex``) answers "is there an open case of the same 小类 within R
metres reported in the last W hours" from memory: a grid of cells about R wide per 小类, seeded from
the store on first use and kept up to date with every batch this consumer commits and every event
delta the other consumers publish (grid:deltas). docs/cases.md ("The consumer") says what that
leaves out.
"""
from __future__ import annotations

import bisect
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from ..cases import taxonomy as _taxonomy
from ..cases.workcalendar import (DEFAULT_HOLIDAYS_PATH, DEFAULT_WORK_HOURS, FIRST_YEAR, LAST_YEAR, WorkCalendar,
                                  load_holidays)

log = logging.getLogger(__name__)

UTC = timezone.utc
REGISTER_TTL_S = 30.0          # how long a loaded register of handling units is used before reloading
M_PER_DEG_LAT = 111_320.0
FRESH_MEMO_MAX = 4096          # fresh deadlines remembered (a night's worth of reports is a handful)


@dataclass
class Deadline:
    """A case's clock after a step: what the event row stores."""

    at: datetime
    basis: str
    allowance_s: float
    due_soon_at: datetime
    provisional: bool


_EPOCH_ORD = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class FastClock:
    """The working calendar's clock (``WorkCalendar.working_clock`` and its inverse) for the
    consumer's hot path: the same values, from per-day and per-hour caches instead of datetime
    arithmetic in the jurisdiction's zone (test_cases111 checks the two agree)."""

    def __init__(self, cal: WorkCalendar):
        self.cal = cal
        self.periods = cal._periods
        self._off: dict[int, int] = {}                   # UTC hour -> the zone's offset (s)
        self._days: dict[int, tuple] = {}                # local day number -> (base, working, year)

    def offset(self, ts: float) -> int:
        h = int(ts // 3600)
        off = self._off.get(h)
        if off is None:
            off = self._off[h] = int(datetime.fromtimestamp(h * 3600, UTC).astimezone(self.cal.tz)
                                     .utcoffset().total_seconds())
        return off

    def _day(self, dayn: int) -> tuple:
        info = self._days.get(dayn)
        if info is None:
            d = date.fromordinal(_EPOCH_ORD + dayn)
            info = self._days[dayn] = (self.cal._day_start(d), self.cal.day(d).working, d.year)
        return info

    def year(self, at: datetime) -> int:
        ts = at.timestamp()
        return self._day(int((ts + self.offset(ts)) // 86400))[2]

    def value(self, at: datetime) -> float:
        return self.value_year(at)[0]

    def value_year(self, at: datetime) -> tuple[float, int]:
        """The working clock at ``at`` and ``at``'s local year."""
        ts = at.timestamp()
        loc = ts + self.offset(ts)
        dayn = int(loc // 86400)
        base, working, year = self._day(dayn)
        if not working:
            return base, year
        s = loc - dayn * 86400
        inside = 0.0
        for a, b in self.periods:
            if s <= a:
                break
            inside += min(s, b) - a
        return base + inside, year

    def instant(self, value: float, year: int) -> datetime:
        return self.instant_year(value, year)[0]

    def instant_year(self, value: float, year: int) -> tuple[datetime, int]:
        """The earliest instant the working clock reaches ``value``, and its local year (the
        search starts at ``year``)."""
        cal = self.cal
        cum = cal._cum.get(year) or cal._year_cum(year)
        if not cum[0] < value <= cum[-1]:  # rarely: the deadline is in another year
            while year > FIRST_YEAR and cal._year_cum(year)[0] >= value:
                year -= 1
            while cal._year_cum(year)[-1] < value:
                year += 1
                if year > LAST_YEAR:
                    raise ValueError("the deadline falls after the last supported year")
            cum = cal._year_cum(year)
        i = bisect.bisect_left(cum, value, 1) - 1
        rest = value - cum[i]
        s = 0.0
        for a, b in self.periods:
            if rest <= b - a:
                s = a + rest
                break
            rest -= b - a
        days = date(year, 1, 1).toordinal() + i - _EPOCH_ORD
        wall = days * 86400 + s   # local wall-clock seconds
        off = self.offset(wall - self.offset(wall))
        # whole days and seconds apart, as the calendar's date + timedelta (the same microsecond)
        return _EPOCH + timedelta(days=days, seconds=s - off), year


class CaseContext:
    """The calendar, taxonomy and settings the consumer applies cases with (one per consumer)."""

    def __init__(self, calendar: WorkCalendar | None = None, *, due_soon_share: float = 0.2,
                 duplicate_radius_m: float = 50.0, duplicate_window_h: float = 24.0):
        self.cal = calendar or WorkCalendar("Asia/Shanghai", DEFAULT_WORK_HOURS, load_holidays(DEFAULT_HOLIDAYS_PATH))
        self.fast = FastClock(self.cal)
        # the calendar's prefix sums are built from 2000 on first use: at start, not in a batch
        self.fast.value_year(datetime.now(UTC))
        self.tax = _taxonomy.load()
        self.share = due_soon_share
        self._fresh_memo: dict[tuple, tuple] = {}  # (clock value, allowance) -> fresh deadline
        self.duplicates = DuplicateIndex(duplicate_radius_m, duplicate_window_h)
        self._register = None
        self._register_at = 0.0
        self._routing = None

    @classmethod
    def from_settings(cls, settings, calendar: WorkCalendar | None = None) -> "CaseContext":
        return cls(calendar or WorkCalendar.from_settings(settings), due_soon_share=settings.due_soon_share,
                   duplicate_radius_m=settings.duplicate_radius_m, duplicate_window_h=settings.duplicate_window_h)

    # --- the clock -----------------------------------------------------------------------
    @staticmethod
    def working(basis: str | None) -> bool:
        return basis is not None and basis != "natural_hours"

    def value(self, working: bool, at: datetime) -> float:
        return self.fast.value(at) if working else at.timestamp()

    def instant(self, working: bool, value: float, near: datetime) -> datetime:
        """The earliest instant the clock reaches ``value`` (searched from ``near``'s year)."""
        if working:
            # the calendar's inverse of working_clock: a bisect over per-day prefix sums
            return self.fast.instant(value, self.fast.year(near))
        return datetime.fromtimestamp(value, UTC)

    def _provisional(self, working: bool, a: datetime, b: datetime) -> bool:
        if not working:
            return False
        y0, y1 = self.fast.year(min(a, b)), self.fast.year(max(a, b))
        return any(not self.cal.knows_year(y) for y in range(y0, y1 + 1))

    def rule(self, category: str, subcategory: str | None):
        return self.tax.rule(category, subcategory)

    def fresh(self, category: str, subcategory: str | None, start: datetime) -> Deadline:
        """The taxonomy's allowance from ``start`` (a report, an escalation to a new tier)."""
        dl = self.rule(category, subcategory).deadline
        allowance = self.cal.allowance_seconds(dl)
        if not dl.working:  # datetime arithmetic: exact to the microsecond, unlike POSIX floats
            return Deadline(start + timedelta(seconds=allowance), dl.kind, allowance,
                            start + timedelta(seconds=(1.0 - self.share) * allowance), False)
        fast = self.fast
        v0, y0 = fast.value_year(start)
        # every report outside working hours (nights, weekends, holidays: most of the week) starts
        # from the same clock value, the last close, so their deadlines repeat until the next opening
        key = (v0, allowance)
        hit = self._fresh_memo.get(key)
        if hit is None:
            at, y1 = fast.instant_year(v0 + allowance, y0)
            soon = fast.instant(v0 + (1.0 - self.share) * allowance, y0)
            provisional = not (y0 == y1 and self.cal.knows_year(y0)) and \
                any(not self.cal.knows_year(y) for y in range(y0, y1 + 1))
            if len(self._fresh_memo) >= FRESH_MEMO_MAX:
                self._fresh_memo.clear()
            hit = self._fresh_memo[key] = (at, soon, provisional)
        at, soon, provisional = hit
        # from outside working hours the clock's value there is the last close: not before the start
        return Deadline(max(at, start), dl.kind, allowance, max(soon, start), provisional)

    def set_to(self, basis: str | None, start: datetime, deadline: datetime) -> Deadline:
        """A deadline set by a step (registered, dispatched, escalated with deadline_at): the
        allowance is the clock time from the step to it."""
        basis = basis or "natural_hours"
        working = self.working(basis)
        v1 = self.value(working, deadline)
        allowance = max(0.0, v1 - self.value(working, start))
        soon = self.instant(working, v1 - self.share * allowance, deadline)
        return Deadline(deadline, basis, allowance, soon, self._provisional(working, start, deadline))

    def extend(self, basis: str | None, allowance_s: float | None, old: datetime, new: datetime,
               at: datetime) -> Deadline:
        """延期: the allowance grows by the clock time between the old and the new deadline."""
        basis = basis or "natural_hours"
        working = self.working(basis)
        v1 = self.value(working, new)
        grown = max(0.0, v1 - self.value(working, old))
        allowance = (allowance_s if allowance_s is not None else 0.0) + grown
        soon = self.instant(working, v1 - self.share * allowance, new)
        return Deadline(new, basis, allowance, soon, self._provisional(working, at, new))

    def remaining(self, basis: str | None, deadline: datetime, at: datetime) -> float:
        """Clock seconds left at ``at`` (negative when overdue): what a suspension keeps."""
        working = self.working(basis)
        return self.value(working, deadline) - self.value(working, at)

    def resume(self, basis: str | None, allowance_s: float | None, remaining_s: float, at: datetime) -> Deadline:
        """恢复: the deadline is the resumption plus the time that was left, on the same clock."""
        basis = basis or "natural_hours"
        working = self.working(basis)
        v = self.value(working, at) + remaining_s
        deadline = self.instant(working, v, at)
        allowance = allowance_s if allowance_s is not None else max(0.0, remaining_s)
        soon = self.instant(working, v - self.share * allowance, at)
        return Deadline(deadline, basis, allowance, soon, self._provisional(working, at, deadline))

    def advance(self, ev: dict, step: str, at: datetime, deadline_at: datetime | None = None) -> None:
        """Case ``ev``'s clock (the event row's fields) after the legal step ``step`` at ``at``.

        ``deadline_at`` is a deadline the step itself set (registered, dispatched, escalated or
        extended with one): an operator's instant, kept as given. Every other deadline is derived
        here: a new tier's allowance afresh on an escalation without one, the time left kept by a
        suspension and spent again from the resumption. The consumer applies steps through this,
        and ``dashboard.cases.recount`` replays a case's steps through it on a calendar that has
        since learnt a year, so the two can never count differently."""
        if step == "escalated" and deadline_at is None:
            set_deadline(ev, self.fresh(ev["category"], ev["subcategory"], at))
        elif step == "suspended":
            if ev["deadline_at"] is not None:
                ev["remaining_s"] = self.remaining(ev["deadline_basis"], ev["deadline_at"], at)
        elif step == "resumed":
            if ev["remaining_s"] is not None:
                set_deadline(ev, self.resume(ev["deadline_basis"], ev["allowance_s"], ev["remaining_s"], at))
            ev["remaining_s"] = None
        elif step == "extended" and deadline_at is not None:  # the machine requires one
            set_deadline(ev, self.extend(ev["deadline_basis"], ev["allowance_s"], ev["deadline_at"] or at,
                                         deadline_at, at))
        if deadline_at is not None and step in ("registered", "dispatched", "escalated"):
            set_deadline(ev, self.set_to(ev["deadline_basis"], at, deadline_at))

    def hazard_due_soon(self, ordered_at: datetime, deadline: datetime) -> tuple[datetime, bool]:
        """A hazard's 即将到期: the last share of the working time from its latest order (or
        failed re-inspection) to its deadline (an extension moves the deadline, not the order);
        and whether that count crosses a year the calendar does not know (provisional)."""
        dl = self.set_to("working_days", ordered_at, deadline)
        return dl.due_soon_at, dl.provisional

    def after_working_days(self, start: datetime, days: int) -> tuple[datetime, bool, float]:
        """A hazard's order of ``days`` working days from ``start``: the deadline, whether it is
        provisional, and its allowance in working seconds (what ``recount_hazards`` counts again)."""
        return self.after_working_seconds(start, days * float(self.cal.daily_seconds))

    def after_working_seconds(self, start: datetime, allowance: float) -> tuple[datetime, bool, float]:
        due = self.cal.add(True, start, allowance)
        return due.at.astimezone(UTC), due.provisional, allowance

    def again(self, start: datetime, previous_start: datetime | None, previous_deadline: datetime | None
              ) -> tuple[datetime, bool, float]:
        """The same working-time allowance again from ``start`` (a failed re-inspection without
        a new deadline): the previous order's deadline less its start, on the working clock."""
        if previous_start is None or previous_deadline is None or previous_deadline <= previous_start:
            return self.after_working_days(start, 1)
        allowance = max(self.value(True, previous_deadline) - self.value(True, previous_start),
                        float(self.cal.daily_seconds) / 8)  # at least an hour of work
        return self.after_working_seconds(start, allowance)

    # --- handling units -------------------------------------------------------------------
    def routing(self):
        """dashboard.cases.routing, or None while it does not exist (units then go unchecked)."""
        if self._routing is None:
            try:
                from ..cases import routing
            except ImportError:
                self._routing = False
            else:
                self._routing = routing
        return self._routing or None

    def register(self, conn):
        routing = self.routing()
        if routing is None:
            return None
        now = time.monotonic()
        if self._register is None or now - self._register_at > REGISTER_TTL_S:
            self._register = routing.Register.load(conn)
            self._register_at = now
        return self._register


def set_deadline(ev: dict, dl: Deadline) -> None:
    """Write deadline ``dl`` into the event row ``ev``."""
    ev["deadline_at"], ev["deadline_basis"], ev["allowance_s"] = dl.at, dl.basis, dl.allowance_s
    ev["due_soon_at"], ev["deadline_provisional"] = dl.due_soon_at, dl.provisional


_DEFAULT: CaseContext | None = None


def default_context() -> CaseContext:
    """The context of callers that give none (tests, scripts): default settings."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = CaseContext()
    return _DEFAULT


# --- likely duplicates ----------------------------------------------------------------------

# One open case in the index is a tuple (id, lon, lat, POSIX seconds of the report): one is made
# for every report a consumer learns (its own and the others'), and a tuple is made in C (a slotted
# dataclass ran a Python __init__ each time).

# A cell is one int: x * _ROW + y. Cells are ``radius`` metres wide (50 m by default), so y
# stays far below _ROW / 2 anywhere on Earth and two cells never share a key.
_ROW = 1 << 24
_AROUND = tuple(dx * _ROW + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1))


@dataclass
class DuplicateIndex:
    """Open cases with a point, by 小类 and cell: cells are ``radius`` metres wide, so a match
    within the radius is in one of the 3 x 3 cells around the report."""

    radius_m: float = 50.0
    window_h: float = 24.0
    cells: dict = field(default_factory=dict)       # sub -> {cell: [(id, lon, lat, at), ...]} (a few)
    where: dict = field(default_factory=dict)       # event id -> (sub, cell)
    seeded: bool = False
    deltas_from: str = "$"                          # grid:deltas read position (other consumers)
    _lon_m: float = 0.0

    @property
    def window_s(self) -> float:
        return self.window_h * 3600.0

    def like(self) -> "DuplicateIndex":
        """An empty index with the same cells (a batch's, to be merged into this one)."""
        return DuplicateIndex(self.radius_m, self.window_h, _lon_m=self._lon_m)

    def _key(self, lon: float, lat: float) -> int:
        if not self._lon_m:
            self._lon_m = M_PER_DEG_LAT * math.cos(math.radians(lat))  # the jurisdiction is small
        r = self.radius_m
        return math.floor(lon * self._lon_m / r) * _ROW + math.floor(lat * M_PER_DEG_LAT / r)

    def add(self, eid: str, sub: str | None, lon: float | None, lat: float | None, at: datetime | float) -> None:
        if sub is None or lon is None or lat is None or self.radius_m <= 0:
            return
        if eid in self.where:
            return
        self._add(eid, sub, self._key(lon, lat), lon, lat, at if isinstance(at, float) else at.timestamp())

    def _add(self, eid: str, sub: str, key: int, lon: float, lat: float, t: float) -> None:
        by_cell = self.cells.get(sub)
        if by_cell is None:
            by_cell = self.cells[sub] = {}
        cell = by_cell.get(key)
        if cell is None:
            cell = by_cell[key] = []
        cell.append((eid, lon, lat, t))
        self.where[eid] = (sub, key)

    def merge(self, other: "DuplicateIndex | None") -> None:
        """Take in ``other``'s cases (a committed batch's reports, its cells handed over: ``other``
        is not used again), keeping those known already."""
        if other is None or not other.where:
            return
        if not self._lon_m:
            self._lon_m = other._lon_m
        # (two views: isdisjoint walks the smaller, the batch; given the dict it would walk all of ours)
        if other._lon_m != self._lon_m or not other.where.keys().isdisjoint(self.where.keys()):
            # cells of another width, or cases known already (not for a batch's new reports)
            for by_cell in other.cells.values():
                for cell in by_cell.values():
                    for oid, olon, olat, oat in cell:
                        self.add(oid, other.where[oid][0], olon, olat, oat)
            return
        for sub, by_cell in other.cells.items():
            mine = self.cells.get(sub)
            if mine is None:
                self.cells[sub] = by_cell
                continue
            for key, cell in by_cell.items():
                into = mine.get(key)
                if into is None:
                    mine[key] = cell
                else:
                    into.extend(cell)
        self.where.update(other.where)

    def drop(self, eid: str) -> None:
        place = self.where.pop(eid, None)
        if place is not None:
            sub, key = place
            by_cell = self.cells.get(sub)
            cell = by_cell.get(key) if by_cell is not None else None
            if cell is not None:
                cell[:] = [o for o in cell if o[0] != eid]
                if not cell:
                    del by_cell[key]
                    if not by_cell:
                        del self.cells[sub]

    def find(self, sub: str | None, lon: float | None, lat: float | None, at: datetime | float) -> str | None:
        """The nearest open case of ``sub`` within the radius, reported at most ``window_h`` hours
        before ``at`` (and not after it); None when there is none."""
        if sub is None or lon is None or lat is None or self.radius_m <= 0:
            return None
        if sub not in self.cells:
            return None
        return self._near(sub, self._key(lon, lat), lon, lat, at if isinstance(at, float) else at.timestamp())

    def _near(self, sub: str, key: int, lon: float, lat: float, t: float) -> str | None:
        by_cell = self.cells.get(sub)
        if not by_cell:
            return None
        since = t - self.window_s
        best, best_d, best_at = None, self.radius_m, 0.0
        kx = self._lon_m
        for off in _AROUND:
            cell = by_cell.get(key + off)
            if not cell:
                continue
            for oid, olon, olat, oat in cell:
                if not (since <= oat <= t):
                    continue
                d = math.hypot((olon - lon) * kx, (olat - lat) * M_PER_DEG_LAT)
                if d <= best_d and (best is None or d < best_d or oat < best_at):
                    best, best_d, best_at = oid, d, oat
        return best

    def report(self, batch: "DuplicateIndex", eid: str, sub: str | None, lon: float | None, lat: float | None,
               t: float) -> str | None:
        """A new report (POSIX seconds ``t``): the open case it likely duplicates, ours first, then
        one of its batch's (``batch``, made by ``like``); then it joins the batch. Same as ``find``
        on both and ``batch.add``, with the cell key computed once (this runs for every report)."""
        if sub is None or lon is None or lat is None or self.radius_m <= 0:
            return None
        key = self._key(lon, lat)
        if batch._lon_m != self._lon_m:
            if batch.where:  # cells of another width already (not made by like): key them apart
                hit = self._near(sub, key, lon, lat, t) or batch.find(sub, lon, lat, t)
                batch.add(eid, sub, lon, lat, t)
                return hit
            batch._lon_m = self._lon_m
        hit = self._near(sub, key, lon, lat, t) or batch._near(sub, key, lon, lat, t)
        if eid not in batch.where:
            batch._add(eid, sub, key, lon, lat, t)
        return hit

    def prune(self, now: datetime) -> None:
        cutoff = now.timestamp() - self.window_s - 3600.0
        old = [o[0] for by_cell in self.cells.values() for cell in by_cell.values() for o in cell if o[3] < cutoff]
        for eid in old:
            self.drop(eid)

    def seed(self, conn, now: datetime, open_states) -> None:
        """Once per consumer: the open cases reported within the window, from the store."""
        from sqlalchemy import select

        from ..store.schema import event

        since = now - timedelta(hours=self.window_h)
        rows = conn.execute(
            select(event.c.id, event.c.subcategory, event.c.lon, event.c.lat, event.c.reported_at)
            .where(event.c.state.in_(open_states), event.c.reported_at >= since,
                   event.c.lon.is_not(None), event.c.subcategory.is_not(None))
        ).all()
        for eid, sub, lon, lat, at in rows:
            self.add(eid, sub, lon, lat, at)
        self.seeded = True

    def follow(self, deltas: list[dict], open_states: frozenset) -> None:
        """Apply event deltas (this consumer's batch, or the others' from grid:deltas)."""
        self.follow_digest(self.digest(deltas, open_states))

    @staticmethod
    def digest(deltas: list[dict], open_states: frozenset) -> list:
        """What ``follow`` takes from event deltas, compact: ``[id, 小类, lon, lat, at]`` for an open
        case with a point, the id alone for a case that left the open states (or was deleted).
        A consumer publishes it beside its deltas (field ``o`` of the grid:deltas entry): the
        others then read five values a case instead of decoding the screens' deltas."""
        out = []
        for d in deltas:
            if d.get("k") != "event":
                continue
            if d.get("st") in open_states and d.get("op") == "upsert":
                if d.get("sub") and d.get("lon") is not None and d.get("at"):
                    out.append([d["id"], d["sub"], d["lon"], d["lat"], d["at"]])
            else:
                out.append(d["id"])
        return out

    def follow_digest(self, digest: list) -> None:
        """Apply a ``digest``: open cases join the index (once), the others leave it."""
        where = self.where
        for e in digest:
            if type(e) is str:
                if e in where:
                    self.drop(e)
            elif e[0] not in where:
                self.add(e[0], e[1], e[2], e[3], datetime.fromisoformat(e[4]).timestamp())
