"""Routes the URL to a page layout."""
from __future__ import annotations

from urllib.parse import parse_qs

from dash import Input, Output, html

from dashboard import ids
from dashboard.i18n import pick_lang, t

PAGES: dict = {}  # path -> callable(services, query: dict, lang: str) -> component


def render(services, pathname: str | None, search: str | None):
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    lang = pick_lang(query.get("lang"), services.settings.ui_lang)
    page = PAGES.get(pathname or "/")
    if page is None:
        return html.H1(t("not_found", lang))
    return page(services, query, lang)


def register(app, services) -> None:
    @app.callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"), Input(ids.URL, "search"))
    def route(pathname, search):
        return render(services, pathname, search)
