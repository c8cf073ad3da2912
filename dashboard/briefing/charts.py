"""The briefing's charts with matplotlib: PNG 1× (the document), PNG 2× (a 4K slide) and SVG.

Colours are the wall's (``dashboard.charts``: Okabe–Ito, level and series
colours; ``layouts.map``: the choropleth's viridis classes and the hazard
symbol colour) on a white ground for print. Every value a chart encodes is
also written on it as text, so it reads in black and white.

matplotlib's object API only (``Figure`` + Agg canvas), never pyplot: the web
page renders briefings on several threads. Every text a chart draws is
checked against the font's character map after layout and before any file is
written (``fonts.Font.require``).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.text import Text

from dashboard.charts import BLUE, GREEN, GREY, LEVEL_COLOURS, ORANGE, PALETTE, SERIES, SKY, VERMILION
from dashboard.domain import label

from . import fonts
from .words import level_name, n, pct, sub_name, unit_name, w

SIZE_IN = (8.0, 4.5)   # 16:9, half a slide
DPI_1X = 160           # 1280 × 720 px: the document's width at ~190 dpi
DPI_2X = 320           # 2560 × 1440 px: sharp on a 3840 × 2160 slide
# zlib level 1: flat-colour charts compress nearly as well as at 6, in a third of the time
PNG_OPTIONS = {"compress_level": 1}
INK, MUTED, RULE = "#1F2933", "#52606D", "#D9E2EC"  # text and rules on paper
WEEKDAYS = {"zh": "一二三四五六日", "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


@dataclass
class Chart:
    name: str
    title: str
    png: bytes
    png2x: bytes
    svg: bytes


def _rc() -> dict:
    return {"font.family": fonts.mpl_family(), "font.size": 11, "axes.unicode_minus": False,
            "svg.fonttype": "path", "axes.edgecolor": RULE, "axes.labelcolor": INK,
            "xtick.color": MUTED, "ytick.color": MUTED, "text.color": INK}


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=SIZE_IN, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("white")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def render(name: str, title: str, fig: Figure) -> Chart:
    """The three files of one chart, after checking every drawn text has its glyphs."""
    font = fonts.font()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI_1X, facecolor="white", pil_kwargs=PNG_OPTIONS)  # lays text out too
    for t in fig.findobj(Text):
        if t.get_visible():
            font.require(t.get_text())
    png2x, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png2x, format="png", dpi=DPI_2X, facecolor="white", pil_kwargs=PNG_OPTIONS)
    FigureCanvasSVG(fig).print_svg(svg)
    FigureCanvasAgg(fig)
    return Chart(name, title, png.getvalue(), png2x.getvalue(), svg.getvalue())


def _title(fig: Figure, text: str) -> None:
    fig.suptitle(text, x=0.02, ha="left", fontsize=14, fontweight="bold", color=INK)


def _empty(ax, lang: str) -> None:
    ax.text(0.5, 0.5, w("no_events", lang), ha="center", va="center", color=MUTED, transform=ax.transAxes)


def _hbars(ax, labels: list[str], values: list[float], colours: list[str], texts: list[str]) -> None:
    """Horizontal bars, first row on top, each with its value written at its end."""
    ys = list(range(len(values)))[::-1]
    ax.barh(ys, values, color=colours, height=0.62)
    ax.set_yticks(ys, labels=labels)
    top = max(values + [0]) or 1
    for y, v, t in zip(ys, values, texts):
        ax.text(v + top * 0.01, y, t, va="center", fontsize=10, color=INK)
    ax.set_xlim(0, top * 1.18)
    ax.tick_params(axis="y", length=0)
    ax.xaxis.grid(True, color=RULE, linewidth=0.6)
    ax.set_axisbelow(True)


def day_tick(day: str, lang: str) -> str:
    d = date.fromisoformat(day)
    wd = WEEKDAYS[lang if lang == "en" else "zh"][d.weekday()]
    return f"{d.month}/{d.day}\n{'周' + wd if lang != 'en' else wd}"


def trend(f: dict, lang: str) -> Chart:
    with _rc_context():
        fig, ax = _figure()
        rows = f["trend"]
        xs = range(len(rows))
        width = 0.38
        for off, key, name in ((-width / 2, "reported", "col_reported"), (width / 2, "closed", "col_closed")):
            vals = [r[key] for r in rows]
            bars = ax.bar([x + off for x in xs], vals, width, color=SERIES[key],
                          label=f"{w(name, lang)} {n(sum(vals))}")
            ax.bar_label(bars, labels=[n(v) for v in vals], fontsize=8, padding=2, color=INK)
        ax.set_xticks(list(xs), labels=[day_tick(r["day"], lang) for r in rows])
        ax.yaxis.grid(True, color=RULE, linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_ylim(0, max([r[k] for r in rows for k in ("reported", "closed")] + [1]) * 1.15)
        ax.legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)  # the title is left
        title = w("ch_trend", lang)
        _title(fig, title)
        return render("trend", title, fig)


def categories(f: dict, lang: str) -> Chart:
    with _rc_context():
        fig, ax = _figure()
        rows = f["by_category"]
        total = sum(r["count"] for r in rows)
        if total:
            _hbars(ax, [label("category", r["key"], lang) for r in rows], [r["count"] for r in rows],
                   [PALETTE[i % len(PALETTE)] for i in range(len(rows))],
                   [f"{n(r['count'])}（{pct(r['count'] / total)}）" if lang == "zh"
                    else f"{n(r['count'])} ({pct(r['count'] / total)})" for r in rows])
        else:
            _empty(ax, lang)
        title = w("ch_category", lang)
        _title(fig, title)
        return render("categories", title, fig)


def subcategories(f: dict, lang: str) -> Chart:
    with _rc_context():
        fig, ax = _figure()
        rows = f["subcategories"]
        # a 小类 wears its 大类's colour from the category chart
        colour = {r["key"]: PALETTE[i % len(PALETTE)] for i, r in enumerate(f["by_category"])}
        if rows:
            _hbars(ax, [sub_name(r["category"], r["subcategory"], lang) for r in rows], [r["count"] for r in rows],
                   [colour.get(r["category"], GREY) for r in rows], [n(r["count"]) for r in rows])
        else:
            _empty(ax, lang)
        title = w("ch_subcategory", lang, n=len(rows) or 10)
        _title(fig, title)
        return render("subcategories", title, fig)


def levels(f: dict, lang: str) -> Chart:
    with _rc_context():
        fig, ax = _figure()
        rows = f["by_level"]
        total = sum(r["count"] for r in rows)
        _hbars(ax, [level_name(r["key"], lang) for r in rows], [r["count"] for r in rows],
               [LEVEL_COLOURS.get(str(r["key"]), GREY) for r in rows],
               [n(r["count"]) + (f" ({pct(r['count'] / total)})" if total else "") for r in rows])
        title = w("ch_level", lang)
        _title(fig, title)
        return render("levels", title, fig)


def sources(f: dict, lang: str) -> Chart:
    """A ring of events per channel with the total in its hole, as the wall draws it."""
    with _rc_context():
        fig, ax = _figure()
        ax.set_axis_off()
        rows = [r for r in f["by_source"] if r["count"] > 0]
        total = sum(r["count"] for r in rows)
        if total:
            colours = [PALETTE[i % len(PALETTE)] for i in range(len(rows))]
            ax.pie([r["count"] for r in rows], colors=colours, startangle=90, counterclock=False,
                   wedgeprops={"width": 0.38, "edgecolor": "white"}, radius=1.0, center=(0, 0))
            ax.text(0, 0, n(total), ha="center", va="center", fontsize=18, fontweight="bold")
            ax.set_aspect("equal")
            ax.set_xlim(-1.1, 3.6)
            for i, r in enumerate(rows):
                y = 0.85 - i * 0.32
                ax.add_patch(_swatch(1.45, y, colours[i]))
                ax.text(1.62, y, f"{label('source', r['key'], lang)}  {n(r['count'])}  {pct(r['count'] / total)}",
                        va="center", fontsize=11)
            ax.set_ylim(-1.1, 1.1)
        else:
            _empty(ax, lang)
        title = w("ch_source", lang)
        _title(fig, title)
        return render("sources", title, fig)


def _swatch(x: float, y: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.07, y - 0.07), 0.14, 0.14, color=colour)


def ranking(f: dict, lang: str) -> Chart:
    """On-time closure rate per unit, in rank order; best and worst coloured and named in text."""
    with _rc_context():
        fig, ax = _figure()
        rows = f["units"][:15]
        if rows:
            colours, texts = [], []
            for r in rows:
                rate = r["on_time_rate"]["rate"]
                colours.append(BLUE if r["mark"] == "best" else VERMILION if r["mark"] == "worst" else SKY)
                mark = f" {w(r['mark'], lang)}" if r["mark"] else ""
                texts.append(f"{pct(rate)}{mark}")
            _hbars(ax, [r["name"] for r in rows],
                   [(r["on_time_rate"]["rate"] or 0.0) * 100.0 for r in rows], colours, texts)
            ax.set_xlim(0, 118)
        else:
            _empty(ax, lang)
        title = w("ch_ranking", lang, unit=unit_name(f["child_level"], lang))
        _title(fig, title)
        return render("ranking", title, fig)


def hazards(f: dict, lang: str) -> Chart:
    from layouts.map import SYMBOL_COLOURS

    with _rc_context():
        fig, ax = _figure()
        h = f["hazards"]
        keys = ("found", "rectified", "due", "met", "missed")
        colours = [SYMBOL_COLOURS["hazard"], GREEN, ORANGE, BLUE, VERMILION]
        _hbars(ax, [w(f"hz_{k}", lang) for k in keys], [h[k] for k in keys], colours, [n(h[k]) for k in keys])
        title = w("ch_hazards", lang)
        _title(fig, title)
        return render("hazards", title, fig)


_RC_LOCK = threading.RLock()


class _rc_context:
    """matplotlib's rc_context with the briefing's font and paper colours. rcParams are global,
    so one chart is built at a time (the page may render briefings on several threads)."""

    def __enter__(self):
        import matplotlib

        _RC_LOCK.acquire()
        try:
            self._ctx = matplotlib.rc_context(_rc())
            return self._ctx.__enter__()
        except BaseException:
            _RC_LOCK.release()
            raise

    def __exit__(self, *exc):
        try:
            return self._ctx.__exit__(*exc)
        finally:
            _RC_LOCK.release()


CHARTS = (("trend", trend), ("categories", categories), ("subcategories", subcategories), ("levels", levels),
          ("sources", sources), ("ranking", ranking), ("hazards", hazards))
