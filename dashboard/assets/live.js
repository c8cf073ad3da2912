/* The wall's live client: initial layers from compact URLs, then server push.
 *
 * start(cfg) (a clientside callback on the WALL_CONFIG store) loads the open
 * events into the clustered layer, then, after the first paint, hazards,
 * positions and any asset layer asked for; it opens an EventSource on
 * /api/v1/live?scope=… and applies each batch of deltas in place: new events
 * go to a small live layer, closed ones are hidden through the main layer's
 * hideout, workers move with setLatLng. A big layer is never re-sent.
 * The panels recompute from the store when LIVE_TICK changes (at most 1/s).
 * Without a ping for 4 s, or on a connection error, the banner shows; the
 * EventSource reconnects with Last-Event-ID (or ?since=) so nothing is missed.
 */
(function () {
  "use strict";
  const S = (window.wallLive = window.wallLive || {});
  const W = () => window.wallMap;
  // no longer open: done (结案, 评价) or final without being a case of its own (不予立案, 合并)
  const CLOSED = { closed: 1, evaluated: 1, rejected: 1, merged: 1 };
  // under rectification (domain.HAZARD_OPEN_STATES; "open" is the name before migration 0005)
  const HAZARD_OPEN = ["found", "ordered", "open"];
  S.seen = {};          // event id -> {ticker: ms, map: ms} (latency bench)
  S.updates = [];       // script ms per applied batch (update bench)
  S.ready = {};
  S.t0 = performance.now();
  S.marks = [];         // [label, ms since navigation]: where the load time goes (bench/wall.py --verbose)
  S.mark = function (label) { S.marks.push([label, Math.round(performance.now())]); };

  function setProps(id, props) {
    const dc = window.dash_clientside;
    if (dc && dc.set_props) dc.set_props(id, props);
  }

  function getJSON(url) {
    const early = window.__wallPrefetch || {};
    if (early[url]) { const p = early[url]; delete early[url]; return p; }
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(url + " -> HTTP " + r.status);
      return r.json();
    });
  }

  // Columnar layer (dashboard.wall_data.columnar) -> GeoJSON features. With col.steps, x and y
  // are differences from the previous row (the first row's from x0/y0).
  S.decode = function (col) {
    const n = col.n, q = col.q, x0 = col.x0, y0 = col.y0, xs = col.x, ys = col.y, steps = !!col.steps;
    let x = 0, y = 0;
    const names = Object.keys(col.c || {});
    const cols = names.map(function (k) { return col.c[k]; });
    const dicts = names.map(function (k) { return (col.d || {})[k]; });
    const out = new Array(n);
    // time columns come as minutes from t0 (epoch seconds)
    const tcols = (col.tc || []).map(function (k) { return names.indexOf(k); });
    const t0 = col.t0 || 0;
    for (let j = 0; j < tcols.length; j++) {
      const idx = tcols[j];
      if (idx < 0) continue;
      cols[idx] = cols[idx].map(function (v) { return v === null ? null : t0 + v * 60; });
    }
    for (let i = 0; i < n; i++) {
      const p = {};
      for (let j = 0; j < names.length; j++) {
        const v = cols[j][i];
        p[names[j]] = dicts[j] ? dicts[j][v] : v;
      }
      if (p.id === undefined) p.id = i;
      if (steps) { x += xs[i]; y += ys[i]; } else { x = xs[i]; y = ys[i]; }
      out[i] = { type: "Feature", geometry: { type: "Point", coordinates: [(x0 + x) / q, (y0 + y) / q] }, properties: p };
    }
    return { type: "FeatureCollection", features: out };
  };

  function toEpoch(v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return v > 1e12 ? v / 1000 : v;
    const t = Date.parse(v);
    return isNaN(t) ? null : t / 1000;
  }

  function eventFeature(d) {
    const xy = W().project(d.lon, d.lat);
    return {
      type: "Feature", geometry: { type: "Point", coordinates: xy },
      properties: { id: d.id, lvl: d.lvl, urg: d.urg ? 1 : 0, at: toEpoch(d.at), dl: toEpoch(d.dl), g: d.g,
        cat: d.cat, sub: d.sub || "", st: d.st, src: d.src, h: d.h || "", addr: d.addr || "" },
    };
  }

  S.markReady = function (what) {
    if (S.ready[what]) return;
    S.mark("ready " + what);
    S.ready[what] = performance.now();
    if (S.ready.grids && S.ready.events && !window.wallReady) {
      // two frames: the layers are painted, not only added
      requestAnimationFrame(function () { requestAnimationFrame(function () {
        window.wallReady = performance.now();
        document.documentElement.dataset.wallReady = "1";
        afterFirstPaint();
      }); });
    }
  };

  // --- start / stop -------------------------------------------------------------------------
  S.start = function (cfg) {
    const nu = window.dash_clientside.no_update;
    if (!cfg) return nu;
    S.stop();
    S.cfg = cfg;
    W().reset(cfg);
    S.mainIds = new Set(); S.partOf = {}; S.dirty = {}; S.gone = {}; S.stOverride = {}; S.eventData = {};
    S.live = new Map(); S.liveShown = new Map(); S.hazards = new Map(); S.positions = new Map();
    S.tickerIds = new Set(); S.syncPending = {}; S.count = 0; S.loaded = {}; S.lastId = S.lastId && S.scope === cfg.scope ? S.lastId : null;
    S.scope = cfg.scope; S.ready = {}; window.wallReady = 0; S.afterPaintDone = false;
    // The clock and the ticker wait for the map's first paint: their first date format builds
    // the zone's ICU data (~25 ms), which the load's busiest stretch can do without. A page whose
    // layers never become ready gets them after 2 s.
    clearTicker();
    S.clockStart = setTimeout(showTexts, 2000);
    W().renderCrumbs();
    S.mark("start");
    W().restyleGrids();  // grids drawn before this config arrived get their colours
    loadGrids();
    loadEvents(function () { S.markReady("events"); });
    if (!cfg.n_grids) S.markReady("grids");
    connect();
    S.watchdog = setInterval(watch, S.WATCH_MS);
    if (cfg.rotate > 0 && (cfg.rotation || []).length) S.rotateTimer = setTimeout(rotate, cfg.rotate * 1000);
    return nu;
  };

  function showTexts() {
    clearTimeout(S.clockStart);
    if (S.clockTimer) return;
    clock();
    S.clockTimer = setInterval(clock, 1000);
    renderTicker(S.cfg.ticker || []);
  }

  S.stop = function () {
    if (S.es) { S.es.close(); S.es = null; }
    clearInterval(S.clockTimer); clearTimeout(S.clockStart); S.clockTimer = null; clearInterval(S.watchdog); clearInterval(S.pollTimer); clearTimeout(S.rotateTimer);
    clearTimeout(S.tickTimer); clearTimeout(S.flyTimer); clearTimeout(S.retryTimer); clearTimeout(S.mainTimer); clearTimeout(S.verifyTimer);
    S.mainTimer = null;
    S.tickTimer = null; S.tickPending = false;  // a cleared timer must not read as running: ticks would stop
  };

  function afterFirstPaint() {
    if (S.afterPaintDone) return;
    S.afterPaintDone = true;
    const cfg = S.cfg;
    showTexts();
    // the rest in later tasks: this one is the first painted frame's
    setTimeout(function () { afterFirstPaintLoads(cfg); }, 0);
  }

  function afterFirstPaintLoads(cfg) {
    if (S.cfg !== cfg) return;  // the page moved on (a new scope): its own first paint loads these
    loadPoints("hazards", "map-hazards", function (fc) {
      fc.features.forEach(function (f) { S.hazards.set(f.properties.id, f); });
    });
    loadPoints("positions", "map-positions", function (fc) {
      fc.features.forEach(function (f) { S.positions.set(f.properties.id, f); });
    });
    (cfg.shown || []).forEach(function (layer) { S.loadAsset(layer); });
    const map = W().map;
    if (map && !map.__wallOverlays) {
      // An asset layer's data loads the first time its overlay is switched on.
      map.__wallOverlays = true;
      map.on("overlayadd", function (e) { S.overlays([e.name]); });
      map.on("overlayremove", function (e) {
        if ((S.cfg.overlays || {})[e.name] === "coverage") W().setCoverage(false);
      });
    }
  }

  const SLICE = 200;
  function afterLoad(id) {
    if (!S.syncPending[id]) return;
    S.syncPending[id] = false;
    if (id === "map-hazards") syncLayer(id, S.hazards, W().hazardMarkers);
    else syncLayer(id, S.positions, W().positions);
  }
  function loadPoints(layer, id, each) {
    if (S.loaded[layer]) return S.loaded[layer];
    S.loaded[layer] = getJSON(S.cfg.urls[layer]).then(function (col) {
      const fc = S.decode(col);
      if (each) each(fc);
      // Thousands of single markers (a city's hazards, its workers and vehicles): the first slice
      // goes through Dash, the rest straight into that layer's Leaflet instance one slice per
      // task, so no task builds more than SLICE markers.
      const feats = fc.features;
      setProps(id, { data: { type: "FeatureCollection", features: feats.slice(0, SLICE) } });
      return new Promise(function (resolve) {
        let i = SLICE;
        const t0 = performance.now();
        (function more() {
          if (i >= feats.length) { S.ready[layer] = performance.now(); afterLoad(id); resolve(fc); return; }
          const target = W().layers[id];
          if (!target) {  // the first slice is not drawn yet
            if (performance.now() - t0 > 5000) { setProps(id, { data: fc }); S.ready[layer] = performance.now(); afterLoad(id); resolve(fc); return; }
            setTimeout(more, 16); return;
          }
          target.addData({ type: "FeatureCollection", features: feats.slice(i, i + SLICE) });
          i += SLICE;
          setTimeout(more, 0);
        })();
      });
    }).catch(function (e) { console.warn(layer + " layer:", e.message); S.loaded[layer] = null; });
    return S.loaded[layer];
  }

  // Asset layers (thousands of points each): per group of streets, one group per task, only once
  // shown. The overlay's LayerGroup gets its GeoJSON layers (one per group, from the page's
  // template: layouts/map.py asset_templates) when the layer is first shown, empty; each group's
  // data follows as it arrives.
  // The layout holds no asset layer at all.
  const ASSET_IDS = { houses: "map-houses", keypop: "map-keypop", vehicles: "map-vehicles", facilities: "map-facilities" };
  S.loadAsset = function (layer) {
    if (!ASSET_IDS[layer] || S.loaded[layer]) return;
    S.loaded[layer] = true;
    const list = groups();
    const urls = S.cfg.urls[layer + "_parts"];
    const template = (S.cfg.asset_layers || {})[layer];
    const partId = function (key) { return template.props.id.replace("{part}", key); };
    // the overlay's layers are made in a task of their own (Dash renders them together); their
    // data follow in the same queue, so after it
    assetQueue.push(function () {
      setProps(ASSET_IDS[layer] + "-group", { children: list.map(function (g) {
        return { type: template.type, namespace: template.namespace, props: Object.assign({}, template.props, { id: partId(g[0]) }) };
      }) });
    });
    pumpAssets();
    let pending = list.length;
    list.forEach(function (g) {
      fetchGroup(urls, g[1], layer + " layer").then(function (cols) {
        // every layer's groups share one queue: one group (decode + cluster index) per task
        assetQueue.push(function () { setProps(partId(g[0]), { data: decodeGroup(cols) }); });
        pumpAssets();
        if (--pending === 0) {
          assetQueue.push(function () { S.ready[layer] = performance.now(); });
          pumpAssets();
        }
      });
    });
  };
  const assetQueue = [];
  let assetPumping = false;
  function pumpAssets() {
    if (assetPumping) return;
    assetPumping = true;
    (function next() {
      const job = assetQueue.shift();
      if (!job) { assetPumping = false; return; }
      // the queue carries on past a part that fails (its error still reaches the console)
      try { job(); } finally { setTimeout(next, 0); }
    })();
  }

  // Overlay names (as the layer control shows them) -> load the asset layers among them.
  S.overlays = function (names) {
    const map = (S.cfg && S.cfg.overlays) || {};
    (names || []).forEach(function (n) {
      if (map[n] === "coverage") W().setCoverage(true);
      else if (map[n]) S.loadAsset(map[n]);
    });
    return window.dash_clientside.no_update;
  };

  // --- clock and feed health -------------------------------------------------------------------
  function clock() {
    const box = document.getElementById("wall-clock");
    if (!box || !S.cfg) return;
    const key = S.cfg.lang + "|" + S.cfg.tz;
    if (!S.clockFmt || S.clockFmt.key !== key) {
      S.clockFmt = { key: key, f: new Intl.DateTimeFormat(S.cfg.lang === "en" ? "en-GB" : "zh-CN", {
        timeZone: S.cfg.tz, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) };
    }
    box.textContent = S.clockFmt.f.format(new Date());
  }

  function ui(key) { return W().lab("ui", key); }

  function setFeed(ok, detail) {
    const box = document.getElementById("feed-status");
    const banner = document.getElementById("feed-banner");
    if (box) {
      box.className = "feed-status " + (ok ? "feed-ok" : "feed-lost");
      box.textContent = (ok ? ui("wall_feed_ok") : ui("wall_feed_lost")) + (detail ? " · " + detail : "");
    }
    if (banner) banner.hidden = !!ok;
    S.connected = !!ok;
  }

  function health(h) {
    if (h.error) { setFeed(false, String(h.error)); return; }
    const parts = [];
    if (h.history) parts.push(ui("wall_feed_history") + " " + h.history + " " + ui("wall_feed_days"));
    const lag = h.lag !== undefined ? h.lag : h.pending;
    if (lag !== undefined && lag !== null) parts.push(ui("wall_feed_lag") + " " + lag);
    const last = h.last_message_at || h.last_at || h.last;
    if (last) {
      const t = W().fmtTime(toEpoch(last), false, true);
      if (t) parts.push(ui("wall_feed_last") + " " + t);
    }
    setFeed(true, parts.join(" · "));
  }

  // The page says the feed is lost at most LOST_AFTER_MS + WATCH_MS after its last message (the
  // server pings every second): within the 5 s the wall promises (wall016 reads these).
  S.LOST_AFTER_MS = 4000;
  S.WATCH_MS = 500;

  function watch() {
    const quiet = Date.now() - (S.lastPing || 0);
    if (S.lastPing && quiet > S.LOST_AFTER_MS && S.connected !== false) setFeed(false);
    if (!S.lastPing && performance.now() - S.t0 > 6000 && S.connected !== false) setFeed(false);
    if (S.es && S.es.readyState === 2 && !S.retryTimer) {
      // The server answered with an error: EventSource gives up, we retry from the last id.
      S.retryTimer = setTimeout(function () { S.retryTimer = null; connect(); }, 1500);
    }
  }

  function connect() {
    if (!S.cfg) return;
    if (S.cfg.poll || typeof EventSource === "undefined") return poll();
    if (S.es) S.es.close();
    const url = S.cfg.urls.live + (S.lastId ? "&since=" + encodeURIComponent(S.lastId) : "");
    const es = (S.es = new EventSource(url));
    es.onmessage = function (e) {
      S.lastRecv = Date.now();
      if (e.lastEventId) S.lastId = e.lastEventId;
      let deltas;
      try { deltas = JSON.parse(e.data); } catch (err) { console.warn("bad delta", err.message); return; }
      S.apply(Array.isArray(deltas) ? deltas : [deltas]);
    };
    es.addEventListener("ping", function (e) {
      S.lastPing = Date.now();
      if (e.lastEventId) S.lastId = e.lastEventId;
      let h = {};
      try { h = JSON.parse(e.data || "{}"); } catch (err) { h = {}; }
      health(h);
    });
    es.addEventListener("hello", function (e) { if (e.lastEventId) S.lastId = e.lastEventId; });
    // The resume point fell out of the replay buffer: re-read the store, then carry on live.
    es.addEventListener("gap", function () { loadAgain(); tick(); });
    es.onerror = function () { setFeed(false); S.failures = (S.failures || 0) + 1; };
    es.onopen = function () { S.failures = 0; };
  }

  // Fallback only (no EventSource, or ?poll=1 for the latency baseline): ask the store every second
  // for events changed since the last answer, and apply them like pushed deltas.
  function poll() {
    S.pollSince = new Date().toISOString();
    S.pollTimer = setInterval(function () {
      fetch(S.cfg.urls.recent + "&since=" + encodeURIComponent(S.pollSince)).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (body) {
        S.lastPing = Date.now();
        setFeed(true, "");
        S.pollSince = body.until;
        if (body.deltas.length) S.apply(body.deltas);
      }).catch(function () { setFeed(false); });
    }, 1000);
  }
  function loadAgain() {
    S.mainIds = new Set(); S.partOf = {}; S.gone = {}; S.stOverride = {};
    loadEvents(function () {});
  }

  // The grid geometry, one layer per part: dash-leaflet fetches each URL (already in the HTTP cache
  // from the page's prefetch) once its url prop is set.
  function loadGrids() {
    // the urls are in the layout (dash-leaflet loads them as the layers mount); only check later
    S.verifyTimer = setTimeout(function () { verifyParts(1); }, 4000);
  }

  // The clustered layers take data only once dash-leaflet's layers are mounted and idle (see
  // verifyParts): the first grid drawn says they are.
  function whenMounted(fn) {
    const t0 = performance.now();
    (function wait() {
      if (W().firstGrid || performance.now() - t0 > 3000) fn(); else requestAnimationFrame(wait);
    })();
  }

  // dash-leaflet ignores a new url/data that lands while the layer is still finishing its first
  // (empty) load, a race at page start. A part that shows nothing is simply sent again.
  function verifyParts(round) {
    const parts = S.cfg.parts || [S.cfg.scope];
    let missing = 0;
    parts.forEach(function (part, k) {
      const expect = (k + 1 < parts.length ? S.cfg.offsets[parts[k + 1]] : S.cfg.n_grids) - (S.cfg.offsets[part] || 0);
      if (expect > 0 && !(W().gridPartCount[part] > 0)) {
        missing++;
        setProps("map-grids-" + part, { url: S.cfg.urls.grid_parts[part] + "&r=" + round });
      }
    });
    groups().forEach(function (g) {
      const fc = S.eventData[g[0]];
      if (fc && fc.features.length && !W().eventPartDrawn[g[0]]) {
        missing++;
        setProps("map-events-" + g[0], { data: { type: "FeatureCollection", features: fc.features.slice() },
                                         superClusterOptions: clusterOptions() });
      }
    });
    if (missing && round < 4) S.verifyTimer = setTimeout(function () { verifyParts(round + 1); }, 700);
  }

  // Markers are sized in vh, so a 4K wall draws them twice as large as 1080p: the clustering
  // radius (in pixels) grows with them, or clusters would overlap one another.
  function clusterOptions() {
    const base = S.cfg.cluster || { radius: 56 };
    const scale = Math.max(1, window.innerHeight / 1080);
    return Object.assign({}, base, { radius: Math.round(base.radius * scale) });
  }

  // The clustered layers (events, assets) hold a group of streets each (cfg.groups: the group's
  // first street -> its streets; callbacks/wall.py event_groups): fetched per street (the same
  // cached URLs, prefetched by the page), drawn per group. Fewer, larger layers: each one costs a
  // Dash component, a store update, a cluster index and its own cluster markers.
  function groups() {
    const g = S.cfg.groups;
    return Object.keys(g).map(function (k) { return [k, g[k]]; });
  }
  S.groups = groups;
  // One group's columnar bodies, one per street; a street that failed is warned of and left out.
  function fetchGroup(urls, streets, what) {
    return Promise.all(streets.map(function (s) {
      return getJSON(urls[s]).catch(function (e) { console.warn(what + " " + s + ":", e.message); return null; });
    }));
  }
  function decodeGroup(cols) {
    const features = [];
    cols.forEach(function (col) {
      if (!col) return;
      const fs = S.decode(col).features;
      for (let i = 0; i < fs.length; i++) features.push(fs[i]);
    });
    return { type: "FeatureCollection", features: features };
  }

  // The open events, one clustered layer per group of streets.
  function loadEvents(done) {
    const list = groups();
    let pending = list.length;
    const finish = function () { if (--pending === 0) done(); };
    const fetched = list.map(function (g) { return fetchGroup(S.cfg.urls.event_parts, g[1], "events layer"); });
    // Groups of up to TASK_EVENTS events per task, back to back (setTimeout 0): a city's 50,000
    // events in one task froze the page for ~300 ms, while a district's 5,000 in ten tasks paid
    // ten renders (~0.1 s more to ready). (Measured alternatives, both worse at city scale: one
    // part per animation frame spread the events over ~1 s and the asset layers over 30 s; more
    // events per task are rendered by Dash together afterwards, one long task again.)
    const TASK_EVENTS = 12000;
    whenMounted(function () {
      const queue = [];
      let running = false;
      const pump = function () {
        if (!queue.length) { running = false; return; }
        let n = 0;
        while (queue.length && (n === 0 || n + queue[0].n <= TASK_EVENTS)) {
          const job = queue.shift();
          n += Math.max(1, job.n);
          job.run();
        }
        setTimeout(pump, 0);
      };
      list.forEach(function (g, i) {
        const key = g[0];
        fetched[i].then(function (cols) {
          const n = cols.reduce(function (a, c) { return a + (c ? c.n || 0 : 0); }, 0);
          queue.push({ n: n, run: function () {
            const fc = decodeGroup(cols);
            fc.features.forEach(function (f) { S.mainIds.add(f.properties.id); S.partOf[f.properties.id] = key; });
            S.eventData[key] = fc;
            setProps("map-events-" + key, { data: fc, hideout: { gone: {}, st: {} }, superClusterOptions: clusterOptions() });
            S.mark("events " + key);
            finish();
          } });
          if (!running) { running = true; pump(); }
        });
      });
    });
  }

  // --- applying deltas ---------------------------------------------------------------------
  S.apply = function (deltas) {
    const t0 = performance.now();
    let main = false, live = false, hz = false, pos = false;
    const fresh = [];
    for (const d of deltas) {
      if (!d || !d.k) continue;
      if (S.cfg.scope && d.g && d.g.indexOf(S.cfg.scope) !== 0) continue;  // the server filters; belt and braces
      S.count++;
      if (d.k === "event") {
        const open = d.op !== "remove" && !CLOSED[d.st];
        if (S.mainIds.has(d.id)) {
          if (!open) S.gone[d.id] = 1; else { delete S.gone[d.id]; S.stOverride[d.id] = d.st; }
          W().updateEventMarker(d.id, d.st, !open);
          S.dirty[S.partOf[d.id]] = 1;
          main = true;
        } else if (open && d.lon !== null && d.lon !== undefined) {
          S.live.set(d.id, eventFeature(d)); live = true;
        } else if (S.live.delete(d.id)) live = true;
        if (d.op !== "remove" && !S.tickerIds.has(d.id)) fresh.push(d);
      } else if (d.k === "hazard") {
        if (d.op === "remove" || HAZARD_OPEN.indexOf(d.st) < 0) { if (S.hazards.delete(d.id)) hz = true; }
        else if (d.lon !== null && d.lon !== undefined) {
          const old = W().hazardMarkers[d.id];
          if (old && W().layers["map-hazards"]) { W().layers["map-hazards"].removeLayer(old); delete W().hazardMarkers[d.id]; }
          S.hazards.set(d.id, { type: "Feature", geometry: { type: "Point", coordinates: W().project(d.lon, d.lat) },
            properties: { id: d.id, kind: d.kind, st: d.st, dl: toEpoch(d.dl), g: d.g } });
          hz = true;
        }
      } else if (d.k === "position") {
        const xy = W().project(d.lon, d.lat);
        const f = { type: "Feature", geometry: { type: "Point", coordinates: xy }, properties: { id: d.id, ak: d.ak, g: d.g, at: toEpoch(d.at) } };
        const known = S.positions.has(d.id);
        S.positions.set(d.id, f);
        const m = W().positions[d.id];
        if (known && m) m.setLatLng([xy[1], xy[0]]); else pos = true;
      } else if (d.k === "patrol") {
        W().markPatrolled(d.g);
      }
    }
    if (main) S.flushMainLater();
    if (live) applyLive();
    if (hz) syncLayer("map-hazards", S.hazards, W().hazardMarkers);
    if (pos) syncLayer("map-positions", S.positions, W().positions);
    fresh.forEach(function (d) { addTicker(d, true); });
    const sync = performance.now() - t0;
    S.updates.push({ n: deltas.length, sync: sync, at: t0, ids: fresh.map(function (d) { return d.id; }) });
    if (S.updates.length > 500) S.updates.splice(0, 250);
    tick();
  };

  // A hazard or position layer after a change: markers added or removed one by one on its Leaflet
  // instance (a city has thousands; re-sending the layer would rebuild all of them).
  function syncLayer(id, features, markers) {
    const layer = W().layers[id];
    if (!S.ready[id === "map-hazards" ? "hazards" : "positions"]) {
      S.syncPending[id] = true;  // still loading: synced once the last slice is in
      return;
    }
    if (!layer) {
      setProps(id, { data: { type: "FeatureCollection", features: Array.from(features.values()) } });
      return;
    }
    for (const key in markers) {
      const m = markers[key];
      if (!features.has(key) && !features.has(Number(key))) { layer.removeLayer(m); delete markers[key]; }
    }
    const add = [];
    features.forEach(function (f, key) { if (!markers[key]) add.push(f); });
    if (add.length) layer.addData({ type: "FeatureCollection", features: add });
  }

  // New events go to the small live layer. The first batch goes through Dash (set_props); from
  // then on markers are added to (and removed from) that layer's Leaflet instance directly, so a
  // batch costs the new markers only, not a redraw of every event since the page opened.
  function applyLive() {
    const layer = W().liveLayer;
    if (!layer) {
      S.liveShown = new Map(S.live);
      setProps("map-events-live", { data: { type: "FeatureCollection", features: Array.from(S.live.values()) } });
      return;
    }
    const shown = S.liveShown;
    shown.forEach(function (f, id) {
      if (!S.live.has(id) || S.live.get(id) !== f) {
        const m = W().liveMarkers[id];
        if (m) layer.removeLayer(m);
        shown.delete(id);
      }
    });
    const add = [];
    S.live.forEach(function (f, id) { if (!shown.has(id)) { add.push(f); shown.set(id, f); } });
    if (add.length) layer.addData({ type: "FeatureCollection", features: add });
  }

  // The clustered layer's hideout (closed ids, new states) is pushed at most every 3 s: it
  // re-renders the visible clusters, which at city scale costs more than a frame.
  S.flushMainLater = function () {
    if (S.mainTimer) return;
    S.mainTimer = setTimeout(S.flushMain, 3000);
  };
  S.flushMain = function () {
    S.mainTimer = null;
    const dirty = S.dirty;
    S.dirty = {};
    for (const part in dirty) {
      const gone = {}, st = {};
      for (const id in S.gone) if (S.partOf[id] === part) gone[id] = 1;
      for (const id in S.stOverride) if (S.partOf[id] === part) st[id] = S.stOverride[id];
      setProps("map-events-" + part, { hideout: { gone: gone, st: st } });
    }
  };

  // LIVE_TICK: the panels and the choropleth recompute from the store, at most once a second.
  // A tick carries the commit time of the newest delta the page has heard (its stream id, the
  // feed's own clock, not the wall PC's): the server answers with figures computed after that
  // commit, so one computation serves every wall that heard the same deltas. (Ticks are not
  // aligned across walls on purpose: spread out, their renders do not all land at once.)
  function tick() {
    if (S.tickTimer) { S.tickPending = true; return; }
    setProps("live-tick", { data: { n: S.count, at: heardAt() } });
    S.tickTimer = setTimeout(function () {
      S.tickTimer = null;
      if (S.tickPending) { S.tickPending = false; tick(); }
    }, Math.max(1000, (S.cfg && S.cfg.tick_ms) || 1000));
  }

  function heardAt() {
    const ms = S.lastId ? parseInt(String(S.lastId).split("-")[0], 10) : NaN;
    return isNaN(ms) || ms <= 0 ? Date.now() : ms;
  }

  // --- ticker and attention ----------------------------------------------------------------------
  function clearTicker() {
    const box = document.getElementById("wall-ticker");
    if (box) box.textContent = "";
  }

  // The page's newest events (newest first) go below any pushed since the page opened.
  function renderTicker(items) {
    const box = document.getElementById("wall-ticker");
    if (!box) return;
    items.forEach(function (d) {
      if (S.tickerIds.has(d.id) || box.children.length >= 30) return;
      S.tickerIds.add(d.id);
      box.appendChild(tickerItem(d));
    });
  }

  function tickerItem(d) {
    const li = W().el("li", "tick tick-l" + d.lvl + (d.urg ? " tick-urgent" : ""));
    li.dataset.ev = d.id;
    li.appendChild(W().el("span", "tick-time", W().fmtTime(toEpoch(d.at), false)));
    li.appendChild(W().el("span", "tick-cat", W().lab("cat", d.cat) + (d.sub ? "·" + W().lab("sub", d.sub) : "")));
    li.appendChild(W().el("span", "tick-place", d.addr || W().chain(d.g)));
    li.appendChild(W().el("span", "tick-text", (d.txt || "").slice(0, 40)));
    return li;
  }

  function addTicker(d, isNew) {
    const box = document.getElementById("wall-ticker");
    if (!box) return;
    S.tickerIds.add(d.id);
    const li = tickerItem(d);
    box.insertBefore(li, box.firstChild);
    while (box.children.length > 30) { const last = box.lastChild; S.tickerIds.delete(last.dataset.ev); box.removeChild(last); }
    if (isNew) {
      const now = Date.now();
      S.seen[d.id] = Object.assign(S.seen[d.id] || {}, { ticker: now, recv: S.lastRecv, sid: S.lastId });
      if (d.lvl === 1 || d.urg) attention(d, li);
    }
  }

  function attention(d, li) {
    li.classList.add("tick-flash");
    setTimeout(function () { li.classList.remove("tick-flash"); }, 10000);
    const map = W().map;
    if (S.cfg.sound) beep();
    if (!map || d.lon === null || d.lon === undefined) return;
    const xy = W().project(d.lon, d.lat);
    map.flyTo([xy[1], xy[0]], Math.max(map.getZoom(), 17), { duration: 1.2 });
    S.attention = { id: d.id, at: Date.now() };
    clearTimeout(S.flyTimer);
    S.flyTimer = setTimeout(function () { W().overview(true); }, 8000);
  }

  function beep() {
    try {
      const ctx = S.audio || (S.audio = new (window.AudioContext || window.webkitAudioContext)());
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.15; o.connect(g); g.connect(ctx.destination);
      o.start(); o.stop(ctx.currentTime + 0.35);
    } catch (e) { /* no audio device: the flash is enough */ }
  }

  // --- rotation through the streets (unattended walls) ---------------------------------------------
  function rotate() {
    const list = S.cfg.rotation || [];
    if (!list.length) return;
    const i = list.indexOf(S.cfg.scope);
    const next = list[(i + 1) % list.length];
    const q = new URLSearchParams(location.search);
    q.set("scope", next);
    // the region rotated through stays in the URL: the street's page is then sent the same list
    q.set("within", S.cfg.within || "");
    setProps("url", { search: "?" + q.toString() });
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    wallLive: { start: S.start },
  });
})();
