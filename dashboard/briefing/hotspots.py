"""The hotspot map: the scope's grids coloured by events per 1,000 residents, street and community
outlines, a scale bar, and no map tiles (it is drawn from the store's region geometry, offline).

Classes are the wall's (``wall_data.breaks``: quantiles of the positive values) in the wall's
viridis colours (``layouts.map.VIRIDIS``), light for low and dark for high on paper. A grid
with no residents on record has no rate and is drawn hatched grey as "no data", never as 0.
Geometry is projected to the scope's UTM zone so the scale bar measures metres.
"""
from __future__ import annotations

import geopandas as gpd
from matplotlib.patches import Patch

from dashboard.store.regions import load_regions

from .charts import INK, MUTED, Chart, _figure, _rc_context, _title, render
from .words import w

NO_DATA = "#E4E7EB"


class Geometry:
    """Grids, communities and streets under a root region, projected once; a briefing of any
    scope inside the root takes its part (``part``). Shared by the briefings of one run."""

    def __init__(self, engine, root: str):
        rows = load_regions(engine, levels=("street", "community", "grid"), scope=root)
        frame = gpd.GeoDataFrame({"code": [r["code"] for r in rows], "level": [r["level"] for r in rows]},
                                 geometry=[r["geom"] for r in rows], crs="EPSG:4326")
        self.root = root
        self.frame = frame.to_crs(frame.estimate_utm_crs()) if len(frame) else frame

    def covers(self, scope: str) -> bool:
        return scope.startswith(self.root)

    def part(self, scope: str) -> gpd.GeoDataFrame:
        return self.frame[self.frame["code"].str.startswith(scope)]


def breaks(values: list[float]) -> list[float]:
    from dashboard.wall_data import breaks as wall_breaks  # the wall map's own classes

    return wall_breaks(values, integer=False)


def _colours() -> list[str]:
    from layouts.map import VIRIDIS

    return list(reversed(VIRIDIS))  # the wall's dark ground shows high as light; paper, as dark


def classify(value, bounds: list[float]) -> int | None:
    """Class index of a value (None: no rate); 0 holds the zeros and the lowest class."""
    if value is None:
        return None
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds) - 1


def hotspot_map(f: dict, geo: Geometry, lang: str) -> Chart:
    from matplotlib_scalebar.scalebar import ScaleBar

    part = geo.part(f["scope"]["code"])
    grids = part[part["level"] == "grid"].copy()
    rates = f["grids"]
    grids["rate"] = [rates.get(c, {}).get("per_1000") for c in grids["code"]]
    bounds = breaks([v for v in grids["rate"] if v is not None])
    palette = _colours()
    # spread the classes over the palette's ends so two classes still read as low and high
    picks = [palette[round(i * (len(palette) - 1) / max(len(bounds) - 1, 1))] for i in range(len(bounds))]
    with _rc_context():
        fig, ax = _figure()
        ax.set_axis_off()
        fig.subplots_adjust(left=0.01, right=0.7, bottom=0.02, top=0.9)
        if len(grids):
            none = grids[grids["rate"].isna()]
            if len(none):
                none.plot(ax=ax, color=NO_DATA, edgecolor="white", linewidth=0.2, hatch="////")
            rated = grids[grids["rate"].notna()]
            for i, colour in enumerate(picks):
                cls = rated[[classify(v, bounds) == i for v in rated["rate"]]]
                if len(cls):
                    cls.plot(ax=ax, color=colour, edgecolor="white", linewidth=0.2)
            comms = part[part["level"] == "community"]
            if len(comms):
                comms.boundary.plot(ax=ax, color=MUTED, linewidth=0.6)
            streets = part[part["level"] == "street"]
            if len(streets):
                streets.boundary.plot(ax=ax, color=INK, linewidth=1.4)
            ax.set_aspect("equal")
            ax.add_artist(ScaleBar(1, "m", location="lower left", frameon=False, color=INK,
                                   font_properties={"size": 9}))
        lows = [0.0] + bounds[:-1]
        handles = [Patch(facecolor=c, edgecolor="none", label=f"{lo:g}–{hi:g}") for c, lo, hi in zip(picks, lows, bounds)]
        handles.append(Patch(facecolor=NO_DATA, edgecolor="white", hatch="////", label=w("map_no_data", lang)))
        handles.append(Patch(facecolor="none", edgecolor=INK, linewidth=1.4, label=w("map_streets", lang)))
        handles.append(Patch(facecolor="none", edgecolor=MUTED, linewidth=0.6, label=w("map_communities", lang)))
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.71, 0.5), frameon=False, fontsize=9,
                   title=w("col_per1000", lang), title_fontsize=10)
        title = w("ch_hotspots", lang)
        _title(fig, title)
        return render("hotspots", title, fig)
