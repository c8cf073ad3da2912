/* The pages' non-html components (dashboard/components/__init__.py): Store, Interval, Location,
 * RadioItems, with dcc's props and behaviour for what the pages use, in plain React (no build);
 * and Elements, a static block of plain elements.
 * The Dash renderer finds them as window.dashboard[type]. */
(function () {
  "use strict";
  const React = window.React;
  const h = React.createElement;

  function Store() { return null; }

  function Interval(props) {
    const setProps = props.setProps;
    const interval = props.interval === undefined ? 1000 : props.interval;
    const max = props.max_intervals === undefined ? -1 : props.max_intervals;
    const n = React.useRef(props.n_intervals || 0);
    n.current = Math.max(n.current, props.n_intervals || 0);
    React.useEffect(function () {
      if (props.disabled || !(interval > 0)) return undefined;
      const timer = setInterval(function () {
        if (max >= 0 && n.current >= max) return;
        n.current += 1;
        setProps({ n_intervals: n.current });
      }, interval);
      return function () { clearInterval(timer); };
    }, [interval, props.disabled, max]);
    return null;
  }

  const URL_PROPS = ["pathname", "search", "hash", "href"];

  function Location(props) {
    const setProps = props.setProps;
    const seen = React.useRef({});
    // the browser -> props: on mount, back/forward, and Dash's own pushState event (dcc.Link)
    React.useEffect(function () {
      function read() {
        const l = window.location, now = { pathname: l.pathname, search: l.search, hash: l.hash, href: l.href };
        const changed = {};
        URL_PROPS.forEach(function (k) { if (seen.current[k] !== now[k]) changed[k] = now[k]; });
        seen.current = now;
        if (Object.keys(changed).length) setProps(changed);
      }
      read();
      window.addEventListener("popstate", read);
      window.addEventListener("_dashprivate_pushstate", read);
      return function () {
        window.removeEventListener("popstate", read);
        window.removeEventListener("_dashprivate_pushstate", read);
      };
    }, []);
    // props -> the browser: a callback moved the page
    React.useEffect(function () {
      const l = window.location;
      const path = props.pathname === undefined || props.pathname === null ? l.pathname : props.pathname;
      const search = props.search === undefined || props.search === null ? l.search : props.search;
      if (path === l.pathname && search === l.search) return;
      const target = path + search + l.hash;
      if (props.refresh) { window.location.assign(target); return; }
      window.history.pushState({}, "", target);
      seen.current = { pathname: l.pathname, search: l.search, hash: l.hash, href: l.href };
      setProps({ href: l.href });
    }, [props.pathname, props.search]);
    return null;
  }

  function RadioItems(props) {
    const setProps = props.setProps;
    const options = props.options || [];
    return h("div", { id: props.id, className: props.className, style: props.style },
      options.map(function (o) {
        return h("label", {
          key: String(o.value), className: props.labelClassName,
          style: props.inline ? { display: "inline-block" } : undefined,
        }, h("input", {
          type: "radio", name: props.id, value: String(o.value), checked: o.value === props.value,
          disabled: !!o.disabled, className: props.inputClassName,
          onChange: function () { setProps({ value: o.value }); },
        }), o.label);
      }));
  }

  // Elements: a tree from dashboard.inplace.tree (a string is text, [tag, attributes, ...children]
  // an element) as plain React elements. Text stays text; attributes come from inplace's list.
  const ATTR = { "class": "className", colspan: "colSpan", rowspan: "rowSpan", title: "title", role: "role", id: "id" };
  function element(node, key) {
    if (typeof node === "string") return node;
    const props = { key: key }, attrs = node[1] || {};
    for (const k in attrs) {
      if (k === "style") props.style = attrs.style;
      else if (ATTR[k]) props[ATTR[k]] = attrs[k];
      else if (/^(data|aria)-[a-z0-9-]+$/.test(k)) props[k] = attrs[k];
    }
    const kids = [];
    for (let i = 2; i < node.length; i++) kids.push(element(node[i], i));
    return h(node[0], props, kids.length ? kids : undefined);
  }
  function Elements(props) {
    return h("div", { id: props.id, className: props.className }, (props.tree || []).map(element));
  }

  window.dashboard = Object.assign(window.dashboard || {}, {
    Store: Store, Interval: Interval, Location: Location, RadioItems: RadioItems, Elements: Elements,
  });
})();
