"""The wall's charts as plain Dash html components: data in, components out.

No plotly on the wall: a plotly.js bundle is 1.4 MB on the wire and a long
main-thread task on every redraw, while these are a few dozen divs sized by
CSS (dashboard/assets/panels.css, viewport units, so a 3840×2160 wall reads
like a 1920×1080 one). Every number a chart encodes is also written as text
next to it, so the chart reads without colour and to a screen reader.

Colours are the Okabe–Ito palette (distinguishable with the common colour
vision deficiencies); level 1 is vermilion, level 2 orange, level 3 sky blue,
and no chart relies on red-versus-green alone.
"""
from __future__ import annotations

from datetime import date

from dash import html

from .domain import label

# Okabe–Ito
ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILION, PURPLE, GREY = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
PALETTE = (SKY, ORANGE, GREEN, YELLOW, PURPLE, VERMILION, BLUE, GREY)
LEVEL_COLOURS = {"1": VERMILION, "2": ORANGE, "3": SKY}
SERIES = {"reported": SKY, "closed": ORANGE}
EMPTY_RING = "rgba(154,168,184,0.25)"


def fmt_int(n) -> str:
    """Thousands separators (zh-CN and en both group by three with a comma)."""
    return "—" if n is None else f"{int(n):,}"


def share(n: int, total: int) -> float:
    """n / total as a percentage rounded to 0.1, 0 when total is 0."""
    return round(100.0 * n / total, 1) if total else 0.0


def day_label(day: str, lang: str) -> str:
    """Month/day, the short form both zh-CN and en-US use (seven fit a side column)."""
    d = date.fromisoformat(day)
    return f"{d.month}/{d.day}"


def fold_rows(rows: list[dict], max_rows: int, other: str) -> list[dict]:
    """At most ``max_rows`` rows; the rest summed into one row keyed ``other``, never dropped."""
    if len(rows) <= max_rows:
        return list(rows)
    head, rest = rows[:max_rows - 1], rows[max_rows - 1:]
    return head + [{"key": other, "count": sum(int(r["count"]) for r in rest)}]


def horizontal_bars(items: list[tuple[str, str, int, str]], kind: str = "") -> html.Div:
    """items: (key, label, value, colour), drawn top to bottom in the given order.

    Bar lengths are relative to the largest value, so the largest bar fills its track.
    """
    top = max([v for _, _, v, _ in items] + [0])
    rows = [html.Div(className="ch-bar-row", **{"data-key": key}, children=[
        html.Span(text, className="ch-bar-label"),
        html.Span(className="ch-bar-track", children=html.Span(
            className="ch-bar-fill", style={"width": f"{share(v, top)}%", "background": colour})),
        html.Span(fmt_int(v), className="ch-bar-value"),
    ]) for key, text, v, colour in items]
    return html.Div(rows, className="ch-bars" + (f" ch-bars--{kind}" if kind else ""))


def level_bars(rows: list[dict], lang: str = "zh") -> html.Div:
    """Events per level, in level order (1, 2, 3 from the top), not by size."""
    items = [(str(r["key"]), label("event_level", int(r["key"]) if str(r["key"]).isdigit() else r["key"], lang),
              int(r["count"]), LEVEL_COLOURS.get(str(r["key"]), GREY)) for r in rows]
    return horizontal_bars(items, "level")


OTHER = "_other"


def category_bars(rows: list[dict], lang: str = "zh", other: str = "other", max_rows: int = 7) -> html.Div:
    """Events per category, largest first; beyond ``max_rows`` the rest are summed as ``other``."""
    shown = fold_rows(rows, max_rows, OTHER)
    items = [(r["key"], other if r["key"] == OTHER else label("category", r["key"], lang), int(r["count"]),
              GREY if r["key"] == OTHER else PALETTE[i % len(PALETTE)]) for i, r in enumerate(shown)]
    return horizontal_bars(items, "category")


def source_ring(rows: list[dict], lang: str = "zh", total_text: str = "") -> html.Div:
    """A ring (CSS conic-gradient) of events per channel with the total in its hole,
    and a legend giving each channel's count and share as text."""
    rows = [r for r in rows if int(r["count"]) > 0]
    total = sum(int(r["count"]) for r in rows)
    stops, at = [], 0.0
    for i, r in enumerate(rows):
        end = 100.0 if i == len(rows) - 1 else at + 100.0 * int(r["count"]) / total
        stops.append(f"{PALETTE[i % len(PALETTE)]} {at:.2f}% {end:.2f}%")
        at = end
    ring = html.Div(className="ch-ring", style={
        "background": f"conic-gradient({', '.join(stops)})" if stops else EMPTY_RING}, children=[
        html.Div(className="ch-ring-hole", children=[
            html.Span(fmt_int(total), className="ch-ring-total"),
            html.Span(total_text, className="ch-ring-caption") if total_text else None,
        ]),
    ])
    legend = html.Ul(className="ch-legend", children=[
        html.Li(className="ch-legend-row", **{"data-key": r["key"]}, children=[
            html.Span(className="ch-swatch", style={"background": PALETTE[i % len(PALETTE)]}),
            html.Span(label("source", r["key"], lang), className="ch-legend-label"),
            html.Span(fmt_int(r["count"]), className="ch-legend-value"),
            html.Span(f"{share(int(r['count']), total)}%", className="ch-legend-share"),
        ]) for i, r in enumerate(rows)])
    return html.Div([ring, legend], className="ch-donut")


def _day_columns(row: dict, names: dict, top: int, lang: str) -> html.Div:
    """One day's pair of columns, heights relative to the period's largest value."""
    title = (f'{day_label(row["day"], lang)} · {names["reported"]} {fmt_int(row["reported"])}'
             f' · {names["closed"]} {fmt_int(row["closed"])}')
    return html.Div(className="ch-day", title=title, children=[
        html.Span(className=f"ch-col ch-col--{k}", style={"height": f"{share(int(row[k]), top)}%"})
        for k in ("reported", "closed")])


def trend_columns(rows: list[dict], lang: str = "zh", names: dict | None = None,
                  all_days: bool = False, peak_title: str | None = None) -> html.Div:
    """Reported and closed per day as paired columns, oldest on the left.

    Written as text: the largest daily value (the top of the scale; its
    tooltip is ``peak_title`` with ``{n}`` filled in), the first and last day
    (every day when ``all_days``), and each series' total over the period in
    the legend; each day's pair carries its numbers as a tooltip.
    """
    names = names or {"reported": "reported", "closed": "closed"}
    top = max([int(r[k]) for r in rows for k in ("reported", "closed")] + [0])
    days = [_day_columns(r, names, top, lang) for r in rows]
    marked = rows if all_days or len(rows) < 2 else [rows[0], rows[-1]]
    ticks = [html.Span(day_label(r["day"], lang), className="ch-tick") for r in marked]
    legend = html.Div(className="ch-series", children=[
        html.Span(className=f"ch-series-item ch-series--{k}", **{"data-series": k}, children=[
            html.Span(className="ch-swatch", style={"background": SERIES[k]}),
            html.Span(names[k], className="ch-series-name"),
            html.Span(fmt_int(sum(int(r[k]) for r in rows)), className="ch-series-total"),
        ]) for k in ("reported", "closed")])
    axis = html.Div(className="ch-axis", title=peak_title.format(n=fmt_int(top)) if peak_title else None,
                    children=[html.Span(fmt_int(top), className="ch-max"), html.Span("0", className="ch-zero")])
    plot = html.Div(className="ch-plot", children=[
        axis,
        html.Div(days, className="ch-days" + (" ch-days--wide" if len(rows) > 10 else "")),
        html.Span(),  # under the axis
        html.Div(ticks, className="ch-ticks" + ("" if all_days else " ch-ticks--ends")),
    ])
    return html.Div([legend, plot], className="ch-trend")
