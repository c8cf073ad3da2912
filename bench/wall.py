"""The wall's speed in headless Chromium: prints one `name = value` line per figure.

    python bench/wall.py [--runs 3] [--skip-city]

Figures (issue 4, Speed):
  wall_district_load_s    navigation -> grids and open events drawn (live.js sets window.wallReady two
                          frames after both layers are on the map), district scale: 573 grids, 5,000 open
                          events, 50,000 building/person/vehicle/facility points (asset layers start hidden
                          and load only when shown, so they are not fetched here)        (target < 1.0)
  wall_district_bytes     transferSize of the navigation and every resource once the page is quiet (no new
                          request for 1.5 s), i.e. compressed bytes on the wire, panels' chart bundle included
                                                                                            (target < 300,000)
  wall_city_load_s        6,000 grids + 50,000 open events drawn; 200,000 asset points (houses, key
                          population, vehicles, facilities at 50,000 each) requested after first paint
                          (?layers=…)                                                       (target < 1.5)
  wall_city_bytes         as above, everything including the 200,000 asset points            (target < 4,000,000)
  wall_longest_task_ms    longest main-thread task (PerformanceObserver 'longtask', installed before any
                          page script) from navigation until every layer has loaded, city scale (target < 200)
  wall_update_script_ms   median browser time to apply one live batch at city scale (a new event, a state
                          change of an event in the clustered layer, a worker moving): from the start of
                          wallLive.apply to the new marker being added to the map            (target < 50)
With --verbose, each resource is listed as [url, bytes, start ms, end ms], then the page's marks and
long tasks (ms since navigation). Supporting lines split the bytes into framework (Dash/React/Leaflet/plotly bundles, assets, the page)
and data (the map's URLs and Dash callback responses), so a budget miss says which side it is.
  wall_baseline_empty_map_s  the floor, measured in the same run: a bare Dash app with one empty dash-leaflet
                          map, navigation -> map drawn (the issue measured ~0.38 s on its machine)
  wall_baseline_empty_map_bytes  that page's bytes on the wire: the framework floor (Dash + React + Leaflet)
  wall_district_ratio_vs_empty_map  wall_district_load_s / wall_baseline_empty_map_s
Each load uses a fresh browser (cold cache), timed from a navigation made once that browser is idle
(the floor is measured the same way); the median of --runs is printed.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
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

BYTES = """
const nav = performance.getEntriesByType('navigation')[0];
let fw = nav ? nav.transferSize : 0, data = 0, rows = [];
for (const e of performance.getEntriesByType('resource')) {
  const u = e.name;
  const isData = u.indexOf('/api/') >= 0 || u.indexOf('_dash-update-component') >= 0;
  if (isData) data += e.transferSize; else fw += e.transferSize;
  rows.push([u.replace(location.origin, '').slice(0, 90), e.transferSize, Math.round(e.startTime), Math.round(e.responseEnd)]);
}
return {framework: fw, data: data, rows: rows, count: rows.length};
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
    """Wait until no new resource entry appeared for quiet_s."""
    deadline = time.time() + timeout
    last, since = -1, time.time()
    while time.time() < deadline:
        n = driver.execute_script("return performance.getEntriesByType('resource').length")
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
        b = d.execute_script(BYTES)
        out = {"load_s": ready_ms / 1000.0, "bytes": b["framework"] + b["data"], "framework": b["framework"],
               "data": b["data"], "longest": d.execute_script("return window.__longest"),
               "rows": b["rows"], "marks": d.execute_script("return wallLive.marks"),
               "tasks": d.execute_script("return window.__tasks"), "assets_ms": {a: d.execute_script(f"return wallLive.ready['{a}']") for a in assets},
               "severe": [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]}
        return out
    finally:
        d.quit()


UPDATE = """
const done = arguments[arguments.length - 1];
const cfg = wallLive.cfg, k = arguments[0];
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
   st: 'handling', src: 'grid_patrol', at: new Date().toISOString()},
  {k: 'position', op: 'upsert', g: grid, id: pos, ak: 'staff', lon: c.lng + 0.0005, lat: c.lat, at: new Date().toISOString()},
];
const t0 = performance.now();
wallLive.apply(batch);
(function check() {
  const t = wallMap.drawnPerf && wallMap.drawnPerf[id];
  if (t) return done(t - t0);
  if (performance.now() - t0 > 5000) return done(-1);
  Promise.resolve().then(function () { setTimeout(check, 0); });
})();
"""


def update_ms(url: str, n: int = 15) -> float:
    d = fresh_browser()
    try:
        d.set_script_timeout(30)
        d.get(url)
        wait_for(d, "window.wallReady", 60, 0.05)
        settle(d)
        times = []
        for k in range(n):
            t = d.execute_async_script(UPDATE, k)
            if t < 0:
                raise RuntimeError("live update did not draw within 5 s")
            times.append(t)
            time.sleep(0.2)
        return statistics.median(times)
    finally:
        d.quit()


def med(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def report(prefix: str, results: list[dict]) -> None:
    print(f"{prefix}_load_s = {med(results, 'load_s'):.3f}")
    print(f"{prefix}_bytes = {int(med(results, 'bytes'))}")
    print(f"{prefix}_framework_bytes = {int(med(results, 'framework'))}")
    print(f"{prefix}_data_bytes = {int(med(results, 'data'))}")
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


def empty_map_s(runs: int) -> float:
    """The floor, measured in this run: a bare Dash app holding one dash-leaflet map, no data."""
    import dash
    import dash_leaflet as dl
    from dash import html

    app = dash.Dash(__name__, serve_locally=True, compress=True)
    app.layout = html.Div(dl.Map(center=[36.06, 120.38], zoom=13, children=[], style={"height": "100vh"}))
    times, sizes = [], []
    with AppServer(app) as srv:
        for _ in range(runs + 1):  # the first load warms the server
            d = fresh_browser()
            try:
                d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MAP_DRAWN})
                d.get(srv.url + "/")
                wait_for(d, "window.__mapAt > 0", 60, 0.05)
                times.append(d.execute_script("return window.__mapAt") / 1000.0)
                settle(d)
                b = d.execute_script(BYTES)
                sizes.append(b["framework"] + b["data"])
            finally:
                d.quit()
    return statistics.median(times[1:]), int(statistics.median(sizes[1:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-city", action="store_true")
    ap.add_argument("--skip-district", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print every resource's bytes")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)

    base, base_bytes = empty_map_s(args.runs)
    print(f"wall_baseline_empty_map_s = {base:.3f}")
    print(f"wall_baseline_empty_map_bytes = {base_bytes}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_district:
            load_s = district(args, make_services(Path(tmp) / "district"))
            print(f"wall_district_ratio_vs_empty_map = {load_s / base:.2f}")
        if args.skip_city:
            return 0
        svc = make_services(Path(tmp) / "city")
        city(args, svc)
    return 0


def district(args, svc) -> None:
    _, took = build(svc, streets=10, communities=5, grids=573, bbox=sc.BBOX, events=5000, buildings=12_500)
    print(f"wall_district_build_s = {took:.1f}")
    with AppServer(create_app(svc.settings, svc)) as srv:
        load_once(srv.url + "/wall")  # warm the server's caches (geometry bodies) once
        runs = [load_once(srv.url + "/wall") for _ in range(args.runs)]
    report("wall_district", runs)
    load_s = med(runs, "load_s")
    if args.verbose:
        for row in runs[-1]["rows"]:
            print("#", row)
        print("# marks:", runs[-1]["marks"])
        print("# long tasks [start, ms]:", runs[-1]["tasks"])
    if runs[-1]["severe"]:
        print("# console errors:", json.dumps(runs[-1]["severe"], ensure_ascii=False)[:500])
    svc.close()
    return load_s


def city(args, svc) -> None:
    _, took = build(svc, streets=20, communities=15, grids=6000, bbox=(119.9, 35.85, 120.75, 36.45),
                    events=50_000, buildings=50_000, hazards=2000, positions=3000)
    print(f"wall_city_build_s = {took:.1f}")
    assets = ("houses", "keypop", "vehicles", "facilities")
    url = "/wall?layers=" + ",".join(assets)
    with AppServer(create_app(svc.settings, svc)) as srv:
        load_once(srv.url + url, assets=assets)
        runs = [load_once(srv.url + url, assets=assets) for _ in range(args.runs)]
        report("wall_city", runs)
        print(f"wall_longest_task_ms = {med(runs, 'longest'):.0f}")
        print("wall_city_assets_loaded_ms = " + ",".join(
            f"{a}:{runs[-1]['assets_ms'][a]:.0f}" for a in assets))
        print(f"wall_update_script_ms = {update_ms(srv.url + '/wall'):.1f}")
    if args.verbose:
        for row in runs[-1]["rows"]:
            print("#", row)
        print("# marks:", runs[-1]["marks"])
        print("# long tasks [start, ms]:", runs[-1]["tasks"])
    if runs[-1]["severe"]:
        print("# console errors:", json.dumps(runs[-1]["severe"], ensure_ascii=False)[:500])
    svc.close()


if __name__ == "__main__":
    sys.exit(main())
