"""The street secretary's view (/street) under Lighthouse 12, mobile preset: prints `name = value` lines.

    python bench/street.py [--runs 3] [--history-days 7] [--port 18250] [--lang zh|en]
    python bench/street.py --url http://127.0.0.1:8050 --users var/demo-users.txt   # a server already running

Starts the demo server (`python -m dashboard`, demo mode, sign-in required, a fresh VAR_DIR in a temporary
folder), waits until it serves and its history backfill is done, signs in as the demo's street secretary
(the `street_secretary` line of VAR_DIR/demo-users.txt) through the real /signin form, and runs Lighthouse on
/street with that session's cookie. Each run is a fresh headless Chromium (/usr/bin/chromium, cold cache) after
one unmeasured warm-up run (the server's brotli bodies made, geometry cached); the median of --runs is printed.

Figures (issue 18: Lighthouse's "good" marks on the mobile preset):
  street_lighthouse_performance    performance score, 0-100                          (target >= 90)
  street_lighthouse_accessibility  accessibility score, 0-100                        (target >= 95)
  street_lcp_s                     largest contentful paint, seconds                  (target <= 2.5)
  street_tbt_ms                    total blocking time, ms                            (target <= 200)
  street_cls                       cumulative layout shift                            (target <= 0.1)
  street_fcp_s, street_si_s        first contentful paint and speed index (supporting)
  street_lcp_element               what Lighthouse took as the largest paint (supporting; a quoted selector)
The mobile preset is Lighthouse's default: a 412x823 phone screen, simulated slow 4G (150 ms RTT,
1.6 Mbit/s) and a 4x slower CPU (simulated from a trace of an unthrottled load, so a busy machine's slower
tasks count four times over). Conditions: street_load_average (the machine's 1-minute load average at the end)
and street_benchmark_index (Lighthouse's own CPU benchmark of this machine during the runs, median; an idle
desktop scores ~1,500-2,500, and Lighthouse calibrates its 4x slowdown for such a machine).

Lighthouse is not a Python package and is not in the repository: it is installed with npm into a cache
folder outside the work tree (default ~/.cache/grid-bench/lighthouse, or $LIGHTHOUSE_DIR) on first use:
    npm install --prefix ~/.cache/grid-bench/lighthouse lighthouse@12.2.3
(the bench runs that itself when the folder has no lighthouse; node >= 18 and npm must be installed).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE_VERSION = "12.2.3"
CHROMIUM = "/usr/bin/chromium"
DEFAULT_DIR = Path(os.environ.get("LIGHTHOUSE_DIR", Path.home() / ".cache" / "grid-bench" / "lighthouse"))


def lighthouse_cli(folder: Path) -> Path:
    """The CLI of lighthouse@12.2.3 in ``folder``, installed there with npm when missing."""
    cli = folder / "node_modules" / "lighthouse" / "cli" / "index.js"
    pkg = folder / "node_modules" / "lighthouse" / "package.json"
    if not cli.exists() or json.loads(pkg.read_text()).get("version") != LIGHTHOUSE_VERSION:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                        f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True, timeout=900)
    return cli


def start_demo(port: int, var: Path, history_days: int, lang: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "WEB_WORKERS")}
    env.update(VAR_DIR=str(var), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", DEMO="1", ACCESS_REQUIRED="1",
               DEMO_HISTORY_DAYS=str(history_days), UI_LANG=lang)
    log = open(var.parent / "serve.log", "w")
    return subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    """Serving, and the demo's history backfill done (the feed's health stops naming it)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the demo server exited ({proc.returncode})")
        try:
            r = requests.get(url + "/healthz", timeout=5)
            if r.status_code in (200, 503) and not (r.json().get("feed") or {}).get("history"):
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout:.0f} s")
        time.sleep(1)


def secretary(users_file: Path) -> tuple[str, str, str]:
    for line in users_file.read_text(encoding="utf-8").splitlines():
        role, username, password, scope = (line.split("\t") + ["", "", "", ""])[:4]
        if role == "street_secretary":
            return username, password, scope
    raise SystemExit(f"no street_secretary in {users_file}")


def sign_in(url: str, username: str, password: str) -> tuple[str, str]:
    """Through the real /signin form (its CSRF token included): (session cookie, landing URL)."""
    s = requests.Session()
    page = s.get(url + "/signin", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    if token is None:
        raise SystemExit("no CSRF token on /signin")
    r = s.post(url + "/signin", data={"csrf_token": token.group(1), "username": username, "password": password,
                                      "next": ""}, allow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise SystemExit(f"sign-in failed: HTTP {r.status_code}")
    return s.cookies.get("session"), r.headers["Location"]


def lighthouse(cli: Path, page: str, cookie: str, out: Path) -> dict:
    headers = out.with_suffix(".headers.json")
    headers.write_text(json.dumps({"Cookie": f"session={cookie}"}))
    cmd = ["node", str(cli), page, "--quiet", "--output=json", f"--output-path={out}",
           "--only-categories=performance,accessibility", f"--extra-headers={headers}",
           "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage"]
    subprocess.run(cmd, check=True, timeout=600, env={**os.environ, "CHROME_PATH": CHROMIUM})
    report = json.loads(out.read_text())
    audits = report["audits"]
    lcp_el = ((audits.get("largest-contentful-paint-element") or {}).get("details") or {}).get("items") or []
    selector = ""
    try:
        selector = lcp_el[0]["items"][0]["node"]["selector"]
    except (KeyError, IndexError, TypeError):
        pass
    return {
        "performance": round(report["categories"]["performance"]["score"] * 100),
        "accessibility": round(report["categories"]["accessibility"]["score"] * 100),
        "lcp_s": audits["largest-contentful-paint"]["numericValue"] / 1000,
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "fcp_s": audits["first-contentful-paint"]["numericValue"] / 1000,
        "si_s": audits["speed-index"]["numericValue"] / 1000,
        "lcp_element": selector,
        "benchmark_index": report["environment"].get("benchmarkIndex"),
        "failed_a11y": sorted(k for k, a in audits.items() if a.get("score") == 0
                              and k in {r["id"] for r in report["categories"]["accessibility"]["auditRefs"]}),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--history-days", type=int, default=7, help="the demo's history backfill (DEMO_HISTORY_DAYS)")
    ap.add_argument("--port", type=int, default=18250)
    ap.add_argument("--lang", choices=("zh", "en"), default="zh")
    ap.add_argument("--url", help="a server already running (then --users is its VAR_DIR/demo-users.txt)")
    ap.add_argument("--users", type=Path)
    ap.add_argument("--lighthouse-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--keep", type=Path, help="keep the reports (JSON) in this folder")
    args = ap.parse_args(argv)

    cli = lighthouse_cli(args.lighthouse_dir)
    tmp = Path(tempfile.mkdtemp(prefix="street-bench-"))
    proc = None
    try:
        if args.url:
            url, users = args.url.rstrip("/"), args.users
            if users is None:
                raise SystemExit("--url needs --users (the server's VAR_DIR/demo-users.txt)")
        else:
            var = tmp / "var"
            var.mkdir()
            url, users = f"http://127.0.0.1:{args.port}", var / "demo-users.txt"
            proc = start_demo(args.port, var, args.history_days, args.lang)
        wait_ready(url, proc, timeout=1800)
        username, password, scope = secretary(users)
        cookie, landing = sign_in(url, username, password)
        page = url + landing if landing.startswith("/") else landing
        if not page.split("?")[0].endswith("/street"):
            raise SystemExit(f"the street secretary landed on {landing}, not /street")
        reports = tmp / "reports"
        reports.mkdir()
        lighthouse(cli, page, cookie, reports / "warmup.json")
        runs = [lighthouse(cli, page, cookie, reports / f"run{i}.json") for i in range(args.runs)]
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for f in reports.glob("run*.json"):
                shutil.copy(f, args.keep / f.name)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    def med(key):
        return statistics.median(r[key] for r in runs)
    print(f"street_page = {page.replace(url, '')}")
    print(f"street_lighthouse_runs = {len(runs)}")
    print(f"street_load_average = {os.getloadavg()[0]:.1f}")
    print(f"street_benchmark_index = {med('benchmark_index'):.0f}")
    print(f"street_lighthouse_performance = {med('performance'):.0f}")
    print(f"street_lighthouse_accessibility = {med('accessibility'):.0f}")
    print(f"street_lcp_s = {med('lcp_s'):.2f}")
    print(f"street_tbt_ms = {med('tbt_ms'):.0f}")
    print(f"street_cls = {med('cls'):.3f}")
    print(f"street_fcp_s = {med('fcp_s'):.2f}")
    print(f"street_si_s = {med('si_s'):.2f}")
    print(f"street_lcp_element = {json.dumps(statistics.mode(r['lcp_element'] for r in runs), ensure_ascii=False)}")
    failed = sorted({a for r in runs for a in r["failed_a11y"]})
    print(f"street_accessibility_failed = {','.join(failed) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
