"""The wall's panels around the map. Pure: the dict from ``dashboard.kpi.wall_figures`` in, components out.

- ``header_figures(data, lang)``: the headline counters strip;
- ``panels_left(data, lang)``: events by level, category and channel; 7- and 30-day trends;
- ``panels_right(data, lang)``: ranking, 三零 communities, on duty & patrols, hazards,
  key population & housing;
- ``header_container / left_container / right_container``: the slots
  ``callbacks.panels`` refills on every live tick (pre-filled when given data);
  each panel is a section with its own id (``ids.panel(name)``), so a tick
  re-renders only the panels whose figures changed. On the wall the slots start
  empty and the callback sends each panel's components as plain elements
  (``dashboard.inplace``), so only html components belong in a panel.

Charts are plain html from ``dashboard.charts`` (no plotly on the wall). Sizes
are in viewport units (dashboard/assets/panels.css) so a 3840×2160 wall reads
like a 1920×1080 one. All text is rendered as text, never as HTML.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import html

from dashboard import charts, ids
from dashboard.components import Interval, Store
from dashboard.domain import label
from dashboard.i18n import t

RANKING_ROWS = 10
PANEL_REFRESH_MS = 15_000  # overdue-ness moves with the clock even when no event arrives
SANLING_LISTED = 3


# --- formatting -------------------------------------------------------------

def fmt_int(n, lang: str = "zh") -> str:
    """Thousands separators (both zh-CN and en use the comma grouping)."""
    if n is None:
        return "—"
    return f"{int(n):,}"


def fmt_pct(rate, lang: str = "zh") -> str:
    if rate is None:
        return "—"
    pct = rate * 100
    return "100%" if pct >= 99.995 else f"{pct:.1f}%"


def fmt_time(iso: str | None, tz: str, lang: str = "zh") -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%H:%M:%S")


def _rate(data: dict, name: str):
    return (data.get("rates", {}).get(name) or {}).get("rate")


# --- building blocks -----------------------------------------------------------

def _tile(value: str, text: str, kind: str = "", key: str = "", title: str | None = None) -> html.Div:
    cls = "pn-tile" + (f" pn-tile--{kind}" if kind else "")
    extra = {**({"data-kpi": key} if key else {}), **({"title": title} if title else {})}
    return html.Div(className=cls, **extra, children=[
        html.Div(value, className="pn-value"),
        html.Div(text, className="pn-label"),
    ])


def section(key: str, children=None) -> html.Section:
    """A panel's stable frame; its children are what a refresh replaces."""
    return html.Section(id=ids.panel(key), className=f"pn-panel pn-{key}", **{"data-panel": key},
                        children=children)


def _panel(title: str, body, key: str, note: str | None = None) -> html.Section:
    head = [html.H3(title, className="pn-title")]
    if note:
        head.append(html.Span(note, className="pn-note"))
    return section(key, [html.Div(head, className="pn-head"), body])


# --- the three parts ---------------------------------------------------------------

def header_figures(data: dict, lang: str = "zh") -> html.Div:
    """Headline counters: reported/registered/closed today, open, overdue and due soon now
    (the case engine's deadlines), response rate and on-time closure rate today."""
    today = data.get("today", {})
    overdue = int(today.get("overdue", 0))
    due_soon = today.get("due_soon")
    return html.Div(className="pn-strip", children=[
        _tile(fmt_int(today.get("reported"), lang), t("kpi_reported", lang), key="reported"),
        _tile(fmt_int(today.get("registered"), lang), t("kpi_registered", lang), key="registered"),
        _tile(fmt_int(today.get("closed"), lang), t("kpi_closed", lang), key="closed"),
        _tile(fmt_int(today.get("open"), lang), t("kpi_open", lang), key="open"),
        _tile(fmt_int(overdue, lang), t("kpi_overdue", lang), "alert" if overdue else "", key="overdue",
              title=t("kpi_deadline_engine", lang)),
        _tile(fmt_int(due_soon, lang), t("kpi_due_soon", lang), key="due_soon", title=t("kpi_deadline_engine", lang)),
        _tile(fmt_pct(_rate(data, "response_rate"), lang), t("kpi_response_rate", lang), key="response_rate"),
        _tile(fmt_pct(_rate(data, "on_time_rate"), lang), t("kpi_on_time_rate", lang), key="on_time_rate",
              title=t("kpi_on_time_engine", lang)),
    ])


def level_panel(data: dict, lang: str = "zh") -> html.Section:
    return _panel(t("panel_by_level", lang), charts.level_bars(data.get("by_level", []), lang), "level")


def category_panel(data: dict, lang: str = "zh") -> html.Section:
    return _panel(t("panel_by_category", lang),
                  charts.category_bars(data.get("by_category", []), lang, other=t("chart_other", lang)), "category")


def source_panel(data: dict, lang: str = "zh") -> html.Section:
    return _panel(t("panel_by_source", lang),
                  charts.source_ring(data.get("by_source", []), lang, t("chart_total", lang)), "source")


def _trend_panel(data: dict, lang: str, key: str) -> html.Section:
    rows = data.get(key, [])
    names = {"reported": t("series_reported", lang), "closed": t("series_closed", lang)}
    return _panel(t(f"panel_{key}", lang), charts.trend_columns(
        rows, lang, names, all_days=len(rows) <= 7, peak_title=t("chart_peak", lang)), key)


def trend7_panel(data: dict, lang: str = "zh") -> html.Section:
    return _trend_panel(data, lang, "trend7")


def trend30_panel(data: dict, lang: str = "zh") -> html.Section:
    return _trend_panel(data, lang, "trend30")


def panels_left(data: dict, lang: str = "zh") -> html.Div:
    return html.Div(className="pn-column pn-column--left",
                    children=[PANELS[k](data, lang) for k in LEFT])


NOTES = {"col_overdue": "kpi_deadline_engine", "col_on_time": "kpi_on_time_engine"}


def ranking_panel(data: dict, lang: str = "zh") -> html.Section:
    level = data.get("ranking_level", "street")
    rows = data.get("ranking", [])
    head = html.Tr([html.Th(t(k, lang), className=f"pn-col-{k[4:]}",
                            **({"title": t(NOTES[k], lang)} if k in NOTES else {}))
                    for k in ("col_rank", "col_name", "col_open", "col_overdue", "col_on_time")])
    body = [html.Tr(className="pn-row" + (" pn-row--alert" if r["overdue"] else ""), children=[
        html.Td(str(r["rank"]), className="pn-col-rank"),
        html.Td(r["name"], className="pn-col-name", title=r["code"]),
        html.Td(fmt_int(r["open"], lang), className="pn-col-open"),
        html.Td(fmt_int(r["overdue"], lang), className="pn-col-overdue"),
        html.Td(fmt_pct(r["on_time_rate"], lang), className="pn-col-on_time"),
    ]) for r in rows[:RANKING_ROWS]]
    if not rows:
        body = [html.Tr(html.Td(t("panel_no_data", lang), colSpan=5, className="pn-empty"))]
    table = html.Table(className="pn-table", children=[html.Thead(head), html.Tbody(body)])
    return _panel(t(f"panel_ranking_{level}", lang), table, "ranking",
                  note=t("panel_ranking_note", lang, days=data.get("ranking_days", 30)))


def sanling_panel(data: dict, lang: str = "zh") -> html.Section:
    s = data.get("sanling", {"zero": 0, "total": 0, "communities": [], "days": 30})
    failing = [c for c in s.get("communities", []) if not c["zero"]]
    lines = []
    for c in failing[:SANLING_LISTED]:
        parts = [f'{t("sanling_" + k, lang)} {fmt_int(c[k], lang)}'
                 for k in ("petitions", "accidents", "criminal") if c[k]]
        lines.append(html.Li([html.Span(c["name"], className="pn-sl-name"),
                              html.Span(" · ".join(parts), className="pn-sl-counts")]))
    if len(failing) > SANLING_LISTED:
        lines.append(html.Li(t("sanling_more", lang, n=len(failing) - SANLING_LISTED), className="pn-sl-more"))
    if not failing and s.get("total"):
        lines.append(html.Li(t("sanling_all_zero", lang), className="pn-sl-ok"))
    body = html.Div(className="pn-sanling", children=[
        html.Div(t("sanling_count", lang, zero=fmt_int(s.get("zero"), lang), total=fmt_int(s.get("total"), lang)),
                 className="pn-sl-count", **{"data-kpi": "sanling"}),
        html.Ul(lines, className="pn-sl-list"),
    ])
    return _panel(t("panel_sanling", lang, days=s.get("days", 30)), body, "sanling")


def staff_panel(data: dict, lang: str = "zh") -> html.Section:
    st, pa = data.get("staff", {}), data.get("patrols", {})
    return _panel(t("panel_staff", lang), html.Div(className="pn-tiles pn-tiles--3", children=[
        _tile(fmt_int(st.get("on_duty"), lang), t("staff_on_duty", lang), key="on_duty"),
        _tile(fmt_int(st.get("online_staff"), lang), t("staff_online", lang), key="online_staff"),
        _tile(fmt_int(st.get("online_vehicles"), lang), t("vehicles_online", lang), key="online_vehicles"),
        _tile(fmt_int(pa.get("patrols"), lang), t("patrols_today", lang), key="patrols"),
        _tile(fmt_pct(pa.get("coverage"), lang), t("patrol_coverage", lang), key="coverage"),
        _tile(fmt_int(pa.get("issues"), lang), t("patrol_issues", lang), key="patrol_issues"),
    ]), "staff")


def hazards_panel(data: dict, lang: str = "zh") -> html.Section:
    hz = data.get("hazards", {})
    overdue = int(hz.get("overdue", 0))
    return _panel(t("panel_hazards", lang), html.Div(className="pn-tiles pn-tiles--5", children=[
        _tile(fmt_int(hz.get("open"), lang), t("hazards_open", lang), key="hazards_open"),
        _tile(fmt_int(overdue, lang), t("hazards_overdue", lang), "alert" if overdue else "", key="hazards_overdue"),
        _tile(fmt_int(hz.get("due_soon"), lang), t("kpi_due_soon", lang), key="hazards_due_soon",
              title=t("hazards_due_soon_title", lang)),
        _tile(fmt_int(hz.get("found"), lang), t("hazards_found", lang), key="hazards_found"),
        _tile(fmt_int(hz.get("rectified"), lang), t("hazards_rectified", lang), key="hazards_rectified"),
    ]), "hazards")


def people_panel(data: dict, lang: str = "zh") -> html.Section:
    po, ho = data.get("population", {}), data.get("houses", {})
    key = po.get("key_population", {})
    top = [(k, n) for k, n in sorted(key.items(), key=lambda kv: -kv[1]) if n][:3]
    return _panel(t("panel_people", lang), html.Div([
        html.Div(className="pn-tiles pn-tiles--4", children=[
            _tile(fmt_int(po.get("population"), lang), t("people_population", lang), key="population"),
            _tile(fmt_int(po.get("key_total"), lang), t("people_key_total", lang), key="key_total"),
            _tile(fmt_int(ho.get("rental"), lang), t("houses_rental", lang), key="rental"),
            _tile(fmt_int(ho.get("vacant"), lang), t("houses_vacant", lang), key="vacant"),
        ]),
        html.Ul(className="pn-keys", children=[
            html.Li([html.Span(label("key_population", k, lang), className="pn-key-name"),
                     html.Span(fmt_int(n, lang), className="pn-key-count", **{"data-kpi-key": k})])
            for k, n in top]),
    ]), "people")


def panels_right(data: dict, lang: str = "zh") -> html.Div:
    return html.Div(className="pn-column pn-column--right",
                    children=[PANELS[k](data, lang) for k in RIGHT])


# name -> the panel's builder, and the parts of wall_figures it shows (a panel is
# re-sent to a page only when these changed).
PANELS = {
    "level": level_panel, "category": category_panel, "source": source_panel,
    "trend7": trend7_panel, "trend30": trend30_panel,
    "ranking": ranking_panel, "sanling": sanling_panel, "staff": staff_panel,
    "hazards": hazards_panel, "people": people_panel,
}
LEFT = ("level", "category", "source", "trend7", "trend30")
RIGHT = ("ranking", "sanling", "staff", "hazards", "people")
INPUTS = {
    "header": ("today", "rates"),
    "level": ("by_level",), "category": ("by_category",), "source": ("by_source",),
    "trend7": ("trend7",), "trend30": ("trend30",),
    "ranking": ("ranking", "ranking_level", "ranking_days"), "sanling": ("sanling",),
    "staff": ("staff", "patrols"), "hazards": ("hazards",), "people": ("population", "houses"),
}


def updated_text(data: dict, lang: str = "zh") -> str:
    return t("panel_updated", lang, time=fmt_time(data["now"], data["tz"], lang))


def message(text: str, kind: str = "info") -> html.Div:
    return html.Div(text, className=f"pn-message pn-message--{kind}", role="alert" if kind == "error" else None)


# --- slots the callback refills --------------------------------------------------------

def header_container(data: dict | None = None, lang: str = "zh") -> html.Div:
    return html.Div(className="pn-slot pn-slot--header", children=[
        Store(id=ids.PANEL_HASHES, data={}),
        Store(id=ids.PANEL_PATCH),
        Store(id=ids.PANEL_PATCHED),
        Interval(id=ids.PANEL_REFRESH, interval=PANEL_REFRESH_MS),
        html.Div(id=ids.PANEL_HEADER, className="pn-strip-box",
                 children=header_figures(data, lang) if data else None),
        html.Div(id=ids.PANEL_UPDATED, className="pn-updated", children=updated_text(data, lang) if data else None),
    ])


def _column(names: tuple[str, ...], side: str, cid: str, data: dict | None, lang: str) -> html.Div:
    return html.Div(id=cid, className=f"pn-slot pn-slot--{side}", children=html.Div(
        className=f"pn-column pn-column--{side}",
        children=[PANELS[k](data, lang) if data else section(k) for k in names]))


def left_container(data: dict | None = None, lang: str = "zh") -> html.Div:
    return _column(LEFT, "left", ids.PANEL_LEFT, data, lang)


def right_container(data: dict | None = None, lang: str = "zh") -> html.Div:
    return _column(RIGHT, "right", ids.PANEL_RIGHT, data, lang)


def containers(data: dict | None = None, lang: str = "zh") -> dict:
    """{"figures", "left", "right"}: what ``layouts.wall.wall_layout(panels=...)`` takes."""
    return {"figures": header_container(data, lang), "left": left_container(data, lang),
            "right": right_container(data, lang)}
