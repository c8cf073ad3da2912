"""China's working calendar: public holidays and make-up working days (调休), working hours.

Days come from the maintained ``chinesecalendar`` package (import ``chinese_calendar``) and,
for years it does not know yet, from the operators' override file ``data/holidays.yaml``
(HOLIDAYS_FILE), filled in when the State Council publishes the next year's schedule each
autumn. A date in the file wins over the package, so the file may also correct it.

A year that neither knows is counted on weekdays, and every result that touched it says so
(``provisional`` and the ``unknown_years``): never a silent guess. ``unknown_years_ahead``
is what /healthz and the wall warn with.

Time is measured on a "clock": for working-time deadlines the clock runs only during working
hours of working days; for natural hours it runs always. Suspension intervals (挂账) stop it.
Internally the clock of an instant is the working seconds since 2000-01-01 (prefix sums per
day), so a deadline or a duration costs a binary search, not a walk over the days.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml

from .yamlfile import FileError, Reader, compose

DEFAULT_HOLIDAYS_PATH = Path(__file__).resolve().parents[2] / "data" / "holidays.yaml"
DEFAULT_WORK_HOURS = "08:30-12:00,13:30-17:30"
FIRST_YEAR, LAST_YEAR = 2000, 2100  # the feed refuses times before 2000
_PACKAGE_HOLIDAYS = chinese_calendar.holidays   # date -> name (days off, including weekend days of a holiday)
_PACKAGE_WORKDAYS = chinese_calendar.workdays   # date -> name (make-up working days on a weekend)
PACKAGE_YEARS = range(min(_PACKAGE_HOLIDAYS).year, max(_PACKAGE_HOLIDAYS).year + 1)

Interval = tuple[datetime, datetime]


class CalendarError(FileError):
    """The holiday override file cannot be used; the message names the file and line."""


class UnknownYear(LookupError):
    """A strict question about a year neither the package nor the override file knows."""


# --- working hours -------------------------------------------------------------------------

_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_work_hours(text: str) -> tuple[tuple[time, time], ...]:
    """``"08:30-12:00,13:30-17:30"`` -> ((08:30, 12:00), (13:30, 17:30)); ordered, not overlapping."""
    periods = []
    for part in text.split(","):
        m = _PERIOD.match(part)
        if not m:
            raise ValueError(f"working hours must look like 08:30-12:00,13:30-17:30, not {part.strip()!r}")
        h1, m1, h2, m2 = map(int, m.groups())
        if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60) or (h2 == 24 and m2):
            raise ValueError(f"{part.strip()!r} is not a time of day")
        a, b = h1 * 60 + m1, h2 * 60 + m2
        if a >= b:
            raise ValueError(f"{part.strip()!r} ends before it starts")
        if periods and a < periods[-1][1]:
            raise ValueError(f"{part.strip()!r} starts before the previous period ends")
        periods.append((a, b))
    return tuple((time(a // 60, a % 60), time(b // 60, b % 60) if b < 1440 else time.max) for a, b in periods)


def _minutes(t: time) -> int:
    return 1440 if t == time.max else t.hour * 60 + t.minute


# --- the override file ----------------------------------------------------------------------

@dataclass(frozen=True)
class Overrides:
    """The operators' schedule: year -> {date: (working?, name)}."""

    path: str = ""
    years: dict = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.years is None:
            object.__setattr__(self, "years", {})


def parse_holidays(path: Path | str, text: str | None = None) -> Overrides:
    """Read and check the override file. Its shape::

        2027:
          holidays:            # days off (required, not empty)
            2027-01-01: 元旦
          workdays:            # make-up working days on a Saturday or Sunday (optional)
            2027-02-20: 春节调休
    """
    r = _CalReader(path)
    root = compose(path, text, CalendarError)
    years: dict[int, dict[date, tuple[bool, str]]] = {}
    if root is None or (isinstance(root, yaml.MappingNode) and not root.value):
        return Overrides(str(path), years)
    for key, value in r.pairs(root, "the file"):
        if key.tag != "tag:yaml.org,2002:int" or not FIRST_YEAR <= int(key.value) <= LAST_YEAR:
            raise r.fail(key, f"{key.value!r} is not a year from {FIRST_YEAR} to {LAST_YEAR}")
        year = int(key.value)
        m = r.mapping(value, f"year {year}", required=("holidays",), optional=("workdays",))
        days: dict[date, tuple[bool, str]] = {}
        for part, working in (("holidays", False), ("workdays", True)):
            if part not in m:
                continue
            node = m[part]
            if part == "holidays" and (not isinstance(node, yaml.MappingNode) or not node.value):
                raise r.fail(node, f"year {year}: holidays must list the days off (date: name)")
            for dnode, name in r.pairs(node, f"year {year} {part}"):
                day = r.day(dnode, year)
                if day in days:
                    raise r.fail(dnode, f"{day} is listed both as a holiday and as a working day")
                if working and day.weekday() < 5:
                    raise r.fail(dnode, f"{day} is a {day:%A}: a make-up working day falls on a Saturday or Sunday")
                days[day] = (working, r.text(name, f"the name of {day}"))
        years[year] = days
    return Overrides(str(path), years)


class _CalReader(Reader):
    def fail(self, node, message):  # type: ignore[override]
        err = super().fail(node, message)
        return CalendarError(err.path, err.line, err.problem)

    def day(self, node, year: int) -> date:
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise self.fail(node, f"{text or 'this'!r} is not a date (YYYY-MM-DD)") from None
        if day.year != year:
            raise self.fail(node, f"{day} is listed under year {year}")
        return day


@lru_cache(maxsize=8)
def load_holidays(path: Path | str = DEFAULT_HOLIDAYS_PATH) -> Overrides:
    """The override file, read once; a file that does not exist is an empty schedule."""
    if not Path(path).exists():
        return Overrides(str(path), {})
    return parse_holidays(path)


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Day:
    day: date
    working: bool
    known: bool          # False: neither the package nor the file knows the year (weekday rule)
    name: str | None     # the holiday or make-up day's name


@dataclass(frozen=True)
class Due:
    """A deadline. ``provisional``: the way to it crosses a year the calendar does not know, so
    it was counted on weekdays and will move when that year's schedule is filled in."""

    at: datetime
    provisional: bool = False
    unknown_years: tuple[int, ...] = ()


@dataclass(frozen=True)
class Span:
    """A duration on a clock (working or natural seconds), provisional as ``Due``."""

    seconds: float
    provisional: bool = False
    unknown_years: tuple[int, ...] = ()

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0


def merge(intervals: Iterable[tuple[datetime, datetime | None]], until: datetime | None = None) -> list[Interval]:
    """Suspension intervals sorted and merged; an open one (end None) ends at ``until``."""
    out: list[list[datetime]] = []
    for a, b in sorted(((a, b if b is not None else until) for a, b in intervals), key=lambda x: x[0]):
        if b is None:
            raise ValueError("an open suspension (no end) needs `until` (usually now)")
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# --- the calendar ---------------------------------------------------------------------------

class WorkCalendar:
    """Working days and hours of one jurisdiction (time zone)."""

    def __init__(self, tz: str = "Asia/Shanghai", hours: str | Sequence = DEFAULT_WORK_HOURS,
                 overrides: Overrides | None = None):
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        periods = parse_work_hours(hours) if isinstance(hours, str) else tuple(hours)
        self._periods = tuple((_minutes(a) * 60, _minutes(b) * 60) for a, b in periods)  # seconds of the day
        self.daily_seconds = sum(b - a for a, b in self._periods)
        self.overrides = overrides if overrides is not None else Overrides()
        self._cum: dict[int, list[int]] = {}   # year -> working seconds before each day since FIRST_YEAR
        self._day_cache: dict[date, Day] = {}

    @classmethod
    def from_settings(cls, settings) -> "WorkCalendar":
        path = getattr(settings, "holidays_file", "") or DEFAULT_HOLIDAYS_PATH
        return cls(settings.timezone, getattr(settings, "work_hours", DEFAULT_WORK_HOURS), load_holidays(path))

    # --- days ---
    def knows_year(self, year: int) -> bool:
        return year in PACKAGE_YEARS or year in self.overrides.years

    def day(self, d: date) -> Day:
        hit = self._day_cache.get(d)
        if hit is not None:
            return hit
        file_days = self.overrides.years.get(d.year)
        if file_days is not None and d in file_days:
            working, name = file_days[d]
            out = Day(d, working, True, name)
        elif d.year in PACKAGE_YEARS:
            if d in _PACKAGE_WORKDAYS:
                out = Day(d, True, True, _PACKAGE_WORKDAYS[d])
            elif d in _PACKAGE_HOLIDAYS:
                out = Day(d, False, True, _PACKAGE_HOLIDAYS[d])
            else:
                out = Day(d, d.weekday() < 5, True, None)
        else:
            out = Day(d, d.weekday() < 5, file_days is not None, None)
        self._day_cache[d] = out
        return out

    def is_working_day(self, d: date | datetime, *, strict: bool = False) -> bool:
        """Whether people work that (local) day. ``strict``: raise UnknownYear for a year that
        neither the package nor the file knows, instead of answering by the weekday."""
        if isinstance(d, datetime):
            d = self.local(d).date()
        info = self.day(d)
        if strict and not info.known:
            raise UnknownYear(f"no holiday schedule for {d.year}: add it to {self.overrides.path or 'HOLIDAYS_FILE'}")
        return info.working

    def unknown_years_ahead(self, now: datetime, days: int = 60) -> list[int]:
        """Years between ``now`` and ``days`` later that neither the package nor the file knows."""
        start = self.local(now).date()
        end = start + timedelta(days=days)
        return [y for y in range(start.year, end.year + 1) if not self.knows_year(y)]

    def local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("a time zone-aware datetime is required")
        return at.astimezone(self.tz)

    # --- the working clock ---
    def _year_cum(self, year: int) -> list[int]:
        cum = self._cum.get(year)
        if cum is None:
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise ValueError(f"year {year} is outside {FIRST_YEAR}-{LAST_YEAR}")
            base = 0 if year == FIRST_YEAR else self._year_cum(year - 1)[-1]
            cum = [base]
            d = date(year, 1, 1)
            while d.year == year:
                cum.append(cum[-1] + (self.daily_seconds if self.day(d).working else 0))
                d += timedelta(days=1)
            self._cum[year] = cum  # len = days in year + 1: the last is the next year's base
        return cum

    def _day_start(self, d: date) -> int:
        return self._year_cum(d.year)[d.timetuple().tm_yday - 1]

    def working_clock(self, at: datetime) -> int | float:
        """Working seconds from 2000-01-01 to ``at`` (local working hours of working days)."""
        loc = self.local(at)
        d = loc.date()
        base = self._day_start(d)
        if not self.day(d).working:
            return base
        s = loc.hour * 3600 + loc.minute * 60 + loc.second + loc.microsecond / 1e6
        inside = 0.0
        for a, b in self._periods:
            if s <= a:
                break
            inside += min(s, b) - a
        return base + inside

    def _from_working_clock(self, value: float, year: int = FIRST_YEAR) -> datetime:
        """The earliest instant whose working clock reaches ``value``; the search starts at
        ``year`` (the start's: a deadline is rarely in another year)."""
        while year > FIRST_YEAR and self._year_cum(year)[0] >= value:
            year -= 1
        while self._year_cum(year)[-1] < value:
            year += 1
            if year > LAST_YEAR:
                raise ValueError("the deadline falls after the last supported year")
        cum = self._year_cum(year)
        # the first day whose end reaches the value (a value at a day's end is that day's close)
        i = bisect.bisect_left(cum, value, 1) - 1
        d = date(year, 1, 1) + timedelta(days=i)
        rest = value - cum[i]
        for a, b in self._periods:
            if rest <= b - a:
                s = a + rest
                break
            rest -= b - a
        return datetime.combine(d, time(0), self.tz) + timedelta(seconds=s)

    def _years_between(self, a: datetime, b: datetime) -> tuple[int, ...]:
        y0, y1 = self.local(min(a, b)).year, self.local(max(a, b)).year
        return tuple(y for y in range(y0, y1 + 1) if not self.knows_year(y))

    # --- durations and deadlines ---
    def clock(self, working: bool, at: datetime) -> float:
        return self.working_clock(at) if working else at.timestamp()

    def elapsed(self, working: bool, start: datetime, end: datetime,
                suspensions: Iterable[tuple[datetime, datetime | None]] = ()) -> Span:
        """Clock time from ``start`` to ``end`` (0 if end is earlier), less the suspensions."""
        if end <= start:
            return Span(0.0)
        total = self.clock(working, end) - self.clock(working, start)
        for a, b in merge(suspensions, until=end):
            a, b = max(a, start), min(b, end)
            if b > a:
                total -= self.clock(working, b) - self.clock(working, a)
        unknown = self._years_between(start, end) if working else ()
        return Span(float(total), bool(unknown), unknown)

    def working_time_between(self, start: datetime, end: datetime,
                             suspensions: Iterable[tuple[datetime, datetime | None]] = ()) -> Span:
        return self.elapsed(True, start, end, suspensions)

    def add(self, working: bool, start: datetime, seconds: float,
            suspensions: Iterable[tuple[datetime, datetime | None]] = ()) -> Due:
        """The instant at which ``seconds`` of clock time have run from ``start``; the clock
        stops during the suspensions (each must have an end: close an open one at now)."""
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        target = self.clock(working, start) + seconds
        if working:
            year = self.local(start).year
            to_instant = lambda value: self._from_working_clock(value, year)  # noqa: E731
        else:
            to_instant = self._from_timestamp
        at = to_instant(target)
        for a, b in merge(suspensions):
            if b <= start:
                continue
            if a >= at:
                break  # after the deadline: too late to stop the clock
            a = max(a, start)
            target += self.clock(working, b) - self.clock(working, a)
            at = to_instant(target)
        at = max(at, start)  # nothing to add from outside working hours: the clock's value there is the last close
        unknown = self._years_between(start, at) if working else ()
        return Due(at, bool(unknown), unknown)

    def _from_timestamp(self, value: float) -> datetime:
        return datetime.fromtimestamp(value, timezone.utc).astimezone(self.tz)

    def add_working_hours(self, start: datetime, hours: float, suspensions=()) -> Due:
        return self.add(True, start, hours * 3600.0, suspensions)

    def add_working_days(self, start: datetime, days: int, suspensions=()) -> Due:
        """``days`` whole working days: from a moment in working hours, the same time of day
        ``days`` working days later; from outside them, the close of the last of those days."""
        return self.add(True, start, days * self.daily_seconds, suspensions)

    def add_natural_hours(self, start: datetime, hours: float, suspensions=()) -> Due:
        return self.add(False, start, hours * 3600.0, suspensions)

    def allowance_seconds(self, deadline) -> float:
        """A taxonomy Deadline as clock seconds (working days at this calendar's daily hours)."""
        if deadline.kind == "working_days":
            return deadline.amount * self.daily_seconds
        return deadline.amount * 3600.0

    def deadline(self, start: datetime, deadline, suspensions=()) -> Due:
        """``start`` plus a taxonomy Deadline (natural hours, working hours or working days)."""
        return self.add(deadline.working, start, self.allowance_seconds(deadline), suspensions)


def calendar_for(services) -> WorkCalendar:
    """The jurisdiction's calendar, built once per process from the settings (a bad override
    file raises CalendarError naming its line: the app refuses to start)."""
    cal = services.cache.get("work_calendar")
    if cal is None:
        cal = services.cache["work_calendar"] = WorkCalendar.from_settings(services.settings)
    return cal


def unknown_years_warning(cal: WorkCalendar, now: datetime, days: int = 60) -> str | None:
    """The warning /healthz and the wall's header show, or None when the calendar covers the days ahead."""
    years = cal.unknown_years_ahead(now, days)
    if not years:
        return None
    listed = ", ".join(map(str, years))
    return (f"no holiday schedule for {listed} within {days} days: deadlines reaching it are counted on "
            f"weekdays and marked provisional; fill in {cal.overrides.path or 'HOLIDAYS_FILE'}")
