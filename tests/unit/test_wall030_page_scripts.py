"""The wall page loads the framework scripts it uses, and no others (dashboard.page_scripts).

The tests that build an app run on every stack (``stack``: the embedded pair, and the external
PostgreSQL + Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set); wall031, 032, 034, 035, 037
and 041 read source files or call pure functions and touch no store.
"""
from __future__ import annotations

import pathlib
import re

import pytest

from dashboard.page_scripts import trim

from tests.conftest import signed_in_client  # ACCESS_REQUIRED is on: an administrator, as every scope was before

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_wall030_page_trims_polyfill_table_and_dcc_and_loads_geojson_eagerly(stack, make_services):
    from dashboard.app import create_app

    services = make_services(*stack)
    app = create_app(services.settings, services)
    html = signed_in_client(app.server, services.engine).get("/wall").get_data(as_text=True)
    srcs = re.findall(r'<script([^>]*) src="([^"]+)"', html)
    polyfill = [attrs for attrs, src in srcs if "/deps/polyfill@" in src]
    assert polyfill == [" nomodule"]                       # old browsers only
    assert not [src for _a, src in srcs if "dash_table" in src]
    order = [src for _a, src in srcs]
    leaflet = next(i for i, s in enumerate(order) if "/dash_leaflet/dash_leaflet." in s)
    assert order[leaflet + 1].endswith("/dash_leaflet/async-GeoJSON.js")
    assert any("dash_renderer" in s for s in order) and any("/dashboard/components/wall_components." in s for s in order)
    assert not [s for s in order if "dash_core_components" in s]   # dashboard.components stands in
    # the layout is asked for with the page, before Dash's scripts have run
    head = html[:html.index("</head>")]
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert f'<link rel="preload" href="{path}" as="fetch" crossorigin>' in head


def test_wall031_no_page_uses_dash_table():
    # page_scripts drops dash_table's bundle: a DataTable anywhere would render as an error
    for folder in ("layouts", "callbacks", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"\bdash_table\b|DataTable", text) or path.name == "page_scripts.py", path


def test_wall032_trim_keeps_unknown_scripts_untouched():
    html = '<script src="/assets/x.js"></script>\n<script src="/_dash-component-suites/dash/dash_table/b.js"></script>'
    assert trim(html) == '<script src="/assets/x.js"></script>\n'


def _layout(client, referrer=None):
    import json

    headers = {"Referer": referrer} if referrer else {}
    return json.loads(client.get("/_dash-layout", headers=headers).get_data(as_text=True))


def _find(node, wanted):
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == wanted:
            return node
        for v in node.get("props", {}).values():
            hit = _find(v, wanted)
            if hit is not None:
                return hit
    elif isinstance(node, list):
        for v in node:
            hit = _find(v, wanted)
            if hit is not None:
                return hit
    return None


def test_wall033_first_layout_holds_the_page_its_referrer_names(stack, make_services):
    from dashboard import ids
    from dashboard.app import create_app

    from . import feed_support as F

    services = make_services(*stack)
    F.seed_regions(services.engine)
    client = signed_in_client(create_app(services.settings, services).server, services.engine)
    layout = _layout(client, "http://localhost/wall?lang=en")
    assert _find(layout, ids.ROUTED)["props"]["data"] == {"path": "/wall", "search": "?lang=en"}
    config = _find(layout, ids.WALL_CONFIG)["props"]["data"]
    assert config["lang"] == "en" and config["n_grids"] > 0
    # no referrer, another host or an unknown page: the empty shell, and the router fills it
    for referrer in (None, "http://elsewhere.example/wall", "http://localhost/nope"):
        layout = _layout(client, referrer)
        assert _find(layout, ids.ROUTED)["props"].get("data") is None
        assert _find(layout, ids.PAGE)["props"].get("children") is None
        assert _find(layout, ids.WALL_CONFIG) is None


def test_wall034_eager_chunk_follows_the_bundle_under_a_path_prefix():
    html = '<script src="/grid/_dash-component-suites/dash_leaflet/dash_leaflet.v1_1_3m1.js"></script>'
    assert trim(html) == (html + '\n<script src="/grid/_dash-component-suites/dash_leaflet/async-GeoJSON.js"></script>')


def test_wall035_preload_follows_the_path_prefix():
    from dashboard.page_scripts import preload

    assert preload("/grid/") == ('<link rel="preload" href="/grid/_dash-layout" as="fetch" crossorigin>'
                                 '<link rel="preload" href="/grid/_dash-dependencies" as="fetch" crossorigin>')


def _components(node):
    """Every component of a layout (the dicts with a namespace), depth first."""
    if isinstance(node, dict):
        if "namespace" in node:
            yield node
        for v in node.get("props", {}).values():
            yield from _components(v)
    elif isinstance(node, list):
        for v in node:
            yield from _components(v)


def _seeded_client(stack, make_services):
    from dashboard.app import create_app

    from . import feed_support as F

    services = make_services(*stack)
    F.seed_regions(services.engine)
    return signed_in_client(create_app(services.settings, services).server, services.engine)


def test_wall036_no_page_uses_dcc(stack, make_services):
    # page_scripts drops dcc's bundle: a dcc component in a layout would render as an error
    client = _seeded_client(stack, make_services)
    for referrer in ("http://localhost/wall", "http://localhost/wall?lang=en&scope=370202001", None):
        found = {c["namespace"] for c in _components(_layout(client, referrer))}
        assert "dashboard" in found and "dash_core_components" not in found, (referrer, found)
    for folder in ("layouts", "callbacks", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not re.search(r"\bdcc\.[A-Z]\w*\(", path.read_text(encoding="utf-8")), path


def test_wall037_components_check_their_props():
    import pytest

    from dashboard.components import Interval, RadioItems, Store

    assert Store(id="s", data={"a": 1}).to_plotly_json()["props"] == {"id": "s", "data": {"a": 1}}
    assert Interval(id="i", interval=500).to_plotly_json()["props"]["interval"] == 500
    with pytest.raises(ValueError, match="label"):
        RadioItems(id="r", options=["a", "b"])
    with pytest.raises(TypeError):
        Store(id="s", storage_type="local")


def test_wall038_assets_and_bundles_go_minified_at_brotli_11(stack, make_services):
    import time

    import brotli

    from dashboard.app import create_app

    services = make_services(*stack)
    client = signed_in_client(create_app(services.settings, services).server, services.engine)
    page = client.get("/wall").get_data(as_text=True)
    live = re.search(r'src="(/assets/live\.js\?m=[^"]+)"', page).group(1)
    source = (ROOT / "dashboard" / "assets" / "live.js").read_bytes()
    headers = {"Accept-Encoding": "gzip, deflate, br, zstd"}
    first = client.get(live, headers=headers)  # Flask-Compress's quick brotli, as written
    assert first.status_code == 200 and brotli.decompress(first.get_data()) == source
    deadline = time.time() + 20
    while time.time() < deadline:  # the minified quality-11 body is made in the background
        resp = client.get(live, headers=headers)
        if resp.headers.get("Content-Encoding") == "br":  # meanwhile Flask-Compress streams it (zstd)
            body = brotli.decompress(resp.get_data())
            if body != source:
                break
        time.sleep(0.05)
    assert len(body) < 0.75 * len(source)                  # comments and indentation gone
    assert b"S.decode=function(col){" in body and b"// Columnar layer" not in body
    assert len(resp.get_data()) < len(brotli.compress(source, quality=5))
    # without br the file goes as written
    import gzip
    plain = client.get(live, headers={"Accept-Encoding": "gzip"})
    data = plain.get_data()
    assert (gzip.decompress(data) if plain.headers.get("Content-Encoding") == "gzip" else data) == source


def test_wall039_asset_layers_are_made_in_the_browser_not_in_the_layout(stack, make_services):
    # the layout holds one empty group per asset overlay and the template its parts are made from
    from dashboard import ids

    client = _seeded_client(stack, make_services)
    layout = _layout(client, "http://localhost/wall?layers=houses")
    every = [c["props"]["id"] for c in _components(layout) if "id" in c["props"]]
    for cid in (ids.MAP_HOUSES, ids.MAP_KEYPOP, ids.MAP_VEHICLES, ids.MAP_FACILITIES):
        assert [i for i in every if str(i).startswith(cid)] == [f"{cid}-group"]
        assert _find(layout, f"{cid}-group")["props"]["children"] == []
    templates = _find(layout, ids.WALL_CONFIG)["props"]["data"]["asset_layers"]
    assert templates["houses"]["type"] == "GeoJSON" and templates["houses"]["namespace"] == "dash_leaflet"
    assert templates["houses"]["props"]["id"] == f"{ids.MAP_HOUSES}-{{part}}"
    assert templates["houses"]["props"]["pointToLayer"] == {"variable": "wallMap.assetPoint"}


def test_wall040_legend_is_one_component_of_plain_elements(stack, make_services):
    from dash import html

    from dashboard import ids
    from dashboard.components import Elements

    client = _seeded_client(stack, make_services)
    layout = _layout(client, "http://localhost/wall")
    legend = _find(layout, ids.MAP_LEGEND)
    assert legend["namespace"] == "dashboard" and legend["type"] == "Elements"
    assert not list(_components(legend["props"]))           # nothing inside is a Dash component
    rows = legend["props"]["tree"]
    assert rows[0] == ["div", {"class": "legend-title"}, "在办事件"]
    swatch = next(r for r in rows if r[0] == "div" and r[1] == {"class": "legend-row"} and "L1" in r[3])
    assert swatch[2] == ["span", {"class": "legend-key legend-dot", "style": {"backgroundColor": "#D55E00"}}]
    # text stays text, and what cannot be a plain element is refused rather than dropped
    assert Elements(id="e", children=html.B("<i>x</i>")).tree == [["b", {}, "<i>x</i>"]]
    with pytest.raises(ValueError, match="plain element"):
        Elements(id="e", children=html.A("x", href="javascript:alert(1)"))


def test_wall041_clustered_layers_hold_groups_of_streets():
    from callbacks.wall import GROUP_GRIDS, event_groups

    streets = [f"370202{i:03d}" for i in range(1, 21)]
    grids = sorted(f"{s}{c:03d}{g:03d}" for s in streets for c in range(1, 4) for g in range(100))  # 300 each
    groups = event_groups(streets, grids)
    assert list(groups) == ["370202001", "370202006", "370202011", "370202016"]
    assert [s for part in groups.values() for s in part] == streets   # every street once, in order
    assert all(len(part) * 300 <= GROUP_GRIDS for part in groups.values())
    district = streets[:10]
    small = [g for g in grids if g[:9] in district][::5]                # 60 grids a street
    assert event_groups(district, small) == {"370202001": district}
    assert event_groups(["370202001"], []) == {"370202001": ["370202001"]}
    assert event_groups([""], grids) == {"": [""]}        # the whole jurisdiction as one part
    big = [f"370202001{c:06d}" for c in range(2000)]                    # a street over the size alone
    assert event_groups(["370202001", "370202002"], big) == {"370202001": ["370202001"], "370202002": ["370202002"]}


def test_wall042_a_jurisdiction_loaded_as_one_part_gets_one_group(stack, make_services):
    # no streets (an empty store), or more than MAX_PARTS: the wall is one part, scope ""
    from callbacks.wall import build_config
    from dashboard import ids

    services = make_services(*stack)
    cfg = build_config(services, "", "zh", {})
    assert cfg["parts"] == [""] and cfg["groups"] == {"": [""]}
    from dashboard.app import create_app

    layout = _layout(signed_in_client(create_app(services.settings, services).server, services.engine), "http://localhost/wall")
    assert _find(layout, f"{ids.MAP_EVENTS}-") is not None


def test_wall047_a_street_wall_is_sent_nothing_of_another_street(stack, make_services):
    # /_dash-layout carries the wall's config; its rotation list held the sibling streets' codes
    import json

    from callbacks.wall import build_config
    from dashboard import ids

    from . import feed_support as F

    client = _seeded_client(stack, make_services)
    others = [r for r in F.regions() if r.level in ("street", "community", "grid") and not r.code.startswith(F.STREET)]
    assert others
    for query in ("", "&rotate=60", "&rotate=60&within=370202001", "&within=37"):
        layout = _layout(client, f"http://localhost/wall?scope={F.STREET}{query}")
        config = _find(layout, ids.WALL_CONFIG)["props"]["data"]
        assert config["scope"] == F.STREET and config["rotation"] == [] and config["within"] == F.STREET
        body = json.dumps(layout, ensure_ascii=False)
        for r in others:
            assert r.code not in body and r.name not in body, (query, r.code)
    # a district wall rotates through its streets, and a street it rotated to keeps that list
    # because the URL says so (?within=, written by live.js when it rotates)
    services = make_services(*stack)
    district = build_config(services, "", "zh", {"rotate": "60"})
    assert district["rotation"] == [F.STREET, F.OTHER_STREET] and district["within"] == ""
    for within in ("", F.DISTRICT):
        rotated = build_config(services, F.STREET, "zh", {"rotate": "60", "within": within})
        assert rotated["rotation"] == [F.STREET, F.OTHER_STREET] and rotated["within"] == within
    # ?within= that does not contain the scope is ignored
    assert build_config(services, F.STREET, "zh", {"within": F.OTHER_STREET})["rotation"] == []
