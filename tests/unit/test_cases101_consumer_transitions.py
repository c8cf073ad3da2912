"""The case engine in the consumer: every (state, step) pair through the stream, legal ones applied,
illegal ones dead-lettered with the machine's reason and nothing changed (issue 17)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard.cases.machine import CASE_RULES, CASE_STATES, RESUME, SAME
from dashboard.feed.contract import DEAD_LETTER
from dashboard.store.schema import event, event_step, feed_pending

from . import feed_support as F

# a path from reported to each state (steps after the report); the tier starts at 3
PATHS = {
    "reported": [],
    "registered": ["registered"],
    "rejected": ["rejected"],
    "dispatched": ["registered", "dispatched"],
    "handling": ["registered", "dispatched", "handling"],
    "escalated": ["registered", "escalated"],
    "returned": ["registered", "dispatched", "returned"],
    "suspended": ["registered", "suspended"],
    "feedback": ["registered", "dispatched", "handling", "feedback"],
    "verified": ["registered", "dispatched", "handling", "feedback", "verified"],
    "reopened": ["registered", "dispatched", "handling", "feedback", "verified", "reopened"],
    "closed": ["registered", "dispatched", "handling", "feedback", "verified", "closed"],
    "evaluated": ["registered", "dispatched", "handling", "feedback", "verified", "closed", "evaluated"],
    "merged": ["merged"],
}
TARGET = "TGT"   # the open case merges go into
RULES = {r.step: r for r in CASE_RULES}
EXT_DEADLINE = None  # set per run: later than any case's deadline


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


consume = F.consume


NOW = datetime.now(F.CST)  # one moment for every case: identical paths give identical rows


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def report(eid: str, minutes_ago: float = 200) -> dict:
    # placed by region code: no point, so no duplicate flags between the many identical cases
    return F.envelope(f"{eid}-r", type="event.reported", event_id=eid, category="environment",
                      subcategory="garbage", level=3, region_code=F.GRIDS[0], occurred_at=at(minutes_ago),
                      description="垃圾堆积")


def step_msg(eid: str, seq: int, name: str, minutes_ago: float, mid: str | None = None, **kw) -> dict:
    body = {"note": "原因说明"}
    if name == "merged":
        body["into"] = TARGET
    if name == "extended":
        body["deadline_at"] = (NOW + timedelta(days=40)).isoformat()
    if name == "evaluated":
        body["satisfaction"] = 4
    body.update(kw)
    return F.envelope(mid or f"{eid}-s{seq}", type="event.step", event_id=eid, seq=seq, step=name,
                      occurred_at=at(minutes_ago), region_code=F.GRIDS[0], **body)


def chain(eid: str, path: list[str]) -> list[dict]:
    return [report(eid)] + [step_msg(eid, i + 2, s, 190 - 10 * i) for i, s in enumerate(path)]


def expected_state(state: str, step: str) -> str:
    target = RULES[step].target
    if target == SAME:
        return state
    if target == RESUME:
        return "registered"  # every path to suspended suspends a registered case
    return target


def row_without_id(row) -> dict:
    return {k: v for k, v in dict(row).items() if k not in ("id", "updated_at")}


def test_cases101_every_state_and_step_through_the_consumer(svc):
    r = svc.redis
    msgs = [report(TARGET, 210)]
    combos = []
    for state, path in PATHS.items():
        msgs += chain(f"C-{state}", path)  # the control: the state, no further step
        for step in RULES:
            eid = f"X-{state}-{step}"
            msgs += chain(eid, path)
            msgs.append(step_msg(eid, len(path) + 2, step, 5, mid=f"{eid}-final"))
            combos.append((state, step, eid))
    F.xadd_all(r, msgs)
    stats = consume(svc, batch=200)
    dead = {d["payload"]: d["reason"] for d in F.dead_letters(r)}
    by_mid = {}
    for payload, reason in dead.items():
        by_mid[json.loads(payload)["id"]] = reason
    with svc.engine.connect() as conn:
        rows = {row["id"]: row for row in conn.execute(sa.select(event)).mappings()}
        step_ids = set(conn.execute(sa.select(event_step.c.message_id)).scalars())
        held = conn.execute(sa.select(sa.func.count()).select_from(feed_pending)).scalar_one()
    assert held == 0
    legal = illegal = 0
    for state, step, eid in combos:
        row, control = rows[eid], rows[f"C-{state}"]
        assert control["state"] == state, (state, control["state"])
        mid = f"{eid}-final"
        if state in RULES[step].sources:
            legal += 1
            assert mid not in by_mid, (state, step, by_mid.get(mid))
            assert mid in step_ids
            assert row["state"] == expected_state(state, step), (state, step)
            assert row["last_seq"] == len(PATHS[state]) + 2
        else:
            illegal += 1
            reason = by_mid.get(mid)
            assert reason is not None, (state, step)
            assert reason.startswith(f"illegal step '{step}' on case {eid} in state '{state}': "), reason
            assert mid not in step_ids
            # nothing changed: the row is the control's (same path, no further step)
            assert row_without_id(row) == row_without_id(control), (state, step)
    assert legal == sum(len(r.sources) for r in CASE_RULES)
    assert illegal == len(CASE_STATES) * len(RULES) - legal
    assert stats["dead"] == illegal == len(by_mid)
    # the merges went into the target, each recorded there as a system step with a negative seq
    with svc.engine.connect() as conn:
        into = conn.execute(sa.select(event_step.c.seq, event_step.c.step, event_step.c.payload)
                            .where(event_step.c.event_id == TARGET).order_by(event_step.c.seq.desc())).all()
    merged_from = [eid for (state, step, eid) in combos if step == "merged" and state in RULES["merged"].sources]
    merged_from += ["C-merged"] + [eid for (state, _step, eid) in combos if state == "merged"]
    assert sorted(json.loads(p)["from"] for _s, _n, p in into) == sorted(merged_from)
    assert [s for s, _n, _p in into] == list(range(-1, -len(into) - 1, -1))
    assert {n for _s, n, _p in into} == {"merged_in"}
    assert rows[TARGET]["state"] == "reported" and rows[TARGET]["last_seq"] == 1


def test_cases102_fields_a_step_needs_or_must_not_carry(svc):
    r = svc.redis
    base = [report("B1"), step_msg("B1", 2, "registered", 150), step_msg("B1", 3, "dispatched", 140)]
    closed = chain("B2", PATHS["closed"])
    F.xadd_all(r, base + closed + [report("B3", 100)])
    consume(svc)
    with svc.engine.connect() as conn:
        before = {row["id"]: dict(row) for row in conn.execute(sa.select(event)).mappings()}
    current = before["B1"]["deadline_at"]
    bad = [
        ("no-reason", step_msg("B1", 4, "extended", 30, note=""), "the step needs a reason"),
        ("earlier", step_msg("B1", 4, "extended", 30, deadline_at=(current - timedelta(minutes=1)).isoformat()),
         "is not later than the current"),
        ("no-deadline", step_msg("B1", 4, "extended", 30, deadline_at=None), "the step needs deadline_at"),
        ("deadline-on-handling", step_msg("B1", 4, "handling", 30, deadline_at=(current + timedelta(days=1))
                                          .isoformat()), "only registered, dispatched, escalated and extended"),
        ("level-on-handling", step_msg("B1", 4, "handling", 30, level=2), "only escalated changes the tier"),
        ("two-tiers", step_msg("B1", 4, "escalated", 30, level=1), "one tier up, from 3 to 2, not to 1"),
        ("return-no-reason", step_msg("B1", 4, "returned", 30, note=""), "the step needs a reason"),
        ("merge-unknown", step_msg("B1", 4, "merged", 30, into="NOPE"), "NOPE, does not exist"),
        ("merge-closed", step_msg("B1", 4, "merged", 30, into="B2"), "B2, is closed, not open"),
        ("merge-self", step_msg("B1", 4, "merged", 30, into="B1"), "cannot be merged into itself"),
        ("unit-on-feedback", step_msg("B1", 4, "handling", 30, unit="U1"), "only dispatched and escalated"),
        ("into-on-verified", step_msg("B1", 4, "handling", 30, into="B3"), "only merged names a case"),
        ("on-closed", step_msg("B2", 8, "supervised", 30), "in state 'closed': not allowed from this state"),
    ]
    for i, (name, m, _why) in enumerate(bad):
        m["id"] = f"bad-{name}"
        if m.get("deadline_at") is None:
            m.pop("deadline_at", None)
    F.xadd_all(r, [m for _n, m, _w in bad])
    stats = consume(svc)
    assert stats["dead"] == len(bad) and stats["applied"] == 0
    reasons = {}
    for d in F.dead_letters(r):
        reasons[json.loads(d["payload"])["id"]] = d["reason"]
    for name, m, why in bad:
        reason = reasons[f"bad-{name}"]
        assert reason.startswith(f"illegal step '{m['step']}' on case {m['event_id']} in state "), reason
        assert why in reason, (name, reason)
    with svc.engine.connect() as conn:
        after = {row["id"]: dict(row) for row in conn.execute(sa.select(event)).mappings()}
    assert after == before
    # the contract still refuses an unknown category or subcategory (before the store is asked)
    F.xadd_all(r, [dict(report("B4"), category="ufo"), dict(report("B5"), id="B5-r", subcategory="ufo")])
    consume(svc)
    letters = F.dead_letters(r)[-2:]
    assert "category" in letters[0]["reason"] and "subcategory 'ufo' is not one of" in letters[1]["reason"]
    # a corrected step with the refused seq applies, and the steps held behind it follow
    F.xadd_all(r, [step_msg("B1", 5, "feedback", 10), step_msg("B1", 4, "handling", 20, mid="B1-good-4")])
    consume(svc)
    with svc.engine.connect() as conn:
        b1 = conn.execute(sa.select(event).where(event.c.id == "B1")).mappings().one()
    assert b1["state"] == "feedback" and b1["last_seq"] == 5
