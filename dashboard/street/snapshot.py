"""The street page's first picture as HTML, sent in the page itself (dashboard/app.py puts it before
Dash's entry point on /street).

Why: a phone on a slow network otherwise paints nothing until Dash's scripts (~200 kB) have
arrived and run and the layout has been fetched and rendered (Lighthouse's mobile preset measured
the largest paint at 2.7-3.2 s, and at 2.7 s with the map removed). With this picture the browser
paints the street's name and figures as soon as the HTML and the style sheets are in; the scripts
load deferred behind it (dashboard/page_scripts.py), and when Dash has rendered the same layout
street.css hides the picture (``body:has(#street) .st-snap``) in the same frame, at the same place
and the same sizes, so nothing moves (street.js then removes it).

The picture is the layout callbacks/street.py builds for the request (the principal's scope,
checked on the server as for ``/_dash-layout``), rendered to markup: html components as their
elements, ``Elements`` blocks as their tree (what wall_components.js builds), ``RadioItems`` as
its labels, the map as its empty box (street.css fixes its size), stores and timers as nothing.
Ids are left out (the live page has them; a second element with the same id would be wrong), and
so is every event handler: it is a picture. Text and attribute values are escaped (markupsafe):
nothing a user or the feed wrote becomes markup.
"""
from __future__ import annotations

from markupsafe import escape

HTML = "dash_html_components"
VOID = {"input", "br", "hr", "img", "col", "wbr"}
# html props that become attributes (Dash's camelCase -> HTML); data-* and aria-* pass as they are
ATTRS = {"className": "class", "title": "title", "role": "role", "lang": "lang", "href": "href",
         "colSpan": "colspan", "rowSpan": "rowspan", "hidden": "hidden", "open": "open", "type": "type"}


def _style(style: dict) -> str:
    def css(k: str) -> str:  # fontSize -> font-size
        return "".join("-" + c.lower() if c.isupper() else c for c in k)
    return ";".join(f"{css(k)}:{v}" for k, v in style.items())


def _attr_html(attrs: dict) -> str:
    out = []
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        out.append(f" {k}" if v is True else f' {k}="{escape(v)}"')
    return "".join(out)


def _element(tag: str, attrs: dict, inner: str) -> str:
    if tag in VOID:
        return f"<{tag}{_attr_html(attrs)}>"
    return f"<{tag}{_attr_html(attrs)}>{inner}</{tag}>"


def _tree(node) -> str:
    """A dashboard.inplace tree: a string is text, [tag, attributes, *children] an element."""
    if isinstance(node, str):
        return str(escape(node))
    tag, attrs = node[0], dict(node[1] or {})
    attrs.pop("id", None)
    if isinstance(attrs.get("style"), dict):
        attrs["style"] = _style(attrs["style"])
    return _element(tag, attrs, "".join(_tree(kid) for kid in node[2:]))


def _props(node) -> dict:
    return {k: v for k, v in vars(node).items() if k[0] != "_" and not k.startswith("available_")}


def render(node) -> str:
    """``node`` (a component, a list of them, text) as markup."""
    if node is None or isinstance(node, bool):
        return ""
    if isinstance(node, (list, tuple)):
        return "".join(render(n) for n in node)
    if isinstance(node, (str, int, float)):
        return str(escape(str(node)))
    props = _props(node)
    kind, ns = type(node).__name__, getattr(node, "_namespace", None)
    if ns == HTML:
        attrs = {}
        for k, v in props.items():
            if k in ATTRS:
                attrs[ATTRS[k]] = v if isinstance(v, bool) else str(v)
            elif k.startswith(("data-", "aria-")):
                attrs[k] = str(v)
            elif k == "style" and isinstance(v, dict):
                attrs["style"] = _style(v)
        return _element(kind.lower(), attrs, render(props.get("children")))
    if kind == "Elements":
        return _element("div", {"class": props.get("className")}, "".join(_tree(n) for n in props.get("tree") or []))
    if kind == "RadioItems":
        labels = "".join(_element("label", {}, _element("input", {
            "type": "radio", "value": str(o["value"]), "checked": o["value"] == props.get("value"),
            "disabled": bool(o.get("disabled"))}, "") + str(escape(o["label"])))
            for o in props.get("options") or [])
        return _element("div", {"class": props.get("className")}, labels)
    if kind == "MapContainer":  # the box only: its size comes from street.css, its drawing from Leaflet
        return _element("div", {"class": " ".join(filter(None, [props.get("className"), "leaflet-container"]))}, "")
    return ""  # stores, timers and anything without a picture


def snapshot(layout) -> str:
    """The layout as a static picture in an ``inert`` ``.st-snap`` box: nothing in it takes focus or
    a tap, and assistive technology skips it (the live page that replaces it is the one to use)."""
    return f'<div class="st-snap" inert>{render(layout)}</div>'
