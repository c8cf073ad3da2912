/* The street view's browser half (layouts/street.py, callbacks/street.py).
 *
 * The map's drill-down (dashboard/assets/map.js: a tap on a grid, the Back button, a crumb) moves
 * ids.STREET_DRILL, so the server rebuilds the panels for the unit the map shows. A ranked name, a
 * listed event or hazard and a crumb carry the code to drill to (data-drill / data-code): one
 * listener on the document, no handler per element and no inline script (the page's CSP allows
 * none). Everything here does nothing outside the street page (its root is #street): the assets
 * load on every page.
 */
(function () {
  "use strict";
  const PAGE = "street", DRILL = "street-drill";

  function onPage() { return !!document.getElementById(PAGE); }

  function send(code) {
    const dc = window.dash_clientside;
    if (onPage() && dc && dc.set_props) dc.set_props(DRILL, { data: code });
  }

  // map.js's setDrill is the one place every drill passes through (grid taps, Back, crumbs, ours)
  function hook() {
    const W = window.wallMap;
    if (!W || W.__streetHooked) return;
    W.__streetHooked = true;
    const setDrill = W.setDrill, renderCrumbs = W.renderCrumbs;
    W.setDrill = function (code) {
      setDrill.call(W, code);
      send(W.drillCode || (W.cfg && W.cfg.root && W.cfg.root.code) || code);
    };
    // crumbs above the root's own are links back up: reachable by keyboard and touch
    W.renderCrumbs = function () {
      renderCrumbs.call(W);
      const box = document.getElementById("map-crumbs");
      if (!box || !onPage()) return;
      box.querySelectorAll(".crumb").forEach(function (c) {
        if (c.classList.contains("crumb-here")) { c.setAttribute("aria-current", "location"); return; }
        c.setAttribute("role", "link");
        c.tabIndex = 0;
      });
    };
  }
  hook();

  function drill(code, from) {
    const W = window.wallMap;
    if (!W || !code || !/^\d{6,24}$/.test(code)) return;
    hook();
    W.setDrill(code);
    // on a phone the panels are below the fold: bring the unit's name back into view
    const head = document.getElementById("street-unit");
    if (from && head && head.getBoundingClientRect().top < 0) head.scrollIntoView({ block: "start" });
  }

  document.addEventListener("click", function (e) {
    if (!onPage() || !e.target.closest) return;
    const el = e.target.closest("[data-drill], #map-crumbs .crumb[data-code]");
    if (!el) return;
    drill(el.dataset.drill || el.dataset.code, el);
  });
  document.addEventListener("keydown", function (e) {
    if (!onPage() || (e.key !== "Enter" && e.key !== " ") || !e.target.closest) return;
    const el = e.target.closest("#map-crumbs .crumb[data-code]");
    if (!el) return;
    e.preventDefault();
    drill(el.dataset.code, el);
  });

  // The first picture (dashboard/street/snapshot.py) is hidden by street.css once Dash has rendered
  // the page; it goes from the document then, so the page holds its content once.
  const snap = document.querySelector(".st-snap");
  if (snap) {
    const gone = function () {
      if (!document.getElementById(PAGE)) return false;
      snap.remove();
      return true;
    };
    if (!gone()) {
      const watch = new MutationObserver(function () { if (gone()) watch.disconnect(); });
      watch.observe(document.getElementById("react-entry-point") || document.body, { childList: true, subtree: true });
    }
  }

  window.streetView = { drill: drill };
})();
