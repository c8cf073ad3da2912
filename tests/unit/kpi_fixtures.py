"""A small jurisdiction with events, hazards, staff, patrols and houses, for the KPI tests.

Rows are built in Python with a fixed random seed and kept, so each test can
compute what a KPI should be straight from the inserted rows (plain loops,
fixed +8 h offset for Asia/Shanghai, which has had no DST since 1991) and
compare with what the SQL returns.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import shapely

from dashboard.domain import CATEGORIES, OPEN_STATES, SOURCES
from dashboard.store.regions import RegionRow, upsert_regions
from dashboard.store.schema import (
    KEY_POPULATION_COLUMNS, building, event, hazard, house, patrol, position, resident_summary, staff,
)

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai
TZ = "Asia/Shanghai"
OFFSET = timedelta(hours=8)

DISTRICT = "370202"
STREET_A, STREET_B = "370202001", "370202002"
COMMUNITIES = {"370202001001": STREET_A, "370202001002": STREET_A, "370202002001": STREET_B}
GRIDS = {"370202001001001": 1000, "370202001001002": 800, "370202001002001": 0, "370202002001001": 1200}


def local_day(t: datetime):
    return (t.astimezone(timezone.utc) + OFFSET).date()


def seed_regions(conn) -> None:
    box = shapely.box(120.3, 36.0, 120.31, 36.01)
    rows = [RegionRow(DISTRICT, "市南区", "district", box, population=sum(GRIDS.values()))]
    rows += [RegionRow(STREET_A, "八大峡街道", "street", box, DISTRICT),
             RegionRow(STREET_B, "云南路街道", "street", box, DISTRICT)]
    rows += [RegionRow(c, f"社区{c[-3:]}", "community", box, s) for c, s in COMMUNITIES.items()]
    rows += [RegionRow(g, f"网格{g[-6:]}", "grid", box, g[:12], kind="basic", population=p)
             for g, p in GRIDS.items()]
    upsert_regions(conn, rows)


@dataclass
class World:
    events: list[dict] = field(default_factory=list)
    hazards: list[dict] = field(default_factory=list)
    staff: list[dict] = field(default_factory=list)
    positions: list[dict] = field(default_factory=list)
    patrols: list[dict] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    houses: list[dict] = field(default_factory=list)


def make_event(i: int, grid: str, reported_at: datetime, **kw) -> dict:
    cat = kw.pop("category", "environment")
    row = {
        "id": f"e{i}", "grid_code": grid, "category": cat, "subcategory": None,
        "level": CATEGORIES[cat][2], "urgent": False, "state": "reported", "source": "grid_patrol",
        "occurred_at": reported_at, "reported_at": reported_at, "registered_at": None,
        "dispatched_at": None, "responded_at": None, "closed_at": None, "deadline_at": None,
        "escalations": 0, "reopened": 0, "satisfaction": None, "last_seq": 1, "updated_at": reported_at,
        "description": f"事件{i}",
        "unit_code": None, "feedback_at": None, "returns": 0, "due_soon_at": None,  # the case engine's (0005)
    }
    row.update(kw)
    return row


def _case_engine_fields(rnd: random.Random, reported: datetime, kw: dict) -> None:
    """The case engine's columns (migration 0005), from a generator of the event's own so the main
    sequence (and every figure other tests rely on) stays as it was: first feedback, returns, the
    due-soon mark (the last 20 % of the allowance), the unit; some open reports rejected or merged."""
    deadline, closed = kw.get("deadline_at"), kw.get("closed_at")
    kw["returns"] = 1 if rnd.random() < 0.12 else 0
    kw["unit_code"] = None
    if kw.get("registered_at") is not None:
        kw["dispatched_at"] = min(NOW, kw["registered_at"] + timedelta(minutes=rnd.randint(1, 120)))
    if deadline is not None:
        kw["due_soon_at"] = deadline - (deadline - reported) * 0.2
    if closed is not None:
        kw["feedback_at"] = max(reported, closed - timedelta(minutes=rnd.randint(0, 900)))
    elif kw["state"] in ("feedback", "verified"):
        kw["feedback_at"] = min(NOW, reported + timedelta(minutes=rnd.randint(10, 3000)))
    else:
        kw["feedback_at"] = None
        r = rnd.random()
        if r < 0.06:
            kw.update(state="rejected", registered_at=None, dispatched_at=None)
        elif r < 0.09:
            kw.update(state="merged")


def rates_by_hand(events: list[dict], a: datetime, b: datetime, now: datetime) -> dict:
    """The standard rates of docs/kpi.md, straight from the rows (a second writing of the definitions)."""
    def within(t, lo, hi):
        return t is not None and lo <= t < hi

    live = [e for e in events if e["state"] != "merged"]
    cases = [e for e in live if e["state"] != "rejected"]
    rep = [e for e in live if within(e["reported_at"], a, b)]
    due = [e for e in cases if e["state"] != "suspended"
           and (within(e["deadline_at"], a, b) or within(e["closed_at"], a, b))]
    clo = [e for e in cases if within(e["closed_at"], a, b)]
    ev = [e for e in clo if e["satisfaction"] is not None]

    def before(t):
        return t is not None and t < b

    def by_deadline(e, t):
        return before(t) and (e["deadline_at"] is None or t <= e["deadline_at"])

    disp = [e for e in rep if e["state"] != "rejected" and before(e.get("dispatched_at"))]
    passed = min(b, now)

    def r(num, den):
        return {"num": num, "den": den, "rate": num / den if den else None}
    return {
        "registration_rate": r(sum(1 for e in rep if before(e["registered_at"])), len(rep)),
        "response_rate": r(sum(1 for e in rep if before(e["responded_at"])), len(rep)),
        "dispatch_accuracy": r(sum(1 for e in disp if e["returns"] == 0), len(disp)),
        "on_time_handling_rate": r(sum(1 for e in due if by_deadline(e, e["feedback_at"])), len(due)),
        "closure_rate": r(sum(1 for e in due if before(e["closed_at"])), len(due)),
        "on_time_rate": r(sum(1 for e in due if by_deadline(e, e["closed_at"])), len(due)),
        "overdue_rate": r(sum(1 for e in due if e["deadline_at"] is not None and e["deadline_at"] < passed
                              and (e["feedback_at"] is None or e["feedback_at"] > e["deadline_at"])), len(due)),
        "rework_rate": r(sum(1 for e in clo if e["reopened"] > 0), len(clo)),
        "satisfaction_rate": r(sum(1 for e in ev if e["satisfaction"] >= 4), len(ev)),
    }


def random_events(rng: random.Random, n: int, start_index: int = 0) -> list[dict]:
    out = []
    grids = list(GRIDS)
    for k in range(n):
        i = start_index + k
        reported = NOW - timedelta(minutes=rng.randint(1, 40 * 24 * 60))
        cat = rng.choice(list(CATEGORIES))
        sub = rng.choice([None, *CATEGORIES[cat][4]])
        kw = {"category": cat, "subcategory": sub, "level": rng.choice([1, 2, 3]),
              "urgent": rng.random() < 0.15, "source": rng.choice(list(SOURCES)),
              "deadline_at": None if rng.random() < 0.1 else reported + timedelta(hours=rng.randint(2, 96))}
        if rng.random() < 0.7:
            kw["registered_at"] = min(NOW, reported + timedelta(minutes=rng.randint(0, 600)))
        if rng.random() < 0.8:
            kw["responded_at"] = min(NOW, reported + timedelta(minutes=rng.randint(1, 2000)))
        if rng.random() < 0.55:
            closed = min(NOW, reported + timedelta(minutes=rng.randint(30, 6000)))
            kw.update(closed_at=closed, state=rng.choice(["closed", "evaluated"]),
                      reopened=rng.choice([0, 0, 0, 1, 2]),
                      satisfaction=rng.choice([None, 1, 2, 3, 4, 5, 5]))
        else:
            kw["state"] = rng.choice(OPEN_STATES)
        _case_engine_fields(random.Random(i), reported, kw)
        out.append(make_event(i, rng.choice(grids), reported, **kw))
    return out


def build_world(seed: int = 11) -> World:
    rng = random.Random(seed)
    w = World()
    w.events = random_events(rng, 400)
    for i in range(40):
        found = NOW - timedelta(hours=rng.randint(1, 24 * 20))
        state = rng.choice(["open", "open", "rectified", "verified"])
        # the hazard cycle's states (migration 0005 renamed open -> found / ordered, verified -> closed)
        state = {"open": ("found", "ordered")[i % 2], "verified": "closed"}.get(state, state)
        rect = min(NOW, found + timedelta(hours=rng.randint(1, 100))) if state not in ("found", "ordered") else None
        w.hazards.append({"id": f"h{i}", "grid_code": rng.choice(list(GRIDS)),
                          "kind": rng.choice(["elevator", "gas_pipe", "hydrant", "water_pipe"]),
                          "state": state, "found_at": found,
                          "deadline_at": found + timedelta(hours=rng.randint(12, 200)),
                          "rectified_at": rect, "last_seq": 1, "updated_at": found})
    regions = [DISTRICT, STREET_A, STREET_B, *COMMUNITIES, *GRIDS]
    for i in range(30):
        w.staff.append({"id": i + 1, "code": f"s{i}", "name": f"员工{i}",
                        "role": rng.choice(["full_time", "grid_head", "part_time"]),
                        "region_code": rng.choice(regions), "on_duty": rng.random() < 0.6})
    for i in range(25):
        w.positions.append({"actor_id": f"a{i}", "actor_kind": rng.choice(["staff", "vehicle"]),
                            "grid_code": rng.choice(list(GRIDS)), "lon": 120.3, "lat": 36.0,
                            "at": NOW - timedelta(minutes=rng.randint(0, 40))})
    for i in range(60):
        at = NOW - timedelta(minutes=rng.randint(1, 3 * 24 * 60))
        w.patrols.append({"id": f"p{i}", "staff_code": f"s{i % 30}", "grid_code": rng.choice(list(GRIDS)),
                          "at": at, "checklist": json.dumps({"elevator": "ok"}), "issues": rng.randint(0, 2)})
    bid = 0
    for g in GRIDS:
        for _ in range(3):
            bid += 1
            summary = {"building_id": bid, "grid_code": g, "population": rng.randint(0, 300),
                       "households": rng.randint(0, 100), "registered": rng.randint(0, 200),
                       "floating": rng.randint(0, 100)}
            summary.update({c: rng.randint(0, 9) for c in KEY_POPULATION_COLUMNS})
            w.summaries.append(summary)
            for u in range(rng.randint(1, 6)):
                w.houses.append({"building_id": bid, "grid_code": g, "unit": f"1-{u}",
                                 "use": rng.choice(["residential", "rental", "vacant", "shop"])})
    return w


def insert_world(conn, w: World) -> None:
    if w.events:
        # one key set for every row: an executemany takes its columns from the first row
        keys = set().union(*w.events)
        conn.execute(event.insert(), [{k: e.get(k) for k in keys} for e in w.events])
    if w.hazards:
        conn.execute(hazard.insert(), w.hazards)
    if w.staff:
        conn.execute(staff.insert(), w.staff)
    if w.positions:
        conn.execute(position.insert(), w.positions)
    if w.patrols:
        conn.execute(patrol.insert(), w.patrols)
    buildings = {s["building_id"]: s["grid_code"] for s in w.summaries}
    if buildings:
        conn.execute(building.insert(), [{"id": b, "code": f"b{b}", "name": f"楼{b}", "grid_code": g,
                                          "use": "residential", "lon": 120.3, "lat": 36.0}
                                         for b, g in buildings.items()])
        conn.execute(resident_summary.insert(), w.summaries)
    if w.houses:
        conn.execute(house.insert(), w.houses)


def seeded(engine, w: World | None = None) -> World:
    w = w or build_world()
    with engine.begin() as conn:
        seed_regions(conn)
        insert_world(conn, w)
    return w
