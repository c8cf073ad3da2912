"""The page shell: a URL and a slot the router fills (or has filled already)."""
from dash import html

from dashboard import ids
from dashboard.components import Location, Store


def shell(page=None, routed: dict | None = None):
    """``page``: the first page, rendered by the server into the layout, and ``routed`` the
    path and query it was rendered for; without them the router fills the slot."""
    return html.Div([Location(id=ids.URL, refresh=False), Store(id=ids.ROUTED, data=routed),
                     Store(id=ids.ROUTE), html.Div(id=ids.PAGE, children=page)])
