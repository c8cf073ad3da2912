"""The app factory: ``create_app(settings)`` returns the Dash app.

Routes on the Flask server (APIs, push, cached geometry) are registered by the
modules in ``SERVER_MODULES``; Dash callbacks by the modules in
``CALLBACK_MODULES``. Each has ``register(app_or_server, services)``.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import dash
import flask

from .services import Services
from .settings import Settings
from .web.secret import secret_key

ASSETS = Path(__file__).resolve().parent / "assets"

SERVER_MODULES = (
    "dashboard.api.health",
    "dashboard.api.live",
    "dashboard.api.geometry",
    "dashboard.api.reports",
    "dashboard.api.open311",
    "dashboard.api.bundles",
    "dashboard.access.web",  # sign-in, sign-out, the ACCESS_REQUIRED gate (dashboard/access)
)
CALLBACK_MODULES = (
    "callbacks.router",
    "callbacks.wall",
    "callbacks.panels",
    "callbacks.briefing",
)


class CommandCenter(dash.Dash):
    """Dash, loading only the framework scripts the pages need, and asking for its layout early
    (dashboard.page_scripts)."""

    def interpolate_index(self, **kwargs):
        from .page_scripts import preload, trim

        kwargs["scripts"] = trim(kwargs["scripts"])
        kwargs["metas"] = preload(self.config.requests_pathname_prefix) + kwargs["metas"]
        return super().interpolate_index(**kwargs)


def create_app(settings: Settings | None = None, services: Services | None = None) -> dash.Dash:
    settings = settings or Settings.from_env()
    services = services or Services.open(settings)
    server = flask.Flask(__name__)
    server.secret_key = secret_key(settings)  # the same in every web worker
    # Dash's own answers (the layout, callbacks) are made per request, so Flask-Compress encodes
    # them on the fly: brotli at level 5 packs the wall's layout ~13 % tighter than its default
    # (zstd 3) in ~2 ms. Static bundles and assets get quality 11 once (dashboard.api.bundles).
    server.config.update(COMPRESS_ALGORITHM=["br", "zstd", "gzip", "deflate"], COMPRESS_BR_LEVEL=5)
    app = CommandCenter(
        __name__,
        server=server,
        assets_folder=str(ASSETS),
        title="网格化治理指挥中心",
        update_title=None,
        suppress_callback_exceptions=True,
        compress=True,
        serve_locally=True,
    )
    app.services = services  # for the production entry point and tests
    for name in SERVER_MODULES:
        importlib.import_module(name).register(app.server, services)
    for name in CALLBACK_MODULES:  # callbacks.router sets app.layout (a function: built per request)
        importlib.import_module(name).register(app, services)
    return app
