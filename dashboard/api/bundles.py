"""Dash's JavaScript bundles and the app's assets at brotli's best quality.

Flask-Compress (``Dash(compress=True)``) encodes every response on the fly at a
quick setting (zstd 3 / gzip 6). The framework bundles (React, the Dash
renderer, dash-leaflet, the pages' own components) never change while the process runs and are most
of the wall's first load, so each is brotli-compressed once, at quality 11, in
a background thread (about 1 s per 300 kB of script): ~20 % fewer bytes than
the quick setting. The app's own assets (``/assets/``, keyed with the ``?m=``
modification stamp Dash puts in their URLs) are treated the same way, after
their comments and indentation are stripped (rjsmin / rcssmin: ~27 % fewer
bytes again; the files in the repository stay readable). Until a bundle's brotli body is ready, Flask-Compress
serves it as before; a client that does not accept ``br`` is not affected.
"""
from __future__ import annotations

import threading

from flask import request

try:
    import brotli
except ImportError:  # pragma: no cover - brotli comes with Flask-Compress
    brotli = None
try:
    import rcssmin
    import rjsmin
except ImportError:  # pragma: no cover - both are in requirements.txt; without them assets go as written
    rjsmin = rcssmin = None

PREFIXES = ("/_dash-component-suites/", "/assets/")
MIN_SIZE = 1024
MAX_ENTRIES = 256  # the pages load ~20 scripts; URLs are the client's to choose, memory is not


def minify(path: str, raw: bytes) -> bytes:
    """Comments and indentation out of the app's own scripts and styles (never of Dash's bundles,
    which come minified); anything that does not minify cleanly goes as written."""
    if rjsmin is None or not path.startswith("/assets/"):
        return raw
    name = path.split("?", 1)[0]
    try:
        if name.endswith(".js"):
            return rjsmin.jsmin(raw.decode("utf-8"), keep_bang_comments=True).encode("utf-8")
        if name.endswith(".css"):
            return rcssmin.cssmin(raw.decode("utf-8")).encode("utf-8")
    except (UnicodeDecodeError, ValueError):  # pragma: no cover
        return raw
    return raw


def register(server, services) -> None:
    if brotli is None:
        return
    bodies: dict[str, bytes | None] = {}  # path -> brotli body, or None while it is being made
    lock = threading.Lock()

    def make(path: str, raw: bytes) -> None:
        body = brotli.compress(minify(path, raw), quality=11, mode=brotli.MODE_TEXT)
        with lock:
            bodies[path] = body

    @server.after_request
    def brotli_bundle(resp):
        if (not request.path.startswith(PREFIXES) or resp.status_code != 200 or "Content-Encoding" in resp.headers
                or "br" not in request.headers.get("Accept-Encoding", "")):
            return resp
        path = request.full_path  # an asset's ?m= stamp changes when its file does
        with lock:
            known = path in bodies or len(bodies) >= MAX_ENTRIES
            body = bodies.get(path)
            if not known:
                bodies[path] = None
        if body is not None:
            resp.direct_passthrough = False
            resp.set_data(body)
            resp.headers["Content-Encoding"] = "br"
            vary = resp.headers.get("Vary")
            resp.headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
            return resp
        if not known:
            resp.direct_passthrough = False
            raw = resp.get_data()
            if len(raw) >= MIN_SIZE:
                threading.Thread(target=make, args=(path, raw), name="brotli-bundle", daemon=True).start()
        return resp
