"""The non-html components the pages use: Store, Interval, Location, RadioItems, and Elements.

dcc holds them too, but its bundle is ~93 kB on the wire (brotli 11) and about
30 % of the wall's framework bytes, for four components of a few lines each;
its evaluation also sits on the wall's first load. These are the same props
with the same behaviour, for what the pages use (``wall_components.js``, no
build step: plain ``React.createElement``). ``dashboard.page_scripts`` drops
dcc's bundle from the pages, and a unit test keeps dcc out of every layout.
"""
from __future__ import annotations

from dash.development.base_component import Component

NAMESPACE = "dashboard"  # window.dashboard in the browser; the package serving the script


class _Light(Component):
    _namespace = NAMESPACE
    _children_props: list = []
    _base_nodes = ["children"]
    _props: tuple = ()

    def __init__(self, id: str, **props):  # noqa: A002 - Dash's name for it
        self._prop_names = ["id", *self._props]
        self._valid_wildcard_attributes = []
        self.available_properties = list(self._prop_names)
        self.available_wildcard_properties = []
        super().__init__(id=id, **{k: v for k, v in props.items() if v is not None})


class Store(_Light):
    """In-memory data a callback writes and others read (dcc.Store, storage_type='memory')."""
    _type = "Store"
    _props = ("data",)

    def __init__(self, id: str, data=None):  # noqa: A002
        super().__init__(id, data=data)


class Interval(_Light):
    """Counts ``n_intervals`` up every ``interval`` ms while not ``disabled`` (dcc.Interval)."""
    _type = "Interval"
    _props = ("interval", "n_intervals", "disabled", "max_intervals")

    def __init__(self, id: str, interval: int = 1000, n_intervals: int = 0, disabled: bool = False,  # noqa: A002
                 max_intervals: int = -1):
        super().__init__(id, interval=interval, n_intervals=n_intervals, disabled=disabled,
                         max_intervals=max_intervals)


class Location(_Light):
    """The address bar as props: ``pathname``, ``search``, ``hash``, ``href`` follow the browser
    (first load, back/forward, Dash's pushState event); a callback writing ``pathname`` or
    ``search`` moves the page there (pushState, or a reload with ``refresh=True``)."""
    _type = "Location"
    _props = ("pathname", "search", "hash", "href", "refresh")

    def __init__(self, id: str, refresh: bool = False):  # noqa: A002
        super().__init__(id, refresh=refresh)


class RadioItems(_Light):
    """A row of radio buttons; ``value`` is the chosen option's value (dcc.RadioItems)."""
    _type = "RadioItems"
    _props = ("options", "value", "className", "labelClassName", "inputClassName", "inline", "style")

    def __init__(self, id: str, options: list, value=None, className: str | None = None,  # noqa: A002
                 labelClassName: str | None = None, inputClassName: str | None = None, inline: bool = False,
                 style: dict | None = None):
        opts = []
        for o in options:
            if not isinstance(o, dict) or "value" not in o or "label" not in o:
                raise ValueError(f"RadioItems {id!r}: each option is {{'label': ..., 'value': ...}}, not {o!r}")
            opts.append({"label": str(o["label"]), "value": o["value"], **({"disabled": True} if o.get("disabled") else {})})
        super().__init__(id, options=opts, value=value, className=className, labelClassName=labelClassName,
                         inputClassName=inputClassName, inline=inline or None, style=style)


class Elements(_Light):
    """A block of static content as ONE component: a ``div`` holding ``tree``, html components
    turned into plain elements (``dashboard.inplace.tree``: tags, text and a fixed list of
    attributes; no callbacks on anything inside). Each Dash component costs the renderer at
    mount and on every store update, and the map's legend alone was 45 of them."""
    _type = "Elements"
    _props = ("tree", "className")

    def __init__(self, id: str, children=None, className: str | None = None):  # noqa: A002
        from dashboard.inplace import tree

        super().__init__(id, tree=tree(children) if children is not None else [], className=className)


__all__ = ["Store", "Interval", "Location", "RadioItems", "Elements", "NAMESPACE"]
