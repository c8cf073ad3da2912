"""The /audit page: the audit log for an administrator (callbacks/audit.py checks the role), newest
first, in an AG Grid (sortable, each column filterable in the browser) under a plain GET form that
asks the server for who, what and since when (``/audit?actor=&action=&period=``; ``since=`` and
``until=`` dates in the address work too). Pure: data in,
components out; every value is text (AG Grid renders cell values as text unless a column says
otherwise, and none here does)."""
from __future__ import annotations

import json

import dash_ag_grid as dag
from dash import html

from dashboard import ids
from dashboard.i18n import t
from layouts.briefing import BUTTON, CONTROL, FIELD, MUTED, PAGE, RULE

PERIODS = ("1d", "7d", "30d", "all")  # how far back the form asks for (the grid filters further)


def rows_for_grid(rows: list[dict]) -> list[dict]:
    return [{"at": r["at"].isoformat(timespec="seconds") if hasattr(r["at"], "isoformat") else str(r["at"]),
             "actor": r["actor"], "ip": r["ip"] or "", "action": r["action"],
             "details": json.dumps(r["details"], ensure_ascii=False, sort_keys=True)} for r in rows]


def _options(values: list[str], chosen: str | None, lang: str) -> list:
    return [html.Option(t("audit_all", lang), value="", selected=not chosen)] + [
        html.Option(v, value=v, selected=v == chosen) for v in values]


def audit_page(rows: list[dict], actors: list[str], actions: list[str], chosen: dict, lang: str, limit: int,
               message: str | None = None) -> html.Div:
    """rows: audit.query rows (newest first); actors, actions: the choices of the form's lists;
    chosen: the form's values {actor, action, period}."""
    columns = [
        {"field": "at", "headerName": t("audit_at", lang), "filter": "agTextColumnFilter", "width": 200},
        {"field": "actor", "headerName": t("audit_actor", lang), "filter": "agTextColumnFilter", "width": 150},
        {"field": "ip", "headerName": t("audit_ip", lang), "filter": "agTextColumnFilter", "width": 140},
        {"field": "action", "headerName": t("audit_action", lang), "filter": "agTextColumnFilter", "width": 170},
        {"field": "details", "headerName": t("audit_details", lang), "filter": "agTextColumnFilter", "flex": 1},
    ]
    return html.Div(id=ids.AUDIT, className="audit", lang="en" if lang == "en" else "zh-CN", style=PAGE, children=[
        html.H1(t("audit_title", lang), style={"margin": "0 0 4px", "fontSize": "28px"}),
        html.P(t("app_title", lang), style={"margin": "0 0 16px", "color": MUTED}),
        html.Form(id=ids.AUDIT_FORM, method="get", action="/audit",
                  style={"padding": "12px 0 16px", "borderBottom": f"1px solid {RULE}"}, children=[
            html.Label([html.Span(t("audit_actor", lang)),
                        html.Select(_options(actors, chosen.get("actor"), lang), name="actor", style=CONTROL)],
                       style=FIELD),
            html.Label([html.Span(t("audit_action", lang)),
                        html.Select(_options(actions, chosen.get("action"), lang), name="action", style=CONTROL)],
                       style=FIELD),
            html.Label([html.Span(t("audit_period", lang)),
                        html.Select([html.Option(t(f"audit_period_{p}", lang), value=p, selected=p == chosen.get("period"))
                                     for p in PERIODS], name="period", style=CONTROL)], style=FIELD),
            html.Select([html.Option(lang, value=lang, selected=True)], name="lang", hidden=True),
            html.Button(t("audit_filter", lang), type="submit", style=BUTTON),
        ]),
        html.P(message or t("audit_count", lang, n=len(rows), limit=limit), className="audit-count",
               role="status", style={"color": MUTED, "margin": "12px 0"}),
        dag.AgGrid(id=ids.AUDIT_GRID, rowData=rows_for_grid(rows), columnDefs=columns,
                   defaultColDef={"sortable": True, "resizable": True, "floatingFilter": True},
                   dashGridOptions={"animateRows": False, "enableCellTextSelection": True},
                   style={"height": "70vh", "width": "100%"}),
    ])
