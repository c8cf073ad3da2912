"""C4 (issue 17 item 8): the simulator's cases follow dashboard.cases.machine, every kind of step
occurs in the shares simulate.py's table states, and the real consumer refuses none of them."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dashboard.cases import machine
from dashboard.domain import CATEGORIES
from dashboard.feed import simulate as sim
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DEAD_LETTER
from dashboard.feed.publish import publish_all
from dashboard.feed.simulate import Generator, World
from dashboard.store.schema import event, hazard
from tests.unit.tiling_small import upsert_small_district

START = datetime(2026, 6, 1, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday, in the past
HOURS = 14


def _run(world):
    g = Generator(world, seed=401, start=START, rate=0.25, speed=20, max_walkers=30)
    return g, g.advance(START + timedelta(hours=HOURS))


def _replay(msgs):
    """Every case and hazard through the machine; IllegalStep fails the test with its reason."""
    reports = {m.event_id: m for m in msgs if m.type == "event.reported"}
    cases, steps = {}, defaultdict(list)
    for m in msgs:
        if m.type == "event.reported":
            cases[m.event_id] = machine.report(m.event_id, actor="t", at=m.occurred_at,
                                               level=m.level or CATEGORIES[m.category][2])
        elif m.type == "event.step":
            steps[m.event_id].append(m)
            cases[m.event_id] = machine.apply_step(cases[m.event_id], machine.Step(
                m.step, "t", m.occurred_at, m.note,
                {k: v for k, v in (("deadline_at", m.deadline_at), ("level", m.level), ("into", m.into),
                                   ("satisfaction", m.satisfaction)) if v is not None}))
    hazards = {}
    for m in msgs:
        if not m.type.startswith("hazard."):
            continue
        if m.type == "hazard.found":
            h = machine.Hazard(m.hazard_id)
            hazards[m.hazard_id] = machine.apply_hazard_step(h, machine.Step("ordered", "t", m.occurred_at, "",
                                                                              {"deadline_at": m.deadline_at}))
            continue
        step = {"hazard.deadline": "extended", "hazard.rectified": "rectified", "hazard.closed": "closed",
                "hazard.reinspected": "passed" if getattr(m, "passed", True) else "failed"}[m.type]
        hazards[m.hazard_id] = machine.apply_hazard_step(hazards[m.hazard_id], machine.Step(
            step, "t", m.occurred_at, getattr(m, "note", ""), {"deadline_at": getattr(m, "deadline_at", None)}))
    return reports, cases, steps, hazards


@pytest.fixture
def world(engine):
    upsert_small_district(engine)
    return World.load(engine)


def test_cases401_every_path_is_legal_and_every_kind_of_step_occurs(world):
    _g, msgs = _run(world)
    reports, cases, steps, hazards = _replay(msgs)
    seen = Counter(m.step for m in msgs if m.type == "event.step")
    assert set(machine.CASE_STEPS) - {"merged"} <= set(seen), set(machine.CASE_STEPS) - set(seen)
    if sim.CAN_MERGE:
        assert seen["merged"] > 0
    hz = Counter(m.type if m.type != "hazard.reinspected" else f"reinspected:{m.passed}" for m in msgs
                 if m.type.startswith("hazard."))
    assert hz["hazard.found"] and hz["hazard.deadline"] and hz["hazard.rectified"]
    assert hz["reinspected:True"] and hz["reinspected:False"]
    if sim.HAZARD_CLOSE:
        assert hz["hazard.closed"] and any(h.state == "closed" for h in hazards.values())
    assert any(h.failures for h in hazards.values())
    # every finished case ended where the machine says a case ends
    assert {c.state for c in cases.values()} >= {"evaluated", "rejected"}


def test_cases402_shares_are_the_tables(world):
    _g, msgs = _run(world)
    reports, cases, steps, _h = _replay(msgs)
    n = len(reports)
    assert n > 1500
    registered = [e for e, ss in steps.items() if ss[0].step == "registered"]
    has = {k: sum(any(s.step == k for s in steps[e]) for e in registered)
           for k in ("returned", "suspended", "extended", "reopened", "supervised", "escalated")}
    rejected = sum(c.state == "rejected" for c in cases.values())
    repeats = [m for m in reports.values() if any(s.step == "merged" or "重复上报" in s.note
                                                  for s in steps.get(m.event_id, ()))]

    def within(value, p, lo=0.5, hi=1.8):
        assert lo * p <= value <= hi * p, (value, p)

    within(rejected / n, sim.REJECT_P + sim.DUPLICATE_P * sim.DUPLICATE_FATE["rejected"])
    within(has["returned"] / len(registered), sim.RETURN_P)
    within(has["suspended"] / len(registered), sim.SUSPEND_P, 0.3, 2.5)
    within(has["extended"] / len(registered), sim.EXTEND_P)
    within(has["reopened"] / len(registered), sim.REOPEN_P)
    within(has["supervised"] / len(registered), sim.SUPERVISE_P, 0.4, 2.2)
    # operator escalations: only cases above tier 1 can go up
    within(has["escalated"] / len(registered), sim.ESCALATE_P, 0.3, 1.5)
    within(len(repeats) / n, sim.DUPLICATE_P * (1 - sim.DUPLICATE_FATE["separate"]), 0.4, 2.2)
    # a repeat is the same 小类 within 50 m and a few hours of the case it repeats
    for m in repeats:
        into = next(s for s in steps[m.event_id] if s.step in ("merged", "rejected"))
        target = into.into or into.note.split("并案 ")[1].split(" ")[0]
        first = reports[target]
        assert first.subcategory == m.subcategory
        (x1, y1), (x2, y2) = first.location.wgs84(), m.location.wgs84()
        metres = math.hypot((x1 - x2) * 111_320 * math.cos(math.radians(y1)), (y1 - y2) * 111_320)
        assert metres <= 50
        assert timedelta(0) < m.occurred_at - first.occurred_at <= timedelta(hours=sim.DUPLICATE_WINDOW_H + 1)
    # DOMAIN.md's bulletin: 满意率 in the nineties (3 stars and up here)
    scores = [s.satisfaction for ss in steps.values() for s in ss if s.step == "evaluated"]
    assert 0.9 <= sum(x >= 3 for x in scores) / len(scores) <= 0.99


def test_cases403_the_consumer_refuses_none_and_stores_the_machines_states(stack, make_services):
    # no breach sweep at today's clock over June's cases: the generator runs without one (expect_sweep)
    svc = make_services(*stack, escalation_sweep_s=0)
    upsert_small_district(svc.engine)
    _g, msgs = _run(World.load(svc.engine))
    _reports, cases, _steps, hazards = _replay(msgs)
    for i in range(0, len(msgs), 2000):
        publish_all(svc.redis, msgs[i:i + 2000])
    Consumer(svc, batch=2000, push=False).run(burst=True)
    dead = [f[b"reason"].decode() for _sid, f in svc.redis.xrange(DEAD_LETTER, count=5)]
    assert svc.redis.xlen(DEAD_LETTER) == 0, dead
    with svc.engine.connect() as conn:
        stored = dict(conn.execute(select(event.c.id, event.c.state)).all())
        stored_hz = dict(conn.execute(select(hazard.c.id, hazard.c.state)).all())
        flagged = dict(conn.execute(select(event.c.id, event.c.duplicate_of)).all())
    assert stored == {cid: c.state for cid, c in cases.items()}
    assert stored_hz == {hid: h.state for hid, h in hazards.items()}
    merged = [cid for cid, c in cases.items() if c.merged_into]
    assert merged and all(flagged[cid] is not None for cid in merged)  # flagged on arrival, then merged


def test_cases404_with_the_breach_sweep_in_step_the_simulator_carries_on_from_it(stack, make_services):
    """The served demo: consumers sweep for breaches (ESCALATION_SWEEP_S) while the simulator runs
    at speed 1 with expect_sweep. Sweeping every 5 minutes of the simulated clock, every breach
    is escalated by the sweep and no step of the simulator's is refused after it."""
    from dashboard.cases import escalation

    svc = make_services(*stack, escalation_sweep_s=0)  # the test sweeps, in step with its clock
    upsert_small_district(svc.engine)
    g = Generator(World.load(svc.engine), seed=404, start=START, rate=0.02, speed=1, max_walkers=10,
                  positions=False, expect_sweep=True)
    consumer = Consumer(svc, batch=2000, push=False)
    t, swept = START, 0
    while t < START + timedelta(hours=40):
        t += timedelta(minutes=5)
        msgs = g.advance(t)
        if msgs:
            publish_all(svc.redis, msgs)
        consumer.run(burst=True)
        swept += len(escalation.sweep(svc.engine, svc.redis, now=t, worker="t"))
        consumer.run(burst=True)
    dead = [f[b"reason"].decode() for _sid, f in svc.redis.xrange(DEAD_LETTER, count=5)]
    assert svc.redis.xlen(DEAD_LETTER) == 0, dead
    expected = [b for b in g.breaches if b[1] < t]  # later ones: the sweep has not reached them
    assert swept > 5 and swept == len(expected)  # every breach the simulator expected, and no other
    with svc.engine.connect() as conn:
        auto = conn.execute(select(event.c.id).where(event.c.escalations > 0)).all()
    assert len(auto) >= swept
