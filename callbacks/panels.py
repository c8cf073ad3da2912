"""Refills the wall's panels on each live tick (≤ 1/s), when scope or language change,
and every PANEL_REFRESH_MS as deadlines pass (overdue counts move with the clock).

Figures are computed once per scope per second however many walls are
watching (a small cache on ``services.cache``), so the store sees at most one
set of KPI queries per scope per second; the panels' components are built once
per (scope, language) per computation, and a panel whose figures did not move
is not rebuilt at all.

Each page keeps, in ids.PANEL_HASHES, a hash of the figures behind every panel
it shows; a refresh sends ``no_update`` for the panels whose hash it already
has, so an unchanged panel costs the browser nothing on a tick.

The panels reach the page as data in ids.PANEL_PATCH, not as Dash components
(dashboard.inplace says why): a changed panel goes whole, as a tree that
dashboard/assets/panels.js builds into its section; a panel that changed but
kept its shape (the same elements, only texts, classes, styles and titles
moved) goes as values that panels.js writes into the elements it shows.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs

from dash import ClientsideFunction, Input, Output, State, no_update

from dashboard import ids, inplace, kpi
from dashboard.i18n import pick_lang, t
from dashboard.store.version import MAX_AGE_S, feed_version
from layouts import panels

log = logging.getLogger(__name__)

CACHE_KEY = "kpi.wall_figures"
SLOW_KEY = "kpi.slow_figures"
RENDER_KEY = "panels.rendered"
RENDER_KEEP_S = 300.0  # forget the components of a scope no wall has shown for this long
SLOW_TTL_S = 30.0  # 30-day windows barely move in 30 s; today's figures stay live
SCOPE_RE = re.compile(r"^\d{6,24}$")
# Charts whose tick-to-tick change is a sliver of today's bar are resent at most this
# often (seconds) once a page shows them: each resend is work for the server and for every
# open wall's browser, while live events wait behind it.
SLOW_PARTS = {"trend7": 10.0, "trend30": 30.0}
SENT = "_sent"  # in a page's PANEL_HASHES: its scope|lang and when each slow part was last sent (epoch s)
SHAPES = "_shape"  # in a page's PANEL_HASHES: the shape (dashboard.inplace) of each part it shows

def parse_query(search: str | None, default_lang: str) -> tuple[str | None, str, str | None]:
    """(scope, lang, bad_scope): bad_scope is the raw text when the scope is not a region code."""
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    lang = pick_lang(query.get("lang"), default_lang)
    raw = (query.get("scope") or "").strip()
    if raw and not SCOPE_RE.match(raw):
        return None, lang, raw
    return raw or None, lang, None


def figures(services, scope: str | None, now: datetime | None = None, fresh_after_ms: float | None = None) -> dict:
    """wall_figures for ``scope``, shared across viewers until the store changes (feed_version:
    every commit, and every minute as the clock moves), at most a minute; its slow-moving parts
    (30-day windows, population) are reused for SLOW_TTL_S.

    ``fresh_after_ms``: the LIVE_TICK's time (epoch ms). The browser hears of a
    delta only after the consumer committed it, so a shared result started
    after that moment includes it; an older one is recomputed, not served, or a
    tick landing within a second of the last computation would leave the panels
    stale until the next one.
    """
    def compute() -> dict:  # under the shared lock: the slow parts' cache needs none of its own
        slow_cache = services.cache.setdefault(SLOW_KEY, {})
        mono = time.monotonic()
        slow_hit = slow_cache.get(scope)
        slow = slow_hit[1] if slow_hit and mono - slow_hit[0] < SLOW_TTL_S else None
        at = now or datetime.now(timezone.utc)
        tz = services.settings.timezone
        if slow is None:
            slow = kpi.slow_figures(services.engine, scope, at, tz)
            slow_cache[scope] = (mono, slow)
        return kpi.wall_figures(services.engine, scope, at, tz, slow=slow)
    return services.shared(CACHE_KEY, scope, compute, ttl_s=MAX_AGE_S, fresh_after_ms=fresh_after_ms,
                           reuse=now is None, version=feed_version(services.engine))


def tick_time_ms(tick) -> float | None:
    try:
        return float(tick["at"]) if isinstance(tick, dict) and tick.get("at") else None
    except (TypeError, ValueError):
        return None


PARTS = ("header", *panels.LEFT, *panels.RIGHT)


def digest(scope: str | None, lang: str, data: dict, keys: tuple[str, ...]) -> str:
    """A short hash of what one panel shows: equal hashes, equal components."""
    blob = json.dumps([scope, lang, [data.get(k) for k in keys]], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def _build(name: str, data: dict, lang: str):
    if name == "header":
        return panels.header_figures(data, lang)
    return panels.PANELS[name](data, lang).children  # the section itself stays in the page


def _part(scope: str | None, lang: str, name: str, data: dict, h: str) -> tuple:
    body = _build(name, data, lang)
    shape, values, tree = inplace.describe(body, f"{scope or ''}|{lang}")
    return h, body, shape, values, tree


def root_id(name: str) -> str:
    """The element whose children are the part (its section, or the header strip's box)."""
    return ids.PANEL_HEADER if name == "header" else ids.panel(name)


def rendered(services, scope: str | None, lang: str, data: dict) -> dict:
    """{part: (hash, components, shape, values, tree)} for one wall_figures result, shared by every
    page showing (scope, lang); a part whose hash did not change keeps its old components."""
    cache = services.cache.setdefault(RENDER_KEY, {"lock": threading.Lock(), "entries": {}})
    key = (scope, lang)
    with cache["lock"]:
        entry = cache["entries"].get(key)
        if entry and entry["data"] is data:
            return entry["parts"]
        old = entry["parts"] if entry else {}
        parts = {}
        for name in PARTS:
            h = digest(scope, lang, data, panels.INPUTS[name])
            parts[name] = old[name] if name in old and old[name][0] == h else _part(scope, lang, name, data, h)
        mono = time.monotonic()
        cache["entries"][key] = {"data": data, "parts": parts, "at": mono}
        for k in [k for k, e in cache["entries"].items() if mono - e["at"] > RENDER_KEEP_S]:
            del cache["entries"][k]
        return parts


def _empty(header) -> dict:
    """Every panel emptied (CSS hides empty sections), the page's hashes forgotten."""
    trees = {root_id(k): inplace.tree(header if k == "header" else None) for k in PARTS}
    return {"header": header, "updated": None, **{k: None for k in PARTS if k != "header"},
            "patch": {"trees": trees, "parts": {}, "hashes": ids.PANEL_HASHES}, "hashes": {}}


def render(services, search: str | None, now: datetime | None = None, tick=None,
           seen: dict | None = None, scope_check=None) -> dict:
    """What one page's refresh sends: {"header", "updated", <panel name>..., "patch", "hashes"}.

    Per part, its components, or ``dash.no_update`` when the page has them (its hash is in
    ``seen``, the page's PANEL_HASHES) or has their shape. ``patch`` is what goes to the page:
    {"trees": {element id: tree} for parts sent whole, "parts": {element id: values} for parts
    sent as values, "hashes": the id of PANEL_HASHES}, or ``no_update`` when both are empty."""
    scope, lang, bad = parse_query(search, services.settings.ui_lang)
    if scope_check is not None and bad is None:
        scope = scope_check(scope) or None  # raises Forbidden outside the principal's scope
    if bad is not None:
        return _empty(panels.message(t("panel_bad_scope", lang, scope=bad), "error"))
    try:
        data = figures(services, scope, now, tick_time_ms(tick))
        parts = rendered(services, scope, lang, data)
    except Exception:  # the wall must stay up; the log says what failed
        log.exception("wall figures failed", extra={"scope": scope})
        return _empty(panels.message(t("panel_error", lang), "error"))
    seen = seen or {}
    now_s = now.timestamp() if now is not None else time.time()
    page = f"{scope or ''}|{lang}"
    sent = dict(seen.get(SENT) or {})
    if sent.get("page") != page:  # another scope or language is another page: nothing is held
        sent = {"page": page}
    out, hashes, patch, trees = {}, {}, {}, {}
    seen_shapes = seen.get(SHAPES) or {}
    shapes = {}
    for name, (h, body, shape, values, tree) in parts.items():
        held = (name in SLOW_PARTS and name in sent and seen.get(name) != h
                and now_s - sent[name] < SLOW_PARTS[name])
        if seen.get(name) == h or held:
            out[name], hashes[name] = no_update, seen[name]  # a held part keeps its old hash: sent later
            if name in seen_shapes:
                shapes[name] = seen_shapes[name]
            continue
        if seen_shapes.get(name) == shape:
            out[name] = no_update
            patch[root_id(name)] = values
        else:
            out[name] = body
            trees[root_id(name)] = tree
        hashes[name], shapes[name] = h, shape
        if name in SLOW_PARTS:
            sent[name] = now_s
    hashes[SENT] = sent
    hashes[SHAPES] = shapes
    out["patch"] = {"trees": trees, "parts": patch, "hashes": ids.PANEL_HASHES} if patch or trees else no_update
    updated = panels.updated_text(data, lang)
    hashes["updated"] = hashlib.blake2b(updated.encode(), digest_size=8).hexdigest()
    out["updated"] = no_update if seen.get("updated") == hashes["updated"] else updated
    out["hashes"] = no_update if hashes == seen else hashes
    return out


def checked_scope(services, asked) -> str:
    """The scope a callback may compute for: the principal's, or the narrower one asked (raises
    werkzeug's Forbidden, audited, for any other; dashboard.access.web.request_scope)."""
    from dashboard.access.web import request_scope

    asked = str(asked) if asked else None
    return request_scope(services, asked, where="/_dash-update-component") or ""


OUTPUTS = ("updated", "patch", "hashes")


def register(app, services) -> None:
    targets = {"updated": (ids.PANEL_UPDATED, "children"), "patch": (ids.PANEL_PATCH, "data"),
               "hashes": (ids.PANEL_HASHES, "data")}

    @app.callback(
        *[Output(*targets[name]) for name in OUTPUTS],
        Input(ids.LIVE_TICK, "data"), Input(ids.URL, "search"), Input(ids.PANEL_REFRESH, "n_intervals"),
        State(ids.PANEL_HASHES, "data"),
    )
    def refresh(tick, search, _n, seen):
        # the page's URL is the browser's to send: its scope is checked on the server (403, audited)
        out = render(services, search, tick=tick, seen=seen, scope_check=lambda s: checked_scope(services, s))
        return tuple(out[name] for name in OUTPUTS)

    app.clientside_callback(ClientsideFunction("wallPanels", "patch"), Output(ids.PANEL_PATCHED, "data"),
                            Input(ids.PANEL_PATCH, "data"), prevent_initial_call=True)
