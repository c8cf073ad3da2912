"""The street secretary's view (/street). Pure: data in, components out.

One page for a phone (360 px, one column: figures first, then the map, the ranking and the lists)
and a laptop (1440 px: the map on the left, the panels beside it), styled by
dashboard/assets/street.css. The map is the wall's (the same layer functions in
dashboard/assets/map.js and the same live client, dashboard/assets/live.js) with only the layers a
street needs and no layer control. The panels are ``Elements`` blocks (plain elements, one Dash
component each: dashboard/components), rebuilt by callbacks/street.py whenever the map drills down
or the feed moves, and follow the unit the map shows. A ranked name or a listed event is a
button carrying ``data-drill`` (a region code), which dashboard/assets/street.js sends to the map.

All text is rendered as text, never as HTML; no list carries a personal field.
"""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import dash_leaflet as dl
from dash import html

from dashboard import ids
from dashboard.components import Elements, Interval, RadioItems, Store
from dashboard.domain import label
from dashboard.i18n import t
from dashboard.street import FIGURES
from layouts.map import CLUSTER, MEASURES, fn, legend

RATES = ("response_rate", "on_time_rate")
FIGURE_LABEL = {
    "reported": "kpi_reported", "closed": "kpi_closed", "open": "kpi_open", "overdue": "kpi_overdue",
    "urgent": "street_fig_urgent", "hazards_overdue": "street_fig_hazards_overdue",
    "response_rate": "kpi_response_rate", "on_time_rate": "kpi_on_time_rate",
}
# a figure where more is worse: flagged when above the district's average
WORSE_WHEN_HIGHER = {"overdue", "urgent", "hazards_overdue"}


# --- formatting ---------------------------------------------------------------

def fmt_num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.1f}"
    return f"{int(v):,}"


def fmt_rate(v) -> str:
    if v is None:
        return "—"
    pct = v * 100
    return "100%" if pct >= 99.995 else f"{pct:.1f}%"


def fmt_value(key: str, v) -> str:
    return fmt_rate(v) if key in RATES else fmt_num(v)


def fmt_clock(at: datetime | None, tz: str) -> str:
    if at is None:
        return "—"
    return at.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M")


def level_name(level: str | None, lang: str) -> str:
    return t(f"street_level_{level or 'street'}", lang)


def place(code: str, names: dict, scope: str) -> str:
    """A grid's place below the unit shown: "community › grid" from a street, the grid from a community."""
    parts = [names.get(code[:12])] if len(scope) < 12 and len(code) > 12 else []
    parts.append(names.get(code) or code)
    return " › ".join(p for p in parts if p)


# --- the panels (each a list of html components; callbacks/street.py sends them as Elements trees) ---

def unit_panel(data: dict, lang: str) -> list:
    """The unit the panels show: its name and level (and its parent when drilled below the root)."""
    sub = level_name(data.get("level"), lang) + (f" · {data['parent_name']}" if data.get("parent_name") else "")
    return [html.H2(data["name"], className="st-unit-name", **{"data-code": data["scope"]}),
            html.Div(sub, className="st-unit-level")]


def figures_panel(data: dict, avg: dict | None, lang: str) -> list:
    """The unit's figures, each beside the district's average for a unit of its level."""
    figs = data["figures"]
    tiles = []
    for key in FIGURES:
        v, a = figs.get(key), (avg or {}).get(key)
        worse = key in WORSE_WHEN_HIGHER and v is not None and a is not None and v > a
        tiles.append(html.Div(className="st-fig" + (" st-fig--worse" if worse else ""), **{"data-kpi": key}, children=[
            html.Div(fmt_value(key, v), className="st-fig-value"),
            html.Div(t(FIGURE_LABEL[key], lang), className="st-fig-label"),
            html.Div(t("street_avg", lang, v=fmt_value(key, a)), className="st-fig-avg",
                     title=t("street_worse", lang) if worse else None),
        ]))
    note = ""
    if avg and avg.get("units"):
        note = t("street_avg_note", lang, district=avg["district_name"], n=avg["units"],
                 level=level_name(avg["level"], lang))
    return [html.H2(t("street_figures", lang), className="st-h"),
            html.Div(tiles, className="st-figs"),
            html.P(note, className="st-note", title=t("kpi_deadline_note", lang))]


def ranking_panel(data: dict, lang: str) -> list:
    """The units one level below, worst first (kpi.ranking): each name drills the map into it."""
    rows = data.get("ranking") or []
    level = data.get("ranking_level")
    if not rows or level not in ("community", "grid"):
        return []
    head = html.Tr([html.Th(t(k, lang), className=f"st-col-{k[4:]}")
                    for k in ("col_rank", "col_name", "col_open", "col_overdue", "col_on_time")])
    body = [html.Tr(className="st-row" + (" st-row--alert" if r["overdue"] else ""), children=[
        html.Td(str(r["rank"]), className="st-col-rank"),
        html.Td(html.Button(r["name"], className="st-drill", **{"data-drill": r["code"]}), className="st-col-name"),
        html.Td(fmt_num(r["open"]), className="st-col-open"),
        html.Td(fmt_num(r["overdue"]), className="st-col-overdue"),
        html.Td(fmt_rate(r["on_time_rate"]), className="st-col-on_time"),
    ]) for r in rows]
    return [html.H2(t(f"panel_ranking_{level}", lang), className="st-h"),
            html.P(t("panel_ranking_note", lang, days=data.get("ranking_days", 30)) + " · "
                   + t("street_ranking_hint", lang), className="st-note"),
            html.Div(html.Table(className="st-table", children=[html.Thead(head), html.Tbody(body)]),
                     className="st-table-box")]


def _event_row(r: dict, data: dict, lang: str, kind: str) -> html.Li:
    cat = label("category", r["category"], lang) + (
        f" · {label('subcategory', r['subcategory'], lang)}" if r.get("subcategory") else "")
    tz = data["tz"]
    now = data["now"]
    if kind == "overdue":
        when = t("street_overdue_by", lang, h=fmt_num(r.get("overdue_hours")))
    elif r.get("deadline_at") is None:
        when = t("street_no_deadline", lang)
    elif r["deadline_at"] < now:
        when = t("street_overdue_by", lang, h=fmt_num(round((now - r["deadline_at"]).total_seconds() / 3600, 1)))
    else:
        when = t("street_due_in", lang, h=fmt_num(round((r["deadline_at"] - now).total_seconds() / 3600, 1)))
    return html.Li(className=f"st-ev st-ev-l{r['level']}" + (" st-ev--urgent" if r.get("urgent") else ""), children=[
        html.Button(className="st-drill st-ev-btn", **{"data-drill": r["grid_code"], "data-ev": r["id"]}, children=[
            html.Span(f"L{r['level']}", className="st-ev-level", title=label("event_level", r["level"], lang)),
            html.Span(cat, className="st-ev-cat"),
            html.Span(place(r["grid_code"], data["names"], data["scope"]), className="st-ev-place"),
            html.Span(when, className="st-ev-when", title=fmt_clock(r.get("deadline_at"), tz)),
        ]),
    ])


def _list(title: str | None, part: dict, rows: list, kind: str, lang: str) -> html.Div:
    """One list: its title and total (none when the panel's own heading says it), its rows, how many more."""
    more = part["total"] - len(rows)
    items = rows or [html.Li(t("street_list_none", lang), className="st-none")]
    if more > 0:
        items = [*items, html.Li(t("street_list_more", lang, n=fmt_num(more)), className="st-more")]
    head = [html.H3([title, " ", html.Span(fmt_num(part["total"]), className="st-count")], className="st-h3")] if title else []
    return html.Div(className=f"st-list st-list--{kind}", **{"data-list": kind}, children=[
        *head, html.Ul(items, className="st-items")])


def events_panel(data: dict, lang: str) -> list:
    """Open events: overdue (most overdue first), urgent, and those due soonest."""
    lists = data["lists"]
    out = [html.H2(t("street_events", lang), className="st-h")]
    for kind in ("overdue", "urgent", "due"):
        part = lists[kind]
        rows = [_event_row(r, data, lang, kind) for r in part["rows"]]
        out.append(_list(t(f"street_list_{kind}", lang), part, rows, kind, lang))
    return out


def hazards_panel(data: dict, lang: str) -> list:
    """Hazards open past their rectification deadline, the longest overdue first."""
    part = data["hazards"]
    rows = [html.Li(className="st-hz", children=[
        html.Button(className="st-drill st-ev-btn", **{"data-drill": r["grid_code"]}, children=[
            html.Span(label("hazard", r["kind"], lang), className="st-ev-cat"),
            html.Span(place(r["grid_code"], data["names"], data["scope"]), className="st-ev-place"),
            html.Span(t("street_hazard_overdue", lang, d=fmt_num(r["overdue_days"])), className="st-ev-when",
                      title=fmt_clock(r["deadline_at"], data["tz"])),
        ])]) for r in part["rows"]]
    return [html.H2([t("street_hazards", lang), " ", html.Span(fmt_num(part["total"]), className="st-count")],
                    className="st-h"),
            _list(None, part, rows, "hazards", lang)]


def panels(data: dict, avg: dict | None, lang: str) -> dict:
    """{Elements id: children} for every panel of one unit."""
    return {ids.STREET_UNIT: unit_panel(data, lang), ids.STREET_FIGURES: figures_panel(data, avg, lang),
            ids.STREET_RANKING: ranking_panel(data, lang), ids.STREET_EVENTS: events_panel(data, lang),
            ids.STREET_HAZARDS: hazards_panel(data, lang)}


def message_panels(text: str) -> dict:
    """Every panel empty but the first, which says why (an error, a refusal)."""
    out = {k: [] for k in ids.STREET_PANELS}
    out[ids.STREET_UNIT] = [html.P(text, className="st-message", role="alert")]
    return out


# --- the map -------------------------------------------------------------------------

def street_map(cfg: dict, lang: str) -> html.Div:
    """The wall's map for one street: grids (coloured by the chosen measure), community and street
    outlines, clustered open events and the live layer, hazards, workers and vehicles. No layer control
    and no asset overlays (the wall has them); ids are the wall's, so live.js and map.js drive it."""
    urls = cfg["urls"]
    tiles = [dl.TileLayer(url=cfg["tile_url"], opacity=0.55, maxZoom=19)] if cfg.get("tile_url") else []
    layers = [
        *(dl.GeoJSON(id=f"{ids.MAP_GRIDS}-{part}", url=urls["grid_parts"][part], style=fn("gridStyle"),
                     onEachFeature=fn("gridEach")) for part in cfg["parts"]),
        dl.GeoJSON(id=ids.MAP_COMMUNITIES, url=urls["communities"], style=fn("outlineStyle"), interactive=False,
                   onEachFeature=fn("regionEach"), hideout={"w": 1.4, "col": "#9fb3c8", "fill": False}),
        dl.GeoJSON(id=ids.MAP_STREETS, url=urls["streets"], style=fn("outlineStyle"), interactive=False,
                   onEachFeature=fn("regionEach"), hideout={"w": 3, "col": "#e8eef5", "fill": False}),
        *(dl.GeoJSON(id=f"{ids.MAP_EVENTS}-{part}", cluster=True, pointToLayer=fn("eventPoint"),
                     clusterToLayer=fn("eventCluster"), filter=fn("eventFilter"), zoomToBoundsOnClick=True,
                     superClusterOptions=CLUSTER, hideout={"gone": {}, "st": {}}) for part in cfg["groups"]),
        dl.GeoJSON(id=ids.MAP_EVENTS_LIVE, pointToLayer=fn("eventPoint"), filter=fn("eventFilter"),
                   hideout={"gone": {}, "st": {}}),
        dl.GeoJSON(id=ids.MAP_HAZARDS, pointToLayer=fn("hazardPoint")),
        dl.GeoJSON(id=ids.MAP_POSITIONS, pointToLayer=fn("positionPoint")),
    ]
    bounds = cfg.get("bounds") or [[36.03, 120.30], [36.11, 120.48]]
    return html.Div(className="st-map-wrap", children=[
        dl.MapContainer(id=ids.MAP, bounds=bounds, preferCanvas=True, zoomControl=False, attributionControl=False,
                        zoomSnap=0.25, minZoom=9, maxZoom=19, className="st-map", trackViewport=False,
                        children=[*tiles, *layers]),
        html.Div(id=ids.MAP_INFO, className="map-info st-map-info"),
        html.Div(t("wall_feed_lost", lang), id=ids.FEED_BANNER, className="feed-banner st-feed-banner",
                 role="alert", hidden=True),
    ])


def map_controls(cfg: dict, lang: str) -> html.Div:
    """The measure switch and the legend, under the map (on a phone the map is too small to hold them)."""
    return html.Div(className="st-map-controls", children=[
        html.Fieldset(className="st-measure", children=[
            html.Legend(t("map_measure", lang), className="st-measure-title"),
            RadioItems(id=ids.MAP_MEASURE, value=cfg["measure"], className="st-measure-options",
                       options=[{"label": t(f"map_measure_{m}", lang), "value": m} for m in MEASURES]),
        ]),
        html.Details(className="st-legend", children=[
            html.Summary(t("street_legend", lang)),
            Elements(id=ids.MAP_LEGEND, className="map-legend st-legend-body",
                     children=legend(cfg["measure"], cfg["breaks"], lang)),
        ]),
    ])


# --- the page ------------------------------------------------------------------------

def _link(query: dict, **change) -> str:
    q = {k: v for k, v in {**query, **change}.items() if v not in (None, "")}
    return "/street" + ("?" + urlencode(q) if q else "")


def street_layout(cfg: dict, lang: str, first: dict, query: dict | None = None, hashes: dict | None = None,
                  stamp: str | None = None) -> html.Div:
    """cfg: the map's config (callbacks.wall.build_config, the wall's WALL_CONFIG); first: the panels'
    first children ({Elements id: children}, ``panels``), so the first paint has every figure."""
    query = {k: v for k, v in (query or {}).items() if k in ("scope", "lang")}
    other = {"lang": None if lang == "en" else "en"}
    return html.Div(id=ids.STREET, className="street", lang="en" if lang == "en" else "zh-CN", children=[
        html.Header(className="st-head", children=[
            html.Div(className="st-title", children=[
                html.H1(cfg["title"], className="st-name"),
                html.Div(t("street_title", lang), className="st-sub"),
            ]),
            html.Div(className="st-status", children=[
                html.Div(t("wall_feed_connecting", lang), id=ids.FEED_STATUS, className="feed-status feed-connecting",
                         role="status"),
                html.Div(stamp, id=ids.STREET_UPDATED, className="st-updated"),
            ]),
            html.Nav(className="st-nav", children=[
                html.A(t("street_lang", lang), href=_link(query, **other), className="st-link",
                       lang="en" if lang != "en" else "zh-CN"),
                html.A(t("street_signout", lang), href="/signout" + ("?lang=en" if lang == "en" else ""),
                       className="st-link"),
            ]),
        ]),
        html.Main(className="st-main", children=[
            html.Div(className="st-crumbs-bar", children=[
                html.Button(t("map_back", lang), id=ids.MAP_BACK, className="st-back", n_clicks=0),
                html.Div(id=ids.MAP_CRUMBS, className="map-crumbs st-crumbs"),
            ]),
            Elements(id=ids.STREET_UNIT, className="st-unit", children=first[ids.STREET_UNIT]),
            html.Section(className="st-card st-card--figures", children=Elements(
                id=ids.STREET_FIGURES, className="st-panel", children=first[ids.STREET_FIGURES])),
            html.Section(className="st-card st-card--map", **{"aria-label": t("street_map", lang, name=cfg["title"])},
                         children=[street_map(cfg, lang), html.P(t("street_drill_hint", lang), className="st-note"),
                                   map_controls(cfg, lang)]),
            html.Section(className="st-card st-card--ranking", children=Elements(
                id=ids.STREET_RANKING, className="st-panel", children=first[ids.STREET_RANKING])),
            html.Section(className="st-card st-card--events", children=Elements(
                id=ids.STREET_EVENTS, className="st-panel", children=first[ids.STREET_EVENTS])),
            html.Section(className="st-card st-card--hazards", children=Elements(
                id=ids.STREET_HAZARDS, className="st-panel", children=first[ids.STREET_HAZARDS])),
        ]),
        Store(id=ids.WALL_CONFIG, data=cfg),
        Store(id=ids.LIVE_TICK, data={"n": 0, "at": 0}),
        Store(id=ids.MAP_VALUES),
        Store(id=ids.MAP_BREAKS, data=cfg.get("breaks")),
        Store(id=ids.MAP_INIT),
        Interval(id=ids.MAP_REFRESH, interval=30_000),
        *(Store(id=sink) for sink in ids.MAP_SINKS),
        Store(id=ids.STREET_DRILL, data=cfg["scope"]),
        Store(id=ids.STREET_HASHES, data=hashes or {}),
        Interval(id=ids.STREET_REFRESH, interval=30_000),
    ])


def picker_layout(streets: list[tuple[str, str]], lang: str, note: str | None = None) -> html.Div:
    """A scope wider than a street (the district's operator, an administrator, no sign-in): its streets."""
    suffix = "&lang=en" if lang == "en" else ""
    return html.Div(id=ids.STREET, className="street st-picker", lang="en" if lang == "en" else "zh-CN", children=[
        html.Header(className="st-head", children=html.Div(className="st-title", children=[
            html.H1(t("street_pick", lang), className="st-name"),
            html.Div(t("street_title", lang), className="st-sub")])),
        html.Main(className="st-main", children=[
            *([html.P(note, className="st-message", role="alert")] if note else []),
            html.Ul(className="st-pick-list", children=[
                html.Li(html.A(name, href=f"/street?scope={code}{suffix}", className="st-pick")) for code, name in streets]),
        ]),
    ])
