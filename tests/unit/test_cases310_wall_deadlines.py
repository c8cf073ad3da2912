"""The wall counts overdue, due soon and open hazards by the case engine's rules (docs/kpi.md).

超期 overdue: an open state other than 挂账 suspended, deadline_at < now; 即将到期 due soon:
due_soon_at <= now < deadline_at, not suspended; open hazards: found or ordered (整改中).
Expected figures are worked out by hand from the rows listed in each test.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard import kpi, wall_data
from dashboard.i18n import t
from dashboard.store.schema import event, hazard
from layouts import panels
from layouts.wall import calendar_warning
from tests.unit.kpi_fixtures import DISTRICT, NOW, STREET_A, TZ, make_event, seed_regions

G1, G2 = "370202001001001", "370202002001001"
H = timedelta(hours=1)

#      state        due_soon_at   deadline_at   grid  overdue? due soon?
ROWS = [
    ("a", "handling", NOW - 3 * H, NOW - H, G1),      # yes      no (deadline passed)
    ("b", "suspended", NOW - 3 * H, NOW - H, G1),     # no: the clock stopped
    ("c", "dispatched", NOW - H, NOW + H, G1),        # no       yes
    ("d", "suspended", NOW - H, NOW + H, G1),         # no       no: the clock stopped
    ("e", "handling", NOW + H, NOW + 2 * H, G1),      # no       no: not yet
    ("f", "closed", NOW - 3 * H, NOW - H, G1),        # not open
    ("g", "feedback", NOW - 4 * H, NOW - 2 * H, G2),  # yes (open, clock running, deadline passed)
    ("h", "rejected", NOW - 3 * H, NOW - H, G2),      # not open
    ("i", "returned", None, None, G2),                # no deadline: never overdue nor due soon
]
HAZARDS = [  # state, deadline, due soon mark: open = found/ordered (4); overdue = open and deadline
    # passed (2); due soon = open, past the mark, deadline ahead (h3 only: h7's mark is ahead, h4
    # is rectified, awaiting re-inspection, h2's deadline passed)
    ("h1", "found", NOW - H, None), ("h2", "ordered", NOW - H, NOW - 2 * H), ("h3", "ordered", NOW + H, NOW - H),
    ("h4", "rectified", NOW + H, NOW - H), ("h5", "passed", NOW - H, NOW - 2 * H), ("h6", "closed", NOW - H, None),
    ("h7", "ordered", NOW + 3 * H, NOW + H),
]


@pytest.fixture
def store(engine):
    with engine.begin() as conn:
        seed_regions(conn)
        conn.execute(event.insert(), [
            make_event(i, grid, NOW - 5 * H, id=eid, state=st, due_soon_at=soon, deadline_at=dl,
                       lon=120.305, lat=36.005, closed_at=NOW - H / 2 if st == "closed" else None)
            for i, (eid, st, soon, dl, grid) in enumerate(ROWS)])
        conn.execute(hazard.insert(), [
            {"id": hid, "grid_code": G1, "kind": "gas_pipe", "state": st, "found_at": NOW - 10 * H,
             "deadline_at": dl, "due_soon_at": soon, "lon": 120.305, "lat": 36.005, "last_seq": 1, "updated_at": NOW}
            for hid, st, dl, soon in HAZARDS])
    return engine


def test_cases310_overdue_and_due_soon_follow_the_case_engine(store):
    oc = kpi.open_counts(store, DISTRICT, NOW)
    # open: a b c d e g i = 7; overdue: a g = 2; due soon: c = 1
    assert (oc["open"], oc["overdue"], oc["due_soon"]) == (7, 2, 1)
    assert [r["id"] for r in kpi.overdue_events(store, DISTRICT, NOW)["rows"]] == ["g", "a"]  # most overdue first
    m = kpi.grid_measures(store, DISTRICT, NOW, TZ)
    assert (m[G1]["open"], m[G1]["overdue"]) == (5, 1)   # a b c d e; a
    assert (m[G2]["open"], m[G2]["overdue"]) == (2, 1)   # g i; g
    rows = {r["code"]: r for r in kpi.ranking(store, DISTRICT, NOW, NOW - 30 * 24 * H, NOW)}
    assert (rows[STREET_A]["open"], rows[STREET_A]["overdue"]) == (5, 1)
    figs = kpi.wall_figures(store, DISTRICT, NOW, TZ)
    assert (figs["today"]["overdue"], figs["today"]["due_soon"]) == (2, 1)
    # an hour on: c's deadline passes (overdue 3), e enters its last stretch (due soon 1)
    later = kpi.open_counts(store, DISTRICT, NOW + H + timedelta(minutes=1))
    assert (later["overdue"], later["due_soon"]) == (3, 1)


def test_cases311_open_hazards_are_those_under_rectification(store):
    hz = kpi.hazard_counts(store, DISTRICT, NOW, NOW - 24 * H, NOW)
    assert (hz["open"], hz["overdue"], hz["due_soon"]) == (4, 2, 1)   # h1 h2 h3 h7; h1 h2; h3
    assert kpi.grid_measures(store, DISTRICT, NOW, TZ)[G1]["hazards"] == 4
    got = wall_data.open_hazards(store, DISTRICT)
    assert got["n"] == 4 and sorted(got["c"]["id"]) == ["h1", "h2", "h3", "h7"]
    # two hours on: h3's deadline passed (overdue), h7 entered its last stretch
    later = kpi.hazard_counts(store, DISTRICT, NOW + 2 * H, NOW - 24 * H, NOW)
    assert (later["overdue"], later["due_soon"]) == (3, 1)


def tiles_of(tree) -> dict:
    """{data-kpi: [value, label, title]} of the tiles in a panel's component tree."""
    tiles = {}

    def walk(node):
        props = getattr(node, "to_plotly_json", lambda: {})().get("props", {})
        if props.get("data-kpi"):
            tiles[props["data-kpi"]] = [c.children for c in props["children"]] + [props.get("title")]
        kids = props.get("children")
        for k in kids if isinstance(kids, list) else [kids] if kids is not None else []:
            walk(k)
    walk(tree)
    return tiles


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cases312_header_shows_due_soon_and_the_calendar_warning(store, lang):
    tiles = tiles_of(panels.header_figures(kpi.wall_figures(store, DISTRICT, NOW, TZ), lang))
    assert tiles["due_soon"][:2] == ["1", t("kpi_due_soon", lang)] and tiles["overdue"][0] == "2"
    warning = calendar_warning([2027], lang)
    assert warning.children == ("2027年假日未知·期限暂定" if lang == "zh" else "No 2027 holidays · provisional")
    assert "data/holidays.yaml" in warning.title
    assert calendar_warning([], lang) is None and calendar_warning(None, lang) is None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_cases313_the_hazards_panel_shows_those_due_soon(store, lang):
    tiles = tiles_of(panels.hazards_panel(kpi.wall_figures(store, DISTRICT, NOW, TZ), lang))
    assert list(tiles) == ["hazards_open", "hazards_overdue", "hazards_due_soon", "hazards_found",
                           "hazards_rectified"]
    assert tiles["hazards_open"][0] == "4" and tiles["hazards_overdue"][0] == "2"
    assert tiles["hazards_due_soon"] == ["1", t("kpi_due_soon", lang), t("hazards_due_soon_title", lang)]
