"""Routes the URL to a page layout.

The first page of a visit is rendered into the layout itself (``first_layout``):
Dash fetches ``/_dash-layout`` from the page, so the request's referrer is the
page's own URL. That saves the round trip in which a freshly booted page
would ask the router for its content (about 0.1 s on a wall). Later URL
changes (drill-down, rotation, a scope or language switch) go through the
router callback; the browser half (assets/router.js) skips the one call that
would re-render the page the layout already holds.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import flask
from dash import ClientsideFunction, Input, Output, State, html

from dashboard import ids
from dashboard.i18n import pick_lang, t
from layouts.shell import shell

PAGES: dict = {}  # path -> callable(services, query: dict, lang: str) -> component


def render(services, pathname: str | None, search: str | None):
    # blank values kept: ?within= (a rotation over the whole jurisdiction) is not ?within absent
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?"), keep_blank_values=True).items()}
    lang = pick_lang(query.get("lang"), services.settings.ui_lang)
    page = PAGES.get(pathname or "/")
    if page is None:
        return html.H1(t("not_found", lang))
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


def register(app, services) -> None:
    app.layout = lambda: first_layout(services)

    app.clientside_callback(ClientsideFunction("router", "route"), Output(ids.ROUTE, "data"),
                            Output(ids.ROUTED, "data"), Input(ids.URL, "pathname"), Input(ids.URL, "search"),
                            State(ids.ROUTED, "data"))

    @app.callback(Output(ids.PAGE, "children"), Input(ids.ROUTE, "data"), prevent_initial_call=True)
    def route(where):
        return render(services, (where or {}).get("path"), (where or {}).get("search"))
