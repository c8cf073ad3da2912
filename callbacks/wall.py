"""The wall's pages ("/" and "/wall") and the callbacks that keep its map current.

The page is built once per visit (scope, language, map URLs, the first
choropleth values, the newest events for the ticker). After that the browser
gets live deltas by server push (dashboard/assets/live.js); the server side
here only recomputes the per-grid values when live.js signals new deltas
(ids.LIVE_TICK, at most once a second) or once in 30 s as deadlines pass.
"""
from __future__ import annotations

import re
from bisect import bisect_left

import numpy as np
from dash import ClientsideFunction, Input, Output, State, html, no_update

from callbacks.panels import checked_scope, tick_time_ms
from dashboard import domain, ids, wall_data
from dashboard.geo.coords import wgs84_to_gcj02
from dashboard.i18n import TEXT, t
from dashboard.inplace import tree
from dashboard.store.version import MAX_AGE_S, feed_version
from layouts import panels
from layouts.map import ASSET_LAYERS, CLUSTER, SYMBOL_COLOURS, asset_templates, legend, overlay_names
from layouts.wall import wall_layout

SCOPE_RE = re.compile(r"^\d{6,24}$")
SINKS = ids.MAP_SINKS


MAX_PARTS = 40  # a wall over more streets than this loads as one part
# A clustered layer (open events, an asset layer) holds the streets of about this many grids: a
# district in one layer, a 6,000-grid city in four. Each layer costs a Dash component, a store
# update, a cluster index and its own set of cluster markers: a city wall with twenty street layers
# took ~20 % more main-thread time to load than with four, and one layer for the whole city made a
# ~350 ms task.
GROUP_GRIDS = 1500


def event_groups(parts: list[str], grids: list[str]) -> dict[str, list[str]]:
    """Consecutive parts (streets) grouped to about GROUP_GRIDS grids each: {first part: parts}.
    ``grids``: every grid code of the scope, sorted."""
    def count(p: str) -> int:  # grids under prefix p ("" is the whole jurisdiction: one part)
        return len(grids) if not p else bisect_left(grids, p[:-1] + chr(ord(p[-1]) + 1)) - bisect_left(grids, p)
    counts = {p: count(p) for p in parts}
    out: dict[str, list[str]] = {}
    current: list[str] = []
    size = 0
    for p in parts:
        if current and size + counts[p] > GROUP_GRIDS:
            out[current[0]] = current
            current, size = [], 0
        current.append(p)
        size += counts[p]
    if current:
        out[current[0]] = current
    return out


def scope_is_district(scope: str) -> bool:
    """Same rule as the page's prefetch script: split by street when the scope is a district or all."""
    return len(scope) <= 6


def js_labels(lang: str) -> dict:
    """The vocabulary live.js and map.js show, in the page's language (text only)."""
    i = 0 if lang == "zh" else 1
    pick = lambda table: {k: v[i] for k, v in table.items()}  # noqa: E731
    subs = {}
    for entry in domain.CATEGORIES.values():
        subs.update({k: v[i] for k, v in entry[4].items()})
    return {
        "cat": {k: v[i] for k, v in domain.CATEGORIES.items()}, "sub": subs,
        "src": pick(domain.SOURCES), "st": pick(domain.STEP_LABELS), "lvl": pick(domain.EVENT_LEVELS),
        "hazard": pick(domain.HAZARD_KINDS), "hazard_st": pick(domain.HAZARD_STATES),
        "facility": pick(domain.FACILITY_KINDS), "vehicle": pick(domain.VEHICLE_KINDS),
        "keypop": pick(domain.KEY_POPULATION), "house": pick(domain.HOUSE_USES), "role": pick(domain.STAFF_ROLES),
        "ui": {k: t(k, lang) for k in TEXT if k.startswith(("map_", "wall_"))},
    }


def rotation_scope(scope: str, query: dict) -> str:
    """The region a wall rotates through (?rotate=N): its own scope, or ``?within=`` when the
    scope lies inside that (a district wall that rotated on to a street carries it in its URL
    and so keeps the district's list). A wall opened on a street is sent no other street's code."""
    within = query.get("within")
    if within is None:
        return scope
    within = str(within)
    return within if within == "" or (SCOPE_RE.match(within) and scope.startswith(within)) else scope


def rotation_list(engine, within: str) -> list[str]:
    """The streets inside ``within`` (a district or the whole jurisdiction); none inside a street."""
    return [c for c, _ in wall_data.streets_of(engine, within or None)] if scope_is_district(within) else []


def tick_ms(query: dict) -> int:
    """?tick=N: the panels and the choropleth refresh at most every N ms (never faster than 1 s)."""
    try:
        return max(1000, int(query.get("tick", 1000)))
    except ValueError:
        return 1000


def query_flag(query: dict, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true", "yes", "on")


def wire_values(measures: dict) -> dict:
    """The choropleth arrays as numpy arrays: Dash's JSON encoder (orjson) writes those natively,
    where it walks a Python list value by value (~50 ms per city-scale layout)."""
    return {k: np.asarray(measures[k], dtype=np.float64 if k == "per1000" else np.int64)
            for k in (*wall_data.MEASURES, "patrolled")}


def build_config(services, scope: str, lang: str, query: dict) -> dict:
    """Everything the wall page needs up front; no geometry, no asset points."""
    settings = services.settings
    engine = services.engine
    crs = query.get("crs") if query.get("crs") in wall_data.CRSS else settings.tile_crs
    summary = services.shared("wall.summary", scope, lambda: wall_data.region_summary(engine, scope or None),
                              ttl_s=300, version=wall_data.region_version(engine, scope or None))
    measures = shared_measures(services, scope)
    root = summary["root"] or {"code": scope, "name": t("app_title", lang), "level": "district"}
    bounds = summary["bounds"]
    if bounds and crs == "gcj02":
        lon, lat = wgs84_to_gcj02([bounds[0][1], bounds[1][1]], [bounds[0][0], bounds[1][0]])
        bounds = [[float(lat[0]), float(lon[0])], [float(lat[1]), float(lon[1])]]
    qs = f"scope={scope}" + (f"&crs={query['crs']}" if query.get("crs") in wall_data.CRSS else "")
    urls = {lvl: f"/api/v1/geo/regions?level={lvl[:-1] if lvl != 'communities' else 'community'}&{qs}"
            for lvl in ("grids", "streets")}
    urls["communities"] = f"/api/v1/geo/regions?level=community&{qs}"
    urls.update({layer: f"/api/v1/geo/points?layer={layer}&{qs}" for layer in wall_data.POINT_LAYERS})
    urls["live"] = f"/api/v1/live?scope={scope}"
    urls["recent"] = f"/api/v1/wall/recent?scope={scope}"
    urls["event"] = f"/api/v1/events/{{id}}?scope={scope}"  # a popup's details, {id} filled by map.js
    streets = wall_data.streets_of(engine, scope or None) if len(scope) <= 6 else []
    parts = [c for c, _ in streets] if scope_is_district(scope) and 0 < len(streets) <= MAX_PARTS else [scope]
    crs_q = f"&crs={query['crs']}" if query.get("crs") in wall_data.CRSS else ""
    urls["grid_parts"] = {p: f"/api/v1/geo/regions?level=grid&scope={p}{crs_q}" for p in parts}
    urls["event_parts"] = {p: f"/api/v1/geo/points?layer=events&scope={p}{crs_q}" for p in parts}
    for layer, _, _ in ASSET_LAYERS:
        urls[f"{layer}_parts"] = {p: f"/api/v1/geo/points?layer={layer}&scope={p}{crs_q}" for p in parts}
    # the choropleth arrays are in grid-code order over the whole scope: where each part starts
    grids = summary["grids"]  # in code order, so a part's grids are one run of it
    offsets = {p: bisect_left(grids, p) for p in parts}
    try:
        rotate = max(0, int(query.get("rotate", 0)))
    except ValueError:
        rotate = 0
    shown = tuple(x for x in str(query.get("layers", "")).split(",") if x in {a for a, _, _ in ASSET_LAYERS})
    values = wire_values(measures)
    within = rotation_scope(scope, query)
    return {
        "scope": scope, "crs": crs, "lang": lang, "tz": settings.timezone, "rotate": rotate,
        "sound": query_flag(query, "sound"), "title": root["name"],
        "root": {"code": root["code"], "name": root["name"], "level": root["level"]},
        "bounds": bounds, "urls": urls, "measure": query.get("measure") if query.get("measure") in wall_data.MEASURES else "open",
        "values": values, "breaks": measures["breaks"], "n_grids": measures["n"],
        "names": {**summary["district"], **summary["streets"], **summary["communities"]},
        "labels": js_labels(lang), "ticker": wall_data.newest_events(engine, scope or None),
        "rotation": rotation_list(engine, within), "within": within,
        "shown": list(shown), "overlays": overlay_names(lang), "tile_url": settings.tile_url,
        "poll": query_flag(query, "poll"), "parts": parts, "offsets": offsets,
        "groups": event_groups(parts, grids),
        "tick_ms": tick_ms(query), "cluster": CLUSTER, "asset_layers": asset_templates(),
        "symbols": SYMBOL_COLOURS,
        "calendar_unknown": calendar_unknown(services),  # C3: the header's holiday-calendar warning
    }


def calendar_unknown(services) -> list[int]:  # C3
    """Years within the next 60 days no holiday calendar knows (what /healthz warns of)."""
    from datetime import datetime, timezone

    from dashboard.cases.workcalendar import calendar_for
    return calendar_for(services).unknown_years_ahead(datetime.now(timezone.utc))


def panel_components(lang: str) -> dict:
    """The panels' slots (layouts.panels.containers). They start empty: callbacks.panels fills
    them on the first call and on every LIVE_TICK, so the KPI queries are not run twice per page view."""
    return panels.containers(None, lang)


def wall_page(services, query: dict, lang: str):
    scope = str(query.get("scope", "") or "")
    if scope and not SCOPE_RE.match(scope):
        return html.Div(className="wall-error", children=f"scope: {scope!r} — " + (
            "不是区划编码(6–24位数字)" if lang == "zh" else "not a region code (6 to 24 digits)"))
    if scope:
        from sqlalchemy import select

        from dashboard.store.schema import region
        with services.engine.connect() as conn:
            if conn.execute(select(region.c.code).where(region.c.code == scope)).first() is None:
                return html.Div(className="wall-error", children=f"scope: {scope} — " + (
                    "没有这个区划" if lang == "zh" else "no region with this code"))
    cfg = build_config(services, scope, lang, query)
    layout = wall_layout(cfg, lang, panel_components(lang), tuple(cfg["shown"]))
    return layout


# Runs in the page head, before Dash has loaded: the wall's biggest downloads start at once
# instead of after the layout and the router round trip (live.js picks the events up,
# dash-leaflet's own fetch of the geometry finds it in the HTTP cache).
PREFETCH_SCRIPT = """<script>(function(){var p=location.pathname;if(p!=="/"&&p!=="/wall")return;
var q=new URLSearchParams(location.search),c=q.get("crs"),scope=q.get("scope")||"";
var cq=(c==="wgs84"||c==="gcj02")?"&crs="+c:"",w=window.__wallPrefetch={};
function json(u){w[u]=fetch(u).then(function(r){if(!r.ok)throw new Error(u+" HTTP "+r.status);return r.json();});
w[u].catch(function(){});return w[u];}
function warm(u){fetch(u).then(function(r){return r.arrayBuffer();}).catch(function(){});}
function parts(list){list.forEach(function(s){json("/api/v1/geo/points?layer=events&scope="+s+cq);
warm("/api/v1/geo/regions?level=grid&scope="+s+cq);});}
warm("/api/v1/geo/regions?level=community&scope="+scope+cq);
var su="/api/v1/geo/regions?level=street&scope="+scope+cq;
if(scope.length>6){parts([scope]);warm(su);return;}
fetch(su).then(function(r){return r.json();}).then(function(fc){
var codes=fc.features.map(function(f){return f.properties.c;});
parts(codes.length>0&&codes.length<=%d?codes:[scope]);}).catch(function(){});})();</script>""" % MAX_PARTS


def shared_measures(services, scope: str, fresh_after_ms: float | None = None) -> dict:
    """grid_measures per scope, computed once per change of the store however many walls watch
    it (and at least once a minute, as deadlines pass); a result started before ``fresh_after_ms``
    (the tick's time: the page heard of a commit then) is recomputed, so a tick is answered with
    what it announced (as callbacks.panels)."""
    version = (feed_version(services.engine), wall_data.region_version(services.engine, scope or None))
    return services.shared("wall.measures", scope, lambda: wall_data.grid_measures(
        services.engine, scope or None, tz=services.settings.timezone), ttl_s=MAX_AGE_S,
        fresh_after_ms=fresh_after_ms, version=version)


def register(app, services) -> None:
    from callbacks.router import PAGES

    if "__wallPrefetch" not in app.index_string and "{%css%}" in app.index_string:
        app.index_string = app.index_string.replace("{%css%}", "{%css%}" + PREFETCH_SCRIPT, 1)

    PAGES["/"] = wall_page
    PAGES["/wall"] = wall_page

    @app.callback(Output(ids.MAP_VALUES, "data"), Output(ids.MAP_BREAKS, "data"), Input(ids.LIVE_TICK, "data"),
                  Input(ids.MAP_REFRESH, "n_intervals"), State(ids.WALL_CONFIG, "data"),
                  State(ids.MAP_BREAKS, "data"), prevent_initial_call=True)
    def refresh_values(tick, _n, cfg, breaks):
        if not cfg:
            return no_update, no_update
        # the page's config is the browser's to send: its scope is checked on the server (a forged
        # one is a 403, audited; this page's own costs no query)
        scope = checked_scope(services, cfg.get("scope"))
        values = shared_measures(services, scope, fresh_after_ms=tick_time_ms(tick))
        # the legend is rebuilt only when its breaks move, not on every tick
        return ({**wire_values(values), "breaks": values["breaks"], "n": values["n"]},
                values.get("breaks") if values.get("breaks") != breaks else no_update)

    @app.callback(Output(ids.MAP_LEGEND, "tree"), Input(ids.MAP_MEASURE, "value"),
                  Input(ids.MAP_BREAKS, "data"), State(ids.WALL_CONFIG, "data"), prevent_initial_call=True)
    def refresh_legend(measure, breaks, cfg):
        if not cfg:
            return no_update
        return tree(legend(measure or "open", breaks or cfg.get("breaks") or {}, cfg.get("lang", "zh")))

    app.clientside_callback(ClientsideFunction("wallLive", "start"), Output(ids.MAP_INIT, "data"),
                            Input(ids.WALL_CONFIG, "data"))
    app.clientside_callback(ClientsideFunction("wallMap", "recolour"), Output(SINKS[0], "data"),
                            Input(ids.MAP_VALUES, "data"), Input(ids.MAP_MEASURE, "value"),
                            prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("wallMap", "back"), Output(SINKS[1], "data"),
                            Input(ids.MAP_BACK, "n_clicks"), prevent_initial_call=True)
