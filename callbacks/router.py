"""Routes the URL to a page layout.

The first page of a visit is rendered into the layout itself (``first_layout``):
Dash fetches ``/_dash-layout`` from the page, so the request's referrer is the
page's own URL. That saves the round trip in which a freshly booted page
would ask the router for its content (about 0.1 s on a wall). Later URL
changes (drill-down, rotation, a scope or language switch) go through the
router callback; the browser half (assets/router.js) skips the one call that
would re-render the page the layout already holds.

Scope is the sign-in's rule, applied here for every page before it is built
(``dashboard.access.web.request_scope``): a page is rendered for the principal's
scope, or a narrower ``?scope=`` it asks for; a wider or foreign one (also in a
forged router call or layout request) renders a refusal with no data, and is
audited. A callback request naming an output no callback of the app has is
refused (400) and audited before Dash looks at it.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import flask
from dash import ClientsideFunction, Input, Output, State, html
from werkzeug.exceptions import Forbidden

from dashboard import ids
from dashboard.i18n import pick_lang, t
from layouts.shell import shell

log = logging.getLogger(__name__)

PAGES: dict = {}  # path -> callable(services, query: dict, lang: str) -> component
CODE_RE = re.compile(r"^\d{6,24}$")
CALLBACK_REFUSED = "callback_refused"  # audit action: a callback request for an output the app has not


def scoped_query(services, path: str, query: dict) -> dict:
    """``query`` with its ``scope`` (and a rotation's ``within``) checked against the request's
    principal: the principal's own scope when none is asked. Raises Forbidden (audited) for one
    outside it. Outside a request (tests building a page directly, the CLI) nothing is checked."""
    if not flask.has_request_context():
        return query
    from dashboard.access.web import current_principal, request_scope

    asked = query.get("scope")
    asked = str(asked) if asked is not None else None
    if asked and not CODE_RE.match(asked) and current_principal() is None:
        return query  # not a code: the page says so itself (and serves nothing)
    scope = request_scope(services, asked or None, where=path, unknown_ok=True)  # the page says "no such region"
    out = dict(query)
    if scope is not None:
        out["scope"] = scope
    within = query.get("within")
    if within is not None and current_principal() is not None:
        try:  # a rotation reaches no further than the principal's scope either
            w = request_scope(services, str(within) or None, where=path + "#within")
        except Forbidden:
            w = scope
        out["within"] = w or ""
    return out


def refusal(message: str, lang: str):
    return html.Div(className="wall-error", role="alert", children=message)


def render(services, pathname: str | None, search: str | None):
    # blank values kept: ?within= (a rotation over the whole jurisdiction) is not ?within absent
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?"), keep_blank_values=True).items()}
    lang = pick_lang(query.get("lang"), services.settings.ui_lang)
    page = PAGES.get(pathname or "/")
    if page is None:
        return html.H1(t("not_found", lang))
    try:
        query = scoped_query(services, pathname or "/", query)
    except Forbidden:
        return refusal(t("access_scope_refused", lang, scope=str(query.get("scope") or "")[:32]), lang)
    return page(services, query, lang)


def first_layout(services):
    """The layout for ``/_dash-layout``: the page its referrer names, already rendered."""
    if not flask.has_request_context():
        return shell()
    referrer = flask.request.referrer
    if not referrer:
        return shell()
    url = urlsplit(referrer)
    if url.netloc != flask.request.host or url.path not in PAGES:
        return shell()
    search = f"?{url.query}" if url.query else ""
    return shell(render(services, url.path, search), {"path": url.path, "search": search})


def known_output_guard(app, services):
    """A before_request hook: a callback request must name an output some callback of the app
    has (Dash would answer a 500 with a traceback in the log); else 400, logged and audited."""
    def guard():
        req = flask.request
        if req.method != "POST" or not req.path.endswith("/_dash-update-component"):
            return None
        body = req.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        # a clientside callback's output is in the map too, without a server function to run
        if isinstance(output, str) and "callback" in app.callback_map.get(output, {}):
            return None
        from dashboard.access import audit
        from dashboard.access.web import client_ip, current_principal

        p = current_principal()
        log.warning("callback request refused: unknown output", extra={"output": str(output)[:200]})
        audit.record(services.engine, CALLBACK_REFUSED, actor=getattr(p, "actor", audit.ANONYMOUS), ip=client_ip(),
                     output=str(output)[:200])
        resp = flask.jsonify({"error": "unknown_output", "message": "no callback has this output"})
        resp.status_code = 400
        return resp
    return guard


def register(app, services) -> None:
    app.layout = lambda: first_layout(services)
    app.server.before_request(known_output_guard(app, services))

    app.clientside_callback(ClientsideFunction("router", "route"), Output(ids.ROUTE, "data"),
                            Output(ids.ROUTED, "data"), Input(ids.URL, "pathname"), Input(ids.URL, "search"),
                            State(ids.ROUTED, "data"))

    @app.callback(Output(ids.PAGE, "children"), Input(ids.ROUTE, "data"), prevent_initial_call=True)
    def route(where):
        return render(services, (where or {}).get("path"), (where or {}).get("search"))
