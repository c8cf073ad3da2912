"""The briefing as one PDF (ReportLab): A4 portrait, the font embedded, the scope, week and
generation time in every page's header, "page n of N" in the footer, and a table of contents
for a district's briefing.

The story is built twice: once to collect every string the document draws, then, with a
TrueType subset of the font made for exactly those characters (``fonts.pdf_font``, which refuses
any character the font lacks), for real.
"""
from __future__ import annotations

import io
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (
    BaseDocTemplate, Frame, Image, KeepTogether, PageBreak, PageTemplate, Paragraph, Spacer, Table, TableStyle,
)
from reportlab.platypus.tableofcontents import TableOfContents

from dashboard.charts import BLUE, VERMILION
from dashboard.domain import label

from . import fonts
from .figures import HEADLINE, RATES
from .words import change_cell, level_name, n, pct, share, sub_name, unit_name, w

# images as plain Flate streams, without ReportLab's ASCII85 wrapping: a sixth smaller, a little
# faster (the briefing is this process's only ReportLab user)
rl_config.useA85 = 0

PAGE_W, PAGE_H = A4
MARGIN = 18 * mm
BODY_W = PAGE_W - 2 * MARGIN
OVERDUE_IN_PDF = 30
HOT_IN_PDF = 10
# A rate over a handful of residents ranks a school's or a market's dedicated grid first on a few
# events; the ranking is of places people live, so it needs a basic grid's order of residents.
HOT_MIN_RESIDENTS = 200
ALWAYS = "".join(chr(c) for c in range(32, 127))  # digits and ASCII that page furniture may draw
HEAD_BG, RULE, MUTED = colors.HexColor("#EEF2F6"), colors.HexColor("#BCCCDC"), colors.HexColor("#52606D")


class _Text:
    """Records every string the story draws (first pass) and escapes it for Paragraph markup."""

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, s) -> str:
        s = "" if s is None else str(s)
        self.seen.append(s)
        return escape(s)


class _Styles:
    def __init__(self, font: str):
        base = dict(fontName=font, textColor=colors.HexColor("#1F2933"), alignment=TA_LEFT, wordWrap="CJK")
        self.title = ParagraphStyle("title", fontSize=20, leading=26, spaceAfter=6, **base)
        self.h1 = ParagraphStyle("h1", fontSize=14, leading=19, spaceBefore=10, spaceAfter=6, keepWithNext=1, **base)
        self.toc_title = ParagraphStyle("toc_title", parent=self.h1)  # not an entry of the contents
        self.body = ParagraphStyle("body", fontSize=10.5, leading=16, spaceAfter=4, **base)
        self.small = ParagraphStyle("small", fontSize=8.5, leading=12, spaceAfter=3, **{**base, "textColor": MUTED})
        self.cell = ParagraphStyle("cell", fontSize=8.5, leading=11, **base)
        self.toc = [ParagraphStyle("toc0", fontSize=11, leading=18, **base)]


class _Doc(BaseDocTemplate):
    def build(self, *a, **k):
        self.filename = io.BytesIO()  # multiBuild's passes each write a whole document: keep the last
        return super().build(*a, **k)

    def afterFlowable(self, flowable):
        if isinstance(flowable, Paragraph) and flowable.style.name == "h1":
            self.notify("TOCEntry", (0, flowable.getPlainText(), self.page))


def _canvas_maker(font: str, header: str, page_text):
    class _Canvas(rl_canvas.Canvas):
        """Pages are kept until the end so the footer can say how many there are."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._kept = []

        def showPage(self):
            self._kept.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._kept)
            for state in self._kept:
                self.__dict__.update(state)
                self.setFont(font, 8.5)
                self.setFillColor(MUTED)
                self.drawString(MARGIN, PAGE_H - 11 * mm, header)
                self.setStrokeColor(RULE)
                self.line(MARGIN, PAGE_H - 13 * mm, PAGE_W - MARGIN, PAGE_H - 13 * mm)
                self.drawRightString(PAGE_W - MARGIN, 10 * mm, page_text(self._pageNumber, total))
                super().showPage()
            super().save()
    return _Canvas


def _table(rows: list[list], widths: list[float], st: _Styles, t: _Text, align_right_from: int = 1,
           extra: list | None = None) -> Table:
    data = [[Paragraph(t(c), st.cell) for c in r] for r in rows]
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [("FONTNAME", (0, 0), (-1, -1), st.cell.fontName), ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
             ("LINEBELOW", (0, 0), (-1, 0), 0.6, RULE), ("LINEBELOW", (0, -1), (-1, -1), 0.6, RULE),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("TOPPADDING", (0, 0), (-1, -1), 2),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    table.setStyle(TableStyle(style + (extra or [])))
    return table


def _image(png: bytes) -> Image:
    return Image(io.BytesIO(png), width=BODY_W, height=BODY_W * 9 / 16)


def local(iso: str, tz) -> str:
    from dashboard import kpi

    return datetime.fromisoformat(iso).astimezone(kpi.zone(tz)).strftime("%Y-%m-%d %H:%M")


def _story(f: dict, charts: dict, summary: list[str], lang: str, font: str, t: _Text) -> list:
    st = _Styles(font)
    P = lambda s, style=st.body: Paragraph(t(s), style)  # noqa: E731
    gen = local(f["generated_at"], f["tz"])
    week_label = _week_label(f, lang)
    story = [P(w("title", lang), st.title), P(" › ".join(f["scope"]["chain"]) + f"（{f['scope']['code']}）"),
             P(week_label), P(w("about_generated", lang) + "：" + gen + f" {f['tz']}" if lang == "zh"
                              else f"{w('about_generated', lang)}: {gen} {f['tz']}"),
             P(w("font_note", lang, font=fonts.font().describe(lang)), st.small)]
    if f["partial"]:
        story.append(P(w("partial", lang), st.small))
    if not f["has_data"]:
        story.append(P(w("no_data", lang)))
    if f["scope"]["level"] == "district":
        # the contents' table names its own font, else ReportLab's default (Helvetica, not embedded)
        toc = TableOfContents(tableStyle=TableStyle([("FONTNAME", (0, 0), (-1, -1), font),
                                                     ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        toc.levelStyles = st.toc
        t(w("toc", lang))
        story += [P(w("toc", lang), st.toc_title), toc, PageBreak()]
    h = lambda key: P(w(key, lang), st.h1)  # noqa: E731

    story += [h("sec_summary"), *[P(s) for s in summary]]

    # headline
    v, prev, year = f["values"], f["previous"], f["year_ago"]
    rows = [[w("col_metric", lang), w("col_week", lang), w("col_prev", lang) + f" {prev['week']}",
             w("col_wow", lang), w("col_year", lang) + f" {year['week']}", w("col_yoy", lang)]]
    for k in HEADLINE:
        kind = "rate" if k in RATES else "count"
        fmt = pct if kind == "rate" else n
        other = lambda c: (fmt(c["values"][k]) if c["values"] else w("no_history", lang))  # noqa: E731
        rows.append([w(f"m_{k}", lang), fmt(v[k]), other(prev), change_cell(kind, f["changes"][k]["previous"], lang),
                     other(year), change_cell(kind, f["changes"][k]["year_ago"], lang)])
    story += [h("sec_headline"), _table(rows, [34 * mm, 22 * mm, 30 * mm, 26 * mm, 32 * mm, 30 * mm], st, t),
              Spacer(1, 4 * mm)]
    o = f["open_now"]
    rows = [[w("now_open", lang), w("now_overdue", lang), w("now_hz_open", lang), w("now_hz_overdue", lang)],
            [n(o["open"]), n(o["overdue"]), n(f["hazards"]["open"]), n(f["hazards"]["overdue"])]]
    story += [_table(rows, [BODY_W / 4] * 4, st, t), P(w("as_of", lang, time=gen), st.small)]

    # trend
    rows = [[w("col_day", lang), w("col_reported", lang), w("col_closed", lang)]]
    rows += [[r["day"], n(r["reported"]), n(r["closed"])] for r in f["trend"]]
    rows.append([w("col_total", lang), n(sum(r["reported"] for r in f["trend"])), n(sum(r["closed"] for r in f["trend"]))])
    story += [h("sec_trend"), _image(charts["trend"].png), _table(rows, [40 * mm, 30 * mm, 30 * mm], st, t)]

    # categories, tiers, channels
    total = v["reported"]
    story += [h("sec_category"), _image(charts["categories"].png)]
    rows = [[w("col_category", lang), w("col_count", lang), w("col_share", lang)]]
    rows += [[label("category", r["key"], lang), n(r["count"]), share(r["count"], total)] for r in f["by_category"]]
    rows.append([w("col_total", lang), n(sum(r["count"] for r in f["by_category"])), ""])
    story += [_table(rows, [50 * mm, 30 * mm, 30 * mm], st, t), _image(charts["subcategories"].png)]
    rows = [[w("col_subcategory", lang), w("col_category", lang), w("col_count", lang), w("col_share", lang)]]
    rows += [[sub_name(r["category"], r["subcategory"], lang), label("category", r["category"], lang), n(r["count"]),
              share(r["count"], total)] for r in f["subcategories"]]
    story += [_table(rows, [55 * mm, 40 * mm, 25 * mm, 25 * mm], st, t), _image(charts["levels"].png)]
    rows = [[w("col_level", lang), w("col_count", lang), w("col_share", lang)]]
    rows += [[level_name(r["key"], lang), n(r["count"]), share(r["count"], total)] for r in f["by_level"]]
    story += [_table(rows, [50 * mm, 30 * mm, 30 * mm], st, t), _image(charts["sources"].png)]
    rows = [[w("col_source", lang), w("col_count", lang), w("col_share", lang)]]
    rows += [[label("source", r["key"], lang), n(r["count"]), share(r["count"], total)] for r in f["by_source"]]
    story.append(_table(rows, [50 * mm, 30 * mm, 30 * mm], st, t))

    # ranking
    unit = unit_name(f["child_level"], lang)
    rows = [[w("col_rank", lang), unit, w("col_open", lang), w("col_overdue", lang)]
            + [w(f"m_{k}", lang) for k in RATES] + [w("col_mark", lang)]]
    extra = []
    for i, r in enumerate(f["units"], 1):
        rows.append([str(r["rank"]), r["name"], n(r["open"]), n(r["overdue"])] + [pct(r[k]["rate"]) for k in RATES]
                    + [w(r["mark"], lang) if r["mark"] else ""])
        if r["mark"]:
            extra.append(("LINEBEFORE", (0, i), (0, i), 2.5, colors.HexColor(BLUE if r["mark"] == "best" else VERMILION)))
    story += [h("sec_ranking"), _image(charts["ranking"].png),
              _table(rows, [10 * mm, 34 * mm, 13 * mm, 13 * mm] + [17 * mm] * 5 + [14 * mm], st, t, extra=extra)]

    # overdue events and hazards
    od = f["overdue"]
    story += [h("sec_overdue"), P(w("overdue_note", lang), st.small)]
    if od["total"]:
        rows = [[w("col_event", lang), w("col_grid", lang), w("col_subcategory", lang), w("col_level", lang),
                 w("col_deadline", lang), w("col_overdue_h", lang), w("col_overtime", lang), w("col_escalated", lang)]]
        for r in od["rows"][:OVERDUE_IN_PDF]:
            rows.append([r["id"], r["grid_name"] or r["grid_code"], sub_name(r["category"], r["subcategory"], lang),
                         level_name(r["level"], lang), local(r["deadline_at"].isoformat(), f["tz"]),
                         f"{r['overdue_hours']:.1f}", "—" if r["overtime"] is None else f"{r['overtime']:.2f}",
                         w("yes", lang) if r["escalations"] else ""])
        story.append(_table(rows, [24 * mm, 30 * mm, 26 * mm, 24 * mm, 24 * mm, 14 * mm, 14 * mm, 14 * mm], st, t))
        if od["total"] > OVERDUE_IN_PDF:
            story.append(P(w("overdue_more", lang, n=n(od["total"] - OVERDUE_IN_PDF)), st.small))
    else:
        story.append(P(w("overdue_none", lang)))
    hz = f["hazards"]
    rows = [[w("hz_metric", lang), w("col_count", lang)]]
    rows += [[w(f"hz_{k}", lang), n(hz[k])] for k in ("found", "rectified", "due", "met", "missed", "open", "overdue")]
    story += [KeepTogether([_image(charts["hazards"].png), _table(rows, [60 * mm, 30 * mm], st, t)])]

    # 三零
    sl = f["sanling"]
    story += [h("sec_sanling"), P(w("sanling_line", lang, zero=n(sl["zero"]), total=n(sl["total"])))]
    lost = [r for r in sl["communities"] if not r["zero"]]
    if lost:
        rows = [[unit_name("community", lang), w("sanling_petitions", lang), w("sanling_accidents", lang),
                 w("sanling_criminal", lang)]]
        rows += [[r["name"], n(r["petitions"]), n(r["accidents"]), n(r["criminal"])] for r in lost]
        story.append(_table(rows, [50 * mm, 25 * mm, 25 * mm, 25 * mm], st, t))
    elif sl["total"]:
        story.append(P(w("sanling_none", lang)))
    story.append(P(w("sanling_rule", lang), st.small))

    # hotspots
    story += [h("sec_hotspots"), _image(charts["hotspots"].png), P(w("hot_caption", lang), st.small)]
    rated = sorted(((c, g) for c, g in f["grids"].items()
                    if g["per_1000"] is not None and g["population"] >= HOT_MIN_RESIDENTS),
                   key=lambda cg: (-cg[1]["per_1000"], cg[0]))[:HOT_IN_PDF]
    if rated:
        names = f.get("grid_names", {})
        rows = [[w("col_grid", lang), w("col_population", lang), w("col_count", lang), w("col_per1000", lang)]]
        rows += [[names.get(c, c), n(g["population"]), n(g["events"]), f"{g['per_1000']:.2f}"] for c, g in rated]
        story += [P(w("hot_top", lang)), _table(rows, [60 * mm, 30 * mm, 25 * mm, 25 * mm], st, t),
                  P(w("hot_top_rule", lang).format(n(HOT_MIN_RESIDENTS)), st.small)]
    return story


def _week_label(f: dict, lang: str) -> str:
    a, b = f["week"]["days"][0], f["week"]["days"][-1]
    if lang == "zh":
        return f"{f['week']['year']}年第{f['week']['week']}周（{f['week']['iso']}，{a} 至 {b}）"
    return f"Week {f['week']['iso']} ({a} to {b})"


def header_text(f: dict, lang: str) -> str:
    return w("header", lang, scope=f"{f['scope']['name']}（{f['scope']['code']}）" if lang == "zh"
             else f"{f['scope']['name']} ({f['scope']['code']})",
             week=f["week"]["iso"], time=local(f["generated_at"], f["tz"]))


def build(f: dict, charts: dict, summary: list[str], lang: str = "zh") -> bytes:
    """The PDF's bytes."""
    record = _Text()
    _story(f, charts, summary, lang, "Helvetica", record)
    header = header_text(f, lang)
    page_words = w("page", lang, n="", total="")
    font = fonts.pdf_font("".join(record.seen) + header + page_words + ALWAYS)
    doc = _Doc(io.BytesIO(), pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 2 * mm,
               bottomMargin=MARGIN, initialFontName=font, initialFontSize=9,
               title=f"{w('title', lang)} {f['scope']['name']} {f['week']['iso']}",
               author="网格化治理指挥中心" if lang == "zh" else "Grid Governance Command Center",
               subject=header, lang="zh-CN" if lang == "zh" else "en")
    frame = Frame(MARGIN, MARGIN, BODY_W, PAGE_H - 2 * MARGIN - 2 * mm, id="body")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    story = _story(f, charts, summary, lang, font, _Text())
    maker = _canvas_maker(font, header, lambda i, total: w("page", lang, n=i, total=total))
    if f["scope"]["level"] == "district":
        doc.multiBuild(story, canvasmaker=maker)
    else:
        doc.build(story, canvasmaker=maker)
    return doc.filename.getvalue()
