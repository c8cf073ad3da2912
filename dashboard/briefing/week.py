"""ISO weeks in the jurisdiction's time zone: what "2026-W47" means, and which weeks compare."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dashboard import kpi

from .errors import BriefingError

_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Week:
    year: int
    week: int

    @property
    def iso(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def days(self) -> list[date]:
        return [self.monday + timedelta(days=i) for i in range(7)]

    def bounds(self, tz) -> tuple[datetime, datetime]:
        """[start, end) in UTC: local Monday 00:00 to the next local Monday 00:00."""
        return kpi.iso_week_bounds(self.year, self.week, tz)

    def previous(self) -> "Week":
        return of_day(self.monday - timedelta(days=7))

    def year_before(self) -> "Week":
        """The same ISO week number a year earlier (week 53 of a year whose predecessor has 52
        weeks compares with week 52)."""
        weeks = date(self.year - 1, 12, 28).isocalendar()[1]  # 28 Dec is always in the last ISO week
        return Week(self.year - 1, min(self.week, weeks))

    def label(self, lang: str = "zh") -> str:
        a, b = self.days[0], self.days[-1]
        if lang == "zh":
            return f"{self.year}年第{self.week}周（{a.isoformat()} 至 {b.isoformat()}）"
        return f"{self.iso} ({a.isoformat()} to {b.isoformat()})"


def of_day(d: date) -> Week:
    y, w, _ = d.isocalendar()
    return Week(y, w)


def parse(text: str) -> Week:
    m = _WEEK.match(text or "")
    if not m:
        raise BriefingError(f"week {text!r}: expected an ISO week such as 2026-W47")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise BriefingError(f"week {text!r}: {year} has no ISO week {week}") from None
    return Week(year, week)


def resolve(text: str | None, now: datetime, tz) -> Week:
    """The week asked for (default: last week, in the jurisdiction's time zone). A week that has
    not started yet is refused; the current week is allowed (its figures run to ``now``)."""
    today = kpi.local_date(now, tz)
    if not text:
        return of_day(today - timedelta(days=7))
    week = parse(text)
    if week.monday > today:
        raise BriefingError(f"week {week.iso} is in the future (today is {today.isoformat()}, "
                            f"week {of_day(today).iso}, in {kpi.zone(tz)})")
    return week
