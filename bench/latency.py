"""From XADD to the wall: prints one `name = value` line per figure.

    python bench/latency.py [--rate 20] [--seconds 15] [--pages 3] [--wait 10]

Figures (issue 3, Speed; issue 14: painted, and missing events fail the run):
  latency_p50_ms, latency_p95_ms   a report is published (XADD) at --rate per second; the consumer, in
                                   its own process as in production (`python -m dashboard consume`, see
                                   docs: the web server and the consumer are separate processes),
                                   validates and stores it and publishes its delta; the web app's push
                                   endpoint (its own process: this script's werkzeug server) pushes it; each of
                                   --pages open walls (headless Chromium at the wall's size, 1920x1080)
                                   applies it. The time is taken when the event is painted both in the
                                   ticker and as a marker on the map: a MutationObserver installed before any
                                   page script sees both elements (data-ev = the event id) enter the DOM, then
                                   waits for the next animation frame and the task after it (the frame's
                                   paint is done by then) and reads Date.now(); minus the publish time (same
                                   machine, same clock)                          (targets < 50 and < 150)
  latency_polling_p50_ms           the same, measured on pages that ask the store once a second instead
                                   (?poll=1: /api/v1/wall/recent) — the baseline push is compared with
  latency_single_process_p50_ms / _p95_ms
                                   the push figures again with the consumer as a thread inside the web
                                   server's process (the all-in-one `python -m dashboard` demo topology),
                                   where it shares the GIL with the panels' callbacks (--skip-single: not run)
plus latency_samples (events x pages) and latency_missing / latency_polling_missing /
latency_single_process_missing: events not painted on some page within --wait seconds after the last
publish. A missing event is a failure of the run, not a lost sample: the script prints
`latency_failed = ...` naming the run and the first missing ids and exits with status 1.
latency_<tag>_stage_{stored,pushed,drawn}_p50_ms: XADD -> committed (the delta's stream id), committed ->
received by the page, received -> painted in the ticker and on the map. Comment lines (#) give each page's
Dash callback requests during the run (count, median and longest time, as the browser saw them): the
server's share of a tick, which competes with the push for the web process.
Each run first publishes one untimed event and waits (60 s at most, else the run fails) until every page
has painted it: the consumer has started and loaded its regions and every page's push is connected, so
the timed events measure the steady state, not a consumer's start-up.
Until issue 14 the pages were 1280x720, the time was the DOM insertion (before the frame was painted)
and a missing event only lowered the sample count.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import synthetic_city as sc  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from dashboard.feed.publish import publish  # noqa: E402
from dashboard.services import Services  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from tests.integration.wallkit import AppServer, chrome, wait_for  # noqa: E402

# Installed before any page script: when an event's ticker row and its map marker are both in the
# DOM (each carries data-ev = the event id; the marker gets it in its "add" handler, in the same task
# as its insertion, so before this observer's microtask runs), wait for the next animation frame and
# the task after it: by then that frame has been painted. A ticker row counts where it was inserted,
# even if a later row of the same batch pushed it out of the 30 the ticker keeps.
PAINTED = """
window.__painted = {}; window.__inDom = {};
new MutationObserver(function (records) {
  for (const r of records) {
    for (const n of r.addedNodes) {
      if (n.nodeType !== 1) continue;
      const id = n.dataset && n.dataset.ev;
      if (!id || window.__painted[id] !== undefined) continue;
      // where it was added (the record's target): the ticker keeps the newest 30 rows, so a row
      // pushed out by a later one of the same batch is detached already, but it was shown as much
      // as any row of that batch
      const at = r.target.nodeType === 1 ? r.target : null;
      const where = !at ? null : at.closest('#wall-ticker') ? 'ticker' : (at.closest('.leaflet-marker-pane') ? 'map' : null);
      if (!where) continue;
      const seen = window.__inDom[id] = window.__inDom[id] || {};
      seen[where] = true;
      if (seen.ticker && seen.map) {
        window.__painted[id] = 0;
        requestAnimationFrame(function () { setTimeout(function () { window.__painted[id] = Date.now(); }, 0); });
      }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""

COLLECT = """
const out = {};
for (const id of arguments[0]) {
  const s = wallLive.seen[id] || {}, t = window.__painted[id];
  out[id] = t ? [t, s.recv || null, s.sid || null] : null;
}
return out;
"""

MISSING = """
let n = 0;
for (const id of arguments[0]) if (!window.__painted[id]) n++;
return n;
"""


CALLBACKS = """
return performance.getEntriesByType('resource').filter(function (e) {
  return e.name.indexOf('_dash-update-component') >= 0; }).map(function (e) { return [e.startTime, e.duration]; });
"""


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(srv, svc, rows, *, query: str, pages: int, rate: float, seconds: float, tag: str,
        wait: float = 10.0) -> tuple[list, int, list]:
    grids = [r for r in rows if r.level == "grid"]
    drivers = []
    try:
        for _ in range(pages):
            d = chrome(1920, 1080, performance_log=False)
            d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PAINTED})
            d.get(srv.url + "/wall" + query)
            wait_for(d, "window.wallReady", 60)
            drivers.append(d)
        if "poll" not in query:
            for d in drivers:
                wait_for(d, "document.querySelector('#feed-status.feed-ok')", 15)
        time.sleep(1.0)

        def report(eid: str, i: int) -> dict:
            g = grids[(i * 37) % len(grids)]
            c = g.geom.representative_point()
            return {"type": "event.reported", "id": f"m-{eid}", "event_id": eid, "source": "mini_program",
                    "occurred_at": datetime.now(timezone.utc).isoformat(), "location": {"lon": c.x, "lat": c.y},
                    "actor": {"kind": "resident"}, "category": "environment", "subcategory": "garbage",
                    "level": 3, "urgent": False, "description": f"延迟测试 {i}", "address": "测试路"}
        # One untimed event first, painted on every page: the consumer has started and loaded its
        # regions, every page's push is connected (so the timed events measure the steady state).
        warm = f"lat-{tag}-warm"
        publish(svc.redis, report(warm, 10_007))
        deadline = time.time() + 60
        while any(d.execute_script(MISSING, [warm]) for d in drivers):
            if time.time() > deadline:
                raise SystemExit(f"latency_failed = {tag}: the warm-up event was not painted within 60 s")
            time.sleep(0.25)
        sent = {}
        n = int(rate * seconds)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            eid = f"lat-{tag}-{i:05d}"
            msg = report(eid, i)
            sent[eid] = time.time() * 1000.0
            publish(svc.redis, msg)
        # Every event on every page, or --wait seconds: an event still missing then has failed.
        deadline = time.time() + wait
        while time.time() < deadline and any(d.execute_script(MISSING, list(sent)) for d in drivers):
            time.sleep(0.25)
        time.sleep(0.5)  # the frames scheduled for the last events
        latencies, missing, missing_ids = [], 0, []
        stages = {"stored": [], "pushed": [], "drawn": []}
        for k, d in enumerate(drivers):
            calls = d.execute_script(CALLBACKS)
            if calls:
                print(f"# {tag} page {k}: {len(calls)} Dash callback requests during the run, median "
                      f"{statistics.median(c[1] for c in calls):.0f} ms, longest {max(c[1] for c in calls):.0f} ms")
        for d in drivers:
            seen = d.execute_script(COLLECT, list(sent))
            for eid, t_pub in sent.items():
                if seen.get(eid):
                    shown, recv, sid = seen[eid]
                    latencies.append(shown - t_pub)
                    if recv and sid:  # the delta's stream id says when the consumer committed it
                        committed = int(sid.split("-")[0])
                        stages["stored"].append(committed - t_pub)
                        stages["pushed"].append(recv - committed)
                        stages["drawn"].append(shown - recv)
                else:
                    missing += 1
                    missing_ids.append(eid)
        for name, vals in stages.items():
            if vals:
                print(f"latency_{tag}_stage_{name}_p50_ms = {statistics.median(vals):.1f}")
                print(f"latency_{tag}_stage_{name}_p95_ms = {percentile(sorted(vals), 0.95):.1f}")
        return latencies, missing, missing_ids
    finally:
        for d in drivers:
            d.quit()


def consumer_process(settings, svc) -> subprocess.Popen:
    """`python -m dashboard consume` against the same store and Redis: the production topology."""
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=svc.redis_url, VAR_DIR=settings.var_dir,
               DEMO="0")
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-m", "dashboard", "consume", "--name", "bench-consumer"], env=env,
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM: the consumer finishes its batch, acks it and exits
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--pages", type=int, default=3)
    ap.add_argument("--wait", type=float, default=10.0,
                    help="seconds after the last publish for every event to be painted on every page")
    ap.add_argument("--tick", type=int, default=1000, help="the pages' LIVE_TICK throttle (ms)")
    ap.add_argument("--skip-single", action="store_true", help="skip the consumer-in-the-web-process run")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)

    results = {}  # tag -> (latencies, missing, missing ids)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, database_url=f"sqlite:///{Path(tmp) / 'lat.db'}", var_dir=str(Path(tmp) / "var"),
                                     demo=False)
        svc = Services.open(settings)
        rows = sc.city_regions(streets=10, communities=5, total_grids=573)
        sc.insert_regions(svc.engine, rows)
        sc.insert_events(svc.engine, rows, 2000)
        from dashboard.feed.consumer import start_in_thread

        common = dict(pages=args.pages, rate=args.rate, wait=args.wait)
        try:
            with AppServer(create_app(settings, svc), sign_in=True) as srv:
                proc = consumer_process(settings, svc)
                try:
                    results["push"] = run(srv, svc, rows, query=f"?tick={args.tick}", seconds=args.seconds,
                                          tag="push", **common)
                    results["poll"] = run(srv, svc, rows, query=f"?poll=1&tick={args.tick}",
                                          seconds=min(args.seconds, 10), tag="poll", **common)
                finally:
                    stop_process(proc)
                if not args.skip_single:
                    stop = threading.Event()
                    consumer = start_in_thread(svc, stop)
                    try:
                        results["single"] = run(srv, svc, rows, query=f"?tick={args.tick}", seconds=args.seconds,
                                                tag="single", **common)
                    finally:
                        stop.set()
                        consumer.join(timeout=10)
        finally:
            svc.close()
    for tag, prefix in (("push", "latency"), ("poll", "latency_polling"), ("single", "latency_single_process")):
        if tag not in results:
            continue
        values, missing, _ids = results[tag]
        if values:
            print(f"{prefix}_p50_ms = {statistics.median(values):.1f}")
            print(f"{prefix}_p95_ms = {percentile(values, 0.95):.1f}")
        print(f"{prefix}_samples = {len(values)}")
        print(f"{prefix}_missing = {missing}")
    failed = [(tag, missing, ids) for tag, (_v, missing, ids) in results.items() if missing]
    for tag, missing, ids in failed:
        print(f"latency_failed = {tag}: {missing} event(s) x page(s) not painted within {args.wait:g} s of the "
              f"last publish (first: {', '.join(ids[:5])})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
