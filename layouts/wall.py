"""The wall: header, panels around the map, ticker. Pure: data in, components out.

Sized in viewport units on a CSS grid (dashboard/assets/wall.css) so the same
tree fits 1920×1080 and 3840×2160 with no scrollbars. The clock, the feed
status and the ticker are filled by dashboard/assets/live.js.
"""
from __future__ import annotations

from dash import html

from dashboard import ids
from dashboard.components import Interval, Store
from dashboard.i18n import t
from layouts.map import wall_map


STATUS_ROW = {"display": "flex", "gap": "0.4vw", "alignItems": "center"}


def calendar_warning(years, lang: str):
    """The header's warning when the next 60 days reach a year whose holidays no calendar knows
    (``WorkCalendar.unknown_years_ahead``; /healthz says the same), or None."""
    if not years:
        return None
    listed = "、".join(map(str, years)) if lang == "zh" else ", ".join(map(str, years))
    return html.Div(t("wall_calendar_unknown", lang, years=listed), id=ids.WALL_CALENDAR,
                    className="feed-status feed-lost wall-calendar", role="status",
                    title=t("wall_calendar_unknown_note", lang, years=listed))


def wall_layout(cfg: dict, lang: str, panels: dict, shown: tuple[str, ...] = ()) -> html.Div:
    """cfg: the WALL_CONFIG dict (``calendar_unknown``: the years ``calendar_warning`` names);
    panels: {"left", "right", "figures"} components (layouts.panels.containers)."""
    warning = calendar_warning(cfg.get("calendar_unknown"), lang)
    return html.Div(id=ids.WALL, className="wall", lang="en" if lang == "en" else "zh-CN", children=[
        html.Header(className="wall-header", children=[
            html.Div(className="wall-title", children=[
                html.H1(cfg["title"], className="wall-jurisdiction"),
                html.Div(t("wall_title", lang), className="wall-subtitle"),
            ]),
            html.Div(id=ids.WALL_FIGURES, className="wall-figures", children=panels["figures"]),
            html.Div(className="wall-status", children=[
                html.Div(id=ids.WALL_CLOCK, className="wall-clock"),
                # the warning beside the feed status, not under it: the 8vh header has room for two lines
                html.Div(style=STATUS_ROW, children=[
                    *([warning] if warning is not None else []),
                    html.Div(id=ids.FEED_STATUS, className="feed-status feed-connecting",
                             children=t("wall_feed_connecting", lang)),
                ]),
            ]),
        ]),
        html.Aside(id=ids.WALL_LEFT, className="wall-left", children=panels["left"]),
        html.Main(className="wall-center", children=[
            wall_map(cfg, lang, shown),
            html.Div(t("wall_feed_lost", lang), id=ids.FEED_BANNER, className="feed-banner",
                     role="alert", hidden=True),
        ]),
        html.Aside(id=ids.WALL_RIGHT, className="wall-right", children=panels["right"]),
        html.Section(className="wall-ticker-box", children=[
            html.H2(t("wall_ticker", lang), className="wall-ticker-title"),
            html.Ol(id=ids.TICKER, className="wall-ticker"),
        ]),
        Store(id=ids.WALL_CONFIG, data=cfg),
        Store(id=ids.LIVE_TICK, data={"n": 0, "at": 0}),
        Store(id=ids.MAP_VALUES),
        Store(id=ids.MAP_BREAKS, data=cfg.get("breaks")),
        Store(id=ids.MAP_INIT),
        Interval(id=ids.MAP_REFRESH, interval=30_000),
        *(Store(id=sink) for sink in ids.MAP_SINKS),
    ])
