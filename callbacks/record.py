"""The /record page (``?kind=person|vehicle&id=N[&scope=]``): the record masked, and "show in full"
for a role that may, audited. Both go through ``dashboard.access.records.view_record`` with the
principal of the request (the layout's, then the button's callback: each checked again, so a forged
callback gets what the API would give)."""
from __future__ import annotations

from dash import Input, Output, State, no_update
from werkzeug.exceptions import Forbidden

from dashboard import ids
from dashboard.access.masking import may_reveal
from dashboard.access.records import view_record
from dashboard.i18n import t
from layouts.record import fields, record_page

MESSAGE = {401: "record_signin", 403: "record_forbidden", 404: "record_none"}


def _answer(services, request: dict, reveal: bool):
    from dashboard.access.web import client_ip, current_principal, request_scope

    p = current_principal()
    try:
        scope = request_scope(services, request.get("scope") or None, where="/record")
    except Forbidden:
        return p, None
    return p, view_record(services.engine, p, request.get("kind") or "person", request.get("id"), scope,
                          reveal=reveal, ip=client_ip(), where="/record")


def page(services, query: dict, lang: str):
    request = {"kind": query.get("kind") if query.get("kind") in ("person", "vehicle") else "person",
               "id": (query.get("id") or "")[:12], "scope": (query.get("scope") or "")[:24], "lang": lang}
    if not request["id"]:
        return record_page(request, None, None, False, lang)
    p, got = _answer(services, request, reveal=False)
    if got is None:
        return record_page(request, None, t("record_none", lang), False, lang)
    if got.status != 200:
        return record_page(request, None, t(MESSAGE[got.status], lang), False, lang)
    return record_page(request, got.record, None, may_reveal(p), lang)


def register(app, services) -> None:
    from callbacks.router import PAGES

    PAGES["/record"] = page

    @app.callback(Output(ids.RECORD_FIELDS, "children"), Output(ids.RECORD_NOTE, "children"),
                  Input(ids.RECORD_REVEAL, "n_clicks"), State(ids.RECORD_REQUEST, "data"), prevent_initial_call=True)
    def reveal(n_clicks, request):
        request = request or {}
        lang = "en" if request.get("lang") == "en" else "zh"
        if not n_clicks:
            return no_update, no_update
        _p, got = _answer(services, request, reveal=True)
        if got is None or got.status != 200:
            status = 404 if got is None else got.status
            return no_update, t(MESSAGE[status], lang)
        return fields(request.get("kind") or "person", got.record, lang), t("record_revealed", lang)
