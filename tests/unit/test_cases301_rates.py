"""The standard rates (dashboard/cases/rates.py) against figures computed by hand (docs/kpi.md).

Thirteen cases plus one a year earlier, each placed to test one rule; the expected figures are
literal numbers with the arithmetic beside them, worked out from the table below, not from code.
The period P is the local week Mon 16 - Sun 22 Nov 2026 (Asia/Shanghai), "now" Fri 20 Nov 12:00.

case grid unit  reported  deadline  feedback  closed    state      notes
e1   G1   U1    16 09:00  18 09:00  17 09:00  17 12:00  evaluated  sat 5
e2   G1   U1    16 10:00  18 10:00  19 10:00  19 15:00  evaluated  returned once, reopened, sat 3
e3   G2   U1    17 09:00  -         -         -         rejected   responded
e4   G2   U1    18 09:00  19 09:00  -         -         handling   not responded
e5   G3   U2    19 09:00  21 09:00  -         -         dispatched deadline after now
e6   G3   U2    17 09:00  18 09:00  -         -         suspended
e7   G4   U2    18 09:00  19 09:00  -         -         merged     (into e5)
e8   G4   U2    10 09:00  13 09:00  15 09:00  16 11:00  closed     reported the week before
e9   G4   U2    12 09:00  25 09:00  16 14:00  17 09:00  evaluated  closed early, sat 4
e10  G1   U1    20 09:00  22 09:00  20 11:00  -         feedback
e11  G1   -     20 11:00  -         -         -         reported   responded, no unit yet
e12  G3   U2    09 09:00  16 12:00  12 09:00  13 09:00  evaluated  closed before P, due in P, sat 5
e13  G4   U2    10 09:00  11 09:00  11 08:00  11 10:00  closed     all in the week before
e14  G1   U1    2025-11-17 09:00, deadline 18 09:00, feedback 18 08:00, closed 18 10:00 (a year before)
Every case but e3 (rejected), e7 (merged) and e11 is registered, dispatched and responded to
within the hour of its report. G1, G2: community 370202001001; G3: 370202001002 (street A);
G4: 370202002001 (street B).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard.cases import rates as R
from dashboard.store.schema import event, handling_unit
from tests.unit.kpi_fixtures import DISTRICT, STREET_A, STREET_B, make_event, seed_regions

G1, G2, G3, G4 = "370202001001001", "370202001001002", "370202001002001", "370202002001001"
C1, C2, C3 = "370202001001", "370202001002", "370202002001"


def T(day: int, hour: int, minute: int = 0, year: int = 2026, month: int = 11) -> datetime:
    """Local (UTC+8) wall time -> UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc) - timedelta(hours=8)


P0, P1 = T(16, 0), T(23, 0)
NOW = T(20, 12)


def case(i, grid, unit, reported, state, *, deadline=None, feedback=None, closed=None, worked=True, **kw):
    extra = ({"registered_at": reported + timedelta(minutes=10), "dispatched_at": reported + timedelta(minutes=20),
              "responded_at": reported + timedelta(minutes=30)} if worked else {})
    extra.update(kw)
    return make_event(i, grid, reported, state=state, unit_code=unit, deadline_at=deadline, feedback_at=feedback,
                      closed_at=closed, **extra)


CASES = [
    case(1, G1, "U1", T(16, 9), "evaluated", deadline=T(18, 9), feedback=T(17, 9), closed=T(17, 12), satisfaction=5),
    case(2, G1, "U1", T(16, 10), "evaluated", deadline=T(18, 10), feedback=T(19, 10), closed=T(19, 15),
         returns=1, reopened=1, satisfaction=3),
    case(3, G2, "U1", T(17, 9), "rejected", worked=False, responded_at=T(17, 10)),
    case(4, G2, "U1", T(18, 9), "handling", deadline=T(19, 9), responded_at=None),
    case(5, G3, "U2", T(19, 9), "dispatched", deadline=T(21, 9)),
    case(6, G3, "U2", T(17, 9), "suspended", deadline=T(18, 9), suspended_at=T(17, 15)),
    case(7, G4, "U2", T(18, 9), "merged", deadline=T(19, 9), merged_into="e5"),
    case(8, G4, "U2", T(10, 9), "closed", deadline=T(13, 9), feedback=T(15, 9), closed=T(16, 11)),
    case(9, G4, "U2", T(12, 9), "evaluated", deadline=T(25, 9), feedback=T(16, 14), closed=T(17, 9), satisfaction=4),
    case(10, G1, "U1", T(20, 9), "feedback", deadline=T(22, 9), feedback=T(20, 11)),
    case(11, G1, None, T(20, 11), "reported", worked=False, responded_at=T(20, 11, 30)),
    case(12, G3, "U2", T(9, 9), "evaluated", deadline=T(16, 12), feedback=T(12, 9), closed=T(13, 9), satisfaction=5),
    case(13, G4, "U2", T(10, 9), "closed", deadline=T(11, 9), feedback=T(11, 8), closed=T(11, 10)),
    case(14, G1, "U1", T(17, 9, year=2025), "closed", deadline=T(18, 9, year=2025), feedback=T(18, 8, year=2025),
         closed=T(18, 10, year=2025)),
]
UNITS = [("U1", "社区居委会", "Community committee", 3, "community", C1),
         ("U2", "区城管局", "District urban management", 1, "urban_management", DISTRICT),
         ("U3", "街道城管科", "Street urban management", 2, "urban_management", STREET_B)]


DEFAULTS = {"returns": 0, "reopened": 0}


@pytest.fixture
def store(engine):
    with engine.begin() as conn:
        seed_regions(conn)
        conn.execute(handling_unit.insert(), [
            {"code": c, "name_zh": zh, "name_en": en, "tier": tier, "unit_type": ut, "region_code": rc}
            for c, zh, en, tier, ut, rc in UNITS])
        # one key set for every row: an executemany takes its columns from the first row
        keys = set().union(*CASES)
        conn.execute(event.insert(), [{k: c.get(k, DEFAULTS.get(k)) for k in keys} for c in CASES])
    return engine


def figures(rates: dict) -> dict:
    """{rate: (num, den)}: what the hand computation gives."""
    return {k: (v["num"], v["den"]) for k, v in rates.items()}


def check_rates(rates: dict, expected: dict) -> None:
    assert figures(rates) == expected
    for k, (num, den) in expected.items():
        assert rates[k]["rate"] == (pytest.approx(num / den) if den else None), k


# P, the district (everything):
# reported: e1 e2 e3 e4 e5 e6 e10 e11 = 8 (e7 merged: not a case of its own; e8 e9 e12 e13 before P)
DISTRICT_P = {
    "registration_rate": (6, 8),      # e1 e2 e4 e5 e6 e10 (e3 rejected, e11 not yet) = 6 / 8 = 0.75
    "response_rate": (7, 8),          # all but e4 = 7 / 8 = 0.875
    "dispatch_accuracy": (5, 6),      # dispatched e1 e2 e4 e5 e6 e10 = 6, without a return: all but e2 = 5
    # 应结案 (due): deadline in P: e1 e2 e4 e5 e10 e12 (e6 suspended, e7 merged; e9's 25th is after P);
    # closed in P: e1 e2 e8 e9 -> e1 e2 e4 e5 e8 e9 e10 e12 = 8
    "on_time_handling_rate": (4, 8),  # feedback by the deadline: e1 e9 e10 e12 = 4 / 8 = 0.5
    "closure_rate": (5, 8),           # closed by P's end: e1 e2 e8 e9 e12 = 5 / 8 = 0.625
    "on_time_rate": (3, 8),           # closed by the deadline: e1 e9 e12 = 3 / 8 = 0.375
    "overdue_rate": (3, 8),           # deadline passed by now, no feedback by it: e2 e4 e8 = 3 / 8 (e5's is ahead)
    "rework_rate": (1, 4),            # closed in P: e1 e2 e8 e9 = 4; reopened: e2 = 1 / 4
    "satisfaction_rate": (2, 3),      # evaluated among them: e1 (5) e2 (3) e9 (4) = 3; >= 4: e1 e9 = 2 / 3
}
# the week before, [9 Nov, 16 Nov): reported e8 e9 e12 e13 = 4, all registered, responded, dispatched, no return;
# due: deadline in it e8 (13th) e13 (11th); closed in it e12 (13th) e13 -> e8 e12 e13 = 3
WOW = {
    "registration_rate": (4, 4), "response_rate": (4, 4), "dispatch_accuracy": (4, 4),
    "on_time_handling_rate": (2, 3),  # e12 (fb 12th <= 16th) e13 (08:00 <= 09:00); e8 late (15th > 13th)
    "closure_rate": (2, 3),           # closed before 16 Nov 00:00: e12 e13 (e8 closed 16th 11:00)
    "on_time_rate": (1, 3),           # e12 (13th <= 16th); e13 closed 10:00 > 09:00
    "overdue_rate": (1, 3),           # e8 (deadline 13th passed, fed back 15th); e12's deadline is after the week
    "rework_rate": (0, 2),            # closed in it: e12 e13, neither reopened
    "satisfaction_rate": (1, 1),      # e12 (5)
}
# the same week a year before: e14 alone
YOY = {
    "registration_rate": (1, 1), "response_rate": (1, 1), "dispatch_accuracy": (1, 1),
    "on_time_handling_rate": (1, 1), "closure_rate": (1, 1),
    "on_time_rate": (0, 1),           # closed 10:00 > deadline 09:00
    "overdue_rate": (0, 1),           # fed back 08:00, before the deadline
    "rework_rate": (0, 1), "satisfaction_rate": (0, 0),  # not evaluated: no figure
}


def test_cases301_each_rate_for_the_district_by_hand(store):
    check_rates(R.standard_rates(store, DISTRICT, P0, P1, now=NOW), DISTRICT_P)
    assert R.standard_rates(store, None, P0, P1, now=NOW) == R.standard_rates(store, DISTRICT, P0, P1, now=NOW)
    assert list(R.standard_rates(store, DISTRICT, P0, P1, now=NOW)) == list(R.RATES)


def test_cases302_overdue_counts_only_deadlines_passed_by_now(store):
    # at the period's end e5 (deadline 21st 09:00, no feedback) has breached too: 3 + 1 = 4 of 8
    later = R.standard_rates(store, DISTRICT, P0, P1, now=P1)
    assert figures(later)["overdue_rate"] == (4, 8)
    # everything else is the same: only overdue looks at now
    assert {k: v for k, v in figures(later).items() if k != "overdue_rate"} == \
        {k: v for k, v in DISTRICT_P.items() if k != "overdue_rate"}


def test_cases303_rollup_wow_and_yoy_periods(store):
    r = R.kpi_rollup(store, DISTRICT, P0, P1, now=NOW)
    check_rates(r["current"], DISTRICT_P)
    check_rates(r["wow"], WOW)
    check_rates(r["yoy"], YOY)
    assert r["periods"]["wow"] == [T(9, 0).isoformat(), T(16, 0).isoformat()]
    assert r["periods"]["yoy"] == [T(16, 0, year=2025).isoformat(), T(23, 0, year=2025).isoformat()]
    # 环比: current minus the week before
    assert r["change_wow"]["registration_rate"] == pytest.approx(6 / 8 - 4 / 4)   # -0.25
    assert r["change_wow"]["closure_rate"] == pytest.approx(5 / 8 - 2 / 3)        # -0.0417
    assert r["change_wow"]["satisfaction_rate"] == pytest.approx(2 / 3 - 1 / 1)   # -0.333
    # 同比: current minus a year before; no figure on either side -> None
    assert r["change_yoy"]["on_time_rate"] == pytest.approx(3 / 8 - 0 / 1)        # +0.375
    assert r["change_yoy"]["satisfaction_rate"] is None


def test_cases304_per_street_per_community_per_grid(store):
    streets = R.standard_rates(store, DISTRICT, P0, P1, by="street", now=NOW)
    assert list(streets) == [STREET_A, STREET_B]
    # street A (G1 G2 G3): reported e1 e2 e3 e4 e5 e6 e10 e11 = 8; due e1 e2 e4 e5 e10 e12 = 6
    check_rates(streets[STREET_A], {
        "registration_rate": (6, 8), "response_rate": (7, 8), "dispatch_accuracy": (5, 6),
        "on_time_handling_rate": (3, 6),  # e1 e10 e12
        "closure_rate": (3, 6),           # e1 e2 e12
        "on_time_rate": (2, 6),           # e1 e12
        "overdue_rate": (2, 6),           # e2 e4
        "rework_rate": (1, 2),            # closed in P: e1 e2; e2 reopened
        "satisfaction_rate": (1, 2),      # e1 (5), e2 (3)
    })
    # street B (G4): reported in P only e7, merged -> nothing reported: no intake figure, None not 0
    check_rates(streets[STREET_B], {
        "registration_rate": (0, 0), "response_rate": (0, 0), "dispatch_accuracy": (0, 0),
        "on_time_handling_rate": (1, 2),  # due: e8 e9 (closed in P); fed back in time: e9
        "closure_rate": (2, 2), "on_time_rate": (1, 2),  # e9
        "overdue_rate": (1, 2),           # e8
        "rework_rate": (0, 2), "satisfaction_rate": (1, 1),  # e9 (4)
    })
    assert streets[STREET_B]["registration_rate"]["rate"] is None
    comms = R.standard_rates(store, STREET_A, P0, P1, by="community", now=NOW)
    assert list(comms) == [C1, C2]
    # community C2 (G3): reported e5 e6 = 2; due e5 e12 = 2 (e6 suspended); nothing closed in P
    check_rates(comms[C2], {
        "registration_rate": (2, 2), "response_rate": (2, 2), "dispatch_accuracy": (2, 2),
        "on_time_handling_rate": (1, 2), "closure_rate": (1, 2), "on_time_rate": (1, 2),  # e12
        "overdue_rate": (0, 2), "rework_rate": (0, 0), "satisfaction_rate": (0, 0),
    })
    grids = R.standard_rates(store, C1, P0, P1, by="grid", now=NOW)
    assert list(grids) == [G1, G2]
    # grid G2: e3 (rejected) e4: reported 2, registered 1, responded 1 (e3), dispatched 1 (e4); due e4 alone
    check_rates(grids[G2], {
        "registration_rate": (1, 2), "response_rate": (1, 2), "dispatch_accuracy": (1, 1),
        "on_time_handling_rate": (0, 1), "closure_rate": (0, 1), "on_time_rate": (0, 1),
        "overdue_rate": (1, 1), "rework_rate": (0, 0), "satisfaction_rate": (0, 0),
    })


def test_cases305_groups_add_up_to_the_scope(store):
    whole = R.standard_rates(store, DISTRICT, P0, P1, now=NOW)
    for by in ("street", "community", "grid", "unit"):
        groups = R.standard_rates(store, DISTRICT, P0, P1, by=by, now=NOW)
        for k in R.RATES:
            assert sum(g[k]["num"] for g in groups.values()) == whole[k]["num"], (by, k)
            assert sum(g[k]["den"] for g in groups.values()) == whole[k]["den"], (by, k)


def test_cases306_per_handling_unit(store):
    units = R.standard_rates(store, DISTRICT, P0, P1, by="unit", now=NOW)
    # "" holds e11, which no unit holds yet; U3 serves street B and had no case: listed, every rate None
    assert list(units) == ["", "U1", "U2", "U3"]
    # U1: e1 e2 e3 e4 e10 reported (5); registered e1 e2 e4 e10; responded e1 e2 e3 e10; due e1 e2 e4 e10
    check_rates(units["U1"], {
        "registration_rate": (4, 5), "response_rate": (4, 5), "dispatch_accuracy": (3, 4),  # e2 returned
        "on_time_handling_rate": (2, 4),  # e1 e10
        "closure_rate": (2, 4), "on_time_rate": (1, 4), "overdue_rate": (2, 4),  # e2 e4
        "rework_rate": (1, 2), "satisfaction_rate": (1, 2),
    })
    # U2: reported e5 e6 (e7 merged); due e5 e8 e9 e12; closed in P e8 e9
    check_rates(units["U2"], {
        "registration_rate": (2, 2), "response_rate": (2, 2), "dispatch_accuracy": (2, 2),
        "on_time_handling_rate": (2, 4),  # e9 e12
        "closure_rate": (3, 4),           # e8 e9 e12
        "on_time_rate": (2, 4),           # e9 e12
        "overdue_rate": (1, 4),           # e8
        "rework_rate": (0, 2), "satisfaction_rate": (1, 1),
    })
    check_rates(units[""], {
        "registration_rate": (0, 1), "response_rate": (1, 1), "dispatch_accuracy": (0, 0),
        "on_time_handling_rate": (0, 0), "closure_rate": (0, 0), "on_time_rate": (0, 0),
        "overdue_rate": (0, 0), "rework_rate": (0, 0), "satisfaction_rate": (0, 0)})
    assert all(v["rate"] is None for v in units["U3"].values())
    # street B's view lists the units serving it (U2 the district's, U3 the street's), not U1 (a community of A)
    assert list(R.standard_rates(store, STREET_B, P0, P1, by="unit", now=NOW)) == ["U2", "U3"]


def test_cases307_empty_period_is_none_not_zero(store):
    r = R.kpi_rollup(store, DISTRICT, T(1, 0, year=2020, month=6), T(8, 0, year=2020, month=6), now=NOW)
    for part in ("current", "wow", "yoy"):
        assert all(v == {"num": 0, "den": 0, "rate": None} for v in r[part].values()), part
    assert all(v is None for v in r["change_wow"].values())
    # a scope with no case at all
    assert all(v["rate"] is None for v in R.standard_rates(store, "370299", P0, P1, now=NOW).values())


def test_cases308_bad_arguments(store):
    with pytest.raises(ValueError, match="by must be"):
        R.standard_rates(store, DISTRICT, P0, P1, by="province")
    with pytest.raises(ValueError, match="aware"):
        R.standard_rates(store, DISTRICT, P0.replace(tzinfo=None), P1)
    with pytest.raises(ValueError, match="end after"):
        R.kpi_rollup(store, DISTRICT, P1, P0)
    # 29 February a year before is the 28th
    assert R.year_before(datetime(2028, 2, 29, 16, tzinfo=timezone.utc)) == datetime(2027, 2, 28, 16, tzinfo=timezone.utc)
