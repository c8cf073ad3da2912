"""The page shell: a URL and a slot the router fills."""
from dash import dcc, html

from dashboard import ids


def shell():
    return html.Div([dcc.Location(id=ids.URL, refresh=False), html.Div(id=ids.PAGE)])
