/* The wall map's functions for dash-leaflet (named in layouts/map.py as {"variable": "wallMap.X"}).
 *
 * dash-leaflet calls them with its context (the map and the layer's props,
 * hideout included) as the last argument. Grid layers are kept by code so
 * live recolouring and drill-down restyle them in place: the geometry is
 * fetched once from its cached URL and never rebuilt for a new value.
 * Every text shown (popups, tooltips, crumbs) is set with textContent.
 */
(function () {
  "use strict";
  const W = (window.wallMap = window.wallMap || {});
  W.map = null;
  W.cfg = null;
  W.grids = {};        // grid code -> leaflet layer
  W.gridNames = {};    // grid code -> name
  W.gridIndex = {};    // grid code -> position in the measure arrays
  W.regions = {};      // street/community code -> outline layer
  W.positions = {};    // actor id -> marker
  W.values = null;
  W.breaks = null;
  W.measure = "open";
  W.palette = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  W.drillCode = "";
  W.showCoverage = true;
  W.drawn = {};        // event id -> Date.now() when its marker was added (latency bench)
  W.drawnPerf = {};
  W.evMarkers = {};    // event id -> its marker while drawn on its own
  W.liveMarkers = {};  // the same, for the live layer
  W.liveLayer = null;
  W.layers = {};         // dash-leaflet id -> its Leaflet GeoJSON layer (hazards, positions: live.js adds to it)
  W.hazardMarkers = {};  // hazard id -> marker
  W.gridPartCount = {};  // part -> grids drawn (live.js re-sends a part that stays empty)
  W.eventPartDrawn = {}; // part -> true once its clustered layer drew something    // event id -> performance.now() of the same moment (update bench)

  W.reset = function (cfg) {
    W.cfg = cfg;
    W.partLen = (cfg.parts && cfg.parts.length) ? cfg.parts[0].length : 0;
    W.grids = {}; W.gridNames = {}; W.gridIndex = {}; W.regions = {}; W.positions = {};
    // the choropleth's first values come with the page; later ones from the store (MAP_VALUES)
    W.values = cfg.values || {}; W.breaks = cfg.breaks || {}; W.measure = cfg.measure || "open"; W.drillCode = "";
    W.evMarkers = {}; W.liveMarkers = {}; W.liveLayer = null; W.layers = {}; W.hazardMarkers = {}; W.gridPartCount = {}; W.eventPartDrawn = {};
    W.gridsReady = false; W.firstGrid = false; W.gridCount = 0; W.tip = null; W.firstEvent = false; W.showCoverage = true;
  };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  W.el = el;

  function lab(kind, code) {
    const l = W.cfg && W.cfg.labels && W.cfg.labels[kind];
    return (l && l[code]) || code || "";
  }
  W.lab = lab;
  function ui(key) { return lab("ui", key) || key; }

  // Building an Intl.DateTimeFormat costs far more than using one: keep one per (language, zone, shape).
  const formats = {};
  W.fmtTime = function (epochS, withDate, withSeconds) {
    if (epochS === null || epochS === undefined || epochS === "") return "";
    const d = new Date(typeof epochS === "number" ? epochS * 1000 : epochS);
    if (isNaN(d)) return "";
    const tz = (W.cfg && W.cfg.tz) || "Asia/Shanghai";
    const locale = (W.cfg && W.cfg.lang) === "en" ? "en-GB" : "zh-CN";
    const key = locale + "|" + tz + "|" + (withDate ? 1 : 0) + (withSeconds ? 1 : 0);
    let f = formats[key];
    if (!f) {
      const opts = { timeZone: tz, hour: "2-digit", minute: "2-digit", hour12: false };
      if (withDate) { opts.month = "2-digit"; opts.day = "2-digit"; }
      if (withSeconds) opts.second = "2-digit";
      f = formats[key] = new Intl.DateTimeFormat(locale, opts);
    }
    return f.format(d);
  };

  W.chain = function (code) {
    if (!code) return "";
    const names = (W.cfg && W.cfg.names) || {};
    const parts = [];
    if (names[code.slice(0, 9)]) parts.push(names[code.slice(0, 9)]);
    if (names[code.slice(0, 12)]) parts.push(names[code.slice(0, 12)]);
    parts.push(W.gridNames[code] || code);
    return parts.join(" › ");
  };

  // --- grids: choropleth --------------------------------------------------------------
  W.NO_DATA = "#9a9a9a";  // grids with no value (no residents: no rate); the legend's "no data" swatch
  W.classColour = function (v, b) {
    let i = 0;
    while (i < b.length - 1 && v > b[i]) i++;
    const n = b.length, pal = W.palette;
    const k = n <= 1 ? pal.length - 1 : Math.round(i * (pal.length - 1) / (n - 1));
    return pal[k];
  };

  // null: the grid has no value for this measure (per1000 of a grid without residents: no rate)
  function gridValue(code, i, measure) {
    const arr = W.values && W.values[measure || W.measure];
    if (!arr) return 0;
    return arr[i] === null ? null : (arr[i] || 0);
  }
  function shownValue(v) { return v === null ? "\u2014" : String(v); }
  // Features carry their index within their part; the measure arrays span the whole scope.
  function globalIndex(p) {
    const offsets = (W.cfg && W.cfg.offsets) || {};
    return (offsets[p.c.slice(0, W.partLen || 0)] || 0) + p.i;
  }

  function styleFor(p) {
    const gi = globalIndex(p);
    const v = gridValue(p.c, gi);
    const b = (W.breaks && W.breaks[W.measure]) || [1];
    const out = v === null ? { fillColor: W.NO_DATA, fillOpacity: 0.55 }
      : v > 0 ? { fillColor: W.classColour(v, b), fillOpacity: 0.62 }
        : { fillColor: "#7890a0", fillOpacity: 0.10 };
    out.color = "#6d8196"; out.weight = 0.7; out.opacity = 0.85; out.fill = true;
    if (W.drillCode && p.c.indexOf(W.drillCode) !== 0) {
      out.fillOpacity *= 0.25; out.opacity = 0.25;
    }
    if (W.showCoverage && W.values && W.values.patrolled && W.values.patrolled[gi] === 1) {
      out.color = "#009E73"; out.weight = 2.2; out.dashArray = "5 4";
    } else {
      out.dashArray = null;
    }
    if (W.drillCode === p.c) { out.color = "#ffffff"; out.weight = 3; }
    return out;
  }

  W.gridStyle = function (feature, ctx) {
    if (ctx && ctx.map && !W.map) W.map = ctx.map;
    return styleFor(feature.properties);
  };

  // Shared handlers and one tooltip for all grids: at city scale (6,000 grids) a closure and a
  // tooltip object per polygon cost more than drawing them.
  function onGridClick(e) { W.drill(e.target.feature.properties.c); }
  function onGridOver(e) {
    const p = e.target.feature.properties;
    const box = el("div", "grid-tip");
    box.appendChild(el("div", "tip-title", p.n));
    box.appendChild(el("div", "", W.chain(p.c)));
    box.appendChild(el("div", "", ui("map_measure_" + W.measure) + ": " + shownValue(gridValue(p.c, globalIndex(p)))));
    if (!W.tip) W.tip = L.tooltip({ sticky: true, className: "wall-tooltip", direction: "top", offset: [0, -8] });
    W.tip.setContent(box).setLatLng(e.latlng);
    if (W.map) W.tip.addTo(W.map);
  }
  function onGridMove(e) { if (W.tip && W.map && W.map.hasLayer(W.tip)) W.tip.setLatLng(e.latlng); }
  function onGridOut() { if (W.tip && W.map) W.map.removeLayer(W.tip); }

  W.gridEach = function (feature, layer, ctx) {
    if (ctx && ctx.map) W.map = ctx.map;
    const p = feature.properties;
    if (!(p.c in W.grids)) {
      W.gridCount = (W.gridCount || 0) + 1;
      const part = p.c.slice(0, W.partLen || 0);
      W.gridPartCount[part] = (W.gridPartCount[part] || 0) + 1;
    }
    W.grids[p.c] = layer; W.gridNames[p.c] = p.n; W.gridIndex[p.c] = globalIndex(p);
    layer.on("click", onGridClick);
    layer.on("mouseover", onGridOver);
    layer.on("mousemove", onGridMove);
    layer.on("mouseout", onGridOut);
    if (!W.firstGrid) { W.firstGrid = true; if (window.wallLive) window.wallLive.mark("first grid"); }
    if (!W.gridsReady && W.cfg && W.gridCount >= W.cfg.n_grids) {
      W.gridsReady = true;
      if (window.wallLive) window.wallLive.markReady("grids");
    }
  };

  // Only grids whose look changed are restyled: each setStyle asks the canvas for a redraw.
  W.restyleGrids = function () {
    for (const code in W.grids) {
      const layer = W.grids[code];
      if (!layer.feature) continue;
      const st = styleFor(layer.feature.properties);
      const key = st.fillColor + st.fillOpacity + st.color + st.weight + st.opacity + st.dashArray;
      if (layer._wallKey === key) continue;
      layer._wallKey = key;
      layer.setStyle(st);
    }
  };

  // Clientside callback: new per-grid values (server, store-backed) or another measure.
  W.recolour = function (values, measure) {
    if (values && values.open) {
      // a grid patrolled today stays patrolled: keep what live check-ins marked before the store caught up
      const old = W.values && W.values.patrolled;
      if (old && values.patrolled && old.length === values.patrolled.length) {
        for (let i = 0; i < old.length; i++) if (old[i] === 1) values.patrolled[i] = 1;
      }
      W.values = values; W.breaks = values.breaks || W.breaks;
    }
    if (measure) W.measure = measure;
    W.restyleGrids();
    return window.dash_clientside.no_update;
  };

  // --- outlines and patrol coverage ----------------------------------------------------------
  W.outlineStyle = function (feature, ctx) {
    const h = (ctx && ctx.hideout) || {};
    // interactive: false lets clicks fall through to the grid below (on a canvas the topmost
    // containing polygon takes the click, filled or not)
    return { color: h.col || "#cfd8e3", weight: h.w || 1, fill: false, opacity: 0.9, interactive: false };
  };
  W.regionEach = function (feature, layer) { W.regions[feature.properties.c] = layer; };
  W.setCoverage = function (on) { W.showCoverage = !!on; W.restyleGrids(); };
  // A patrol check-in arrived: outline that grid now (the store-backed refresh confirms it later).
  W.markPatrolled = function (code) {
    const i = W.gridIndex[code];
    if (i === undefined || !W.values || !W.values.patrolled || W.values.patrolled[i] === 1) return false;
    W.values.patrolled[i] = 1;
    const layer = W.grids[code];
    if (layer && layer.feature) layer.setStyle(styleFor(layer.feature.properties));
    return true;
  };

  // --- drill-down: district -> street -> community -> grid, and back ---------------------------
  function boundsOf(code) {
    const layer = W.regions[code] || W.grids[code];
    if (layer && layer.getBounds) return layer.getBounds();
    let b = null;
    for (const g in W.grids) {
      if (g.indexOf(code) === 0) {
        const gb = W.grids[g].getBounds();
        b = b ? b.extend(gb) : L.latLngBounds(gb.getSouthWest(), gb.getNorthEast());
      }
    }
    return b;
  }
  W.boundsOf = boundsOf;

  function rootCode() { return (W.cfg && W.cfg.root && W.cfg.root.code) || ""; }

  W.overview = function (animate) {
    if (!W.map) return;
    const target = W.drillCode ? boundsOf(W.drillCode) : null;
    if (target) W.map.flyToBounds(target, { duration: animate ? 1.2 : 0, padding: [10, 10] });
    else if (W.cfg && W.cfg.bounds) {
      if (animate) W.map.flyToBounds(W.cfg.bounds, { duration: 1.2 });
      else W.map.fitBounds(W.cfg.bounds);
    }
  };

  W.drill = function (gridCode) {
    const cur = W.drillCode || rootCode();
    let next = gridCode;
    if (cur.length < 15 && gridCode.indexOf(cur) === 0) next = gridCode.slice(0, Math.min(15, cur.length + 3));
    else if (gridCode.indexOf(cur) !== 0) next = gridCode.slice(0, rootCode().length + 3);
    W.setDrill(next);
  };

  W.setDrill = function (code) {
    W.drillCode = code === rootCode() ? "" : code;
    W.restyleGrids();
    if (W.map) {
      const b = W.drillCode ? boundsOf(W.drillCode) : null;
      if (b) W.map.fitBounds(b, { padding: [12, 12] });
      else if (W.cfg && W.cfg.bounds) W.map.fitBounds(W.cfg.bounds);
    }
    W.renderCrumbs();
  };

  W.back = function () {
    if (W.drillCode) {
      const parent = W.drillCode.slice(0, W.drillCode.length - 3);
      W.setDrill(parent.length <= rootCode().length ? rootCode() : parent);
    }
    return window.dash_clientside.no_update;
  };

  W.renderCrumbs = function () {
    const box = document.getElementById("map-crumbs");
    const info = document.getElementById("map-info");
    const back = document.getElementById("map-back");
    if (!box || !W.cfg) return;
    box.textContent = "";
    const codes = [rootCode()];
    const d = W.drillCode;
    for (let n = rootCode().length + 3; d && n <= d.length; n += 3) codes.push(d.slice(0, n));
    const names = W.cfg.names || {};
    codes.forEach(function (c, k) {
      if (k) box.appendChild(el("span", "crumb-sep", "›"));
      const s = el("span", "crumb" + (k === codes.length - 1 ? " crumb-here" : ""),
        (k === 0 ? W.cfg.root.name : (names[c] || W.gridNames[c] || c)));
      s.dataset.code = c;
      box.appendChild(s);
    });
    box.dataset.level = String(codes.length - 1);
    box.dataset.code = d || rootCode();
    if (back) back.disabled = !d;
    if (info) {
      info.textContent = "";
      info.hidden = !(d && d.length >= 15);
      if (d && d.length >= 15) {
        const i = W.gridIndex[d];
        info.appendChild(el("div", "tip-title", W.gridNames[d] || d));
        info.appendChild(el("div", "info-code", d));
        ["open", "overdue", "per1000", "hazards"].forEach(function (m) {
          info.appendChild(el("div", "", ui("map_measure_" + m) + ": " + shownValue(gridValue(d, i, m))));
        });
      }
    }
  };

  // --- events ---------------------------------------------------------------------------
  // no longer open: done (结案, 评价) or final without being a case of its own (不予立案, 合并)
  const CLOSED = { closed: 1, evaluated: 1, rejected: 1, merged: 1 };
  W.isOverdue = function (p, st) {
    // a suspended (挂账) case's clock is stopped: it is never overdue while it waits
    return !!p.dl && !CLOSED[st] && st !== "suspended" && p.dl * 1000 < Date.now();
  };
  function stateGroup(st) {
    if (st === "reported" || st === "registered") return "new";
    if (st === "escalated" || st === "reopened" || st === "returned") return "hot";
    return "work";
  }

  // A popup shows what the marker carries at once (level, state, deadline, place). Category,
  // source, time, handler and address are not in the clustered layer's body (they would be
  // ~40 % of it): they are asked for when the popup opens, once per event. Live events carry
  // them already.
  const DETAIL = ["cat", "sub", "src", "at", "h", "addr"];
  function eventPopupRows(box, p, st) {
    box.textContent = "";
    if (p.cat !== undefined) box.appendChild(el("div", "tip-title", lab("cat", p.cat) + (p.sub ? " · " + lab("sub", p.sub) : "")));
    const row = function (k, v) {
      const r = el("div", "pop-row"); r.appendChild(el("span", "pop-k", ui(k))); r.appendChild(el("span", "pop-v", v)); box.appendChild(r);
    };
    row("map_popup_level", lab("lvl", p.lvl) + (p.urg ? " · " + ui("map_legend_urgent") : ""));
    if (p.src !== undefined) row("map_popup_source", lab("src", p.src));
    if (p.at !== undefined) row("map_popup_time", W.fmtTime(p.at, true));
    row("map_popup_state", lab("st", st) + (W.isOverdue(p, st) ? " · " + ui("map_legend_overdue") : ""));
    if (p.h !== undefined) row("map_popup_handler", p.h || "—");
    if (p.dl) row("map_popup_due", W.fmtTime(p.dl, true));
    row("map_popup_place", W.chain(p.g) + (p.addr ? " · " + p.addr : ""));
  }

  function eventPopup(p, st, marker) {
    const box = el("div", "ev-popup");
    eventPopupRows(box, p, st);
    const url = W.cfg && W.cfg.urls && W.cfg.urls.event;
    if (p.cat !== undefined || !url) return box;
    box.appendChild(el("div", "pop-loading", ui("map_popup_loading")));
    fetch(url.replace("{id}", encodeURIComponent(p.id)), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (d) {
        DETAIL.forEach(function (k) { p[k] = k === "at" ? Date.parse(d.at) / 1000 : (d[k] || ""); });
        eventPopupRows(box, p, st);
        const popup = marker.getPopup();
        if (popup && popup.isOpen()) popup.update();
      })
      .catch(function () {
        const wait = box.querySelector(".pop-loading");
        if (wait) wait.textContent = ui("map_popup_unavailable");
      });
    return box;
  }

  W.eventPoint = function (feature, latlng, ctx) {
    if (ctx && ctx.map) W.map = ctx.map;
    const p = feature.properties;
    const h = (ctx && ctx.hideout) || {};
    const st = (h.st && h.st[p.id]) || p.st;
    const cls = "ev ev-l" + p.lvl + " ev-" + stateGroup(st) + (W.isOverdue(p, st) ? " ev-overdue" : "") + (p.urg ? " ev-urgent" : "");
    const m = L.marker(latlng, { icon: L.divIcon({ className: cls, iconSize: null }), keyboard: false, riseOnHover: true });
    const isLive = ctx && ctx.id === "map-events-live";
    notePart(ctx);
    m.on("remove", function () {
      if (W.evMarkers[p.id] === m) delete W.evMarkers[p.id];
      if (isLive && W.liveMarkers[p.id] === m) delete W.liveMarkers[p.id];
    });
    m.on("add", function () {
      W.evMarkers[p.id] = m;
      if (isLive) {
        W.liveMarkers[p.id] = m;
        // the live layer's Leaflet instance: later batches are added to it directly (live.js)
        if (!W.liveLayer && m._eventParents) W.liveLayer = Object.values(m._eventParents)[0] || null;
      }
      const e = m.getElement();
      if (e) e.dataset.ev = p.id;
      if (!W.drawn[p.id]) { W.drawn[p.id] = Date.now(); W.drawnPerf[p.id] = performance.now(); }
      if (!W.firstEvent) { W.firstEvent = true; if (window.wallLive) window.wallLive.mark("first event marker"); }
    });
    m.bindPopup(function () { return eventPopup(p, st, m); }, { className: "wall-popup", maxWidth: 420 });
    return m;
  };

  // A state change or closure of an event in the clustered layer: the marker on screen (if the
  // event is drawn on its own, not inside a cluster) changes at once; the layer's hideout,
  // which re-renders the clusters, is refreshed later in a batch (wallLive.flushMain).
  W.updateEventMarker = function (id, st, gone) {
    const m = W.evMarkers[id];
    if (!m) return;
    if (gone) { const owner = m._eventParents && Object.values(m._eventParents)[0]; if (owner) owner.removeLayer(m); else m.remove(); return; }
    const e = m.getElement();
    if (!e) return;
    const p = (m.feature && m.feature.properties) || {};
    e.className = e.className.replace(/ev-(new|work|hot)/, "ev-" + stateGroup(st));
    if (W.isOverdue(p, st)) e.classList.add("ev-overdue"); else e.classList.remove("ev-overdue");
  };

  W.eventFilter = function (feature, ctx) {
    const p = feature.properties;
    if (p.cluster) return true;
    const gone = ctx && ctx.hideout && ctx.hideout.gone;
    return !(gone && gone[p.id]);
  };

  function clusterIcon(feature, latlng, cls) {
    const n = feature.properties.point_count;
    const size = n < 10 ? "s" : n < 100 ? "m" : n < 1000 ? "l" : "xl";
    const icon = L.divIcon({ className: cls + " cl-" + size, iconSize: null, html: "" });
    const m = L.marker(latlng, { icon: icon, keyboard: false });
    m.on("add", function () {
      const e = m.getElement();
      if (e) { e.textContent = ""; e.appendChild(el("span", "", feature.properties.point_count_abbreviated)); }
    });
    return m;
  }
  function notePart(ctx) {
    const id = ctx && ctx.id;
    if (id && id.indexOf("map-events-") === 0) W.eventPartDrawn[id.slice(11)] = true;
  }
  W.eventCluster = function (feature, latlng, index, ctx) { notePart(ctx); return clusterIcon(feature, latlng, "evc"); };
  W.assetCluster = function (feature, latlng, index, ctx) {
    const layer = (ctx && ctx.hideout && ctx.hideout.layer) || "asset";
    return clusterIcon(feature, latlng, "asc asc-" + layer);
  };

  // --- hazards, positions, assets ----------------------------------------------------------------
  function noteLayer(m, ctx) {
    const id = ctx && ctx.id;
    if (id && !W.layers[id] && m._eventParents) W.layers[id] = Object.values(m._eventParents)[0] || undefined;
  }

  // Hazards, workers and vehicles are drawn on the map's canvas, not as DOM markers: a city has
  // thousands of each, and every DOM marker registers three listeners on the map (each checked
  // against all the others: quadratic) and is one more element to move on every pan and zoom.
  // The shapes stay apart for colour-blind readers: triangle (hazard), circle (worker), square
  // (vehicle). Sizes follow the screen like the vh-sized markers around them.
  const Symbol = L.CircleMarker.extend({
    _updatePath: function () {
      const r = this._renderer, shape = this.options.shape;
      if (!r._ctx || shape === "circle") { L.CircleMarker.prototype._updatePath.call(this); return; }
      if (!r._drawing || this._empty()) return;
      const ctx = r._ctx, p = this._point, s = this._radius;
      ctx.beginPath();
      if (shape === "triangle") {
        ctx.moveTo(p.x, p.y - s); ctx.lineTo(p.x + s, p.y + s * 0.8); ctx.lineTo(p.x - s, p.y + s * 0.8); ctx.closePath();
      } else {
        ctx.rect(p.x - s, p.y - s, 2 * s, 2 * s);
      }
      r._fillStroke(ctx, this);
    },
  });
  function vh(n) { return n * window.innerHeight / 100; }
  W.symbolStyle = function (kind, late) {
    const COLOURS = W.cfg.symbols;  // layouts/map.py SYMBOL_COLOURS, as in the legend
    if (kind === "hazard") return { shape: "triangle", radius: vh(0.9), stroke: false, fillColor: late ? COLOURS.late : COLOURS.hazard, fillOpacity: 1 };
    if (kind === "vehicle") return { shape: "square", radius: vh(0.6), color: COLOURS.staff, weight: vh(0.2), opacity: 1, fillColor: COLOURS.vehicle, fillOpacity: 1 };
    return { shape: "circle", radius: vh(0.55), color: "#ffffff", weight: vh(0.15), opacity: 1, fillColor: COLOURS.staff, fillOpacity: 1 };
  };
  // ids of the symbols of one kind ("hz" or "pos") that are on the map now (tests, diagnostics)
  W.onMap = function (kind) {
    const all = kind === "hz" ? W.hazardMarkers : W.positions;
    return Object.keys(all).filter(function (id) { return !!all[id]._map; });
  };

  W.hazardPoint = function (feature, latlng, ctx) {
    const p = feature.properties;
    const late = p.dl && p.dl * 1000 < Date.now();
    const m = new Symbol(latlng, W.symbolStyle("hazard", late));
    W.hazardMarkers[p.id] = m;
    m.on("add", function () { noteLayer(m, ctx); });
    m.bindPopup(function () {
      const box = el("div", "ev-popup");
      box.appendChild(el("div", "tip-title", lab("hazard", p.kind)));
      box.appendChild(el("div", "", ui("map_popup_state") + ": " + lab("hazard_st", p.st)));
      box.appendChild(el("div", late ? "pop-late" : "", ui("map_popup_deadline") + ": " + W.fmtTime(p.dl, true)));
      box.appendChild(el("div", "", W.chain(p.g)));
      return box;
    }, { className: "wall-popup" });
    return m;
  };

  W.positionPoint = function (feature, latlng, ctx) {
    const p = feature.properties;
    const m = new Symbol(latlng, Object.assign(W.symbolStyle(p.ak === "vehicle" ? "vehicle" : "staff"), { interactive: false }));
    m.on("add", function () { noteLayer(m, ctx); });
    W.positions[p.id] = m;
    return m;
  };

  W.assetPoint = function (feature, latlng, ctx) {
    const p = feature.properties;
    const layer = (ctx && ctx.hideout && ctx.hideout.layer) || "asset";
    let cls = "as as-" + layer;
    if (layer === "facilities" && p.st === "fault") cls += " as-fault";
    const m = L.marker(latlng, { icon: L.divIcon({ className: cls, iconSize: null }), keyboard: false });
    m.bindPopup(function () {
      const box = el("div", "ev-popup");
      if (layer === "houses") {
        box.appendChild(el("div", "", ui("map_popup_rental") + ": " + p.r));
        box.appendChild(el("div", "", ui("map_popup_vacant") + ": " + p.v));
      } else if (layer === "keypop") {
        for (const k in (W.cfg.labels.keypop || {})) if (p[k]) box.appendChild(el("div", "", lab("keypop", k) + ": " + p[k]));
      } else if (layer === "vehicles") {
        box.appendChild(el("div", "", lab("vehicle", p.kind)));
      } else {
        box.appendChild(el("div", "", lab("facility", p.kind) + (p.st === "fault" ? " · !" : "")));
      }
      return box;
    }, { className: "wall-popup" });
    return m;
  };

  // --- GCJ-02 (the published forward transform, same as dashboard/geo/coords.py) -----------------------
  const A = 6378245.0, EE = 0.00669342162296594323;
  function tLat(x, y) {
    let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin(y / 3.0 * Math.PI)) * 2.0 / 3.0;
    r += (160.0 * Math.sin(y / 12.0 * Math.PI) + 320 * Math.sin(y * Math.PI / 30.0)) * 2.0 / 3.0;
    return r;
  }
  function tLon(x, y) {
    let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin(x / 3.0 * Math.PI)) * 2.0 / 3.0;
    r += (150.0 * Math.sin(x / 12.0 * Math.PI) + 300.0 * Math.sin(x / 30.0 * Math.PI)) * 2.0 / 3.0;
    return r;
  }
  W.toGcj02 = function (lon, lat) {
    let dlat = tLat(lon - 105.0, lat - 35.0), dlon = tLon(lon - 105.0, lat - 35.0);
    const rad = lat / 180.0 * Math.PI;
    const magic = 1 - EE * Math.sin(rad) * Math.sin(rad), sq = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sq) * Math.PI);
    dlon = (dlon * 180.0) / (A / sq * Math.cos(rad) * Math.PI);
    return [lon + dlon, lat + dlat];
  };
  // Live deltas are WGS-84; on a GCJ-02 basemap they are shifted like the server shifts the layers.
  W.project = function (lon, lat) {
    return W.cfg && W.cfg.crs === "gcj02" ? W.toGcj02(lon, lat) : [lon, lat];
  };

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    wallMap: { recolour: W.recolour, back: W.back },
  });
})();
