"""The wall's speed in headless Chromium: prints one `name = value` line per figure.

    python bench/wall.py [--runs 3] [--updates 15] [--skip-city] [--skip-district] [--frozen] [--verbose]

Figures (issue 4, Speed; floors, update cost and live loads made fair in issue 14):
  wall_district_load_s    navigation -> grids and open events drawn (live.js sets window.wallReady two
                          frames after both layers are on the map), district scale: 573 grids, 5,000 open
                          events, 50,000 building/person/vehicle/facility points (asset layers start hidden
                          and load only when shown, so they are not fetched here)        (target < 1.0)
  wall_district_bytes     transferSize of the navigation and every resource once the page is quiet (no new
                          request but Dash callbacks for 1.5 s), i.e. compressed bytes on the wire, panels'
                          chart bundle included; Dash callback requests made after the page was ready are
                          the live feed's ticks (about one a second): they are counted apart, in
                          wall_district_live_tick_bytes                                     (target < 500,000)
  wall_city_load_s        6,000 grids + 50,000 open events drawn; 200,000 asset points (houses, key
                          population, vehicles, facilities at 50,000 each) requested after first paint
                          (?layers=…)                                                       (target < 1.5)
  wall_city_bytes         as above, everything including the 200,000 asset points (here "ready", the cut for
                          the live ticks' bytes, is the last asset layer loaded)             (target < 4,000,000)
  wall_longest_task_ms    longest main-thread task (PerformanceObserver 'longtask', installed before any
                          page script) from navigation until every layer has loaded, city scale (target < 200)
  wall_update_script_ms   what one live batch costs the browser at city scale (median of --updates batches,
                          each: a new event, a state change of an event in the clustered layer, a worker
                          moving), the sum of three parts, each printed too:
    wall_update_live_marker_ms  wallLive.apply starts -> the new event's marker is in the DOM and the next
                          frame has been painted (apply's own synchronous part: wall_update_apply_ms)
    wall_update_tick_ms   the tick apply sends (set_props live-tick): its first Dash callback request
                          starts -> the last request it chains has answered and two frames later its
                          outputs are painted (the server's round trip included;
                          wall_update_tick_requests: how many requests)
    wall_update_cluster_ms  the clustered layer's re-render for the state change: live.js defers it (at most
                          one hideout push per 3 s); the bench holds that timer and, once the tick is
                          painted, calls wallLive.flushMain() -> the last change in the map's marker panes
                          has been painted (the frame after it)
                                                                                            (target < 50)
  (until issue 14 this figure covered the first part only: apply -> the marker added to the live layer)
With --verbose, each resource is listed as [url, bytes, start ms, end ms], then the page's marks and
long tasks (ms since navigation). Supporting lines split the bytes into framework (Dash/React/Leaflet/plotly bundles, assets, the page)
and data (the map's URLs and Dash callback responses), so a budget miss says which side it is.
  wall_baseline_empty_map_s  the floor, measured in the same run: one empty dash-leaflet map served the way the
                          wall is (the wall's Dash class, so the same trimmed scripts of dashboard/page_scripts.py
                          and preloads; the wall server's Flask-Compress settings; dashboard/api/bundles.py's
                          brotli-11 bundles and minified assets), navigation -> map drawn (two frames after
                          its panes exist)
  wall_baseline_empty_map_bytes  that page's bytes on the wire: the framework floor the wall stands on
  wall_district_ratio_vs_empty_map  wall_district_load_s / wall_baseline_empty_map_s (like with like)
  wall_baseline_stock_empty_map_s / _bytes  the second, named baseline: the same empty map in a stock Dash app
                          (every framework bundle, Flask-Compress's defaults: the issue's 390 KB page);
                          wall_district_ratio_vs_stock_empty_map divides by it
                          (until issue 14 this stock page was the only floor, named wall_baseline_empty_map_*)
Live or frozen (wall_load_conditions says which): by default the timed loads run with the feed running,
as in a live demo: --feed-reports reports and --feed-pings position pings a second are published through
the stream (feed.publish) and stored by a consumer process (`python -m dashboard consume`), so the
store's data versions change between loads and the server's data caches (keyed by them) miss as on a live
wall; wall_<scale>_feed_published / _feed_reports_stored say what went through. --frozen times a store
that does not change (every load after the warm-up hits warm data caches; the only mode before issue 14).
Each load uses a fresh browser (cold cache), timed from a navigation made once that browser is idle, after
one warm-up load (bundles' brotli bodies made, geometry cached); the floors are measured the same way; the
median of --runs is printed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import synthetic_city as sc  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.services import Services  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from tests.integration.wallkit import AppServer, browser_idle, chrome, wait_for  # noqa: E402

LONGTASKS = """
window.__longest = 0; window.__longtasks = 0; window.__tasks = [];
try {
  new PerformanceObserver(function (list) {
    list.getEntries().forEach(function (e) {
      window.__longtasks++; window.__longest = Math.max(window.__longest, e.duration);
      window.__tasks.push([Math.round(e.startTime), Math.round(e.duration)]);
    });
  }).observe({type: 'longtask', buffered: true});
} catch (e) {}
"""

# arguments[0]: the page's ready time (ms since navigation); Dash callback requests made after it are
# live ticks (about one a second while the feed runs), counted apart from the load's bytes.
BYTES = """
const nav = performance.getEntriesByType('navigation')[0], ready = arguments[0] || Infinity;
let fw = nav ? nav.transferSize : 0, data = 0, live = 0, rows = [];
for (const e of performance.getEntriesByType('resource')) {
  const u = e.name, cb = u.indexOf('_dash-update-component') >= 0;
  const isData = u.indexOf('/api/') >= 0 || cb;
  if (cb && e.startTime > ready) live += e.transferSize;
  else if (isData) data += e.transferSize; else fw += e.transferSize;
  rows.push([u.replace(location.origin, '').slice(0, 90), e.transferSize, Math.round(e.startTime), Math.round(e.responseEnd)]);
}
return {framework: fw, data: data, live: live, rows: rows, count: rows.length};
"""


def make_services(tmp: Path) -> Services:
    tmp.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({}, database_url=f"sqlite:///{tmp / 'bench.db'}", var_dir=str(tmp / "var"),
                                 demo=False)
    return Services.open(settings)


def build(svc, *, streets, communities, grids, bbox, events, buildings, hazards=200, positions=600):
    t0 = time.perf_counter()
    rows = sc.city_regions(streets=streets, communities=communities, total_grids=grids, bbox=bbox)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, events, open_share=1.0)
    sc.insert_hazards(svc.engine, rows, hazards)
    sc.insert_positions(svc.engine, rows, positions)
    sc.insert_patrols(svc.engine, [r.code for r in rows if r.level == "grid"][::3])
    sc.insert_assets(svc.engine, rows, buildings)
    return rows, time.perf_counter() - t0


def settle(driver, quiet_s: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until no new resource entry appeared for quiet_s (Dash callback requests aside: with the
    feed running, the page's live tick asks for one about every second)."""
    deadline = time.time() + timeout
    last, since = -1, time.time()
    while time.time() < deadline:
        n = driver.execute_script("return performance.getEntriesByType('resource').filter(function (e) {"
                                  " return e.name.indexOf('_dash-update-component') < 0; }).length")
        if n != last:
            last, since = n, time.time()
        elif time.time() - since >= quiet_s:
            return
        time.sleep(0.1)


def fresh_browser():
    """A cold Chromium, timed only once it is idle (wallkit.browser_idle): a navigation made while
    its first renderer is still starting shares the CPU with that start-up (~0.7 s of one core on
    this machine's two). DevTools' performance log is off: recording every network event costs
    the browser CPU during the load, and the bench reads the Resource Timing API instead."""
    d = chrome(1920, 1080, performance_log=False)
    browser_idle(d)
    return d


def load_once(url: str, *, assets: tuple[str, ...] = ()) -> dict:
    d = fresh_browser()
    try:
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LONGTASKS})
        d.get(url)
        wait_for(d, "window.wallReady", 60, 0.05)
        ready_ms = d.execute_script("return window.wallReady")
        for layer in assets:
            wait_for(d, f"window.wallLive && wallLive.ready['{layer}']", 120, 0.1)
        settle(d)
        assets_ms = {a: d.execute_script(f"return wallLive.ready['{a}']") for a in assets}
        b = d.execute_script(BYTES, max([ready_ms, *assets_ms.values()]))
        out = {"load_s": ready_ms / 1000.0, "bytes": b["framework"] + b["data"], "framework": b["framework"],
               "data": b["data"], "live": b["live"], "longest": d.execute_script("return window.__longest"),
               "rows": b["rows"], "marks": d.execute_script("return wallLive.marks"),
               "tasks": d.execute_script("return window.__tasks"), "assets_ms": assets_ms,
               "severe": [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]}
        return out
    finally:
        d.quit()


# Installed before any page script of the update bench's browser (not the load runs'): notes every
# Dash callback request (start, response applied and painted) and DOM changes in the map's marker
# panes (where the clustered layers re-render).
UPDATE_PROBE = """
window.__bench = (function () {
  const B = {calls: [], pending: 0, lastMut: 0, muts: 0, frame: false, lastPaint: 0};
  const orig = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    if (url.indexOf('_dash-update-component') < 0) return orig.apply(this, arguments);
    const rec = {start: performance.now(), end: 0, painted: 0};
    B.calls.push(rec); B.pending++;
    function painted() {  // Dash applies the outputs after the body is read: two frames later they are on screen
      rec.end = performance.now();
      requestAnimationFrame(function () { requestAnimationFrame(function () {
        rec.painted = performance.now(); B.pending--; }); });
    }
    return orig.apply(this, arguments).then(function (res) {
      const json = res.json.bind(res), text = res.text.bind(res);
      res.json = function () { return json().then(function (d) { painted(); return d; }); };
      res.text = function () { return text().then(function (d) { painted(); return d; }); };
      return res;
    }, function (e) { rec.painted = performance.now(); B.pending--; throw e; });
  };
  new MutationObserver(function (records) {
    for (const r of records) {
      const t = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (t && t.closest && t.closest('.leaflet-marker-pane')) {
        B.lastMut = performance.now(); B.muts++;
        if (!B.frame) {  // the frame that paints this change: its time, once painted
          B.frame = true;
          requestAnimationFrame(function () { setTimeout(function () { B.frame = false; B.lastPaint = performance.now(); }, 0); });
        }
        return;
      }
    }
  }).observe(document, {childList: true, subtree: true, attributes: true});
  return B;
})();
"""

UPDATE = """
const done = arguments[arguments.length - 1];
const k = arguments[0], B = window.__bench;
const main = wallLive.mainIds.values();
for (let i = 0; i < k; i++) main.next();
const existing = main.next().value;
const grid = Object.keys(wallMap.grids)[k % 50];
const c = wallMap.grids[grid].getCenter();
const pos = Object.keys(wallMap.positions)[0];
const id = 'bench-upd-' + k;
const batch = [
  {k: 'event', op: 'upsert', g: grid, id: id, lon: c.lng, lat: c.lat, cat: 'safety', sub: 'gas', lvl: 2, urg: false,
   st: 'reported', src: 'grid_patrol', at: new Date().toISOString(), dl: null, h: null, txt: 'bench', addr: 'bench'},
  {k: 'event', op: 'upsert', g: grid, id: existing, lon: c.lng, lat: c.lat, cat: 'safety', lvl: 2, urg: false,
   st: k % 2 ? 'handling' : 'dispatched', src: 'grid_patrol', at: new Date().toISOString()},
  {k: 'position', op: 'upsert', g: grid, id: pos, ak: 'staff', lon: c.lng + 0.0005, lat: c.lat, at: new Date().toISOString()},
];
function frame() { return new Promise(function (ok) { requestAnimationFrame(function () { setTimeout(ok, 0); }); }); }
function until(test, ms) {
  const t = performance.now();
  return new Promise(function (ok, no) {
    (function poll() {
      const v = test();
      if (v) return ok(v);
      if (performance.now() - t > ms) return no(new Error('timeout'));
      setTimeout(poll, 2);
    })();
  });
}
const calls0 = B.calls.length;
const t0 = performance.now();
wallLive.apply(batch);
const applied = performance.now();
// live.js defers the clustered layer's hideout (flushMainLater: at most one push per 3 s); hold that
// timer (a set mainTimer keeps flushMainLater from arming another) and flush it below, after the tick
clearTimeout(wallLive.mainTimer);
wallLive.mainTimer = -1;
const out = {apply: applied - t0};
until(function () { return wallMap.drawnPerf[id]; }, 5000).then(frame).then(function () {
  out.live = performance.now() - t0;
  // the tick (live.js: setProps live-tick at the end of apply) and any callback it chains
  return until(function () {
    const mine = B.calls.slice(calls0);
    return mine.length && B.pending === 0 && performance.now() - Math.max.apply(null, mine.map(function (c) { return c.painted; })) > 150;
  }, 10000);
}).then(function () {
  const mine = B.calls.slice(calls0);
  out.tick = Math.max.apply(null, mine.map(function (c) { return c.painted; })) - mine[0].start;
  out.calls = mine.length;
  // the clustered layer's hideout for the state change, flushed now
  const m0 = B.muts, t1 = performance.now();
  wallLive.flushMain();
  return until(function () {
    return B.muts > m0 && !B.frame && B.lastPaint > B.lastMut && performance.now() - B.lastMut > 100;
  }, 10000).then(function () { out.cluster = B.lastPaint - t1; out.clusterMuts = B.muts - m0; });
}).then(function () { done(out); }, function (e) { done({error: String(e), out: out}); });
"""


def update_ms(url: str, n: int = 15) -> dict:
    """Medians over n live batches, each: a new event, a state change of an event of the clustered
    layer, a worker moving (see the module doc for what each figure covers)."""
    d = chrome(1920, 1080, performance_log=False)
    try:
        browser_idle(d)
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": UPDATE_PROBE})
        d.set_script_timeout(60)
        d.get(url)
        wait_for(d, "window.wallReady", 60, 0.05)
        settle(d)
        time.sleep(1.5)  # the load's own tick is over (live.js sends at most one a second)
        runs = []
        for k in range(n):
            r = d.execute_async_script(UPDATE, k)
            if "error" in r:
                raise RuntimeError(f"live update {k}: {r['error']} (so far {r['out']})")
            runs.append(r)
            time.sleep(1.2)  # the next batch's tick is not held back by the throttle
        out = {key: statistics.median(r[key] for r in runs) for key in ("apply", "live", "tick", "cluster")}
        out["total"] = statistics.median(r["live"] + r["tick"] + r["cluster"] for r in runs)
        out["calls"] = statistics.median(r["calls"] for r in runs)
        return out
    finally:
        d.quit()


def med(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def report(prefix: str, results: list[dict]) -> None:
    print(f"{prefix}_load_s = {med(results, 'load_s'):.3f}")
    print(f"{prefix}_bytes = {int(med(results, 'bytes'))}")
    print(f"{prefix}_framework_bytes = {int(med(results, 'framework'))}")
    print(f"{prefix}_data_bytes = {int(med(results, 'data'))}")
    print(f"{prefix}_live_tick_bytes = {int(med(results, 'live'))}")
    runs = ",".join(f"{r['load_s']:.3f}" for r in results)
    print(f"{prefix}_load_runs_s = {runs}")


MAP_DRAWN = """
window.__mapAt = 0;
new MutationObserver(function (m, obs) {
  if (document.querySelector('.leaflet-container .leaflet-map-pane')) {
    obs.disconnect();
    requestAnimationFrame(function () { requestAnimationFrame(function () { window.__mapAt = performance.now(); }); });
  }
}).observe(document, {childList: true, subtree: true});
"""


def _empty_map_layout():
    import dash_leaflet as dl
    from dash import html

    return html.Div(dl.Map(center=[36.06, 120.38], zoom=13, children=[], style={"height": "100vh"}))


def stock_empty_map():
    """Stock Dash: a bare app holding one empty dash-leaflet map (every framework bundle, Flask-Compress
    at its defaults)."""
    import dash

    app = dash.Dash(__name__, serve_locally=True, compress=True)
    app.layout = _empty_map_layout()
    return app


def fair_empty_map(wall_app, assets_dir: Path):
    """The same empty map served the way the wall is: the wall's Dash class (dashboard.app.CommandCenter:
    the framework scripts trimmed by dashboard/page_scripts.py, the layout preloaded), its server's
    Flask-Compress settings (brotli first, level 5), and dashboard/api/bundles.py (bundles and assets
    brotli-11, assets minified). It has no assets of its own (the wall's scripts are the wall's cost)."""
    import flask

    from dashboard.api import bundles

    server = flask.Flask(__name__)
    server.config.update({k: v for k, v in wall_app.server.config.items() if k.startswith("COMPRESS_")})
    assets_dir.mkdir(parents=True, exist_ok=True)
    app = type(wall_app)(__name__, server=server, assets_folder=str(assets_dir), update_title=None,
                         compress=True, serve_locally=True)
    app.layout = _empty_map_layout()
    bundles.register(server, None)
    return app


def map_floor(app, runs: int) -> tuple[float, int]:
    """An empty map page: navigation -> map drawn (two frames after its panes exist), bytes on the wire;
    medians of ``runs`` cold loads after one that warms the server."""
    times, sizes = [], []
    with AppServer(app, sign_in=True) as srv:
        for _ in range(runs + 1):  # the first load warms the server
            d = fresh_browser()
            try:
                d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MAP_DRAWN})
                d.get(srv.url + "/")
                wait_for(d, "window.__mapAt > 0", 60, 0.05)
                times.append(d.execute_script("return window.__mapAt") / 1000.0)
                settle(d)
                b = d.execute_script(BYTES, 0)
                sizes.append(b["framework"] + b["data"])
            finally:
                d.quit()
    return statistics.median(times[1:]), int(statistics.median(sizes[1:]))


class Feed:
    """The live feed during the timed loads, as in the demo: reports and position pings published
    through the real stream (feed.publish, XADD) and stored by a consumer process (`python -m
    dashboard consume`), so the store's data versions change between loads and the server's data
    caches miss as they do on a live wall."""

    def __init__(self, svc, rows, reports_per_s: float, pings_per_s: float):
        self.svc, self.reports, self.pings = svc, reports_per_s, pings_per_s
        self.grids = [r for r in rows if r.level == "grid"]
        self.stop = threading.Event()
        self.published = 0
        self.proc = None
        self.thread = None

    def __enter__(self):
        env = dict(os.environ, DATABASE_URL=self.svc.settings.database_url, REDIS_URL=self.svc.redis_url,
                   VAR_DIR=self.svc.settings.var_dir, DEMO="0", CONSUMER_WORKERS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "dashboard", "consume", "--name", "bench-wall-feed"],
                                     env=env, cwd=Path(__file__).resolve().parents[1],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.events0 = self._count()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _count(self) -> int:
        import sqlalchemy as sa

        from dashboard.store.schema import event

        with self.svc.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(event)).scalar_one()

    def _run(self) -> None:
        from datetime import datetime, timezone

        from dashboard.feed.publish import publish

        r = self.svc.new_redis()
        step = 1.0 / (self.reports + self.pings)
        share = self.reports / (self.reports + self.pings)
        i, due, owed = 0, time.monotonic(), 0.0
        while not self.stop.is_set():
            g = self.grids[(i * 37) % len(self.grids)]
            c = g.geom.representative_point()
            now = datetime.now(timezone.utc).isoformat()
            owed += share
            if owed >= 1.0:
                owed -= 1.0
                msg = {"type": "event.reported", "id": f"m-wall-{i:06d}", "event_id": f"wall-feed-{i:06d}",
                       "source": "grid_patrol", "occurred_at": now, "location": {"lon": c.x, "lat": c.y},
                       "actor": {"kind": "resident"}, "category": "environment",
                       "subcategory": "garbage", "level": 3, "urgent": False, "description": "演示数据",
                       "address": "测试路"}
            else:
                msg = {"type": "position", "id": f"p-wall-{i:06d}", "source": "system", "occurred_at": now,
                       "location": {"lon": c.x + 0.0002 * (i % 7), "lat": c.y}, "actor": {"kind": "staff",
                       "id": f"stf{(i * 13) % 600:05d}"}}
            publish(r, msg)
            self.published += 1
            i += 1
            due += step
            self.stop.wait(max(0.0, due - time.monotonic()))
        r.close()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)
        time.sleep(1.0)  # the consumer stores the last batch
        self.stored = self._count() - self.events0
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--updates", type=int, default=15, help="live batches timed by wall_update_script_ms")
    ap.add_argument("--skip-city", action="store_true")
    ap.add_argument("--skip-district", action="store_true")
    ap.add_argument("--frozen", action="store_true", help="time the loads without the feed (a store that "
                    "does not change: every load after the first hits warm data caches)")
    ap.add_argument("--feed-reports", type=float, default=1.0, help="reports per second during the loads")
    ap.add_argument("--feed-pings", type=float, default=6.0, help="position pings per second during the loads")
    ap.add_argument("--verbose", action="store_true", help="print every resource's bytes")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)

    stock, stock_bytes = map_floor(stock_empty_map(), args.runs)
    print(f"wall_baseline_stock_empty_map_s = {stock:.3f}")
    print(f"wall_baseline_stock_empty_map_bytes = {stock_bytes}")
    print("wall_load_conditions = " + ("frozen store (no feed)" if args.frozen else
          f"feed running: {args.feed_reports:g} reports/s + {args.feed_pings:g} pings/s through the stream "
          "and a consumer process"))
    with tempfile.TemporaryDirectory() as tmp:
        floor = None
        if not args.skip_district:
            floor = district(args, make_services(Path(tmp) / "district"), Path(tmp) / "floor", stock)
        if args.skip_city:
            return 0
        svc = make_services(Path(tmp) / "city")
        city(args, svc, Path(tmp) / "floor", floor)
    return 0


def print_floor(wall_app, assets_dir: Path, runs: int) -> float:
    base, base_bytes = map_floor(fair_empty_map(wall_app, assets_dir), runs)
    print(f"wall_baseline_empty_map_s = {base:.3f}")
    print(f"wall_baseline_empty_map_bytes = {base_bytes}")
    return base


def timed_loads(args, svc, rows, srv, url: str, assets: tuple[str, ...] = ()) -> tuple[list[dict], Feed | None]:
    load_once(srv.url + url, assets=assets)  # warm the server once (bundles' brotli bodies, geometry)
    if args.frozen:
        return [load_once(srv.url + url, assets=assets) for _ in range(args.runs)], None
    with Feed(svc, rows, args.feed_reports, args.feed_pings) as feed:
        time.sleep(2.0)  # the consumer has started and stored the first messages
        runs = [load_once(srv.url + url, assets=assets) for _ in range(args.runs)]
    return runs, feed


def print_feed(prefix: str, feed: Feed | None) -> None:
    if feed is not None:
        print(f"{prefix}_feed_published = {feed.published}")
        print(f"{prefix}_feed_reports_stored = {feed.stored}")


def details(args, runs: list[dict]) -> None:
    if args.verbose:
        for row in runs[-1]["rows"]:
            print("#", row)
        print("# marks:", runs[-1]["marks"])
        print("# long tasks [start, ms]:", runs[-1]["tasks"])
    if runs[-1]["severe"]:
        print("# console errors:", json.dumps(runs[-1]["severe"], ensure_ascii=False)[:500])


def district(args, svc, floor_dir: Path, stock: float) -> float:
    rows, took = build(svc, streets=10, communities=5, grids=573, bbox=sc.BBOX, events=5000, buildings=12_500)
    print(f"wall_district_build_s = {took:.1f}")
    app = create_app(svc.settings, svc)
    base = print_floor(app, floor_dir, args.runs)
    with AppServer(app, sign_in=True) as srv:
        runs, feed = timed_loads(args, svc, rows, srv, "/wall")
    report("wall_district", runs)
    print_feed("wall_district", feed)
    load_s = med(runs, "load_s")
    print(f"wall_district_ratio_vs_empty_map = {load_s / base:.2f}")
    print(f"wall_district_ratio_vs_stock_empty_map = {load_s / stock:.2f}")
    details(args, runs)
    svc.close()
    return base


def city(args, svc, floor_dir: Path, floor) -> None:
    rows, took = build(svc, streets=20, communities=15, grids=6000, bbox=(119.9, 35.85, 120.75, 36.45),
                       events=50_000, buildings=50_000, hazards=2000, positions=3000)
    print(f"wall_city_build_s = {took:.1f}")
    app = create_app(svc.settings, svc)
    if floor is None:
        print_floor(app, floor_dir, args.runs)
    assets = ("houses", "keypop", "vehicles", "facilities")
    with AppServer(app, sign_in=True) as srv:
        runs, feed = timed_loads(args, svc, rows, srv, "/wall?layers=" + ",".join(assets), assets)
        report("wall_city", runs)
        print_feed("wall_city", feed)
        print(f"wall_longest_task_ms = {med(runs, 'longest'):.0f}")
        print("wall_city_assets_loaded_ms = " + ",".join(f"{a}:{runs[-1]['assets_ms'][a]:.0f}" for a in assets))
        upd = update_ms(srv.url + "/wall", args.updates)
    print(f"wall_update_script_ms = {upd['total']:.1f}")
    print(f"wall_update_apply_ms = {upd['apply']:.1f}")
    print(f"wall_update_live_marker_ms = {upd['live']:.1f}")
    print(f"wall_update_tick_ms = {upd['tick']:.1f}")
    print(f"wall_update_tick_requests = {upd['calls']:g}")
    print(f"wall_update_cluster_ms = {upd['cluster']:.1f}")
    details(args, runs)
    svc.close()


if __name__ == "__main__":
    sys.exit(main())
