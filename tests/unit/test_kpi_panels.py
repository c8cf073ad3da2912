"""The panels' pure layout functions, fed by real wall_figures from a seeded store.

Expected figures are counted here from the inserted rows, then looked for as
the text a person reads on the wall.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import plotly.io as pio
import pytest
from dash import dcc, html, no_update

from callbacks.panels import figures, parse_query, render, rendered
from dashboard import charts, ids, inplace, kpi
from dashboard.domain import CATEGORIES, EVENT_LEVELS, SOURCES, label
from dashboard.i18n import t
from layouts import panels
from tests.unit.kpi_fixtures import (
    DISTRICT, NOW, STREET_A, TZ, World, local_day, make_event, random_events, seeded,
)


def walk(component):
    """Every component in a tree, depth first."""
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from walk(child)


def texts(component) -> list[str]:
    out = []
    for c in walk(component):
        ch = getattr(c, "children", None)
        if isinstance(ch, str):
            out.append(ch)
        elif isinstance(ch, (list, tuple)):
            out += [x for x in ch if isinstance(x, str)]
    return out


def tile_values(component) -> dict:
    """data-kpi -> the tile's displayed value."""
    out = {}
    for c in walk(component):
        key = c.to_plotly_json()["props"].get("data-kpi")
        if key:  # a tile holds [value, label]; the 三零 count holds its text
            first = c.children[0] if isinstance(c.children, list) else c
            out[key] = first.children
    return out


def props(c) -> dict:
    return c.to_plotly_json()["props"]


def by_class(component, cls: str) -> list:
    return [c for c in walk(component) if cls in (props(c).get("className") or "").split()]


def text_of(component) -> str:
    return "".join(texts(component))


def bar_rows(component, kind: str) -> list[tuple[str, str]]:
    """(label, value) as written beside each bar of the ``kind`` chart, top to bottom."""
    chart, = by_class(component, f"ch-bars--{kind}")
    return [(text_of(by_class(r, "ch-bar-label")[0]), text_of(by_class(r, "ch-bar-value")[0]))
            for r in by_class(chart, "ch-bar-row")]


def legend_rows(component) -> dict[str, tuple[str, str]]:
    """Channel label -> (count, share) as written in the ring's legend."""
    return {text_of(by_class(r, "ch-legend-label")[0]): (text_of(by_class(r, "ch-legend-value")[0]),
                                                        text_of(by_class(r, "ch-legend-share")[0]))
            for r in by_class(component, "ch-legend-row")}


def fill_widths(component, kind: str) -> list[float]:
    chart, = by_class(component, f"ch-bars--{kind}")
    return [float(props(f)["style"]["width"].rstrip("%")) for f in by_class(chart, "ch-bar-fill")]


@pytest.fixture
def big_world(engine):
    # 1,234 events reported today in one grid: the counters must show "1,234".
    grid = "370202001001001"
    evs = [make_event(i, grid, NOW - timedelta(minutes=1 + i % 600), category="environment", level=3,
                      source="hotline_12345", deadline_at=NOW - timedelta(minutes=1) if i < 5 else None)
           for i in range(1234)]
    evs.append(make_event(9999, "370202002001001", NOW - timedelta(hours=1), category="petition", level=1))
    return seeded(engine, World(events=evs))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_kpi020_header_shows_counts_in_locale(engine, big_world, lang):
    data = kpi.wall_figures(engine, STREET_A, NOW, TZ)
    strip = panels.header_figures(data, lang)
    vals = tile_values(strip)
    assert vals["reported"] == "1,234" and vals["open"] == "1,234" and vals["overdue"] == "5"
    # 按期结案率 = 按期结案数 / 应结案数: five events fall due today (deadline a minute ago), none
    # closed: 0 / 5 = 0.0% (a figure, not "—": the denominator is not 0)
    assert vals["closed"] == "0" and vals["response_rate"] == "0.0%" and vals["on_time_rate"] == "0.0%"
    words = texts(strip)
    assert t("kpi_reported", lang) in words and t("kpi_overdue", lang) in words
    assert ("今日上报" in words) == (lang == "zh") and ("Reported today" in words) == (lang == "en")
    pio.json.to_json_plotly(strip.to_plotly_json())  # serialisable as Dash sends it


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_kpi021_left_charts_write_the_figures_as_text(engine, lang):
    rows = random_events(random.Random(5), 900)
    # a few hundred more today, so the breakdowns are not all ones and zeros
    rows += [make_event(5000 + i, "370202001001002", NOW - timedelta(minutes=3 + 2 * i),
                        category=c, level=int(c == "safety") + 2, source=s)
             for i, (c, s) in enumerate([(c, s) for c in ("safety", "order", "disputes") for s in SOURCES] * 12)]
    seeded(engine, World(events=rows))
    today = [r for r in rows if local_day(r["reported_at"]) == local_day(NOW)]
    assert len(today) > 200
    data = kpi.wall_figures(engine, DISTRICT, NOW, TZ)
    left = panels.panels_left(data, lang)
    assert not [c for c in walk(left) if isinstance(c, dcc.Graph)]  # no plotly on the wall

    levels = Counter(int(r["level"]) for r in today)
    assert bar_rows(left, "level") == [(label("event_level", k, lang), f"{levels[k]:,}") for k in EVENT_LEVELS]
    top = max(levels.values())
    assert fill_widths(left, "level") == [round(100 * levels[k] / top, 1) for k in EVENT_LEVELS]

    cats = Counter(r["category"] for r in today)
    shown = dict(bar_rows(left, "category"))
    assert shown == {label("category", k, lang): f"{cats[k]:,}" for k in CATEGORIES}
    assert [v for _, v in bar_rows(left, "category")] == sorted(shown.values(), key=lambda v: -int(v.replace(",", "")))

    srcs = Counter(r["source"] for r in today)
    assert legend_rows(left) == {label("source", k, lang): (f"{n:,}", f"{round(100 * n / len(today), 1)}%")
                                 for k, n in srcs.items() if n}
    ring, = by_class(left, "ch-ring")
    assert props(ring)["style"]["background"].startswith("conic-gradient(")
    assert text_of(by_class(ring, "ch-ring-total")[0]) == f"{len(today):,}"

    for key, days in (("trend7", 7), ("trend30", 30)):
        first = local_day(NOW) - timedelta(days=days - 1)
        rep = Counter(local_day(r["reported_at"]) for r in rows if local_day(r["reported_at"]) >= first)
        clo = Counter(local_day(r["closed_at"]) for r in rows
                      if r["closed_at"] and local_day(r["closed_at"]) >= first)
        panel, = [c for c in walk(left) if props(c).get("data-panel") == key]
        totals = {props(s)["data-series"]: text_of(by_class(s, "ch-series-total")[0])
                  for s in by_class(panel, "ch-series-item")}
        assert totals == {"reported": f"{sum(rep.values()):,}", "closed": f"{sum(clo.values()):,}"}
        assert text_of(by_class(panel, "ch-max")[0]) == f"{max(list(rep.values()) + list(clo.values())):,}"
        assert len(by_class(panel, "ch-day")) == days
        ticks = [text_of(x) for x in by_class(panel, "ch-tick")]
        assert ticks[-1] == f"{local_day(NOW).month}/{local_day(NOW).day}" and ticks[0] == f"{first.month}/{first.day}"
        assert len(ticks) == (7 if days == 7 else 2)
        last_title = props(by_class(panel, "ch-day")[-1])["title"]
        assert f'{t("series_reported", lang)} {rep[local_day(NOW)]:,}' in last_title
    words = texts(left)
    for key in ("panel_by_level", "panel_by_category", "panel_by_source", "panel_trend7", "panel_trend30"):
        assert t(key, lang) in words
    assert ("今日事件类别" in words) == (lang == "zh") and ("Today by category" in words) == (lang == "en")
    pio.json.to_json_plotly(left.to_plotly_json())


def test_kpi027_category_bars_fold_the_tail_into_other():
    rows = [{"key": f"k{i}", "count": 10 - i} for i in range(9)]
    shown = charts.category_bars(rows, "en", other="Other", max_rows=4)
    got = bar_rows(shown, "category")
    assert got == [("k0", "10"), ("k1", "9"), ("k2", "8"), ("Other", str(sum(10 - i for i in range(3, 9))))]
    empty = charts.source_ring([], "zh", "合计")
    assert text_of(by_class(empty, "ch-ring-total")[0]) == "0" and legend_rows(empty) == {}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_kpi022_right_panels(engine, big_world, lang):
    data = kpi.wall_figures(engine, DISTRICT, NOW, TZ)
    right = panels.panels_right(data, lang)
    words = texts(right)
    # ranking: both streets, the one with 5 overdue first
    names = [r["name"] for r in data["ranking"]]
    assert names == ["八大峡街道", "云南路街道"] and names[0] in words
    assert "1,234" in words and t("panel_ranking_street", lang) in words
    # 三零: the petition in street B's community breaks it; the others are zero
    assert t("sanling_count", lang, zero="2", total="3") in words
    assert t("sanling_petitions", lang) + " 1" in words
    vals = tile_values(right)
    assert vals["on_duty"] == "0" and vals["coverage"] == "0.0%"


def test_kpi023_formatting():
    assert panels.fmt_int(1234567) == "1,234,567" and panels.fmt_int(None) == "—"
    assert panels.fmt_pct(None) == "—" and panels.fmt_pct(1.0) == "100%" and panels.fmt_pct(0.98765) == "98.8%"
    assert panels.fmt_time("2026-11-20T04:00:05+00:00", "Asia/Shanghai") == "12:00:05"
    assert charts.day_label("2026-11-20", "zh") == "11/20" and charts.day_label("2026-01-05", "en") == "1/5"


def test_kpi024_query_parsing_and_bad_scope():
    assert parse_query("?scope=370202001&lang=en", "zh") == ("370202001", "en", None)
    assert parse_query("", "zh") == (None, "zh", None)
    assert parse_query("?scope=abc'--", "zh") == (None, "zh", "abc'--")


def test_kpi025_callback_render(engine, big_world, make_services, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    svc = make_services(url, "")
    out = render(svc, "?scope=370202002&lang=en", NOW)
    assert tile_values(out["header"])["reported"] == "1"  # street B only: the petition
    assert out["updated"].startswith("Updated ")
    assert set(out["hashes"]) == {"header", "updated", *panels.LEFT, *panels.RIGHT, "_sent", "_shape"}
    # a first render sends every panel whole, as the elements the components describe
    assert out["patch"]["parts"] == {} and set(out["patch"]["trees"]) == set(PART_IDS.values())
    assert out["patch"]["trees"][ids.panel("level")] == inplace.tree(out["level"])
    level_rows = dict(bar_rows(panels.section("level", out["level"]), "level"))
    assert level_rows[label("event_level", 1, "en")] == "1"
    bad = render(svc, "?scope=x1", NOW)
    assert "x1" in texts(bad["header"])[0] and bad["level"] is None and bad["ranking"] is None
    assert bad["hashes"] == {}
    assert bad["patch"]["trees"][ids.panel("level")] == [] and "x1" in str(bad["patch"]["trees"][ids.PANEL_HEADER])
    # live (now=None) calls share one computation per scope per second
    assert figures(svc, "370202002") is figures(svc, "370202002")
    assert figures(svc, "370202001") is not figures(svc, "370202002")


PART_IDS = {"header": ids.PANEL_HEADER, **{k: ids.panel(k) for k in (*panels.LEFT, *panels.RIGHT)}}


def sent(out: dict, name: str) -> bool:
    """The part reaches the page: whole, or as values for the elements it already shows."""
    return out[name] is not no_update or (out["patch"] is not no_update and PART_IDS[name] in out["patch"]["parts"])


def test_kpi028_unchanged_panels_are_not_resent(engine, make_services):
    from dashboard.store.schema import event as event_table
    seeded(engine, World(events=[make_event(1, "370202001001001", NOW - timedelta(hours=2))]))
    svc = make_services(engine.url.render_as_string(hide_password=False), "")
    first = render(svc, f"?scope={STREET_A}", NOW)
    assert all(first[k] is not no_update for k in ("header", *panels.LEFT, *panels.RIGHT))
    seen = first["hashes"]
    again = render(svc, f"?scope={STREET_A}", NOW, seen=seen)
    assert all(again[k] is no_update for k in ("header", "updated", *panels.LEFT, *panels.RIGHT, "hashes"))
    # another language is another page: everything is sent
    en = render(svc, f"?scope={STREET_A}&lang=en", NOW, seen=seen)
    assert all(en[k] is not no_update for k in ("header", *panels.LEFT, *panels.RIGHT))
    # a new safety event today: the counters, the level/category/channel charts and the
    # trends change; ranking, 三零 (30-day parts reused), staff, hazards and people do not
    with engine.begin() as conn:
        conn.execute(event_table.insert(), [make_event(2, "370202001001001", NOW - timedelta(minutes=5),
                                                       category="safety", level=1, source="hotline_12345")])
    later = render(svc, f"?scope={STREET_A}", NOW, seen=seen)
    whole = {k for k in ("header", *panels.LEFT, *panels.RIGHT) if later[k] is not no_update}
    patched = {k for k, key in PART_IDS.items() if key in later["patch"]["parts"]}
    # the trends changed too, but by a sliver of today's bar: held back within their interval
    assert whole | patched == {"header", "level", "category", "source", "ranking"} and not whole & patched
    # the counters kept their shape: their new values are written into the page's elements
    assert "header" in patched
    assert ["2", "pn-value", None, None] in later["patch"]["parts"][ids.PANEL_HEADER]
    assert later["patch"]["hashes"] == ids.PANEL_HASHES
    assert later["hashes"] is not no_update and later["hashes"]["staff"] == seen["staff"]
    assert later["hashes"]["trend7"] == seen["trend7"]  # still owed to the page
    seen = later["hashes"]
    held = render(svc, f"?scope={STREET_A}", NOW + timedelta(seconds=9), seen=seen)
    assert not sent(held, "trend7") and not sent(held, "trend30")
    due = render(svc, f"?scope={STREET_A}", NOW + timedelta(seconds=11), seen=held["hashes"] if held["hashes"] is not no_update else seen)
    assert sent(due, "trend7") and not sent(due, "trend30")  # 10 s for 7 days, 30 s for 30
    later30 = render(svc, f"?scope={STREET_A}", NOW + timedelta(seconds=31), seen=due["hashes"])
    assert sent(later30, "trend30")


def test_kpi032_a_part_that_keeps_its_shape_is_sent_as_values(engine, make_services):
    from dashboard.store.schema import event as event_table
    # the shape/values split itself: values in element order, shape blind to them
    a = html.Div([html.Span("1", className="v", style={"width": "10%"}), html.Span("x", title="t1")])
    b = html.Div([html.Span("2", className="v v--alert", style={"width": "20%"}), html.Span("x", title="t2")])
    shape_a, values_a, _ = inplace.describe([a])
    shape_b, values_b, _ = inplace.describe([b])
    assert shape_a == shape_b
    assert values_a == [[None, None, None, None], ["1", "v", {"width": "10%"}, None], ["x", None, None, "t1"]]
    assert values_b[1] == ["2", "v v--alert", {"width": "20%"}, None]
    # what changes the shape: another element, text beside elements, another prop, a style key, a page
    for other in ([html.Div([html.Span("1"), html.Span("x"), html.Span("y")])],
                  [html.Div(["1", html.Span("x", title="t1")])],
                  [html.Div([html.Span("1", className="v", style={"width": "10%"}, **{"data-key": "k"}),
                             html.Span("x", title="t1")])],
                  [html.Div([html.Span("1", className="v", style={"height": "10%"}), html.Span("x", title="t1")])],
                  [html.Div([html.Span("", className="v", style={"width": "10%"}), html.Span("x", title="t1")])]):
        assert inplace.describe(other)[0] != shape_a
    assert inplace.describe([a], "370202001|zh")[0] != inplace.describe([a], "370202001|en")[0]
    # as plain elements: text stays text (panels.js makes text nodes of strings), attributes are named
    assert inplace.tree([a, "<b>x</b>", None, 0]) == [
        ["div", {}, ["span", {"class": "v", "style": {"width": "10%"}}, "1"], ["span", {"title": "t1"}, "x"]],
        "<b>x</b>", "0"]
    assert inplace.tree(html.Td("n", colSpan=5, **{"data-kpi": "k"})) == [["td", {"colspan": "5", "data-kpi": "k"}, "n"]]
    for odd in (html.Div(hidden=True), dcc.Store(id="s")):  # no attribute for it, or not an html element
        with pytest.raises(ValueError):
            inplace.tree(odd)

    # on a page: a channel's first report today adds a legend row, so that chart is sent whole;
    # the counters beside it go as values
    seeded(engine, World(events=[make_event(1, "370202001001001", NOW - timedelta(hours=2), source="grid_patrol")]))
    svc = make_services(engine.url.render_as_string(hide_password=False), "")
    first = render(svc, "", NOW)
    legend_rows = lambda out: out["source"][1].children[1].children  # noqa: E731 (head, then the donut: ring, legend)
    assert len(legend_rows(first)) == 1
    with engine.begin() as conn:
        conn.execute(event_table.insert(), [make_event(2, "370202002001001", NOW - timedelta(minutes=5),
                                                       source="hotline_12345")])
    later = render(svc, "", NOW, seen=first["hashes"])
    assert later["source"] is not no_update and ids.panel("source") not in later["patch"]["parts"]
    assert len(legend_rows(later)) == 2
    assert later["header"] is no_update and ids.PANEL_HEADER in later["patch"]["parts"]
    # values are those of the components a full send would carry
    full = render(svc, "", NOW)
    assert inplace.describe(full["header"], "|zh")[1] == later["patch"]["parts"][ids.PANEL_HEADER]
    # a page whose hashes were dropped (panels.js found elements not matching) gets everything whole
    reset = render(svc, "", NOW, seen={})
    assert reset["patch"]["parts"] == {} and reset["header"] is not no_update
    assert set(reset["patch"]["trees"]) == set(PART_IDS.values())


def test_kpi029_components_built_once_per_scope_and_language(engine, make_services):
    seeded(engine, World(events=[make_event(1, "370202001001001", NOW - timedelta(hours=2))]))
    svc = make_services(engine.url.render_as_string(hide_password=False), "")
    data = figures(svc, STREET_A, NOW)
    a, b = rendered(svc, STREET_A, "zh", data), rendered(svc, STREET_A, "zh", data)
    assert a is b  # three walls on one scope: one build
    assert rendered(svc, STREET_A, "en", data)["header"][1] is not a["header"][1]
    fresh = figures(svc, STREET_A, NOW)  # a new computation with the same figures
    assert fresh is not data
    c = rendered(svc, STREET_A, "zh", fresh)
    assert all(c[k][1] is a[k][1] for k in a)  # unchanged panels are not rebuilt


@pytest.fixture
def frozen_minute(monkeypatch):
    """The store's fingerprint includes the current minute: keep it still, so a test never
    straddles a minute boundary."""
    import time as _time
    from types import SimpleNamespace

    import dashboard.store.version as version
    clock = SimpleNamespace(now=_time.time())
    monkeypatch.setattr(version, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def test_kpi026_figures_follow_the_store_and_a_tick_catches_what_the_fingerprint_misses(engine, make_services, frozen_minute):
    import time as _time
    from datetime import datetime, timezone

    from dashboard.store.schema import event as event_table
    now = datetime.now(timezone.utc)
    grid = "370202001001001"
    seeded(engine, World(events=[make_event(0, grid, now - timedelta(seconds=10))]))
    svc = make_services(engine.url.render_as_string(hide_password=False), "")
    first = figures(svc, STREET_A)
    assert figures(svc, STREET_A) is first  # nothing changed: one computation for every wall
    # a commit the store's fingerprint sees (a newer change): recomputed at once, no tick needed
    with engine.begin() as conn:
        conn.execute(event_table.insert(), [make_event(1, grid, now - timedelta(seconds=1))])
    second = figures(svc, STREET_A)
    assert second is not first and second["today"]["reported"] == first["today"]["reported"] + 1
    # one it cannot see: two consumers committing out of apply-time order leave the newest change
    # as it was. The page's tick (it heard the delta after the commit) still forces a recompute.
    with engine.begin() as conn:
        conn.execute(event_table.insert(), [make_event(2, grid, now - timedelta(seconds=1),
                                                       updated_at=now - timedelta(seconds=30))])
    assert figures(svc, STREET_A) is second
    again = figures(svc, STREET_A, fresh_after_ms=_time.time() * 1000.0)
    assert again is not second and again["today"]["reported"] == second["today"]["reported"] + 1
    assert again["today"]["open"] == second["today"]["open"] + 1


def test_kpi033_the_map_measures_answer_a_tick_with_what_it_announced(engine, make_services, frozen_minute):
    import time as _time
    from datetime import datetime, timezone

    from callbacks.wall import shared_measures
    from dashboard.store.schema import event as event_table
    now = datetime.now(timezone.utc)
    grid = "370202001001001"
    seeded(engine, World(events=[make_event(0, grid, now - timedelta(seconds=10))]))
    svc = make_services(engine.url.render_as_string(hide_password=False), "")
    first = shared_measures(svc, STREET_A)
    assert shared_measures(svc, STREET_A) is first  # unchanged store: shared by every wall
    with engine.begin() as conn:  # a change the fingerprint sees
        conn.execute(event_table.insert(), [make_event(1, grid, now - timedelta(seconds=1))])
    second = shared_measures(svc, STREET_A)
    assert second is not first and sum(second["open"]) == sum(first["open"]) + 1
    with engine.begin() as conn:  # one it cannot see (out-of-order commits): the tick catches it
        conn.execute(event_table.insert(), [make_event(2, grid, now - timedelta(seconds=1),
                                                       updated_at=now - timedelta(seconds=30))])
    assert shared_measures(svc, STREET_A) is second
    again = shared_measures(svc, STREET_A, fresh_after_ms=_time.time() * 1000.0)
    assert again is not second and sum(again["open"]) == sum(second["open"]) + 1
    assert shared_measures(svc, STREET_A, fresh_after_ms=_time.time() * 1000.0 - 60_000) is again  # an old tick
    frozen_minute.now += 60  # deadlines pass with the clock: a cached result lives a minute at most
    assert shared_measures(svc, STREET_A) is not again
