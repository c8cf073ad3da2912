"""The simulator: deterministic by seed, every message valid, a believable district,
and the live loop feeding the real stream into the consumer and the store."""
from __future__ import annotations

import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import shapely
from sqlalchemy import func, select

from dashboard.cases import machine
from dashboard.cli import CliError
from dashboard.domain import CATEGORIES, HAZARD_KINDS, OPEN_STATES
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DEAD_LETTER, STREAM, dump, parse
from dashboard.feed.simulate import (
    Generator, Recovered, Simulator, World, cli_simulate, resume_path, rhythm,
)
from dashboard.redis_server import connect
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, hazard, patrol, position
from tests.unit.tiling_small import regions, upsert_small_district

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 6, 1, 9, 0, tzinfo=SHANGHAI)   # a Monday morning, in the past


@pytest.fixture
def world(engine):
    upsert_small_district(engine)
    return World.load(engine)


def gen(world, seed=7, start=START, **kw):
    kw.setdefault("rate", 0.2)
    kw.setdefault("speed", 60)
    return Generator(world, seed=seed, start=start, **kw)


def test_feed_sim001_same_seed_same_messages(world):
    until = START + timedelta(minutes=40)
    a = [dump(m) for m in gen(world).advance(until)]
    b_gen = gen(world)
    b = []
    t = START
    while t < until:  # many small steps instead of one: the sequence must not depend on the stepping
        t += timedelta(seconds=7.3)
        b.extend(dump(m) for m in b_gen.advance(min(t, until)))
    assert len(a) > 500
    assert a == b
    c = [dump(m) for m in gen(world, seed=8).advance(until)]
    assert c != a
    assert {m.split('"type":"')[1].split('"')[0] for m in a} >= {"position", "event.reported", "event.step",
                                                                 "patrol.checkin", "hazard.found"}


def test_feed_sim011_ids_differ_between_runs(world):
    a = gen(world).advance(START + timedelta(minutes=5))
    b = gen(world, start=START + timedelta(seconds=1)).advance(START + timedelta(minutes=5))
    assert not ({m.id for m in a} & {m.id for m in b})  # a restart with the same seed reuses no id


def test_feed_sim002_every_message_is_valid_and_placed(world):
    g = gen(world, rate=0.1, speed=120)
    msgs = g.advance(START + timedelta(hours=3))
    grids = {r.code: r.geom for r in regions() if r.level == "grid"}
    district = shapely.union_all(list(grids.values()))
    assert len({m.id for m in msgs}) == len(msgs)
    times = [m.occurred_at for m in msgs if m.type != "event.reported"]
    assert times == sorted(times)
    staff_grid = {code: grid for code, grid in world.on_duty}
    for m in msgs:
        again = parse(dump(m))  # round trip through the contract
        assert again == m
        assert m.occurred_at.utcoffset() == timedelta(hours=8)
        if m.location is not None:
            assert district.covers(shapely.Point(m.location.lon, m.location.lat)), dump(m)
        if m.type == "position" and m.actor.kind == "staff":
            grid = grids[staff_grid[m.actor.id]]
            assert grid.covers(shapely.Point(m.location.lon, m.location.lat))  # walks inside its own grid
    kinds = Counter(m.type for m in msgs)
    assert kinds["event.step"] > kinds["event.reported"] > 0 and kinds["position"] > 0
    assert {a for a in (m.actor.kind for m in msgs if m.type == "position")} == {"staff", "vehicle"}
    assert kinds["hazard.rectified"] > 0 and kinds["hazard.reinspected"] > 0


def test_feed_sim003_cases_move_through_their_steps_in_order(world):
    g = gen(world, rate=0.2, speed=600)
    msgs = g.advance(START + timedelta(hours=2))
    reported = {m.event_id: m for m in msgs if m.type == "event.reported"}
    steps = defaultdict(list)
    for m in msgs:
        if m.type == "event.step":
            steps[m.event_id].append(m)
    assert set(steps) <= set(reported)
    seen = Counter()
    for eid, ss in steps.items():
        assert [s.seq for s in ss] == list(range(2, len(ss) + 2))
        names = [s.step for s in ss]
        seen.update(names)
        # the case cycle's rules (dashboard.cases.machine; test_cases401 replays every path): a report is
        # registered, rejected or merged as a duplicate; a registered case is dispatched next
        case = machine.report(eid, actor="x", at=reported[eid].occurred_at,
                              level=reported[eid].level or CATEGORIES[reported[eid].category][2])
        for s in ss:
            case = machine.apply_step(case, machine.Step(s.step, "x", s.occurred_at, s.note,
                                                         {"deadline_at": s.deadline_at, "level": s.level,
                                                          "into": getattr(s, "into", None) or "other"}))
        assert names[0] in ("registered", "rejected", "merged")
        if names[0] == "registered":
            handled = [n for n in names if n != "supervised"]  # the flag may come at any open state
            assert handled[1:2] in ([], ["dispatched"]) and ss[0].deadline_at is not None
        if "evaluated" in names:
            assert names[-2:] == ["closed", "evaluated"] and 1 <= ss[-1].satisfaction <= 5
        for prev, s in zip(ss, ss[1:]):
            assert s.occurred_at >= prev.occurred_at
        level = reported[eid].level or CATEGORIES[reported[eid].category][2]
        for s in ss:
            if s.step == "escalated":
                assert s.level == level - 1
                level = s.level
    assert seen["escalated"] > 0 and seen["reopened"] > 0 and seen["evaluated"] > 0
    closed = [ss for ss in steps.values() if ss[-1].step in ("closed", "evaluated") and ss[0].step == "registered"]
    overdue = [ss for ss in closed
               if next(s for s in ss if s.step == "feedback").occurred_at > ss[0].deadline_at]
    assert 0 < len(overdue) < len(closed) / 2  # some run past their deadline, most do not
    urgent = [m for m in reported.values() if m.urgent]
    assert 0 < len(urgent) < len(reported) / 5
    assert any(m.level == 1 for m in reported.values())


def test_feed_sim004_day_rhythm_and_mix(world):
    night = gen(world, rate=1.0, speed=1, start=datetime(2026, 6, 2, 2, 0, tzinfo=SHANGHAI))
    day = gen(world, rate=1.0, speed=1, start=datetime(2026, 6, 2, 9, 30, tzinfo=SHANGHAI))
    n_night = sum(m.type == "event.reported" for m in night.advance(night.now + timedelta(hours=2)))
    day_msgs = day.advance(day.now + timedelta(hours=2))
    reports = [m for m in day_msgs if m.type == "event.reported"]
    assert rhythm(3) < 0.05 < 0.9 < rhythm(10.5)
    assert len(reports) > 10 * max(n_night, 1)
    cats = Counter(m.category for m in reports)
    assert cats.most_common(1)[0][0] in ("environment", "facilities")
    assert cats["petition"] < cats["safety"]
    sources = Counter(m.source for m in reports)
    order = [s for s, _ in sources.most_common()]
    assert order[:3] == ["grid_patrol", "mini_program", "hotline_12345"]
    assert sources["whistle"] > 0 and sources["diversion_110"] > 0
    assert {m.actor.kind for m in reports if m.source == "grid_patrol"} == {"staff"}
    # workers walk by day; at 02:00 only the night tenth pings
    walkers_day = {m.actor.id for m in day_msgs if m.type == "position" and m.actor.kind == "staff"}
    walkers_night = {m.actor.id for m in night.advance(night.now + timedelta(minutes=10))
                     if m.type == "position" and m.actor.kind == "staff"}
    assert len(walkers_night) < len(walkers_day)


def test_feed_sim005_hazards_from_inspections(world):
    g = gen(world, rate=0.05, speed=2000, max_walkers=50)
    msgs = g.advance(START + timedelta(hours=3))
    found = {m.hazard_id: m for m in msgs if m.type == "hazard.found"}
    assert found
    checkins = [m for m in msgs if m.type == "patrol.checkin"]
    assert any("issue" in m.checklist.values() for m in checkins)
    for m in found.values():
        assert m.kind in HAZARD_KINDS and m.deadline_at > m.occurred_at
    later = [m for m in msgs if m.type in ("hazard.rectified", "hazard.reinspected", "hazard.deadline")]
    assert later and all(m.hazard_id in found for m in later)
    first = {}
    for m in msgs:
        if m.type.startswith("hazard.") and m.hazard_id not in first:
            first[m.hazard_id] = m.type
    assert set(first.values()) == {"hazard.found"}


def test_feed_sim006_resume_path():
    assert resume_path("reported")[0] == "registered"
    assert resume_path("handling") == ["feedback", "verified", "closed", "evaluated"]
    assert resume_path("escalated")[0] == "handling" and resume_path("reopened")[0] == "handling"
    assert resume_path("closed") == ["evaluated"] and resume_path("evaluated") == []


class StepClock:
    """A clock that moves on a fixed amount each time it is read, and ends the run at ``stop_at``
    (tests need no sleeping)."""

    def __init__(self, start: datetime, step_s: float, stop_at: datetime, stop: threading.Event):
        self.t = start
        self.step = timedelta(seconds=step_s)
        self.stop_at = stop_at
        self.stop = stop

    def __call__(self):
        self.t += self.step
        if self.t >= self.stop_at:
            self.stop.set()
        return self.t


def morning_hours_ago(hours: float) -> datetime:
    """09:00 Shanghai time at least ``hours`` ago: the day shift is walking."""
    now = datetime.now(SHANGHAI)
    start = now.replace(hour=9, minute=0, second=0, microsecond=0)
    while start > now - timedelta(hours=hours):
        start -= timedelta(days=1)
    return start


def count(conn, table):
    return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_feed_sim007_live_loop_feeds_the_consumer_and_recovers(stack, make_services):
    db_url, redis_url = stack
    services = make_services(db_url, redis_url)
    upsert_small_district(services.engine)
    start = morning_hours_ago(6)
    stop = threading.Event()
    clock = StepClock(start, 20.0, start + timedelta(hours=1), stop)
    sim = Simulator(services, rate=0.05, speed=300, seed=11, clock=clock, tick_s=0)
    stats = sim.run(stop_event=stop)
    assert stats["published"] == services.redis.xlen(STREAM) > 100
    Consumer(services).run(burst=True)
    assert services.redis.xlen(DEAD_LETTER) == 0, services.redis.xrange(DEAD_LETTER, count=3)
    g = sim.generator
    with services.engine.connect() as conn:
        assert count(conn, event) == stats["event.reported"] > 0
        # the producer's steps (seq 2, 3 ...); the store adds its own (negative seq: a merge noted on its target)
        assert conn.execute(select(func.count()).select_from(event_step)
                            .where(event_step.c.seq > 0)).scalar_one() == stats["event.step"]
        assert count(conn, patrol) == stats["patrol.checkin"]
        assert count(conn, hazard) == stats.get("hazard.found", 0)
        assert count(conn, position) == sum(w.shift == "day" for w in g.walkers) + len(g.vehicles)
        open_before = conn.execute(select(event.c.id, event.c.last_seq)
                                   .where(event.c.state.in_(list(OPEN_STATES)))).all()
    assert open_before

    # A restart picks the open cases up and carries them on from their last step.
    rec = Recovered.load(services.engine, services.redis)
    assert {e["id"] for e in rec.events} == {eid for eid, _ in open_before}
    stop2 = threading.Event()
    clock2 = StepClock(clock.t, 60.0, clock.t + timedelta(hours=3), stop2)
    Simulator(services, rate=0.01, speed=300, seed=11, clock=clock2, tick_s=0).run(stop_event=stop2)
    Consumer(services).run(burst=True)
    assert services.redis.xlen(DEAD_LETTER) == 0, services.redis.xrange(DEAD_LETTER, count=3)
    with services.engine.connect() as conn:
        after = dict(conn.execute(select(event.c.id, event.c.last_seq)
                                  .where(event.c.id.in_([eid for eid, _ in open_before]))).all())
    moved = [eid for eid, seq in open_before if after[eid] > seq]
    assert len(moved) > len(open_before) / 2


def test_feed_sim008_cli_simulate(stack, tmp_path, capsys):
    db_url, redis_url = stack
    from dashboard.settings import Settings
    settings = Settings.from_env({}, database_url=db_url, redis_url=redis_url, var_dir=str(tmp_path / "v"),
                                 demo=False)
    with pytest.raises(CliError, match="no grids"):
        cli_simulate(settings, rate=1, speed=10, seed=1, duration=0.5)
    engine = make_engine(db_url)
    migrate(engine)
    upsert_small_district(engine)
    engine.dispose()
    assert cli_simulate(settings, rate=2, speed=10, seed=1, duration=1.0) == 0
    out = capsys.readouterr().out
    assert "published=" in out
    r = connect(redis_url)
    try:
        n = r.xlen(STREAM)
        assert n > 0 and str(n) in out
        for _sid, fields in r.xrange(STREAM, count=50):
            parse(fields[b"m"])
    finally:
        r.close()
    with pytest.raises(CliError, match="rate"):
        cli_simulate(settings, rate=0, speed=10, seed=1, duration=0.5)


def test_feed_sim010_accidents_crimes_and_petitions_are_rare_so_most_communities_are_sanling(engine):
    # README: all but a few of the demo's 47 communities are 三零 over 30 days (the press: 11 of
    # 侯家塘's 12, i.e. 43 of 47). Checked at the demo's own scale (SIM_RATE: ~180 reports a day):
    # the demo district seeded, then the 30 days of history the demo feeds on its first start
    # (the backfill's generator: DEMO_SEED + SEED_OFFSET, SIM_RATE, no positions). Each report
    # becomes an event row in the grid the consumer places it in, at its final level (escalations
    # applied), and the wall's own rule, kpi.sanling, judges the communities: a petition at any
    # level, a level-1 safety event (accident), a level-1 public-security event (criminal case).
    from datetime import timezone

    from dashboard import kpi
    from dashboard.demo.history import SEED_OFFSET
    from dashboard.demo.seed import seed_demo
    from dashboard.geo.locate import Locator
    from dashboard.settings import Settings

    settings = Settings.from_env({})
    seed_demo(engine, settings.demo_seed)
    now = datetime(2026, 11, 20, 4, 0, tzinfo=timezone.utc)  # noon in Shanghai; any fixed moment
    g = Generator(World.load(engine), seed=settings.demo_seed + SEED_OFFSET, start=now - timedelta(days=30),
                  rate=settings.sim_rate, speed=1.0, tz=settings.timezone, positions=False)
    reports, level, n_positions = {}, {}, 0
    t = now - timedelta(days=30)
    while t < now:  # a day at a time, as the backfill does, keeping only what the rule reads
        t = min(t + timedelta(days=1), now)
        for m in g.advance(t):
            if m.type == "event.reported":
                reports[m.event_id] = m
                level[m.event_id] = m.level or CATEGORIES[m.category][2]
            elif m.type == "event.step" and m.step == "escalated":
                level[m.event_id] = m.level
            n_positions += m.type == "position"
    assert n_positions == 0  # positions=False: nobody walks
    assert 4_500 < len(reports) < 6_500  # ~180 a day: ~66,000 a year, Zhenjiang's 60,000+ (DOMAIN.md)
    ids = list(reports)
    lons, lats = zip(*(reports[i].location.wgs84() for i in ids))
    grids = Locator.from_engine(engine).locate_many(lons, lats)
    assert all(grids)  # every report lands in a grid, as the consumer places it
    rows = [{"id": i, "grid_code": str(grid), "category": reports[i].category,
             "subcategory": reports[i].subcategory, "level": level[i], "urgent": reports[i].urgent,
             "state": "reported", "source": reports[i].source, "occurred_at": reports[i].occurred_at,
             "reported_at": reports[i].occurred_at, "updated_at": reports[i].occurred_at, "last_seq": 1}
            for i, grid in zip(ids, grids)]
    with engine.begin() as conn:
        for k in range(0, len(rows), 5000):
            conn.execute(event.insert(), rows[k:k + 5000])
    assert sum(lv == 1 for lv in level.values()) > 150  # district departments still get their share
    s = kpi.sanling(engine, None, *kpi.days_bounds(now, settings.timezone, 30))
    assert s["total"] == 47
    assert 38 <= s["zero"] < s["total"], s["communities"][:10]  # most, but not all (44 here; 41-44 over ten months)


def test_feed_sim012_patrols_from_drops_earlier_checkins_and_nothing_else(world):
    # The history's older part draws its check-ins (the hazards they find, the random stream, the
    # ids) but does not send them: the same messages as the full generator's, minus those check-ins.
    until = START + timedelta(hours=30)
    split = START + timedelta(hours=20)
    full = gen(world, speed=1.0, rate=0.05, positions=False).advance(until)
    part = gen(world, speed=1.0, rate=0.05, positions=False, patrols_from=split).advance(until)
    dropped = [m for m in full if m.type == "patrol.checkin" and m.occurred_at < split]
    assert len(dropped) > 50 and any(m.type == "patrol.checkin" for m in part)
    assert [dump(m) for m in part] == [dump(m) for m in full if m not in dropped]
    assert any(m.type == "hazard.found" and m.occurred_at < split for m in part)  # still found on the walk


def test_feed_sim013_json_text_is_the_same_messages(world):
    # as_json (the history's generating process) leaves the validation to the reader: parsed, every
    # message is the model the generator makes otherwise, for every kind of message.
    until = START + timedelta(hours=3)
    models = gen(world).advance(until)
    texts = gen(world, as_json=True).advance(until)
    assert all(isinstance(t, str) for t in texts)
    assert [parse(t) for t in texts] == models
    assert {m.type for m in models} >= {"position", "event.reported", "event.step", "patrol.checkin",
                                        "hazard.found", "hazard.rectified"}
