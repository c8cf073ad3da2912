/* The wall's panels as plain elements (callbacks/panels.py and dashboard/inplace.py say why).
 *
 * ids.PANEL_PATCH carries, keyed by the id of the element holding each panel:
 * - trees: panels sent whole, built here (a string is a text node, [tag, attributes,
 *   ...children] an element; text is never parsed as HTML);
 * - parts: panels that kept their shape, as one [text, className, style, title] per element in
 *   document order, written into the elements already shown. If a panel's elements do not
 *   match its values, nothing of it is written and the page's hashes are dropped, so the next
 *   refresh sends every panel whole.
 */
(function () {
  "use strict";
  const ATTR = /^(class|title|role|colspan|rowspan|id|data-[a-z0-9-]+|aria-[a-z0-9-]+)$/;

  function build(node) {
    if (typeof node === "string") return document.createTextNode(node);
    const el = document.createElement(node[0]), attrs = node[1];
    for (const k in attrs) {
      if (k === "style") Object.assign(el.style, attrs.style);
      else if (ATTR.test(k)) el.setAttribute(k, attrs[k]);
    }
    for (let i = 2; i < node.length; i++) el.appendChild(build(node[i]));
    return el;
  }

  function fits(els, values) {
    if (els.length !== values.length) return false;
    for (let i = 0; i < values.length; i++) {
      if (values[i][0] === null) continue;
      const n = els[i].firstChild;
      if (!n || n.nodeType !== 3 || n.nextSibling) return false;
    }
    return true;
  }

  function write(els, values) {
    for (let i = 0; i < values.length; i++) {
      const el = els[i], v = values[i];
      if (v[0] !== null && el.firstChild.nodeValue !== v[0]) el.firstChild.nodeValue = v[0];
      const cls = v[1] || "";
      if ((el.getAttribute("class") || "") !== cls) {
        if (cls) el.setAttribute("class", cls); else el.removeAttribute("class");
      }
      if (v[2]) for (const k in v[2]) el.style[k] = v[2][k];
      if (v[3] !== null && el.title !== v[3]) el.title = v[3];
    }
  }

  function patch(data) {
    const dc = window.dash_clientside;
    if (!data) return dc.no_update;
    let stale = false;
    for (const id in data.trees || {}) {
      const root = document.getElementById(id);
      if (root) root.replaceChildren.apply(root, data.trees[id].map(build));
    }
    for (const id in data.parts || {}) {  // id: the element holding the panel
      const root = document.getElementById(id);
      const els = root ? root.querySelectorAll("*") : [];
      if (root && fits(els, data.parts[id])) write(els, data.parts[id]);
      else stale = true;
    }
    if (stale) dc.set_props(data.hashes, { data: {} });
    return dc.no_update;  // a store update would be one more dispatch for every component to hear
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, { wallPanels: { patch: patch } });
})();
