"""The case engine's cost over a year of cases (issue 17, "Speed"): the standard rates' roll-up and
the automatic escalation sweep, on the demo district and on a city.

Prints one `name = value` line per figure, each the MEDIAN of RUNS calls on a warm cache (one
untimed call first):
  kpi_rollup_ms              dashboard.cases.rates.kpi_rollup for the whole district (scope 370202)
                             over the last 7 days, with 环比 (the 7 days before) and 同比 (the same
                             days a year earlier): three periods of the nine standard rates
  escalation_sweep_ms        dashboard.cases.escalation.sweep at `now` with BREACHES cases just past
                             their deadline (unhandled, tier 2-3): it reads the due cases, claims
                             each (case_escalation rows, one commit) and XADDs one message each;
                             the claims are deleted between runs (untimed), so every run claims
                             the same BREACHES
  kpi_rollup_ms_city, escalation_sweep_ms_city
                             the same over the city's cases (1,000,000 by default) on PostgreSQL
Setup lines (`*_rows`, `*_fill_s`) say what was timed.

The store: the demo district's shape (10 streets, 573 grids: dashboard.synthetic_city's tiling,
not the seeded Voronoi map, which costs a minute and changes nothing here) with CASES cases
spread over a year and a month before `now` (the demo district's ~60,000 a year: issue 17), and a
city of 6,000 grids. Only `event` rows are written (the rates and the sweep read nothing else):
the columns the consumer fills (reported/registered/dispatched/responded/feedback/closed times,
the deadline, returns, reopened, satisfaction, suspended_at, level, unit) with the simulator's
shares (dashboard.feed.simulate: rejected, returned, reworked, late, suspended, merged); open
cases in the last days, each breached one already escalated to tier 1 (the sweep would have
taken it at its breach) except the BREACHES fresh ones. Rows go in through
dashboard.feed.apply.insert_rows (PostgreSQL: binary COPY).

Usage:
  python bench/cases.py [--cases 60000] [--runs 5]                 SQLite (a temporary file)
  python bench/cases.py --city --database-url postgresql+psycopg://... [--city-cases 1000000]
                                                                    adds the city, in a schema of
                                                                    its own, dropped afterwards
  (--database-url defaults to $BENCH_DATABASE_URL or $TEST_DATABASE_URL; --redis-url to
   $TEST_REDIS_URL, else an embedded redis-server)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.domain import CATEGORIES  # noqa: E402
from dashboard.feed import simulate as sim  # noqa: E402
from dashboard.feed.apply import insert_rows  # noqa: E402
from dashboard.store.engine import make_engine, migrate  # noqa: E402
from dashboard.store.schema import case_escalation, event  # noqa: E402
from dashboard.synthetic_city import city_regions, insert_regions  # noqa: E402

RUNS = 5
BREACHES = 20
DISTRICT, CITY = "370202", "370299"
CHUNK = 50_000
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)  # noon in Shanghai; a fixed moment


def median_ms(fn, runs: int, before=None) -> float:
    if before:
        before()
    fn()  # warm: caches, compiled statements, the index pages
    times = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


# every column the row does not set, at its schema default (the store grows columns: 0005 and after)
DEFAULTS = {c.name: (c.default.arg if c.default is not None and c.default.is_scalar else None) for c in event.c}


def case_rows(grids: list[str], n: int, seed: int, prefix: str, now: datetime = NOW):
    """``n`` event rows over a year and a month before ``now``, in chunks, as the consumer leaves
    them (see the module doc for which columns and shares)."""
    rng = np.random.default_rng(seed)
    cats = list(CATEGORIES)
    hours = np.array([CATEGORIES[c][2 + 1] for c in cats], dtype=float)
    tiers = np.array([CATEGORIES[c][2] for c in cats])
    span = (365 + 31) * 86400.0
    fresh = set(range(BREACHES))  # the first rows of the first chunk: just breached
    for lo in range(0, n, CHUNK):
        k = min(CHUNK, n - lo)
        age = rng.uniform(0, span, k)
        ci = rng.integers(0, len(cats), k)
        grid = rng.integers(0, len(grids), k)
        u = rng.random((k, 8))
        rows = []
        for j in range(k):
            i = lo + j
            reported = now - timedelta(seconds=float(age[j]))
            allow = timedelta(hours=float(hours[ci[j]]))
            deadline = reported + allow
            level = int(tiers[ci[j]])
            late = u[j, 0] < sim.OVERDUE_P
            feedback = reported + allow * (1.1 + 0.7 * u[j, 1] if late else 0.1 + 0.7 * u[j, 1])
            closed = feedback + timedelta(hours=1 + 3 * float(u[j, 2]))
            state = "evaluated"
            row = {"id": f"{prefix}{i:08d}", "grid_code": grids[grid[j]], "category": cats[ci[j]], "level": level,
                   "urgent": False, "source": "grid_patrol", "occurred_at": reported, "reported_at": reported,
                   "registered_at": reported + timedelta(minutes=10), "responded_at": reported + timedelta(minutes=10),
                   "dispatched_at": reported + timedelta(minutes=40), "deadline_at": deadline,
                   "feedback_at": feedback, "closed_at": closed, "satisfaction": int(5 - (u[j, 3] < 0.4) - (u[j, 3] < 0.15)),
                   "returns": int(u[j, 4] < sim.RETURN_P), "reopened": int(u[j, 5] < sim.REOPEN_P),
                   "escalations": 0, "extensions": 0, "supervisions": 0, "suspended_at": None,
                   "deadline_basis": "natural_hours", "allowance_s": allow.total_seconds(),
                   "unit_code": None, "merged_into": None, "last_seq": 8, "updated_at": now,
                   "deadline_provisional": False, "subcategory": None, "lon": None, "lat": None,
                   "address": None, "description": None, "reporter": None, "handler": None,
                   "due_soon_at": deadline - allow * 0.2, "remaining_s": None, "resume_state": None,
                   "duplicate_of": None}
            if i in fresh:  # breached a few seconds ago, unhandled, still at its tier
                state, level = "handling", max(level, 2)
                row.update(level=level, reported_at=now - allow - timedelta(seconds=5 + i),
                           occurred_at=now - allow - timedelta(seconds=5 + i),
                           deadline_at=now - timedelta(seconds=5 + i), feedback_at=None, closed_at=None,
                           satisfaction=None)
            elif u[j, 6] < sim.REJECT_P:
                state = "rejected"
                row.update(registered_at=None, dispatched_at=None, deadline_at=None, feedback_at=None,
                           closed_at=None, satisfaction=None, returns=0, reopened=0)
            elif u[j, 6] < sim.REJECT_P + sim.DUPLICATE_P / 2:
                state = "merged"
                row.update(dispatched_at=None, feedback_at=None, closed_at=None, satisfaction=None,
                           merged_into=f"{prefix}{max(i - 1, 0):08d}")
            elif closed > now:  # still open: where it stands now
                if feedback <= now:
                    state, row["closed_at"], row["satisfaction"] = "verified", None, None
                else:
                    state = "handling" if u[j, 7] > sim.SUSPEND_P * 5 else "suspended"
                    row.update(feedback_at=None, closed_at=None, satisfaction=None)
                    if state == "suspended":
                        row["suspended_at"] = now - timedelta(hours=2)
                    if deadline < now:  # breached earlier: the sweep took it up to tier 1 then
                        row.update(level=1, escalations=max(level - 1, 1))
            elif u[j, 7] < 0.1:
                state, row["satisfaction"] = "closed", None
            row["state"] = state
            rows.append({**DEFAULTS, **row})
        yield rows


def fill(engine, code: str, n_grids: int, n_cases: int, prefix: str, seed: int) -> float:
    t0 = time.perf_counter()
    regions = city_regions(code, streets=10, communities=max(1, n_grids // 120), total_grids=n_grids, seed=seed)
    insert_regions(engine, regions)
    grids = [r.code for r in regions if r.level == "grid"]
    for rows in case_rows(grids, n_cases, seed, prefix):
        with engine.begin() as conn:
            insert_rows(conn, event, rows)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE event"))
        else:
            conn.execute(sa.text("ANALYZE"))
    return round(time.perf_counter() - t0, 1)


def timings(engine, redis, scope: str, runs: int) -> tuple[float, float]:
    from dashboard.cases import escalation, rates

    end = NOW
    start = end - timedelta(days=7)
    rollup = median_ms(lambda: rates.kpi_rollup(engine, scope, start, end, now=NOW), runs)

    def unclaim():
        with engine.begin() as conn:
            conn.execute(case_escalation.delete())

    claimed = []
    sweep = median_ms(lambda: claimed.append(len(escalation.sweep(engine, redis, now=NOW, worker="bench"))),
                      runs, before=unclaim)
    if set(claimed) != {BREACHES}:
        raise SystemExit(f"the sweep claimed {sorted(set(claimed))} per run, not {BREACHES}: the store is not "
                         "what this bench meant to time")
    return rollup, sweep


def open_redis(url: str | None):
    from dashboard.redis_server import EmbeddedRedis, connect

    if url:
        return connect(url), None
    server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-cases-redis-"), appendonly=False).start()
    return connect(server.url), server


def pg_schema_url(url: str, schema: str) -> str:
    u = sa.engine.make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=60_000, help="the district's cases over the year (default 60,000)")
    p.add_argument("--runs", type=int, default=RUNS)
    p.add_argument("--city", action="store_true", help="also time the city on PostgreSQL")
    p.add_argument("--city-cases", type=int, default=1_000_000)
    p.add_argument("--city-grids", type=int, default=6000)
    p.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL"))
    p.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL"))
    a = p.parse_args(argv)
    redis, server = open_redis(a.redis_url)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cases-") as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'cases.db'}")
            migrate(engine)
            print(f"district_rows = {a.cases}")
            print(f"district_fill_s = {fill(engine, DISTRICT, 573, a.cases, 'ev', 1)}")
            rollup, sweep = timings(engine, redis, DISTRICT, a.runs)
            print(f"kpi_rollup_ms = {rollup}")
            print(f"escalation_sweep_ms = {sweep}")
            engine.dispose()
        if a.city:
            if not a.database_url:
                raise SystemExit("--city needs --database-url (or BENCH_DATABASE_URL / TEST_DATABASE_URL): PostgreSQL")
            schema = "bench_cases_" + uuid.uuid4().hex[:8]
            admin = make_engine(pg_schema_url(a.database_url, "public"))
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                engine = make_engine(pg_schema_url(a.database_url, schema))
                migrate(engine)
                print(f"city_rows = {a.city_cases}")
                print(f"city_grids = {a.city_grids}")
                print(f"city_fill_s = {fill(engine, CITY, a.city_grids, a.city_cases, 'cy', 2)}")
                redis.delete("grid:feed")
                rollup, sweep = timings(engine, redis, CITY, a.runs)
                print(f"kpi_rollup_ms_city = {rollup}")
                print(f"escalation_sweep_ms_city = {sweep}")
                engine.dispose()
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    finally:
        redis.close()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
