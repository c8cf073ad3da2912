"""KPI functions against figures computed straight from the inserted rows."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import kpi
from dashboard.domain import CATEGORIES, HAZARD_OPEN_STATES, OPEN_STATES, SOURCES
from dashboard.store.schema import KEY_POPULATION_COLUMNS
from tests.unit.kpi_fixtures import (
    COMMUNITIES, DISTRICT, GRIDS, NOW, OFFSET, STREET_A, STREET_B, TZ, World, local_day,
    make_event, rates_by_hand, seeded,
)


def local_midnight_utc(d):
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc) - OFFSET


TODAY = local_day(NOW)
T0, T1 = local_midnight_utc(TODAY), local_midnight_utc(TODAY + timedelta(days=1))


def within(t, a, b):
    return t is not None and a <= t < b


def scoped(rows, scope, key="grid_code"):
    return [r for r in rows if not scope or (r[key] or "").startswith(scope)]


def overdue_now(e, now=None):
    """超期 now (docs/kpi.md): open, the clock running (not 挂账), the deadline passed."""
    now = now or NOW
    return (e["state"] in OPEN_STATES and e["state"] != "suspended" and e["deadline_at"] is not None
            and e["deadline_at"] < now)


def expected_rates(events, a, b, now=None):
    return rates_by_hand(events, a, b, now or NOW)


@pytest.fixture
def world(engine):
    return seeded(engine)


def test_kpi001_time_bounds_are_local_days():
    # 12:00 Shanghai on 20 Nov: today runs 19 Nov 16:00Z .. 20 Nov 16:00Z.
    assert kpi.day_bounds(NOW, TZ) == (T0, T1)
    late = datetime(2026, 11, 20, 17, 0, tzinfo=timezone.utc)  # 01:00 on 21 Nov local
    assert kpi.day_bounds(late, TZ)[0] == T1
    a, b = kpi.week_bounds(NOW, TZ)  # 20 Nov 2026 is a Friday
    assert (b - a) == timedelta(days=7) and a == local_midnight_utc(TODAY - timedelta(days=4))
    assert kpi.week_bounds(NOW, TZ, 1) == (a - timedelta(days=7), a)
    with pytest.raises(ValueError, match="aware"):
        kpi.day_bounds(NOW.replace(tzinfo=None), TZ)


@pytest.mark.parametrize("scope", [None, DISTRICT, STREET_A, STREET_B, "370202001001", "370202001001002"])
def test_kpi002_today_counts_and_rates_match_rows(engine, world, scope):
    ev = scoped(world.events, scope)
    figs = kpi.flow_counts(engine, scope, T0, T1)
    assert figs == {
        "reported": sum(within(e["reported_at"], T0, T1) for e in ev),
        "registered": sum(within(e["registered_at"], T0, T1) for e in ev),
        "closed": sum(within(e["closed_at"], T0, T1) for e in ev),
    }
    opened = [e for e in ev if e["state"] in OPEN_STATES]
    oc = kpi.open_counts(engine, scope, NOW)
    assert oc["open"] == len(opened)
    assert oc["overdue"] == sum(1 for e in opened if overdue_now(e))
    assert oc["due_soon"] == sum(1 for e in opened if e["state"] != "suspended" and e["due_soon_at"] is not None
                                 and e["due_soon_at"] <= NOW < e["deadline_at"])
    assert oc["open_by_level"] == {str(lv): sum(e["level"] == lv for e in opened) for lv in (1, 2, 3)}
    # rates over today and over a whole week (the briefing's period)
    assert kpi.rates(engine, scope, T0, T1, NOW) == expected_rates(ev, T0, T1)
    w0, w1 = kpi.week_bounds(NOW, TZ, 1)
    assert kpi.rates(engine, scope, w0, w1, NOW) == expected_rates(ev, w0, w1)


def test_kpi003_rates_are_not_trivial(world):
    # The oracle would agree with a broken SQL that returns zeros if the data had none.
    w0, w1 = kpi.week_bounds(NOW, TZ, 1)
    r = expected_rates(world.events, w0, w1)
    for name, v in r.items():
        assert 0 < v["num"] < v["den"], name


def test_kpi004_day_boundary_in_shanghai(engine):
    grid = "370202001001001"
    w = World(events=[
        make_event(1, grid, T0 - timedelta(minutes=30)),  # 23:30 yesterday, local
        make_event(2, grid, T0 + timedelta(minutes=30)),  # 00:30 today, local
        make_event(3, grid, T1 - timedelta(minutes=1)),   # 23:59 today (future relative to NOW: still today)
    ])
    seeded(engine, w)
    assert kpi.flow_counts(engine, None, T0, T1)["reported"] == 2
    trend = kpi.daily_trend(engine, None, NOW, TZ, 2)
    assert [d["day"] for d in trend] == [(TODAY - timedelta(days=1)).isoformat(), TODAY.isoformat()]
    assert [d["reported"] for d in trend] == [1, 2]
    figs = kpi.wall_figures(engine, None, NOW, TZ)
    assert figs["today"]["reported"] == 2 and figs["day"] == TODAY.isoformat()


def test_kpi005_other_streets_never_counted(engine):
    a, b = "370202001001001", "370202002001001"
    w = World(events=[
        make_event(1, a, NOW - timedelta(hours=1), category="petition", level=1),
        make_event(2, b, NOW - timedelta(hours=1), category="petition", level=1,
                   deadline_at=NOW - timedelta(minutes=5)),
        make_event(3, b, NOW - timedelta(hours=2), category="safety", level=1, state="closed",
                   closed_at=NOW - timedelta(minutes=10)),
    ])
    seeded(engine, w)
    fa = kpi.wall_figures(engine, STREET_A, NOW, TZ)
    assert fa["today"]["reported"] == 1 and fa["today"]["closed"] == 0 and fa["today"]["overdue"] == 0
    assert [r["code"][:9] for r in fa["ranking"]] == [STREET_A] * 2  # its two communities
    assert all(c["code"].startswith(STREET_A) for c in fa["sanling"]["communities"])
    assert set(kpi.grid_measures(engine, STREET_A, NOW, TZ)) == {g for g in GRIDS if g.startswith(STREET_A)}
    fb = kpi.wall_figures(engine, STREET_B, NOW, TZ)
    assert fb["today"] == {**fb["today"], "reported": 2, "closed": 1, "open": 1, "overdue": 1}


@pytest.mark.parametrize("field,key", [("level", lambda e: str(e["level"])), ("category", lambda e: e["category"]),
                                       ("source", lambda e: e["source"])])
def test_kpi006_breakdowns(engine, world, field, key):
    a, b = kpi.days_bounds(NOW, TZ, 7)
    ev = [e for e in scoped(world.events, STREET_A) if within(e["reported_at"], a, b)]
    want = Counter(key(e) for e in ev)
    got = kpi.events_by(engine, STREET_A, a, b, field)
    assert {r["key"]: r["count"] for r in got if r["count"]} == dict(want)
    known = {"level": 3, "category": len(CATEGORIES), "source": len(SOURCES)}[field]
    assert len(got) == known  # zero rows kept so bars stay in place
    if field != "level":
        assert [r["count"] for r in got] == sorted((r["count"] for r in got), reverse=True)
    with pytest.raises(ValueError, match="field"):
        kpi.events_by(engine, None, a, b, "colour")


@pytest.mark.parametrize("days", [7, 30])
def test_kpi007_daily_trend(engine, world, days):
    trend = kpi.daily_trend(engine, STREET_B, NOW, TZ, days)
    ev = scoped(world.events, STREET_B)
    first = TODAY - timedelta(days=days - 1)
    want = [{"day": (first + timedelta(days=i)).isoformat(),
             "reported": sum(local_day(e["reported_at"]) == first + timedelta(days=i) for e in ev),
             "closed": sum(e["closed_at"] is not None and local_day(e["closed_at"]) == first + timedelta(days=i)
                           for e in ev)} for i in range(days)]
    assert trend == want
    assert sum(d["reported"] for d in trend) > 0


@pytest.mark.parametrize("scope,width", [(None, 9), (DISTRICT, 9), (STREET_A, 12), ("370202001001", 15)])
def test_kpi008_ranking(engine, world, scope, width):
    a, b = kpi.days_bounds(NOW, TZ, 30)
    rows = kpi.ranking(engine, scope, NOW, a, b)
    units = sorted({*([STREET_A, STREET_B] if width == 9 else []), *(c for c in COMMUNITIES if width == 12),
                    *(g for g in GRIDS if width == 15)})
    units = [u for u in units if not scope or u.startswith(scope)]
    assert sorted(r["code"] for r in rows) == units
    for r in rows:
        ev = [e for e in world.events if e["grid_code"].startswith(r["code"])]
        opened = [e for e in ev if e["state"] in OPEN_STATES]
        want = expected_rates(ev, a, b)["on_time_rate"]  # the standard 按期结案数 / 应结案数
        assert (r["open"], r["overdue"], r["due"], r["on_time"]) == (
            len(opened), sum(1 for e in opened if overdue_now(e)), want["den"], want["num"])
        assert r["on_time_rate"] == want["rate"]
    keys = [(-r["overdue"], -r["open"]) for r in rows]
    assert keys == sorted(keys) and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


def test_kpi009_sanling(engine):
    c1, c2, c3 = list(COMMUNITIES)
    g = {c: next(x for x in GRIDS if x.startswith(c)) for c in COMMUNITIES}
    t = NOW - timedelta(days=3)
    old = NOW - timedelta(days=45)  # outside the 30-day window
    w = World(events=[
        make_event(1, g[c1], t, category="petition", level=1),
        make_event(2, g[c1], t, category="order", subcategory="security", level=1),
        make_event(3, g[c2], t, category="safety", level=1),
        make_event(4, g[c2], t, category="order", subcategory="security", level=2),  # not level 1: no case
        make_event(5, g[c3], t, category="safety", level=2, urgent=True),  # an urgent report, caught: no accident
        make_event(6, g[c3], old, category="petition", level=1),
    ])
    seeded(engine, w)
    a, b = kpi.days_bounds(NOW, TZ, 30)
    s = kpi.sanling(engine, None, a, b)
    by = {r["code"]: r for r in s["communities"]}
    assert (s["zero"], s["total"]) == (1, 3)
    assert (by[c1]["petitions"], by[c1]["accidents"], by[c1]["criminal"], by[c1]["zero"]) == (1, 0, 1, False)
    assert (by[c2]["petitions"], by[c2]["accidents"], by[c2]["criminal"], by[c2]["zero"]) == (0, 1, 0, False)
    assert by[c3]["zero"] is True
    assert [r["zero"] for r in s["communities"]] == [False, False, True]  # the ones to look at first
    sb = kpi.sanling(engine, STREET_B, a, b)
    assert (sb["zero"], sb["total"]) == (1, 1)
    s_grid = kpi.sanling(engine, g[c1], a, b)
    assert s_grid["total"] == 1 and s_grid["communities"][0]["code"] == c1


def test_kpi010_grid_measures(engine, world):
    from dashboard.store.schema import patrol
    idle = "370202002001001"  # no check-in today: the patrolled flag has a False to show
    with engine.begin() as conn:
        conn.execute(patrol.delete().where(patrol.c.grid_code == idle, patrol.c.at >= T0))
    world.patrols = [p for p in world.patrols if not (p["grid_code"] == idle and p["at"] >= T0)]
    m = kpi.grid_measures(engine, None, NOW, TZ)
    assert set(m) == set(GRIDS)
    start = local_midnight_utc(TODAY - timedelta(days=29))
    for code, pop in GRIDS.items():
        ev = [e for e in world.events if e["grid_code"] == code]
        opened = [e for e in ev if e["state"] in OPEN_STATES]
        recent = sum(1 for e in ev if within(e["reported_at"], start, T1))
        hz = sum(1 for h in world.hazards if h["grid_code"] == code and h["state"] in HAZARD_OPEN_STATES)
        patrolled = any(p["grid_code"] == code and within(p["at"], T0, T1) for p in world.patrols)
        assert m[code] == {"open": len(opened), "overdue": sum(1 for e in opened if overdue_now(e)),
                           "hazards": hz, "per_1000": round(recent * 1000 / pop, 2) if pop else None,
                           "patrolled": patrolled}
    assert m["370202001002001"]["per_1000"] is None  # no residents: no rate, never 0
    assert {m[g]["patrolled"] for g in GRIDS} == {True, False}  # the check can tell them apart
    # the same covered grids as the patrols figure, and the same per-1,000 as the briefing's
    assert sum(v["patrolled"] for v in m.values()) == kpi.patrols(engine, None, T0, T1)["grids_patrolled"]
    rated = kpi.grid_per_1000(engine, None, *kpi.days_bounds(NOW, TZ, kpi.PER_1000_DAYS))
    assert {g: v["per_1000"] for g, v in m.items()} == {g: v["per_1000"] for g, v in rated.items()}
    json.dumps(m)


@pytest.mark.parametrize("scope", [None, STREET_A, "370202002001"])
def test_kpi011_people_things(engine, world, scope):
    st = kpi.staff_on_duty(engine, scope, NOW)
    on = [s for s in scoped(world.staff, scope, "region_code") if s["on_duty"]]
    assert st["on_duty"] == len(on) and st["on_duty_by_role"] == dict(Counter(s["role"] for s in on))
    pos = [p for p in scoped(world.positions, scope) if NOW - timedelta(minutes=15) <= p["at"] <= NOW]
    assert (st["online_staff"], st["online_vehicles"]) == (
        sum(p["actor_kind"] == "staff" for p in pos), sum(p["actor_kind"] == "vehicle" for p in pos))

    pa = kpi.patrols(engine, scope, T0, T1)
    today = [p for p in scoped(world.patrols, scope) if within(p["at"], T0, T1)]
    grids = [gc for gc in GRIDS if not scope or gc.startswith(scope)]
    assert pa == {"patrols": len(today), "grids_patrolled": len({p["grid_code"] for p in today}),
                  "grids_total": len(grids), "issues": sum(p["issues"] for p in today),
                  "coverage": len({p["grid_code"] for p in today}) / len(grids)}

    hz = kpi.hazard_counts(engine, scope, NOW, T0, T1)
    hs = scoped(world.hazards, scope)
    op = [h for h in hs if h["state"] in HAZARD_OPEN_STATES]
    assert (hz["open"], hz["overdue"], hz["found"], hz["rectified"]) == (
        len(op), sum(h["deadline_at"] < NOW for h in op), sum(within(h["found_at"], T0, T1) for h in hs),
        sum(within(h["rectified_at"], T0, T1) for h in hs))
    assert hz["open_by_kind"] == dict(Counter(h["kind"] for h in op))

    po = kpi.population(engine, scope)
    rs = scoped(world.summaries, scope)
    for c in ("population", "households", "registered", "floating"):
        assert po[c] == sum(r[c] for r in rs)
    assert po["key_population"] == {c: sum(r[c] for r in rs) for c in KEY_POPULATION_COLUMNS}
    ho = kpi.houses(engine, scope)
    hs2 = scoped(world.houses, scope)
    assert (ho["total"], ho["rental"], ho["vacant"]) == (
        len(hs2), sum(h["use"] == "rental" for h in hs2), sum(h["use"] == "vacant" for h in hs2))


def test_kpi012_wall_figures_bundle_is_json_and_consistent(engine, world):
    figs = kpi.wall_figures(engine, DISTRICT, NOW, TZ)
    json.dumps(figs)
    assert figs["trend7"] == figs["trend30"][-7:]
    assert figs["today"]["reported"] == figs["trend7"][-1]["reported"]
    assert figs["today"]["reported"] == sum(r["count"] for r in figs["by_category"])
    assert figs["today"]["open"] == sum(r["open"] for r in figs["ranking"])
    assert figs["ranking_level"] == "street" and figs["tz"] == TZ
    summary = kpi.period_summary(engine, DISTRICT, *kpi.week_bounds(NOW, TZ, 1))
    assert summary["rates"] == kpi.rates(engine, DISTRICT, *kpi.week_bounds(NOW, TZ, 1))
    assert summary["reported"] == sum(r["count"] for r in summary["by_level"])


def test_kpi013_slow_parts_reused_live_parts_fresh(engine, world):
    slow = kpi.slow_figures(engine, STREET_A, NOW, TZ)
    before = kpi.wall_figures(engine, STREET_A, NOW, TZ, slow=slow)
    from dashboard.store.schema import event as event_table
    with engine.begin() as conn:
        conn.execute(event_table.insert(), [make_event(90001, "370202001001001", NOW - timedelta(minutes=5),
                                                       category="petition", level=1)])
    after = kpi.wall_figures(engine, STREET_A, NOW, TZ, slow=slow)
    assert after["today"]["reported"] == before["today"]["reported"] + 1
    assert after["trend7"][-1]["reported"] == before["trend7"][-1]["reported"] + 1
    assert after["today"]["open"] == before["today"]["open"] + 1
    assert after["ranking"][0]["open"] + after["ranking"][1]["open"] == after["today"]["open"]
    assert after["sanling"] == before["sanling"]  # reused as given
    fresh = kpi.wall_figures(engine, STREET_A, NOW, TZ)
    assert fresh["trend30"] == after["trend30"]
    # a slow part from another day or scope is not trusted
    other = kpi.wall_figures(engine, STREET_B, NOW, TZ, slow=slow)
    assert all(c["code"].startswith(STREET_B) for c in other["sanling"]["communities"])
    tomorrow = kpi.wall_figures(engine, STREET_A, NOW + timedelta(days=1), TZ, slow=slow)
    assert tomorrow["day"] == (TODAY + timedelta(days=1)).isoformat()
    assert tomorrow["trend30"][-2]["day"] == TODAY.isoformat()


def test_kpi041_a_petition_at_any_level_breaks_zero_petitions(engine):
    # 零上访 counts every petition, whatever tier handles it (docs/kpi.md); accidents and criminal
    # cases are level-1 events only. A check that counted level-1 petitions alone would pass the
    # demo (its petitions go to the district) and miss this.
    c1, c2, c3 = list(COMMUNITIES)
    g = {c: next(x for x in GRIDS if x.startswith(c)) for c in COMMUNITIES}
    t = NOW - timedelta(days=2)
    seeded(engine, World(events=[
        make_event(1, g[c1], t, category="petition", level=3),
        make_event(2, g[c2], t, category="petition", level=2),
        make_event(3, g[c3], t, category="safety", level=2),
    ]))
    s = kpi.sanling(engine, None, *kpi.days_bounds(NOW, TZ, 30))
    by = {r["code"]: r for r in s["communities"]}
    assert (by[c1]["petitions"], by[c1]["zero"]) == (1, False)
    assert (by[c2]["petitions"], by[c2]["zero"]) == (1, False)
    assert by[c3]["zero"] is True and s["zero"] == 1
