"""The wall's map: a pure component tree (data in, components out).

Geometry never travels in the layout: every GeoJSON layer either points at a
cached URL (dashboard/api/geometry.py) or starts empty and is filled by
dashboard/assets/live.js from a compact columnar URL. Styling, popups and
clustering are JS functions in ``window.wallMap`` (dashboard/assets/map.js),
named here through dash-leaflet's ``{"variable": ...}`` convention.
"""
from __future__ import annotations

import dash_leaflet as dl
from dash import html

from dashboard import ids
from dashboard.components import Elements, RadioItems
from dashboard.i18n import t

VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")  # colour-blind safe, dark-to-light
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
LEVEL_COLOURS = {1: "#D55E00", 2: "#E69F00", 3: "#56B4E9"}
OVERDUE = "#F0E442"
HAZARD = "#CC79A7"
WORKER = "#009E73"
VEHICLE = "#FFFFFF"
# The canvas symbols' colours (map.js symbolStyle), the same the legend shows.
SYMBOL_COLOURS = {"hazard": HAZARD, "late": OVERDUE, "staff": WORKER, "vehicle": VEHICLE}
NO_DATA = "#9a9a9a"  # a grid with no value for the measure (per1000 without residents); map.js W.NO_DATA
MEASURES = ("open", "overdue", "per1000", "hazards")
# Clusters only between the map's lowest zoom and street level: fewer levels to index.
CLUSTER = {"radius": 56, "minZoom": 9, "maxZoom": 16}

# Asset overlays start hidden (they would clutter) and load only when shown.
ASSET_CLUSTER = {"radius": 64, "minZoom": 9, "maxZoom": 17}
ASSET_LAYERS = (
    ("houses", ids.MAP_HOUSES, "map_layer_houses"),
    ("keypop", ids.MAP_KEYPOP, "map_layer_keypop"),
    ("vehicles", ids.MAP_VEHICLES, "map_layer_vehicles"),
    ("facilities", ids.MAP_FACILITIES, "map_layer_facilities"),
)


def fn(name: str) -> dict:
    return {"variable": f"wallMap.{name}"}


def overlay_names(lang: str) -> dict:
    """Overlay name (as the layer control shows it) -> layer key; live.js maps checks back to layers."""
    names = {t(key, lang): layer for layer, _, key in ASSET_LAYERS}
    names[t("map_layer_positions", lang)] = "positions"
    names[t("map_layer_coverage", lang)] = "coverage"
    names[t("map_layer_hazards", lang)] = "hazards"
    return names


def wall_map(cfg: dict, lang: str, shown: tuple[str, ...] = ()) -> html.Div:
    """cfg: the WALL_CONFIG dict (urls, bounds, tile settings); shown: asset layers checked at start."""
    urls = cfg["urls"]
    tiles = [dl.TileLayer(url=cfg["tile_url"], opacity=0.55, maxZoom=19)] if cfg.get("tile_url") else []
    outline = {"fill": False}
    overlays = [
        # One grid layer per part (a street, when the wall shows a district) and one clustered
        # event layer per group of streets (~1,500 grids: callbacks/wall.py event_groups): each
        # loads, parses and indexes on its own, so no single browser task handles a whole city,
        # and a live update re-renders one group's clusters, not all.
        # Each overlay holds ONE LayerGroup: the layer control lists (and on every addition
        # re-renders) one entry per direct child, so 20 streets x 6 layers as direct children
        # cost a 400 ms task of list rebuilding at city scale.
        dl.Overlay(name=t("map_layer_grids", lang), checked=True, children=dl.LayerGroup([dl.GeoJSON(
            id=f"{ids.MAP_GRIDS}-{part}", url=urls["grid_parts"][part], style=fn("gridStyle"),
            onEachFeature=fn("gridEach"),
        ) for part in cfg["parts"]])),
        # Coverage is drawn by the grid layer itself (a dashed green outline on grids patrolled
        # today): a second copy of the grid geometry would double the parse and draw time.
        # This overlay only carries the switch (map.js listens to overlayadd/overlayremove).
        dl.Overlay(name=t("map_layer_coverage", lang), checked=True, children=dl.GeoJSON(id=ids.MAP_COVERAGE)),
        dl.Overlay(name=t("map_layer_communities", lang), checked=True, children=dl.GeoJSON(
            id=ids.MAP_COMMUNITIES, url=urls["communities"], style=fn("outlineStyle"), interactive=False,
            onEachFeature=fn("regionEach"), hideout={"w": 1.2, "col": "#9fb3c8", **outline},
        )),
        dl.Overlay(name=t("map_layer_streets", lang), checked=True, children=dl.GeoJSON(
            id=ids.MAP_STREETS, url=urls["streets"], style=fn("outlineStyle"), interactive=False,
            onEachFeature=fn("regionEach"), hideout={"w": 3, "col": "#e8eef5", **outline},
        )),
        dl.Overlay(name=t("map_layer_events", lang), checked=True, children=dl.LayerGroup([
            *(dl.GeoJSON(id=f"{ids.MAP_EVENTS}-{part}", cluster=True, pointToLayer=fn("eventPoint"),
                         clusterToLayer=fn("eventCluster"), filter=fn("eventFilter"), zoomToBoundsOnClick=True,
                         superClusterOptions=CLUSTER, hideout={"gone": {}, "st": {}})
              for part in cfg["groups"]),
            dl.GeoJSON(id=ids.MAP_EVENTS_LIVE, pointToLayer=fn("eventPoint"), filter=fn("eventFilter"),
                       hideout={"gone": {}, "st": {}}),
        ])),
        dl.Overlay(name=t("map_layer_hazards", lang), checked=True, children=dl.GeoJSON(
            id=ids.MAP_HAZARDS, pointToLayer=fn("hazardPoint"))),
        dl.Overlay(name=t("map_layer_positions", lang), checked=True, children=dl.GeoJSON(
            id=ids.MAP_POSITIONS, pointToLayer=fn("positionPoint"))),
    ]
    # An asset overlay holds an empty group: its layers (one per part) are made in the browser from
    # asset_templates when the overlay is first shown, after the first paint (live.js loadAsset).
    # In the layout they were 4 x parts GeoJSON components mounted before anything was drawn:
    # 80 of a city wall's ~150 components, in the page's longest task.
    for layer, cid, key in ASSET_LAYERS:
        overlays.append(dl.Overlay(name=t(key, lang), checked=layer in shown,
                                   children=dl.LayerGroup(id=f"{cid}-group", children=[])))
    bounds = cfg.get("bounds") or [[36.03, 120.30], [36.11, 120.48]]
    return html.Div(className="wall-map-wrap", children=[
        dl.MapContainer(
            id=ids.MAP, bounds=bounds, preferCanvas=True, zoomControl=False, attributionControl=False,
            zoomSnap=0.25, minZoom=9, maxZoom=19, className="wall-map", trackViewport=False,
            children=[*tiles, dl.LayersControl(id=ids.MAP_LAYERS, position="topright", collapsed=True,
                                               children=overlays)],
        ),
        html.Div(className="map-toolbar", children=[
            html.Button(t("map_back", lang), id=ids.MAP_BACK, className="map-back", n_clicks=0),
            html.Div(id=ids.MAP_CRUMBS, className="map-crumbs"),
        ]),
        html.Div(className="map-measure-box", children=[
            html.Span(t("map_measure", lang), className="map-measure-title"),
            RadioItems(id=ids.MAP_MEASURE, value=cfg["measure"], className="map-measure",
                           options=[{"label": t(f"map_measure_{m}", lang), "value": m} for m in MEASURES],
                           inline=True),
        ]),
        html.Div(id=ids.MAP_INFO, className="map-info"),
        Elements(id=ids.MAP_LEGEND, className="map-legend", children=legend(cfg["measure"], cfg["breaks"], lang)),
    ])


def asset_templates() -> dict:
    """Per asset layer, the GeoJSON component one part of it becomes (``{part}`` in its id)."""
    return {layer: dl.GeoJSON(id=f"{cid}-{{part}}", cluster=True, pointToLayer=fn("assetPoint"),
                              clusterToLayer=fn("assetCluster"), superClusterOptions=ASSET_CLUSTER,
                              hideout={"layer": layer}).to_plotly_json()
            for layer, cid, _ in ASSET_LAYERS}


def legend(measure: str, breaks_by_measure: dict, lang: str) -> list:
    """Choropleth classes of the chosen measure, then the point symbols."""
    bounds = breaks_by_measure.get(measure) or [1]
    rows = [html.Div(t(f"map_measure_{measure}", lang), className="legend-title")]
    rows.append(_swatch("legend-fill", "rgba(120,140,160,0.12)", t("map_legend_none", lang) + " · 0"))
    if measure == "per1000":  # kpi.grid_measures: a grid without residents has no rate, drawn apart from 0
        rows.append(_swatch("legend-fill legend-no-data", NO_DATA, t("map_legend_no_rate", lang)))
    lo = 0
    for i, hi in enumerate(bounds):
        colour = VIRIDIS[class_colour_index(i, len(bounds))]
        first = lo + 1 if isinstance(hi, int) else lo  # classes are (lo, hi]; counts start at lo + 1
        rows.append(_swatch("legend-fill", colour, f"{_num(first)}–{_num(hi)}" if hi != first else _num(hi)))
        lo = hi
    rows.append(html.Div(t("map_legend_level", lang), className="legend-title"))
    for lvl, colour in LEVEL_COLOURS.items():
        rows.append(_swatch("legend-dot", colour, f"L{lvl}"))
    rows.append(_swatch("legend-dot legend-overdue", "#333", t("map_legend_overdue_engine", lang)))
    rows.append(_swatch("legend-tri", HAZARD, t("map_legend_hazard", lang)))
    rows.append(_swatch("legend-dot", WORKER, t("map_legend_worker", lang)))
    rows.append(_swatch("legend-sq", VEHICLE, t("map_legend_vehicle", lang)))
    rows.append(_swatch("legend-cover", "transparent", t("map_legend_patrolled", lang)))
    return rows


def class_colour_index(i: int, classes: int) -> int:
    """Same rule as wallMap.classColour in map.js: spread the classes over the palette."""
    if classes <= 1:
        return len(VIRIDIS) - 1
    return round(i * (len(VIRIDIS) - 1) / (classes - 1))


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _swatch(cls: str, colour: str, text: str) -> html.Div:
    return html.Div(className="legend-row", children=[
        html.Span(className=f"legend-key {cls}", style={"backgroundColor": colour}), html.Span(text)])
