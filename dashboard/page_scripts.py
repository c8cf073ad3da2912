"""Which of Dash's framework scripts a page loads.

Dash puts every bundle it knows on every page. Two of them cost the wall's
first load without doing anything for it (measured with Chromium's profiler
in a cold load of the district wall: ~70 ms of the main thread before Dash
can even ask for its layout):

- ``polyfill`` (core-js, ~30 kB): features every browser with ES module
  support already has. It is kept for older browsers only, with ``nomodule``,
  which such browsers ignore and modern ones skip without downloading.
- ``dash_table``: no page here uses ``dash_table.DataTable`` (a unit test
  keeps it so). Its bundle would still be fetched and evaluated.
- ``dcc`` (~93 kB on the wire, brotli 11): the pages use its Store, Interval,
  Location and RadioItems only, which ``dashboard.components`` provides in a
  few kB (a unit test keeps dcc out of every layout).

And one it loads too late: dash-leaflet's ``GeoJSON`` is a lazy chunk, fetched
only once the map has rendered, so every layer waited for a second round of
script loading. Its tag goes right after dash-leaflet's bundle (webpack picks
an already-pushed chunk up instead of fetching it).

Pages that need a heavy bundle only for themselves get it only there (``ONLY_ON``): the audit
page's AG Grid (1.3 MB) would otherwise be fetched and evaluated by every wall. The page's
``<html lang>`` and the CSP nonce on its inline scripts are set here too (``html_lang``,
``stamp_nonce``; dashboard.access.hardening says why).

The street secretary's page (``DEFERRED``) paints a picture of itself from its HTML first
(dashboard/street/snapshot.py); its framework scripts are fetched from the start but run after that
paint (``trim`` turns them into preload links that assets/street-start.js runs in order).
"""
from __future__ import annotations

import re

NOMODULE = ("/dash/deps/polyfill@",)
UNUSED = ("/dash/dash_table/", "/dash/dcc/")
EAGER = {"/dash_leaflet/dash_leaflet.": "async-GeoJSON.js"}  # bundle -> chunk beside it

ONLY_ON = {"/dash_ag_grid/": ("/audit",)}  # bundle -> the only paths whose index carries it

# Pages whose HTML carries their first picture (callbacks/street.py first_picture): there Dash's
# ~200 kB of scripts are fetched from the start (preload links, low priority: the picture's style
# sheets go first) but run only after the picture has been painted, by START (assets/street-start.js,
# deferred), which adds them in order and then starts Dash as its inline start would have. With
# plain ``defer`` a fast connection ran them all before the first paint (Chromium does not wait for
# a paint before deferred scripts), and the picture showed only with Dash's page. Other pages are
# unchanged.
DEFERRED = ("/street",)
START = "/assets/street-start.js"

_TAG = re.compile(r'<script src="([^"]+)"></script>')
_HTML = re.compile(r"<html(\s[^>]*)?>", re.IGNORECASE)
_INLINE = re.compile(r"<script(?![^>]*\ssrc=)(?![^>]*\snonce=)", re.IGNORECASE)


def preload(prefix: str) -> str:
    """Links that start Dash's first two requests with the page, not after its scripts ran:
    the layout is computed while they download, and Dash's own fetch takes the response."""
    return "".join(f'<link rel="preload" href="{prefix}{path}" as="fetch" crossorigin>'
                   for path in ("_dash-layout", "_dash-dependencies"))


def trim(scripts_html: str, path: str = "/") -> str:
    deferred = path in DEFERRED
    start: list[str] = []

    def keep(m: re.Match) -> str:
        src = m.group(1)
        if START in src:  # only where it replaces Dash's inline start, and after every other script
            start.append(src)
            return ""
        if any(part in src for part in UNUSED):
            return ""
        if any(part in src and path not in paths for part, paths in ONLY_ON.items()):
            return ""
        if any(part in src for part in NOMODULE):
            return f'<script nomodule src="{src}"></script>'
        chunk = next((chunk for part, chunk in EAGER.items() if part in src), None)
        if chunk is None:
            return m.group(0)
        # beside the bundle, under the app's path prefix: where webpack itself would look for it
        after = src[:src.rindex("/") + 1] + chunk
        return m.group(0) + f'\n<script src="{after}"></script>'
    out = _TAG.sub(keep, scripts_html)
    if not deferred:
        return out
    # data-src: what START runs (and the src Dash checks its index for)
    out = _TAG.sub(lambda m: f'<link rel="preload" as="script" fetchpriority="low" href="{m.group(1)}" '
                             f'data-src="{m.group(1)}">', out)
    # Dash checks its index for the start's id
    return out + "".join(f'\n<script defer id="_dash-renderer" src="{src}"></script>' for src in start)


def deferred_start(path: str) -> bool:
    """Whether ``path``'s index starts Dash from START (its inline start must then go)."""
    return path in DEFERRED


def html_lang(index: str, query_lang: str | None, default: str = "zh") -> str:
    """The index with ``<html lang="zh-CN">`` or ``lang="en"``, as the request's ``?lang=`` or the
    default UI language says."""
    from .i18n import pick_lang

    lang = "en" if pick_lang(query_lang, default) == "en" else "zh-CN"
    return _HTML.sub(f'<html lang="{lang}">', index, count=1)


def stamp_nonce(index: str, nonce: str) -> str:
    """Every inline ``<script>`` (no ``src``) with ``nonce=``: the CSP allows no other inline script."""
    if not nonce:
        return index
    return _INLINE.sub(f'<script nonce="{nonce}"', index)
