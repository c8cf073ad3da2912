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
    # A3: after access.web (they need the request's principal): security headers, CSP, CSRF, and
    # one person's or vehicle's record, masked unless revealed (audited)
    "dashboard.access.hardening",
    "dashboard.api.people",
)
CALLBACK_MODULES = (
    "callbacks.router",
    "callbacks.wall",
    "callbacks.panels",
    "callbacks.briefing",
    "callbacks.record",  # A3: one record's page, masked, "show in full" audited
    "callbacks.audit",   # A3: the administrator's audit page
    "callbacks.street",  # A2: the street secretary's view (/street)
)


class CommandCenter(dash.Dash):
    """Dash, loading only the framework scripts the pages need, and asking for its layout early
    (dashboard.page_scripts)."""

    def interpolate_index(self, **kwargs):
        from .access.hardening import nonce
        from .page_scripts import html_lang, preload, stamp_nonce, trim

        path = flask.request.path if flask.has_request_context() else "/"
        kwargs["scripts"] = trim(kwargs["scripts"], path)
        # A2b: /street paints its first picture from the HTML; Dash's scripts run after that paint
        # (callbacks/street.py first_picture, page_scripts.DEFERRED)
        from .page_scripts import deferred_start

        if deferred_start(path):
            from callbacks.street import first_picture

            kwargs["renderer"] = ""
            services = getattr(self, "services", None)
            picture = first_picture(services) if services is not None else ""
            kwargs["app_entry"] = picture + kwargs["app_entry"]
        kwargs["metas"] = preload(self.config.requests_pathname_prefix) + kwargs["metas"]
        index = super().interpolate_index(**kwargs)
        # the page's language (screen readers, and Simplified Chinese glyphs), and the request's CSP
        # nonce on every inline script (dashboard.access.hardening: no 'unsafe-inline' for scripts)
        services = getattr(self, "services", None)
        default = services.settings.ui_lang if services is not None else "zh"
        args = flask.request.args if flask.has_request_context() else {}
        return stamp_nonce(html_lang(index, args.get("lang"), default), nonce())


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
