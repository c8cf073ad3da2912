"""The tables behind every chart as one workbook (openpyxl): a sheet per table, named in the
briefing's language, header row frozen, numbers as numbers, rates as fractions shown as
percentages, days as dates and times as local date-times (Excel has no time zones: the
"About" sheet names the zone).
"""
from __future__ import annotations

import io
from datetime import date, datetime

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from dashboard import kpi
from dashboard.domain import label

from . import fonts
from .figures import HEADLINE, RATES
from .words import level_name, sub_name, unit_name, w

PCT, INT, DAY, TIME, DEC = "0.0%", "#,##0", "yyyy-mm-dd", "yyyy-mm-dd hh:mm", "0.00"
HEAD_FILL = PatternFill("solid", fgColor="EEF2F6")


def _local(dt: datetime, tz) -> datetime:
    return dt.astimezone(kpi.zone(tz)).replace(tzinfo=None)


def _sheet(wb: Workbook, title: str, header: list[str], rows: list[list], formats: list[str | None]):
    ws = wb.create_sheet(title)
    ws.append(header)
    for c in ws[1]:
        c.font = Font(bold=True)
        c.fill = HEAD_FILL
    for r in rows:
        ws.append(r)
    for j, fmt in enumerate(formats, 1):
        width = max([len(str(header[j - 1])) * 2 + 2] + [min(40, len(str(r[j - 1])) + 4) for r in rows if r[j - 1] is not None])
        ws.column_dimensions[get_column_letter(j)].width = width
        if fmt:
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.number_format = fmt
    ws.freeze_panes = "A2"
    return ws


def build(f: dict, lang: str = "zh") -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    tz = f["tz"]
    font = fonts.font()
    # headline
    rows = []
    for k in HEADLINE:
        rate = k in RATES
        prev = f["previous"]["values"] or {}
        year = f["year_ago"]["values"] or {}
        ch = f["changes"][k]
        # changes: a count's as a fraction (shown as %), a rate's in percentage points (a number)
        conv = (lambda x: x) if rate else (lambda x: None if x is None else x / 100.0)
        rows.append([w(f"m_{k}", lang), f["values"][k], prev.get(k), conv(ch["previous"]), year.get(k), conv(ch["year_ago"])])
    ws = _sheet(wb, w("sheet_headline", lang),
                [w("col_metric", lang), w("col_week", lang), w("col_prev", lang), w("col_wow", lang),
                 w("col_year", lang), w("col_yoy", lang)], rows, [None, None, None, None, None, None])
    for i, k in enumerate(HEADLINE, 2):
        fmt = PCT if k in RATES else INT
        for col in "BCE":
            ws[f"{col}{i}"].number_format = fmt
        for col in "DF":
            ws[f"{col}{i}"].number_format = '+0.0" pp";-0.0" pp";0.0" pp"' if k in RATES else "+0.0%;-0.0%;0.0%"
    o = f["open_now"]
    base = len(HEADLINE) + 3
    for i, (key, value) in enumerate((("now_open", o["open"]), ("now_overdue", o["overdue"]),
                                      ("now_hz_open", f["hazards"]["open"]), ("now_hz_overdue", f["hazards"]["overdue"]))):
        ws.cell(base + i, 1, w(key, lang))
        ws.cell(base + i, 2, value).number_format = INT
    # daily
    _sheet(wb, w("sheet_trend", lang), [w("col_day", lang), w("col_reported", lang), w("col_closed", lang)],
           [[date.fromisoformat(r["day"]), r["reported"], r["closed"]] for r in f["trend"]], [DAY, INT, INT])
    total = f["values"]["reported"] or 0
    sh = lambda c: (c / total) if total else None  # noqa: E731
    _sheet(wb, w("sheet_category", lang), [w("col_category", lang), w("col_count", lang), w("col_share", lang)],
           [[label("category", r["key"], lang), r["count"], sh(r["count"])] for r in f["by_category"]], [None, INT, PCT])
    _sheet(wb, w("sheet_subcategory", lang),
           [w("col_subcategory", lang), w("col_category", lang), w("col_count", lang), w("col_share", lang)],
           [[sub_name(r["category"], r["subcategory"], lang), label("category", r["category"], lang), r["count"],
             sh(r["count"])] for r in f["subcategories"]], [None, None, INT, PCT])
    _sheet(wb, w("sheet_level", lang), [w("col_level", lang), w("col_count", lang), w("col_share", lang)],
           [[level_name(r["key"], lang), r["count"], sh(r["count"])] for r in f["by_level"]], [None, INT, PCT])
    _sheet(wb, w("sheet_source", lang), [w("col_source", lang), w("col_count", lang), w("col_share", lang)],
           [[label("source", r["key"], lang), r["count"], sh(r["count"])] for r in f["by_source"]], [None, INT, PCT])
    _sheet(wb, w("sheet_ranking", lang),
           [w("col_rank", lang), unit_name(f["child_level"], lang), w("col_code", lang), w("col_open", lang),
            w("col_overdue", lang)] + [w(f"m_{k}", lang) for k in RATES] + [w("col_mark", lang)],
           [[r["rank"], r["name"], r["code"], r["open"], r["overdue"]] + [r[k]["rate"] for k in RATES]
            + [w(r["mark"], lang) if r["mark"] else None] for r in f["units"]],
           [INT, None, "@", INT, INT] + [PCT] * len(RATES) + [None])
    _sheet(wb, w("sheet_overdue", lang),
           [w("col_event", lang), w("col_grid", lang), w("col_code", lang), w("col_category", lang),
            w("col_subcategory", lang), w("col_level", lang), w("col_source", lang), w("col_reported_at", lang),
            w("col_deadline", lang), w("col_overdue_h", lang), w("col_overtime", lang), w("col_escalated", lang)],
           [[r["id"], r["grid_name"], r["grid_code"], label("category", r["category"], lang),
             sub_name(r["category"], r["subcategory"], lang), level_name(r["level"], lang),
             label("source", r["source"], lang), _local(r["reported_at"], tz), _local(r["deadline_at"], tz),
             r["overdue_hours"], r["overtime"], r["escalations"]] for r in f["overdue"]["rows"]],
           ["@", None, "@", None, None, None, None, TIME, TIME, "0.0", DEC, INT])
    hz = f["hazards"]
    _sheet(wb, w("sheet_hazards", lang), [w("hz_metric", lang), w("col_count", lang)],
           [[w(f"hz_{k}", lang), hz[k]] for k in ("found", "rectified", "due", "met", "missed", "open", "overdue")],
           [None, INT])
    _sheet(wb, w("sheet_sanling", lang),
           [unit_name("community", lang), w("col_code", lang), w("sanling_petitions", lang),
            w("sanling_accidents", lang), w("sanling_criminal", lang), w("sheet_sanling", lang)],
           [[r["name"], r["code"], r["petitions"], r["accidents"], r["criminal"], w("yes", lang) if r["zero"] else None]
            for r in f["sanling"]["communities"]], [None, "@", INT, INT, INT, None])
    names = f.get("grid_names", {})
    _sheet(wb, w("sheet_grids", lang),
           [w("col_grid", lang), w("col_code", lang), w("col_population", lang), w("col_count", lang),
            w("col_per1000", lang)],
           [[names.get(c, c), c, g["population"], g["events"], g["per_1000"]] for c, g in sorted(f["grids"].items())],
           [None, "@", INT, INT, DEC])
    about = [[w("about_scope", lang), f"{f['scope']['name']} ({f['scope']['code']})"],
             [w("about_week", lang), f["week"]["iso"]],
             [w("about_generated", lang), _local(datetime.fromisoformat(f["generated_at"]), tz)],
             [w("about_tz", lang), tz], [w("about_font", lang), font.describe(lang)],
             [w("about_history", lang), _local(datetime.fromisoformat(f["first_report"]), tz) if f["first_report"] else None],
             [w("overdue_note", lang).split("。")[0], None]]
    ws = _sheet(wb, w("sheet_about", lang), [w("col_metric", lang), ""], about, [None, None])
    ws["B4"].number_format = TIME
    ws["B7"].number_format = TIME
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
