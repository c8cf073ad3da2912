"""The /record page: one resident's or vehicle's record, masked, with a "show in full" button for
a role that may (callbacks/record.py; dashboard/access/records.py decides). Pure: data in,
components out; every value is a text node (never HTML). Styles inline, as the briefing page's,
so the walls load no stylesheet of this one."""
from __future__ import annotations

from dash import html

from dashboard import ids
from dashboard.components import Store
from dashboard.i18n import t
from layouts.briefing import BUTTON, MUTED, PAGE, RULE

FIELDS = {
    "person": ("name", "id_number", "phone", "gender", "birth_year", "key_class", "grid"),
    "vehicle": ("plate", "kind", "grid"),
}
CELL = {"padding": "6px 16px 6px 0", "borderBottom": f"1px solid {RULE}", "fontSize": "18px", "textAlign": "left"}


def fields(kind: str, record: dict, lang: str) -> html.Table:
    rows = []
    for name in FIELDS.get(kind, ()):
        value = (f"{record.get('grid_name') or ''} {record.get('grid_code') or ''}".strip() if name == "grid"
                 else record.get(name))
        rows.append(html.Tr([html.Th(t(f"record_f_{name}", lang), style={**CELL, "color": MUTED, "fontWeight": "normal"}),
                             html.Td("—" if value in (None, "") else str(value), className=f"rec-{name}",
                                     style=CELL)]))
    return html.Table(html.Tbody(rows), className="rec-fields", style={"borderCollapse": "collapse", "margin": "16px 0"})


def record_page(request: dict, record: dict | None, message: str | None, can_reveal: bool, lang: str) -> html.Div:
    """request: {kind, id, scope}; record: the masked record, or None with ``message`` saying why."""
    kind = request.get("kind") if request.get("kind") in FIELDS else "person"
    body = [fields(kind, record, lang)] if record is not None else []
    actions = []
    if record is not None and can_reveal:
        actions += [html.Button(t("record_reveal", lang), id=ids.RECORD_REVEAL, n_clicks=0, className="rec-reveal",
                             style=BUTTON),
                 html.P(t("record_reveal_note", lang), style={"color": MUTED, "fontSize": "14px"})]
    elif record is not None:
        actions.append(html.P(t("record_masked_only", lang), style={"color": MUTED, "fontSize": "14px"}))
    return html.Div(id=ids.RECORD, className="record", lang="en" if lang == "en" else "zh-CN", style=PAGE, children=[
        html.H1(t(f"record_title_{kind}", lang), style={"margin": "0 0 4px", "fontSize": "28px"}),
        html.P(t("app_title", lang), style={"margin": "0 0 16px", "color": MUTED}),
        html.Div(id=ids.RECORD_FIELDS, children=body),
        html.Div(actions),
        html.P(message or "", id=ids.RECORD_NOTE, className="rec-note", role="status",
               style={"fontSize": "16px", "marginTop": "12px"}),
        Store(id=ids.RECORD_REQUEST, data=request),
    ])
