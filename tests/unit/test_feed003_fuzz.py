"""Hypothesis fuzz of the consumer: the loop survives anything, every invalid message is
dead-lettered with a reason, every valid one is stored exactly once."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from dashboard.domain import CATEGORIES, PATROL_CHECKLIST
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DEAD_LETTER, DELTAS, GROUP, MAX_TEXT, STREAM, parse
from dashboard.geo.coords import wgs84_to_gcj02
from dashboard.store.schema import event, feed_message, feed_pending

from . import feed_support as F
from dashboard.cases.machine import legal_steps


def step_state(state: str, name: str, level: int, resume_to: str | None) -> tuple[str, int, str | None]:
    """(state, tier, state a resumption returns to) after a legal step, for drawing the next one."""
    if name == "suspended":
        return name, level, state
    if name == "resumed":
        return resume_to, level, None
    if name == "supervised":
        return state, level, resume_to
    return name, level - 1 if name == "escalated" else level, resume_to


TEXT = st.one_of(
    st.text(max_size=80).map(lambda t: t.replace("\x00", "")),  # NUL is refused (see the nul mutation)
    st.sampled_from(["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "'; DROP TABLE event; --",
                     "🚒🔥 电动车起火", "a\nb\r\nc", "&lt;b&gt;", "\u202e反向文字"]),
)


def inside_point(draw, crs: bool = True) -> dict:
    g = draw(st.integers(0, 3))
    p = F.point_in(g, draw(st.floats(0.2, 0.8)), draw(st.floats(0.2, 0.8)))
    if crs and draw(st.booleans()):
        lon, lat = wgs84_to_gcj02(p["lon"], p["lat"])
        return {"lon": float(lon), "lat": float(lat), "crs": "gcj02"}
    return p


def valid_report(draw, prefix: str, k: int) -> dict:
    cat = draw(st.sampled_from(sorted(CATEGORIES)))
    subs = sorted(CATEGORIES[cat][4])
    m = F.envelope(f"{prefix}r{k}", type="event.reported", event_id=f"{prefix}E{k}", category=cat,
                   occurred_at=F.when(draw(st.floats(1, 60 * 24 * 30))),
                   source=draw(st.sampled_from(["grid_patrol", "mini_program", "hotline_12345", "diversion_110",
                                                "whistle", "system"])),
                   description=draw(TEXT), urgent=draw(st.booleans()))
    if draw(st.booleans()):
        m["subcategory"] = draw(st.sampled_from(subs))
    if draw(st.booleans()):
        m["level"] = draw(st.sampled_from([1, 2, 3]))
    if draw(st.booleans()):
        m["location"] = inside_point(draw)
    else:
        m["region_code"] = draw(st.sampled_from(F.GRIDS + [F.MICRO, F.OTHER_GRID]))
    return m


def other_valid(draw, prefix: str, k: int) -> dict:
    kind = draw(st.sampled_from(["position", "patrol", "hazard"]))
    mid = f"{prefix}o{k}"
    if kind == "position":
        return F.envelope(mid, type="position", actor={"kind": draw(st.sampled_from(["staff", "vehicle"])),
                                                       "id": f"{prefix}A{draw(st.integers(0, 3))}"},
                          occurred_at=F.when(draw(st.floats(1, 600))), location=inside_point(draw))
    if kind == "patrol":
        items = draw(st.lists(st.sampled_from(PATROL_CHECKLIST), min_size=1, unique=True))
        return F.envelope(mid, type="patrol.checkin", actor={"kind": "staff", "id": "S1"},
                          checklist={i: draw(st.sampled_from(["ok", "issue"])) for i in items},
                          location=inside_point(draw), note=draw(TEXT))
    return F.envelope(mid, type="hazard.found", hazard_id=f"{prefix}H{k}", kind="hydrant",
                      deadline_at=(datetime.now(timezone.utc) + timedelta(days=2)).isoformat(),
                      location=inside_point(draw))


MUTATIONS = ["wrong_type", "missing", "unknown_category", "outside", "future", "ancient", "naive",
             "oversized", "not_json", "binary", "bool_level", "extra_field", "bad_id", "nul"]


def mutate(draw, m: dict, how: str):
    m = json.loads(json.dumps(m))
    if how == "wrong_type":
        field, value = draw(st.sampled_from([("urgent", "yes"), ("id", 12345), ("category", 7),
                                             ("occurred_at", True), ("actor", "S1"), ("event_id", None)]))
        m[field] = value
        if field == "urgent" and m.get("type") != "event.reported":
            m["actor"] = 5
    elif how == "missing":
        key = draw(st.sampled_from(["id", "type", "source", "occurred_at", "actor"]))
        m.pop(key, None)
    elif how == "unknown_category":
        m["type"], m["category"] = "event.reported", "ufo_sighting"
        m.setdefault("event_id", "x")
    elif how == "outside":
        m.pop("region_code", None)
        m["location"] = draw(st.sampled_from([F.OUTSIDE, {"lon": 0.0, "lat": 0.0}, {"lon": 120.0, "lat": 36.0}]))
    elif how == "future":
        m["occurred_at"] = (datetime.now(timezone.utc) + timedelta(hours=draw(st.floats(1, 1e5)))).isoformat()
    elif how == "ancient":
        m["occurred_at"] = "1970-01-01T00:00:00+08:00"
    elif how == "naive":
        m["occurred_at"] = "2026-01-01T09:00:00"
    elif how == "oversized":
        m["note" if m.get("type") in ("patrol.checkin",) else "description"] = "长" * (MAX_TEXT + draw(st.integers(1, 500)))
        if m.get("type") == "position":
            m["extra"] = 1
    elif how == "not_json":
        return json.dumps(m)[: draw(st.integers(0, 30))].encode() + b"\xff"
    elif how == "binary":
        return draw(st.binary(max_size=40))
    elif how == "bool_level":
        m["type"], m["level"] = "event.reported", True
    elif how == "extra_field":
        m["surprise"] = draw(st.text(max_size=5))
    elif how == "nul":
        m["actor"] = {"kind": "staff", "id": "S1", "name": "张\x00三"}
    elif how == "bad_id":
        m["id"] = draw(st.sampled_from(["", "has space", "x" * 65, "<b>"]))
    return m


@st.composite
def workloads(draw):
    prefix = "f" + uuid.uuid4().hex[:8] + "-"
    valid: list[dict] = []
    reports = [valid_report(draw, prefix, k) for k in range(draw(st.integers(0, 6)))]
    valid += reports
    final_seq = {}
    for rep in reports:
        # a legal path through the case engine's rules (issue 17), drawn step by step from what the
        # state allows (steps needing a deadline or a target case aside); each carries a reason
        n = draw(st.integers(0, 4))
        state, level, seq, resume_to = "reported", rep.get("level") or CATEGORIES[rep["category"]][2], 1, None
        for seq in range(2, 2 + n):
            choices = [s for s in legal_steps(state) if s not in ("extended", "merged")
                       and not (s == "escalated" and level == 1)]
            if not choices:
                seq -= 1
                break
            name = draw(st.sampled_from(choices))
            body = {"level": level - 1} if name == "escalated" else {}
            valid.append(F.envelope(f"{rep['id']}s{seq}", type="event.step", event_id=rep["event_id"], seq=seq,
                                    step=name, note="原因", region_code=F.GRIDS[0], occurred_at=F.when(0.5),
                                    **body))
            state, level, resume_to = step_state(state, name, level, resume_to)
        final_seq[rep["event_id"]] = seq if n else 1
    valid += [other_valid(draw, prefix, k) for k in range(draw(st.integers(0, 4)))]
    invalid = []
    for k in range(draw(st.integers(0, 8))):
        base = draw(st.sampled_from(valid)) if valid else F.reported(f"{prefix}base{k}")
        base = dict(base, id=f"{prefix}bad{k}")
        invalid.append(mutate(draw, base, draw(st.sampled_from(MUTATIONS))))
    dups = [draw(st.sampled_from(valid)) for _ in range(draw(st.integers(0, 3)))] if valid else []
    entries = [("valid", m) for m in valid] + [("invalid", m) for m in invalid] + [("dup", m) for m in dups]
    entries = draw(st.permutations(entries))  # late, early, out of order
    return prefix, entries, final_seq, reports


def test_feed040_fuzz_the_consumer(engine, rds):
    F.seed_regions(engine)
    from dashboard.geo.locate import Locator

    locator = Locator.from_engine(engine)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(workloads(), st.integers(1, 7))
    def run(work, batch):
        prefix, entries, final_seq, reports = work
        rds.delete(STREAM, DEAD_LETTER, DELTAS)
        payloads = [m if isinstance(m, (bytes, bytearray)) else json.dumps(m, ensure_ascii=False)
                    for _kind, m in entries]
        ids = F.xadd_all(rds, payloads)
        # no escalation sweep: reports up to 30 days old are past their deadlines, and an automatic
        # escalation between two drawn steps would make the next one illegal (not what this checks)
        stats = Consumer(engine, rds, locator, name="fuzz", batch=batch, sweep=False).run(burst=True)

        dead = {d["stream_id"]: d for d in F.dead_letters(rds)}
        invalid_sids = {sid for sid, (kind, _m) in zip(ids, entries) if kind == "invalid"}
        assert set(dead) == invalid_sids
        assert all(d["reason"].strip() for d in dead.values())
        for sid in invalid_sids:  # the original payload, byte for byte
            original = payloads[ids.index(sid)]
            original = original if isinstance(original, (bytes, bytearray)) else original.encode()
            assert dead[sid]["payload"].encode("utf-8", "surrogateescape") == bytes(original)
        valid_ids = {m["id"] for kind, m in entries if kind == "valid"}
        with engine.connect() as conn:
            stored = set(conn.execute(sa.select(feed_message.c.message_id)
                                      .where(feed_message.c.message_id.like(prefix + "%"))).scalars())
            assert stored == valid_ids
            rows = {r.id: r for r in conn.execute(sa.select(event).where(event.c.id.like(prefix + "%")))}
            assert set(rows) == set(final_seq)
            for eid, seq in final_seq.items():
                assert rows[eid].last_seq == seq
            for rep in reports:
                # stored as text, as the contract read it (it trims surrounding whitespace)
                assert rows[rep["event_id"]].description == parse(json.dumps(rep)).description
                assert rows[rep["event_id"]].description.strip() == rep["description"].strip()
            held = conn.execute(sa.select(sa.func.count()).select_from(feed_pending)
                                .where(feed_pending.c.message_id.like(prefix + "%"))).scalar_one()
            assert held == 0
        assert rds.xpending(STREAM, GROUP)["pending"] == 0
        assert stats["dead"] == len(invalid_sids)

    run()
