"""The street secretary's view (/street): the page, and the callback that keeps its panels on the
unit the map shows.

The page is the principal's street (or a narrower unit it asks for with ?scope=): the scope is
checked on the server (``dashboard.access.web.request_scope``) when the page is built and on every
refresh, so a forged drill-down or config naming another street is refused (403, audited) and
answers nothing. Its map is the wall's: the same config (``callbacks.wall.build_config``), ids,
live client and per-grid refresh (callbacks/wall.py), so the map is live exactly as the wall is.

The panels refresh when the map drills (ids.STREET_DRILL, set by assets/street.js), on the live
client's tick (ids.LIVE_TICK, at most once a second, when deltas arrived) and every 30 s as
deadlines pass. Figures are computed once per unit per change of the store however many pages show
it (``Services.shared`` keyed on the store's fingerprint), and a panel whose content did not change
is not re-sent (a hash per panel in ids.STREET_HASHES).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timezone

from dash import Input, Output, State, no_update

from callbacks.panels import tick_time_ms
from dashboard import ids, inplace, wall_data
from dashboard.i18n import pick_lang, t
from dashboard.store.version import MAX_AGE_S, feed_version
from dashboard.street import district_average, level_of, view_data
from layouts import street as layout

log = logging.getLogger(__name__)

PATH = "/street"
CODE_RE = re.compile(r"^\d{6,24}$")
STREET_WIDTH = 9  # a street's code; a wider scope gets the list of its streets
# The panels and the grid colours follow the store at most this often (?tick=N ms changes it): each
# tick costs a phone a round trip and a render, and a street's figures move slowly enough. New events
# still reach the map as they come (live.js draws each delta at once).
TICK_MS = 3000


def checked(services, asked: str | None) -> str:
    """The scope this request may be served for ``asked``: raises Forbidden (audited) outside the
    principal's scope. Anonymous with ACCESS_REQUIRED off: what was asked."""
    from dashboard.access.web import request_scope

    return request_scope(services, asked or None, where=PATH) or ""


def unit_data(services, scope: str, version: str, fresh_after_ms: float | None = None) -> dict:
    tz = services.settings.timezone
    return services.shared("street.view", scope, lambda: view_data(services.engine, scope, datetime.now(timezone.utc), tz),
                           ttl_s=MAX_AGE_S, fresh_after_ms=fresh_after_ms, version=version)


def average(services, scope: str, version: str, fresh_after_ms: float | None = None) -> dict:
    """The district's average unit of ``scope``'s level: one computation for every street's page."""
    tz = services.settings.timezone
    district, level = scope[:6], level_of(scope)
    return services.shared("street.average", (district, level), lambda: district_average(
        services.engine, district, level, datetime.now(timezone.utc), tz), ttl_s=MAX_AGE_S,
        fresh_after_ms=fresh_after_ms, version=version)


def panel_parts(services, scope: str, lang: str, fresh_after_ms: float | None = None) -> tuple[dict, str]:
    """({Elements id: children}, the updated-at text) for one unit."""
    version = feed_version(services.engine)
    data = unit_data(services, scope, version, fresh_after_ms)
    avg = average(services, scope, version, fresh_after_ms)
    built = layout.panels(data, avg, lang)
    stamp = t("panel_updated", lang, time=data["now"].astimezone(layout.ZoneInfo(data["tz"])).strftime("%H:%M:%S"))
    return built, stamp


def digest(tree) -> str:
    blob = json.dumps(tree, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def refresh(services, drill, tick, cfg, seen) -> tuple:
    """The panels' trees (no_update where the page has them), the updated-at text, the new hashes."""
    n = len(ids.STREET_PANELS)
    if not isinstance(cfg, dict) or not cfg.get("scope"):
        return (no_update,) * (n + 2)
    lang = pick_lang(cfg.get("lang"), services.settings.ui_lang)
    root = str(cfg["scope"])
    # a drill-down outside the page's own unit falls back to it; whichever is served is checked against
    # the principal's scope (a forged config or drill naming another street: 403, audited)
    asked = str(drill) if isinstance(drill, str) and CODE_RE.match(drill) and drill.startswith(root) else root
    scope = checked(services, asked)
    try:
        parts, stamp = panel_parts(services, scope, lang, tick_time_ms(tick))
    except Exception:  # the page stays up; the log says what failed
        log.exception("street figures failed", extra={"scope": scope})
        parts, stamp = layout.message_panels(t("street_error", lang)), no_update
    trees = {k: inplace.tree(v) for k, v in parts.items()}
    seen = seen if isinstance(seen, dict) else {}
    hashes = {k: digest(v) for k, v in trees.items()}
    out = tuple(no_update if seen.get(k) == hashes[k] else trees[k] for k in ids.STREET_PANELS)
    return (*out, stamp, hashes if hashes != seen else no_update)


def street_page(services, query: dict, lang: str):
    asked = str(query.get("scope") or "") or None
    if asked and not CODE_RE.match(asked):
        return layout.picker_layout([], lang, note=t("panel_bad_scope", lang, scope=asked[:32]))
    from werkzeug.exceptions import Forbidden

    try:
        scope = checked(services, asked)
    except Forbidden:
        return layout.picker_layout([], lang, note=t("access_scope_refused", lang, scope=(asked or "")[:32]))
    engine = services.engine
    if len(scope) < STREET_WIDTH:  # a district's operator, an administrator, or no sign-in: pick a street
        return layout.picker_layout(wall_data.streets_of(engine, scope or None), lang)
    summary = wall_data.region_summary(engine, scope)
    if not summary["root"] or summary["root"]["code"] != scope:
        return layout.picker_layout(wall_data.streets_of(engine, scope[:6]), lang,
                                    note=t("street_not_a_street", lang, scope=scope))
    from callbacks.wall import build_config

    cfg = build_config(services, scope, lang, {k: v for k, v in query.items() if k in ("crs", "measure", "tick")})
    # the page has no ticker, no layer control and no asset overlays: what only those read need not travel
    cfg.update(ticker=[], asset_layers={}, overlays={}, shown=[], rotation=[])
    cfg["page"] = "street"
    if "tick" not in query:
        cfg["tick_ms"] = TICK_MS
    try:
        first, stamp = panel_parts(services, scope, lang)
    except Exception:
        log.exception("street figures failed", extra={"scope": scope})
        first, stamp = layout.message_panels(t("street_error", lang)), None
    # the page's hashes start as its first panels', so the first tick re-sends only what moved
    hashes = {k: digest(inplace.tree(v)) for k, v in first.items()}
    return layout.street_layout(cfg, lang, first, {**query, "scope": scope}, hashes=hashes, stamp=stamp)


LOADING = re.compile(r'(<div class="_dash-loading">)\s*Loading\.\.\.\s*(</div>)')
ENTRY = '<div id="react-entry-point">'


def quiet_index(resp):
    """The street page's HTML without Dash's "Loading..." (the word in the page and the one the
    renderer shows while it fetches the layout: street.css hides it under .st-boot). The first thing
    the page paints is then the street's figures, rendered into the first layout, not a word a phone
    waits ~2 s behind; and the framework's start-up before that paint holds up no one's tap
    (Lighthouse counts blocking time from the first paint: bench/street.py)."""
    if resp.status_code != 200 or resp.mimetype != "text/html" or resp.direct_passthrough:
        return resp
    body = resp.get_data(as_text=True)
    quiet, n = LOADING.subn(r"\1\2", body, count=1)
    if n and ENTRY in quiet:
        resp.set_data(quiet.replace(ENTRY, '<div id="react-entry-point" class="st-boot">', 1))
    return resp


def first_picture(services) -> str:
    """The page's first picture for the HTML of ``/street`` (dashboard.street.snapshot): the layout
    ``/_dash-layout`` will hold for this request, built by the router for the signed-in principal's
    scope (the same server-side check; the access gate has already refused a foreign ``?scope=``).
    Empty when it cannot be built: the page then simply waits for Dash, as before."""
    import flask

    from callbacks.router import render
    from dashboard.street.snapshot import snapshot
    from layouts.shell import shell

    if not flask.has_request_context() or flask.request.path != PATH:
        return ""
    search = flask.request.query_string.decode("latin-1")
    try:
        return snapshot(shell(render(services, PATH, "?" + search if search else "")))
    except Exception:  # a picture is an optimisation: never the reason a page fails
        log.exception("street first picture failed")
        return ""


def register(app, services) -> None:
    from callbacks.router import PAGES

    PAGES[PATH] = street_page

    @app.server.after_request
    def _street_index(resp):
        import flask

        return quiet_index(resp) if flask.request.path == PATH and flask.request.method == "GET" else resp

    @app.callback(
        *[Output(pid, "tree") for pid in ids.STREET_PANELS], Output(ids.STREET_UPDATED, "children"),
        Output(ids.STREET_HASHES, "data"),
        Input(ids.STREET_DRILL, "data"), Input(ids.LIVE_TICK, "data"), Input(ids.STREET_REFRESH, "n_intervals"),
        State(ids.WALL_CONFIG, "data"), State(ids.STREET_HASHES, "data"), prevent_initial_call=True,
    )
    def refresh_street(drill, tick, _n, cfg, seen):
        return refresh(services, drill, tick, cfg, seen)
