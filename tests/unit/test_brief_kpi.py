"""The KPI functions the briefing added (dashboard/kpi.py) against the inserted rows, and ISO weeks."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest

from dashboard import kpi
from dashboard.briefing import week as weeks
from dashboard.briefing.figures import change, rank_units
from dashboard.domain import OPEN_STATES
from tests.unit.brief_support import DAYS, in_days, midnight, scoped
from tests.unit.kpi_fixtures import COMMUNITIES, DISTRICT, GRIDS, NOW, STREET_A, STREET_B, TZ, seeded

START, END = midnight(DAYS[0]), midnight(DAYS[-1] + timedelta(days=1))


@pytest.fixture
def world(engine):
    return seeded(engine)


def test_brief040_iso_week_bounds_are_local_mondays():
    assert kpi.iso_week_bounds(2026, 46, TZ) == (START, END)
    assert START == datetime(2026, 11, 8, 16, 0, tzinfo=timezone.utc)
    w = weeks.parse("2026-W01")
    assert w.monday == date(2025, 12, 29) and w.previous().iso == "2025-W52"
    assert weeks.parse("2026W53").year_before().iso == "2025-W52"  # 2025 has 52 ISO weeks
    assert weeks.parse("2021-W10").year_before().iso == "2020-W10"


def test_brief041_rates_by_unit_add_up_to_the_scopes_rates(engine, world):
    for scope, units in ((DISTRICT, [STREET_A, STREET_B]), (STREET_A, [c for c, s in COMMUNITIES.items() if s == STREET_A])):
        rows = kpi.rates_by_unit(engine, scope, START, END)
        assert [r["code"] for r in rows] == units
        total = kpi.rates(engine, scope, START, END)
        for k, v in total.items():
            assert sum(r[k]["num"] for r in rows) == v["num"] and sum(r[k]["den"] for r in rows) == v["den"], k
        for r in rows:  # each unit's figure is the scope function run on that unit
            assert {k: r[k] for k in total} == kpi.rates(engine, r["code"], START, END)


def test_brief042_top_subcategories_and_per_1000_by_hand(engine, world):
    rep = [e for e in world.events if in_days(e["reported_at"], DAYS)]
    hand = Counter((e["category"], e["subcategory"]) for e in rep)
    got = kpi.top_subcategories(engine, DISTRICT, START, END, limit=None)
    assert {(r["category"], r["subcategory"]): r["count"] for r in got} == dict(hand)
    assert [r["count"] for r in got] == sorted(hand.values(), reverse=True)
    assert len(kpi.top_subcategories(engine, DISTRICT, START, END, limit=3)) == 3
    per = kpi.grid_per_1000(engine, DISTRICT, START, END)
    for g, pop in GRIDS.items():
        n = sum(1 for e in rep if e["grid_code"] == g)
        assert per[g]["events"] == n and per[g]["population"] == pop
        assert per[g]["per_1000"] == (round(n * 1000.0 / pop, 2) if pop else None)


def test_brief043_overdue_events_list_no_personal_fields(engine, world):
    got = kpi.overdue_events(engine, STREET_A, NOW)
    # 超期: open, the clock running (a 挂账 suspended case's is stopped), the deadline passed
    hand = [e for e in scoped(world.events, STREET_A) if e["state"] in OPEN_STATES and e["state"] != "suspended"
            and e["deadline_at"] and e["deadline_at"] < NOW]
    assert any(e["state"] == "suspended" and e["deadline_at"] and e["deadline_at"] < NOW
               for e in scoped(world.events, STREET_A))  # the exclusion is exercised
    assert got["total"] == len(hand) == len(got["rows"]) == kpi.open_counts(engine, STREET_A, NOW)["overdue"]
    assert [r["id"] for r in got["rows"]] == [e["id"] for e in sorted(hand, key=lambda e: (e["deadline_at"], e["id"]))]
    for r in got["rows"]:
        assert not {"reporter", "description", "address", "lon", "lat", "handler"} & set(r)
        assert r["overdue_hours"] == round((NOW - r["deadline_at"]).total_seconds() / 3600, 1)
    assert len(kpi.overdue_events(engine, STREET_A, NOW, limit=2)["rows"]) == min(2, len(hand))


def test_brief044_hazard_deadlines_in_a_week_by_hand(engine, world):
    got = kpi.hazard_deadlines(engine, DISTRICT, START, END, NOW)
    due = [h for h in world.hazards if START <= h["deadline_at"] < END]
    met = [h for h in due if h["rectified_at"] and h["rectified_at"] <= h["deadline_at"]]
    assert got == {"due": len(due), "met": len(met), "missed": len(due) - len(met)} and due
    # deadlines still ahead of "now" are not yet missed
    assert kpi.hazard_deadlines(engine, DISTRICT, START, END, START)["due"] == 0


def test_brief045_first_report_and_the_comparisons_where_history_reaches(engine, world):
    first = min(e["reported_at"] for e in world.events)
    assert kpi.first_report(engine, DISTRICT) == first
    assert kpi.first_report(engine, "370299") is None
    assert change("count", 110, 100) == 10.0 and change("count", 5, 0) is None and change("count", 5, None) is None
    assert change("rate", 0.9, 0.85) == 5.0


def test_brief046_ranking_marks_best_and_worst_and_puts_units_without_closures_last():
    def unit(code, on_time, den=10):
        r = {k: {"num": 0, "den": 0, "rate": None} for k in
             ("response_rate", "closure_rate", "rework_rate", "satisfaction_rate")}
        r["on_time_rate"] = {"num": 0, "den": den, "rate": on_time}
        return {"code": code, "name": code, **r}
    rows = rank_units([unit("a", 0.5), unit("b", None, 0), unit("c", 0.9), unit("d", 0.7)], [])
    assert [(r["code"], r["rank"], r["mark"]) for r in rows] == [
        ("c", 1, "best"), ("d", 2, None), ("a", 3, "worst"), ("b", 4, None)]
