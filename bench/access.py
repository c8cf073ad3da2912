"""What the access layer costs (issue 18, Speed): prints one `name = value` line per figure.

    python bench/access.py [--runs 5] [--pages 60] [--rate 5] [--seconds 20] [--small] [--skip-push] [--skip-wall]

Figures:
  wall_district_load_s           the district wall (bench/wall.py's district: 573 grids, 5,000 open events)
                                 loaded by a district operator who has signed in (ACCESS_REQUIRED on):
                                 navigation -> grids and open events drawn (window.wallReady), median of
                                 --runs, each in a fresh browser that signed in first (the sign-in page's
                                 form, then /healthz: the wall's bundles stay out of its cache)
  wall_district_load_s_no_access the same page in the same run without the access layer: ACCESS_REQUIRED
                                 off, an anonymous fresh browser that opened the same two pages first
                                 without signing in (both sides: bench/wall.py's fresh_browser, timed
                                 from a navigation made once the browser is idle, window.wallReady)
  access_overhead_ratio          wall_district_load_s / wall_district_load_s_no_access   (target <= 1.10)
  The two apps are served side by side in this process (bench/wall.py's way: uvicorn through the ASGI
  front, wallkit.AppServer) on one store and one Redis, with the same settings but ACCESS_REQUIRED; each
  is warmed by one load first, then the loads alternate (signed in, anonymous, signed in, ...), so a
  change of the machine's load falls on both alike.
  push_pages, push_connected     --pages simulated live pages (bench/push.py's Pages: /api/v1/live over
                                 real HTTP), spread over the district's 10 streets, each signed in as its
                                 street's wall display token (?token=), with ACCESS_REQUIRED on
  push_misdelivered              deltas a page received outside its street                    (target 0)
  push_lost / push_duplicates    (report, page of its street) pairs never received / received twice
  push_p50_ms, push_p95_ms       publish -> a page has parsed the delta (bench/push.py's publisher at
                                 --rate reports a second for --seconds, through the real stream and
                                 consumer of `python -m dashboard serve --no-demo`)   (target p95 < 150)
  push_forged_refused            pages asking, with one street's token, for another street's push: how
                                 many were refused (403), of how many tried             (target all)
--small builds a small district (10 streets, 60 grids, 500 events) to prove the script works in a
minute; the figures of record come from the default district.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402

import push  # noqa: E402  (bench/push.py)
import wall  # noqa: E402  (bench/wall.py)

OPERATOR, PASSWORD = "bench-operator", "bench operator password 1"
SMALL = dict(streets=10, communities=2, grids=60, events=500, buildings=500)


def prepare_users(db_url: str, streets: list[str], district_code: str) -> dict[str, str]:
    """A district operator, and one wall token per street (street -> token)."""
    from dashboard.access.users import add_token, add_user
    from dashboard.store.engine import make_engine, migrate

    engine = make_engine(db_url)
    try:
        migrate(engine)
        add_user(engine, OPERATOR, PASSWORD, "district_operator", district_code, actor="bench")
        return {s: add_token(engine, f"bench wall {s}", s, actor="bench")[1] for s in streets}
    finally:
        engine.dispose()


def timed_load(base: str, path: str, sign_in: bool) -> float:
    """wall.load_once's measure, the same for both sides: a fresh browser opens the sign-in page and
    then /healthz (signing in on the way when ``sign_in``), so both have started their renderer and
    fetched the same few files, none of the wall's; once idle, the timed navigation to the wall."""
    from selenium.webdriver.common.by import By

    from tests.integration.wallkit import browser_idle, wait_for

    d = wall.fresh_browser()
    try:
        d.get(base + "/signin?next=/healthz")
        wait_for(d, "document.querySelector('#username') !== null", 30)
        if sign_in:
            d.find_element(By.ID, "username").send_keys(OPERATOR)
            d.find_element(By.ID, "password").send_keys(PASSWORD)
            d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        else:
            d.get(base + "/healthz")
        wait_for(d, "location.pathname === '/healthz'", 30)
        browser_idle(d)
        d.get(base + path)
        wait_for(d, "window.wallReady", 60, 0.05)
        return d.execute_script("return window.wallReady") / 1000.0
    finally:
        d.quit()


def wall_overhead(args, tmp: Path, district_code: str) -> None:
    from dashboard.app import create_app
    from dashboard.services import Services
    from dashboard.settings import Settings
    from tests.integration.wallkit import AppServer

    on = wall.make_services(tmp)  # the built store, its embedded Redis; then the same settings but one
    on_settings = Settings.from_env({}, database_url=on.settings.database_url, redis_url=on.redis_url,
                                    var_dir=str(tmp / "var-on"), demo=False, access_required=True)
    off_settings = Settings.from_env({}, database_url=on.settings.database_url, redis_url=on.redis_url,
                                     var_dir=str(tmp / "var-off"), demo=False, access_required=False)
    svc_on, svc_off = Services.open(on_settings), Services.open(off_settings)
    path = f"/wall?scope={district_code}"
    try:
        with AppServer(create_app(on_settings, svc_on)) as srv_on, AppServer(create_app(off_settings, svc_off)) as srv_off:
            timed_load(srv_on.url, path, True)    # warm each server once (bundles' bodies, geometry, caches)
            timed_load(srv_off.url, path, False)
            with_access, without = [], []
            for _ in range(args.runs):
                with_access.append(timed_load(srv_on.url, path, True))
                without.append(timed_load(srv_off.url, path, False))
    finally:
        svc_on.close()
        svc_off.close()
        on.close()
    a, b = statistics.median(with_access), statistics.median(without)
    print(f"wall_district_load_s = {a:.3f}", flush=True)
    print(f"wall_district_load_s_no_access = {b:.3f}", flush=True)
    print(f"access_overhead_ratio = {a / b:.3f}", flush=True)
    if args.verbose:
        print("# signed in:", [round(x, 3) for x in with_access], " anonymous:", [round(x, 3) for x in without])


class TokenPages(push.Pages):
    """bench/push.py's pages, each with its street's wall token."""
    tokens: dict[str, str] = {}

    def params(self, i: int) -> dict:
        scope = self.scope_of[i]
        return {"scope": scope, "token": self.tokens[scope]}


def forged(url: str, streets: list[str], tokens: dict[str, str]) -> tuple[int, int]:
    """Each street's token asking for the next street's push: (refused, tried)."""
    refused = 0
    for i, s in enumerate(streets):
        other = streets[(i + 1) % len(streets)]
        try:
            r = requests.get(url + "/api/v1/live", params={"scope": other, "token": tokens[s]}, stream=True, timeout=10)
            refused += r.status_code in (401, 403)
            r.close()
        except requests.RequestException:
            pass
    return refused, len(streets)


def scoped_push(args, tmp: Path, district: dict, tokens: dict[str, str]) -> None:
    port = push.free_port()
    os.environ["ACCESS_REQUIRED"] = "true"  # push._serve passes the environment on
    srv = push._serve(ROOT, tmp, port, ["--web-workers", "1"])
    TokenPages.tokens = tokens
    push.Pages = TokenPages  # push.drive opens its pages through this name
    try:
        srv.wait()
        out = asyncio.run(push.drive(srv, f"unix://{tmp / 'var' / 'redis' / 'redis.sock'}", district, args, "access", False))
        refused, tried = forged(srv.url, district["streets"][:args.scopes], tokens)
    finally:
        srv.stop()
    for key, name in (("pages", "push_pages"), ("connected", "push_connected"), ("misdelivered", "push_misdelivered"),
                      ("lost", "push_lost"), ("duplicates", "push_duplicates")):
        print(f"{name} = {out[key]}", flush=True)
    print(f"push_p50_ms = {out['p50']:.1f}", flush=True)
    print(f"push_p95_ms = {out['p95']:.1f}", flush=True)
    print(f"push_receipts = {out['receipts']}/{out['expected']}", flush=True)
    print(f"push_forged_refused = {refused}/{tried}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--scopes", type=int, default=10, help="streets the pages are spread over")
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--drain-s", type=float, default=5.0)
    ap.add_argument("--connect-s", type=float, default=60.0)
    ap.add_argument("--small", action="store_true", help="a small district, to prove the script works")
    ap.add_argument("--skip-wall", action="store_true")
    ap.add_argument("--skip-push", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    args.wall_runs = 0
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if args.small:
        push.DISTRICT = SMALL  # push.build_district builds what this names
    tmp = Path(tempfile.mkdtemp(prefix="bench-access-"))
    try:
        district = push.build_district(ROOT, tmp)
        print(f"# district built in {district['took']:.1f} s: {len(district['grids'])} grids, "
              f"{len(district['streets'])} streets", flush=True)
        code = district["streets"][0][:6]
        tokens = prepare_users(f"sqlite:///{tmp / 'bench.db'}", district["streets"], code)
        if not args.skip_wall:
            wall_overhead(args, tmp, code)
        if not args.skip_push:
            scoped_push(args, tmp, district, tokens)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
