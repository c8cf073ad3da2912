"""The wall's panels as plain elements: a component tree sent as data, and split into its shape
and its values (``describe``), so a refresh that keeps the shape rewrites values in the
page instead of rebuilding elements.

Why plain elements: every Dash component in a page subscribes to the renderer's store, and
every store dispatch (a callback's life is about ten of them) runs every subscriber. The panels
were about 400 of the wall's 600 components, so each live tick's callbacks cost the browser
about 200 ms of Dash bookkeeping for panels that do not take part in any callback. Built by
dashboard/assets/panels.js from the tree below, they are the same elements with the same
classes, and cost the store nothing.

A live tick mostly changes numbers, bar lengths and a colour: the values. The shape (which
elements, in which order, with which other props) changes rarely, e.g. when a chart gains a
row; then the part is sent whole.

``describe(children)`` walks html components depth first, in the order the browser's
``querySelectorAll('*')`` lists their elements. Everything about an element but its values
(its type, other props, whether it has text, its style keys, text mixed with elements) goes
into the shape. dashboard/assets/panels.js builds trees and writes values.
"""
from __future__ import annotations

import hashlib
import json

VALUE_PROPS = ("children", "className", "style", "title")
# props an element may carry, as the attribute panels.js sets; anything else is a mistake to hear of
ATTRIBUTES = {"className": "class", "title": "title", "role": "role", "colSpan": "colspan",
              "rowSpan": "rowspan", "id": "id"}
HTML = "dash_html_components"


def _props(node) -> dict:
    # the props set on the component; Component.to_plotly_json gives the same, ~7x slower
    return {k: v for k, v in vars(node).items() if k[0] != "_" and not k.startswith("available_")}


def _attrs(node, props: dict) -> dict:
    out = {}
    for k, v in props.items():
        if k == "children" or v is None:
            continue
        if k == "style":
            out["style"] = v
        elif k in ATTRIBUTES:
            out[ATTRIBUTES[k]] = str(v)
        elif k.startswith(("data-", "aria-")):
            out[k] = str(v)
        else:
            raise ValueError(f"{type(node).__name__}.{k} cannot be sent as a plain element")
    return out


def _text(kids) -> str | None:
    if isinstance(kids, bool) or not isinstance(kids, (str, int, float)):
        return None
    s = str(kids)
    return s or None


def _walk(node, shape: list, values: list) -> list:
    """The tree nodes of ``node``; its shape and values appended on the way."""
    if node is None or isinstance(node, bool):
        return []
    if isinstance(node, (list, tuple)):
        out = []
        for n in node:
            out.extend(_walk(n, shape, values))
        return out
    if isinstance(node, (str, int, float)):  # text beside elements: rewriting it in place is not safe
        s = str(node)
        shape.append(["s", s])
        return [s] if s else []
    if getattr(node, "_namespace", None) != HTML:
        raise ValueError(f"{type(node).__name__} cannot be sent as a plain element")
    props = _props(node)
    kids = props.get("children")
    text = _text(kids)
    style = props.get("style") or None
    title = props.get("title")
    other = sorted((k, v) for k, v in props.items() if k not in VALUE_PROPS)
    shape.append([node._type, text is not None, sorted(style) if style else None, title is not None,
                  "className" in props, other])
    values.append([text, props.get("className"), style, title])
    element = [node._type.lower(), _attrs(node, props)]
    element.extend([text] if text is not None else _walk(kids, shape, values))
    shape.append("/")
    return [element]


def describe(children, salt: str = "") -> tuple[str, list, list]:
    """(shape hash, values, tree) of a part's children, in one walk.

    ``values``: one ``[text, className, style, title]`` per element, in document order, ``text``
    set only for an element whose one child is non-empty text. ``tree``: a list of nodes, a
    string being text and an element ``[tag, attributes, *children]``. ``salt`` (the page: scope
    and language) goes into the shape, so nothing is carried in place from another page."""
    shape: list = [salt]
    values: list = []
    nodes = _walk(children, shape, values)
    blob = json.dumps(shape, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest(), values, nodes


def tree(children) -> list:
    """``children`` as plain elements: see ``describe``. Only html components (their tag is
    their type); text is never HTML."""
    return describe(children)[2]
