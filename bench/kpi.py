"""KPI cost on the demo district and on a city, every table the wall reads filled.

Two jurisdictions in one store:
- the demo district as ``python -m dashboard`` seeds it (``dashboard.demo.seed``: 505 + 68
  grids, 13,223 buildings with ~508,000 residents as counts, 281,974 houses, 13,464 staff),
  plus what a month of its feed leaves: 30 days of reports at ``SIM_RATE`` (~180 a day; ~1,800
  before the demo's volume followed Zhenjiang's 60,000+ a year, when docs/kpi.md's table was measured),
  hazards, patrol check-ins and the latest position of every worker and vehicle out;
- a city of 6,000 grids (the scale the wall is built for): 50,000 open events and 50,000
  closed in the last 30 days, 5,000 hazards, and the demo's people tables tiled over its
  grids (each city grid gets a copy of one demo grid's buildings, residents, houses and
  staff: the demo's densities, ~2.9 million houses), with patrols and positions at the
  demo's rates per grid.

Prints one `name = value` line per figure, each the MEDIAN of RUNS calls:
  kpi_wall_figures_city_s       one wall_figures() for the whole city
  kpi_wall_figures_live_city_s  one wall_figures() for the city reusing its slow parts
                                (what the panels' callback pays on most ticks)
  kpi_wall_figures_street_s     one wall_figures() for one street of the city
  kpi_grid_measures_city_s      one wall_data.grid_measures() for the city: what the map calls
                                (kpi.grid_measures shaped into arrays, with the legend's breaks)
  kpi_wall_figures_demo_s, kpi_wall_figures_live_demo_s, kpi_grid_measures_demo_s
                                the same on the demo district
  kpi_panels_render_s           building the three panel trees from the city's figures

Usage: python bench/kpi.py [--database-url URL | --store FILE] [--runs N] (default: a temporary
SQLite file; --store keeps a SQLite file filled once and times it again on later runs, with
``now`` the moment it was filled). Filling takes a few minutes (the city's houses).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import kpi, wall_data  # noqa: E402
from dashboard.demo.seed import seed_demo  # noqa: E402
from dashboard.feed.simulate import CHECKIN_MIN, DAY_SHIFT, MAX_WALKERS  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from dashboard.store.engine import make_engine, migrate  # noqa: E402
from dashboard.store.regions import RegionRow, load_regions  # noqa: E402
from dashboard.store.schema import (  # noqa: E402
    building, event, hazard, house, patrol, position, region, resident_summary, staff,
)
from dashboard.synthetic_city import city_regions, insert_events, insert_hazards, insert_regions  # noqa: E402

RUNS = 5
TZ = "Asia/Shanghai"
CITY = "370299"  # the city's code: apart from the demo's 370202 in the same store
CHUNK = 5000


def median_of(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def insert(engine, table, rows: list[dict]) -> None:
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            conn.execute(table.insert(), rows[i:i + CHUNK])


def demo_rates(engine) -> dict:
    """Per grid, what a month of the demo's feed leaves in the feed-made tables: check-ins a day
    and workers/vehicles out (the simulator's own constants, over the demo's grids)."""
    with engine.connect() as conn:
        grids = conn.execute(select(func.count()).select_from(region).where(region.c.level == "grid")).scalar_one()
        streets = conn.execute(select(func.count()).select_from(region).where(region.c.level == "street")).scalar_one()
        on_duty = conn.execute(select(func.count()).select_from(staff).where(
            staff.c.role == "full_time", staff.c.on_duty.is_(True))).scalar_one()
    walkers = min(MAX_WALKERS, on_duty)
    shift_min = (DAY_SHIFT[1] - DAY_SHIFT[0]) * 60
    checkins_a_day = walkers * shift_min / (sum(CHECKIN_MIN) / 2)
    return {"checkins_per_grid_day": checkins_a_day / grids, "out_per_grid": (walkers + streets) / grids}


def feed_rows(engine, grid_codes: list[str], now: datetime, rates: dict, seed: int, prefix: str) -> None:
    """30 days of patrol check-ins and the latest position of each worker/vehicle out."""
    rng = np.random.default_rng(seed)
    n_patrols = int(rates["checkins_per_grid_day"] * len(grid_codes) * 30)
    at = now - timedelta(days=30) + timedelta(seconds=1) * rng.uniform(0, 30 * 86400, n_patrols)
    which = rng.integers(0, len(grid_codes), n_patrols)
    insert(engine, patrol, [{"id": f"{prefix}p{i:07d}", "staff_code": f"{prefix}s{i % 997}",
                             "grid_code": grid_codes[which[i]], "at": at[i], "checklist": '{"elevator":"ok"}',
                             "issues": int(rng.random() < 0.05)} for i in range(n_patrols)])
    n_out = max(1, int(rates["out_per_grid"] * len(grid_codes)))
    which = rng.integers(0, len(grid_codes), n_out)
    insert(engine, position, [{"actor_id": f"{prefix}a{i:06d}", "actor_kind": "vehicle" if i % 16 == 0 else "staff",
                               "grid_code": grid_codes[which[i]], "lon": 120.4, "lat": 36.07,
                               "at": now - timedelta(seconds=float(rng.uniform(0, 1200)))} for i in range(n_out)])


def demo_events(engine, now: datetime, per_day: int) -> None:
    """A month of the demo's reports: per_day a day, the older ones closed, today's half open."""
    rows = [RegionRow(r["code"], r["name"], r["level"], r["geom"], r["parent_code"], kind=r["kind"])
            for r in load_regions(engine, levels=["grid"], scope="370202")]
    for day in range(30):
        insert_events(engine, rows, per_day, seed=100 + day, now=now - timedelta(days=day),
                      open_share=0.5 if day == 0 else 0.03 if day < 5 else 0.0, prefix=f"d{day:02d}-")


def tile_people(engine, city_grids: list[str]) -> None:
    """Each city grid gets a copy of one demo grid's buildings, resident counts, houses and staff
    (written a chunk at a time: the city's ~2.9 million houses would not fit as one list)."""
    with engine.connect() as conn:
        demo_grids = sorted(conn.execute(select(region.c.code).where(
            region.c.level == "grid", region.c.code.startswith("370202"))).scalars())
        b_rows = [dict(r) for r in conn.execute(select(building).order_by(building.c.id)).mappings()]
        r_rows = {r["building_id"]: dict(r) for r in conn.execute(select(resident_summary)).mappings()}
        h_rows = [dict(r) for r in conn.execute(select(house).order_by(house.c.id)).mappings()]
        s_rows = [dict(r) for r in conn.execute(select(staff).where(  # a grid's and its micro-grids' staff
            func.length(staff.c.region_code) >= 15, staff.c.region_code.startswith("370202"))).mappings()]
        next_b = conn.execute(select(func.max(building.c.id))).scalar_one() + 1
        next_h = conn.execute(select(func.max(house.c.id))).scalar_one() + 1
        next_s = conn.execute(select(func.max(staff.c.id))).scalar_one() + 1
    by_grid_b: dict[str, list] = {}
    for b in b_rows:
        by_grid_b.setdefault(b["grid_code"], []).append(b)
    houses_of: dict[int, list] = {}
    for h in h_rows:
        houses_of.setdefault(h["building_id"], []).append(h)
    staff_of: dict[str, list] = {}
    for s in s_rows:
        staff_of.setdefault(s["region_code"][:15], []).append(s)
    cols = {t: set(t.c.keys()) for t in (building, resident_summary, house, staff)}
    pending: dict = {t: [] for t in cols}

    def put(table, row: dict | None, conn, force: bool = False) -> None:
        if row is not None:
            pending[table].append({k: v for k, v in row.items() if k in cols[table]})
        if pending[table] and (force or len(pending[table]) >= CHUNK):
            if table is not building:  # the buildings these rows point at go first
                put(building, None, conn, force=True)
            conn.execute(table.insert(), pending[table])
            pending[table] = []

    with engine.begin() as conn:
        for i, g in enumerate(city_grids):
            src = demo_grids[i % len(demo_grids)]
            for b in by_grid_b.get(src, []):
                bid, next_b = next_b, next_b + 1
                put(building, {**b, "id": bid, "code": f"c{bid}", "grid_code": g, "micro_code": None}, conn)
                if b["id"] in r_rows:
                    put(resident_summary, {**r_rows[b["id"]], "building_id": bid, "grid_code": g}, conn)
                for h in houses_of.get(b["id"], []):
                    put(house, {**h, "id": next_h, "building_id": bid, "grid_code": g}, conn)
                    next_h += 1
            for s in staff_of.get(src, []):
                put(staff, {**s, "id": next_s, "code": f"c{next_s}", "region_code": g}, conn)
                next_s += 1
        for table in (building, resident_summary, house, staff):
            put(table, None, conn, force=True)


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--store", default="", help="a SQLite file to fill once and reuse")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{Path(args.store or Path(tmp.name) / 'bench.db').resolve()}"
    engine = make_engine(url)
    migrate(engine)
    settings = Settings.from_env({})
    with engine.connect() as conn:
        filled_at = conn.execute(select(func.max(position.c.at))).scalar()
    if filled_at is None:
        now = datetime.now(timezone.utc)
        fill(engine, now, settings)
    else:  # a kept store: its moment, so the windows hold what was filled
        now = filled_at if filled_at.tzinfo else filled_at.replace(tzinfo=timezone.utc)
        now += timedelta(minutes=1)
    report(engine, now, args.runs)
    engine.dispose()
    tmp.cleanup()


def fill(engine, now: datetime, settings) -> None:
    t0 = time.perf_counter()
    seed_demo(engine, settings.demo_seed)
    rates = demo_rates(engine)
    per_day = round(settings.sim_rate * 36_000)  # SIM_RATE at the peak: ~180 a day (README)
    demo_events(engine, now, per_day)
    with engine.connect() as conn:
        demo_grids = sorted(conn.execute(select(region.c.code).where(
            region.c.level == "grid", region.c.code.startswith("370202"))).scalars())
    demo_rows = [RegionRow(r["code"], r["name"], r["level"], r["geom"], r["parent_code"], kind=r["kind"])
                 for r in load_regions(engine, levels=["grid"], scope="370202")]
    insert_hazards(engine, demo_rows, round(5_000 * len(demo_grids) / 6_000), seed=31, now=now)
    with engine.begin() as conn:  # the city's hazards take the same ids
        conn.execute(hazard.update().values(id="d" + hazard.c.id))
    feed_rows(engine, demo_grids, now, rates, seed=41, prefix="d")

    rows = city_regions(district=CITY, streets=30, communities=10, grids=20, seed=7)  # 6,000 grids
    insert_regions(engine, rows)
    city_grids = sorted(r.code for r in rows if r.level == "grid")
    insert_events(engine, rows, 50_000, now=now, open_share=1.0, prefix="o")
    insert_events(engine, rows, 50_000, seed=9, now=now - timedelta(days=10), open_share=0.0, prefix="c")
    insert_hazards(engine, rows, 5_000, now=now)
    tile_people(engine, city_grids)
    feed_rows(engine, city_grids, now, rates, seed=43, prefix="c")
    sizes = {t.name: count(engine, t) for t in (region, building, resident_summary, house, staff, patrol, position)}
    sizes.update(event=count(engine, event), hazard=count(engine, hazard))
    print(f"# store: {json.dumps(sizes)} (filled in {time.perf_counter() - t0:.0f} s)")
    print(f"# demo: {len(demo_grids)} grids, {per_day} reports a day for 30 days; "
          f"{rates['checkins_per_grid_day'] * len(demo_grids):.0f} check-ins a day, "
          f"{rates['out_per_grid'] * len(demo_grids):.0f} workers and vehicles out")


def report(engine, now: datetime, n: int) -> None:
    with engine.connect() as conn:
        grids = conn.execute(select(func.count()).select_from(region).where(
            region.c.level == "grid", region.c.code.startswith(CITY))).scalar_one()
        street = conn.execute(select(func.min(region.c.code)).where(
            region.c.level == "street", region.c.code.startswith(CITY))).scalar_one()
    print(f"# median of {n} runs")
    print(f"kpi_grids = {grids}")
    print(f"kpi_wall_figures_city_s = {median_of(lambda: kpi.wall_figures(engine, CITY, now, TZ), n):.3f}")
    slow = kpi.slow_figures(engine, CITY, now, TZ)
    print(f"kpi_wall_figures_live_city_s = "
          f"{median_of(lambda: kpi.wall_figures(engine, CITY, now, TZ, slow=slow), n):.3f}")
    print(f"kpi_wall_figures_street_s = {median_of(lambda: kpi.wall_figures(engine, street, now, TZ), n):.3f}")
    print(f"kpi_grid_measures_city_s = "
          f"{median_of(lambda: wall_data.grid_measures(engine, CITY, now=now, tz=TZ), n):.3f}")
    print(f"kpi_wall_figures_demo_s = {median_of(lambda: kpi.wall_figures(engine, '370202', now, TZ), n):.3f}")
    slow_demo = kpi.slow_figures(engine, "370202", now, TZ)
    print(f"kpi_wall_figures_live_demo_s = "
          f"{median_of(lambda: kpi.wall_figures(engine, '370202', now, TZ, slow=slow_demo), n):.3f}")
    print(f"kpi_grid_measures_demo_s = "
          f"{median_of(lambda: wall_data.grid_measures(engine, '370202', now=now, tz=TZ), n):.3f}")
    from layouts import panels

    data = kpi.wall_figures(engine, CITY, now, TZ)
    print(f"kpi_panels_render_s = "
          f"{median_of(lambda: (panels.header_figures(data), panels.panels_left(data), panels.panels_right(data)), n):.3f}")
    # where a whole wall_figures goes: each of its slow parts once (comment lines, not figures)
    s0, s1 = kpi.days_bounds(now, TZ, kpi.SANLING_DAYS)
    for name, fn in (("trend30", lambda: kpi.daily_trend(engine, CITY, now, TZ, 30)),
                     ("ranking_closed", lambda: kpi.ranking_closed(engine, CITY, s0, s1)),
                     ("sanling", lambda: kpi.sanling(engine, CITY, s0, s1)),
                     ("population", lambda: kpi.population(engine, CITY)),
                     ("houses", lambda: kpi.houses(engine, CITY)),
                     ("patrols_today", lambda: kpi.patrols(engine, CITY, *kpi.day_bounds(now, TZ)))):
        print(f"# city {name}: {median_of(fn, 1):.3f} s")


if __name__ == "__main__":
    main()
