"""Dash's JavaScript bundles at brotli's best quality.

Flask-Compress (``Dash(compress=True)``) encodes every response on the fly at a
quick setting (zstd 3 / gzip 6). The framework bundles (React, the Dash
renderer, dash-leaflet, dcc) never change while the process runs and are most
of the wall's first load, so each is brotli-compressed once, at quality 11, in
a background thread (about 1 s per 300 kB of script): ~20 % fewer bytes than
the quick setting. Until a bundle's brotli body is ready, Flask-Compress
serves it as before; a client that does not accept ``br`` is not affected.
"""
from __future__ import annotations

import threading

from flask import request

try:
    import brotli
except ImportError:  # pragma: no cover - brotli comes with Flask-Compress
    brotli = None

PREFIX = "/_dash-component-suites/"
MIN_SIZE = 4096


def register(server, services) -> None:
    if brotli is None:
        return
    bodies: dict[str, bytes | None] = {}  # path -> brotli body, or None while it is being made
    lock = threading.Lock()

    def make(path: str, raw: bytes) -> None:
        body = brotli.compress(raw, quality=11, mode=brotli.MODE_TEXT)
        with lock:
            bodies[path] = body

    @server.after_request
    def brotli_bundle(resp):
        path = request.path
        if (not path.startswith(PREFIX) or resp.status_code != 200 or "Content-Encoding" in resp.headers
                or "br" not in request.headers.get("Accept-Encoding", "")):
            return resp
        with lock:
            known = path in bodies
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
