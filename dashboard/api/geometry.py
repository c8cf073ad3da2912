"""Cached, compressed map data for the wall.

GET /api/v1/geo/regions?level=grid|community|street|district&scope=CODE&crs=wgs84|gcj02
    GeoJSON, simplified and rounded (dashboard.wall_data.regions_geojson).
GET /api/v1/geo/points?layer=events|hazards|positions|houses|keypop|vehicles|facilities&scope=&crs=
    Columnar JSON (dashboard.wall_data.columnar).
GET /api/v1/events/<id>?scope=
    One open or closed event for its map popup (category, source, times, handler, address;
    never the reporter); 404 when it is absent or outside the scope.
GET /api/v1/wall/recent?scope=&since=ISO
    Events changed since a time, as live deltas: the polling fallback (and the polling baseline
    of bench/latency.py); server push is the design.

Both filter by ``scope`` on the server (a scoped wall never receives another
street's data), and the scope is the sign-in's rule (``dashboard.access.web.request_scope``):
the principal's own when none is asked, a narrower one when asked, and a wider or foreign one
is refused with a JSON 403 and audited. A body served to a signed-in principal is
``Cache-Control: private`` (no shared cache may hand it to someone else). The body is built once per (kind, level/layer, scope, crs,
data version) and kept in memory already compressed (brotli and gzip), with a
strong ETag; a browser revalidating gets 304. The data version is part of the
key, so an import or a new event is visible at the next request.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import threading
from collections import OrderedDict

from flask import Response, jsonify, request

from .. import wall_data

try:  # brotli is optional: Flask-Compress pulls it in, gzip is always there
    import brotli
except ImportError:  # pragma: no cover
    brotli = None

SCOPE_RE = re.compile(r"^\d{6,24}$")
CACHE_ENTRIES = 256  # a city wall: ~20 streets x (grids + events + 4 asset layers) + outlines


class BodyCache:
    """A small LRU of encoded response bodies, thread-safe."""

    def __init__(self, size: int = CACHE_ENTRIES):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
            return hit

    def put(self, key, value):
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


def encode(raw: bytes, stable: bool = False) -> dict:
    """gzip and brotli bodies. Stable bodies (boundaries: rebuilt only when they change) get
    brotli's best quality (~1.5 s per MB, once). The point layers are rebuilt when the feed
    changes them: a street's open events (~20 kB) take quality 10, ~25 % smaller than the quick
    setting at ~10 ms; a body past 256 kB (an asset layer of a whole city) the quick one."""
    out = {"identity": raw, "gzip": gzip.compress(raw, 6)}
    if brotli is not None and len(raw) > 1024:
        if stable:
            quality = 11 if len(raw) < 2_000_000 else 5
        else:
            quality = 10 if len(raw) < 256_000 else 5
        out["br"] = brotli.compress(raw, quality=quality)
    return out


def bad_request(message: str):
    resp = jsonify({"error": message})
    resp.status_code = 400
    return resp


def parse_common(settings, services=None):
    """(scope, crs, None) or (None, None, an error response): 400 for a malformed value, 403
    (audited) for a scope outside the principal's."""
    scope = request.args.get("scope", "") or ""
    if scope and not SCOPE_RE.match(scope):
        return None, None, bad_request(f"scope must be a region code of 6 to 24 digits, not {scope!r}")
    crs = request.args.get("crs") or settings.tile_crs
    if crs not in wall_data.CRSS:
        return None, None, bad_request(f"crs must be one of {', '.join(wall_data.CRSS)}, not {crs!r}")
    if services is not None:
        from ..access.web import scope_or_refusal

        checked, refused = scope_or_refusal(services, scope or None, where=request.path)
        if refused is not None:
            return None, None, refused
        scope = checked or ""
    return scope, crs, None


def respond(cache: BodyCache, key, build, max_age: int, stable: bool = False) -> Response:
    hit = cache.get(key)
    if hit is None:
        raw = wall_data.dumps(build())
        hit = (hashlib.sha1(raw).hexdigest()[:20], encode(raw, stable))
        cache.put(key, hit)
    etag, bodies = hit
    if request.if_none_match and etag in request.if_none_match:
        resp = Response(status=304)
    else:
        accepted = request.headers.get("Accept-Encoding", "")
        enc = "br" if "br" in accepted and "br" in bodies else "gzip" if "gzip" in accepted else "identity"
        resp = Response(bodies[enc], mimetype="application/json")
        if enc != "identity":
            resp.headers["Content-Encoding"] = enc  # Flask-Compress leaves encoded responses alone
        resp.headers["Vary"] = "Accept-Encoding"
    resp.set_etag(etag)
    from ..access.web import current_principal

    shared = "private" if current_principal() is not None else "public"
    resp.headers["Cache-Control"] = f"{shared}, max-age={max_age}" if max_age else "no-cache"
    return resp


def register(server, services) -> None:
    cache = services.cache.setdefault("geo_bodies", BodyCache())
    engine = services.engine
    settings = services.settings

    @server.get("/api/v1/geo/regions")
    def geo_regions():
        scope, crs, err = parse_common(settings, services)
        if err is not None:
            return err
        level = request.args.get("level", "grid")
        if level not in wall_data.LEVELS:
            return bad_request(f"level must be one of {', '.join(wall_data.LEVELS)}, not {level!r}")
        version = wall_data.region_version(engine, scope)
        return respond(cache, ("regions", level, scope, crs, version),
                       lambda: wall_data.regions_geojson(engine, level, scope, crs), max_age=300, stable=True)

    @server.get("/api/v1/wall/recent")
    def wall_recent():
        from datetime import datetime, timedelta, timezone

        scope, _crs, err = parse_common(settings, services)
        if err is not None:
            return err
        raw = request.args.get("since", "")
        try:
            since = datetime.fromisoformat(raw) if raw else datetime.now(timezone.utc) - timedelta(seconds=10)
        except ValueError:
            return bad_request(f"since must be an ISO time with a time zone, not {raw!r}")
        if since.tzinfo is None:
            return bad_request("since must carry a time zone, e.g. 2026-11-22T09:30:00+08:00")
        deltas = wall_data.recent_event_deltas(engine, scope, since)
        resp = Response(wall_data.dumps({"deltas": deltas, "until": deltas[-1]["u"] if deltas else since.isoformat()}),
                        mimetype="application/json")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.get("/api/v1/events/<event_id>")
    def event_popup(event_id: str):
        scope, _crs, err = parse_common(settings, services)
        if err is not None:
            return err
        found = wall_data.event_detail(engine, event_id, scope) if len(event_id) <= 64 else None
        if found is None:  # outside the scope reads the same as absent: no probing for ids
            resp = jsonify({"error": "not_found", "message": f"no event {event_id!r} in this scope"})
            resp.status_code = 404
        else:
            resp = Response(wall_data.dumps(found), mimetype="application/json")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.get("/api/v1/geo/points")
    def geo_points():
        scope, crs, err = parse_common(settings, services)
        if err is not None:
            return err
        layer = request.args.get("layer", "")
        if layer not in wall_data.POINT_LAYERS:
            return bad_request(f"layer must be one of {', '.join(wall_data.POINT_LAYERS)}, not {layer!r}")
        version = wall_data.layer_version(engine, layer, scope)
        live = layer in ("events", "hazards", "positions")
        return respond(cache, ("points", layer, scope, crs, version),
                       lambda: wall_data.point_layer(engine, layer, scope, crs), max_age=0 if live else 300)
