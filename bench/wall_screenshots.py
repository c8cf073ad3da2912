"""Screenshots of the wall with the seeded demo district, for docs/ and the README.

    python bench/wall_screenshots.py [--out docs] [--minutes 90]

Seeds the demo (dashboard.demo.seed.seed_demo) into a temporary store, feeds its history
(--history-days, as a first start of `python -m dashboard` does) and then the simulator's
generator over the last --minutes (reports, case steps, patrols, hazards, positions) through
the real feed (XADD -> consumer -> store), then saves:
  docs/wall-1920.png     /wall at 1920×1080
  docs/wall-3840.png     /wall at 3840×2160
  docs/first-screen.png  / (the first screen of `python -m dashboard`), 1920×1080, drilled to a street
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.app import create_app  # noqa: E402
from dashboard.services import Services  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from tests.integration.wallkit import AppServer, chrome, wait_for  # noqa: E402


def fill_feed(svc, minutes: float, seed: int = 370202, rate: float = 0.005, speed: float = 1.0) -> int:
    import threading

    from dashboard.feed.consumer import start_in_thread
    from dashboard.feed.contract import GROUP, STREAM
    from dashboard.feed.publish import publish
    from dashboard.feed.simulate import Generator, World

    start = datetime.now(timezone.utc) - timedelta(minutes=minutes)
    # fewer, slower position pings than live: the screenshot needs the picture, not the traffic
    gen = Generator(World.load(svc.engine), seed=seed, start=start, rate=rate, speed=speed,
                    tz=svc.settings.timezone, max_walkers=60, ping_s=120, vehicle_ping_s=120)
    stop = threading.Event()
    consumer = start_in_thread(svc, stop)
    n = 0
    for msg in gen.advance(datetime.now(timezone.utc) - timedelta(seconds=5)):
        publish(svc.redis, msg)
        n += 1
    deadline = time.time() + 120
    while time.time() < deadline:  # until the consumer group has read and acknowledged everything
        groups = svc.redis.xinfo_groups(STREAM)
        g = next((g for g in groups if (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]) == GROUP), None)
        # Redis 6.2 (the embedded server) reports no "lag": compare the last delivered id instead
        last = svc.redis.xinfo_stream(STREAM)["last-generated-id"]
        if g and not g["pending"] and g["last-delivered-id"] == last:
            break
        time.sleep(0.5)
    stop.set()
    consumer.join(timeout=10)
    return n


def shoot(url: str, path: Path, size: tuple[int, int], before=None) -> None:
    d = chrome(*size)
    try:
        d.get(url)
        wait_for(d, "window.wallReady", 60)
        wait_for(d, "document.querySelector('#feed-status.feed-ok')", 15)
        time.sleep(3.0)  # panels' charts and the after-paint layers
        if before:
            before(d)
            time.sleep(2.0)
        d.save_screenshot(str(path))
        print(f"wrote {path}")
    finally:
        d.quit()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    ap.add_argument("--minutes", type=float, default=45)
    # the wall's panels read at most 30 days: the demo's year (DEMO_HISTORY_DAYS) would change no picture
    ap.add_argument("--history-days", type=int, default=30)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
                                     var_dir=str(Path(tmp) / "var"), demo=False)
        svc = Services.open(settings)
        from dashboard.demo.seed import seed_demo

        t0 = time.perf_counter()
        seed_demo(svc.engine, seed=settings.demo_seed)
        print(f"seeded in {time.perf_counter() - t0:.1f} s", flush=True)
        from dashboard.demo.history import backfill

        until = datetime.now(timezone.utc) - timedelta(minutes=args.minutes)
        print(f"history: {backfill(svc, args.history_days, now=until)}", flush=True)
        print(f"feed messages: {fill_feed(svc, args.minutes, rate=settings.sim_rate)}", flush=True)
        svc.reset_caches()
        with AppServer(create_app(settings, svc), sign_in=True) as srv:
            shoot(srv.url + "/wall", out / "wall-1920.png", (1920, 1080))
            shoot(srv.url + "/wall", out / "wall-3840.png", (3840, 2160))

            def drill(d):  # the first screen, drilled down to a street by a click on one of its grids
                code = d.execute_script("return Object.keys(wallMap.grids).sort()[120]")
                d.execute_script("wallMap.drill(arguments[0])", code)
            shoot(srv.url + "/", out / "first-screen.png", (1920, 1080), before=drill)
        svc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
