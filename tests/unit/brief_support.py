"""Helpers for the briefing's tests: a week's figures computed by hand from the inserted rows,
and the tools a person would use on the files (pdftotext, pdffonts, pdftoppm, openpyxl)."""
from __future__ import annotations

import re
import subprocess
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from dashboard.domain import OPEN_STATES
from tests.unit.kpi_fixtures import GRIDS, NOW, OFFSET, local_day, rates_by_hand

WEEK = "2026-W46"                      # NOW is Friday of W47: W46 is "last week"
DAYS = [date(2026, 11, 9) + timedelta(days=i) for i in range(7)]
PREV_DAYS = [d - timedelta(days=7) for d in DAYS]
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc) - OFFSET


def in_days(t, days) -> bool:
    return t is not None and local_day(t) in days


def scoped(rows, scope):
    return [r for r in rows if r["grid_code"].startswith(scope)]


def by_hand(world, scope: str, days=DAYS) -> dict:
    """The headline of one week, from plain loops over the rows."""
    ev = scoped(world.events, scope)
    end = midnight(days[-1] + timedelta(days=1))
    rep = [e for e in ev if in_days(e["reported_at"], days)]
    clo = [e for e in ev if in_days(e["closed_at"], days)]
    hz = scoped(world.hazards, scope)
    standard = rates_by_hand(ev, midnight(days[0]), end, NOW)
    return {
        "reported": len(rep),
        "registered": sum(1 for e in ev if in_days(e["registered_at"], days)),
        "closed": len(clo),
        # the standard rates (docs/kpi.md), written out by hand once in kpi_fixtures.rates_by_hand (C3)
        **{k: standard[k]["rate"] for k in ("response_rate", "closure_rate", "on_time_rate", "rework_rate",
                                            "satisfaction_rate")},
        "hazards_found": sum(1 for h in hz if in_days(h["found_at"], days)),
        "hazards_rectified": sum(1 for h in hz if in_days(h["rectified_at"], days)),
        "categories": Counter(e["category"] for e in rep),
        "levels": Counter(e["level"] for e in rep),
        "sources": Counter(e["source"] for e in rep),
        "daily_reported": [sum(1 for e in rep if local_day(e["reported_at"]) == d) for d in days],
        "daily_closed": [sum(1 for e in clo if local_day(e["closed_at"]) == d) for d in days],
        "overdue_now": sum(1 for e in ev if e["state"] in OPEN_STATES and e["state"] != "suspended"
                           and e["deadline_at"] is not None and e["deadline_at"] < NOW),
        "per_1000": {g: (round(sum(1 for e in rep if e["grid_code"] == g) * 1000.0 / p, 2) if p else None)
                     for g, p in GRIDS.items() if g.startswith(scope)},
        "sanling_lost": {e["grid_code"][:12] for e in rep if e["category"] == "petition"
                         or (e["category"] == "safety" and e["level"] == 1)
                         or (e["category"] == "order" and e["subcategory"] == "security" and e["level"] == 1)},
    }


def pct(rate) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def pdftotext(path: Path, layout: bool = True) -> str:
    args = ["pdftotext", "-enc", "UTF-8"] + (["-layout"] if layout else []) + [str(path), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout


def pdffonts(path: Path) -> list[dict]:
    out = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True, timeout=60).stdout
    rows = []
    for line in out.splitlines()[2:]:
        parts = line.split()
        # name type... encoding emb sub uni id gen: the flags are the 5th..3rd fields from the end
        rows.append({"name": parts[0], "emb": parts[-5], "sub": parts[-4], "uni": parts[-3]})
    return rows


def numbers(text: str) -> set[float]:
    return {float(m.replace(",", "")) for m in NUMBER.findall(text)}


def line_with(text: str, start: str) -> str:
    """The first line of a table row whose first cell is ``start``."""
    for line in text.splitlines():
        if line.split()[:1] == [start]:
            return line
    raise AssertionError(f"no line starting with {start!r} in the PDF text")


def without_section(text: str, heading: str, next_heading: str) -> str:
    """The text less one section of the body (the last ``heading``: the contents list it first)."""
    i = text.rindex(heading)
    return text[:i] + text[text.index(next_heading, i):]
