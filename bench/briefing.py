"""The weekly briefing's cost on the demo district, as a scheduled job pays it.

Each figure is the wall time of ``python -m dashboard briefing`` in a fresh process (imports,
the font, the figures, eight charts at three sizes, the PDF, the workbook and the ZIP), the
median of RUNS runs, for last week (the default week) on the demo district (573 grids):

  briefing_district_s      --scope 370202: the district's briefing (target < 20 s)
  briefing_street_s        --scope 370202001: one street's (target < 8 s)
  briefing_all_streets_s   --scope 370202 --streets: the ten streets' in one run, sharing the
                           process, the projected geometry and the font (target < 60 s)
  briefing_district_warm_s the district's briefing again inside one warm process (what the
                           /briefing page pays once the server has made one)
  *_cpu_s                  the same runs' CPU time (user + system of the child process): on a
                           machine shared with other work the wall time includes waiting for a
                           core, the CPU time is what the briefing itself costs

The store: --var-dir DIR (a VAR_DIR the demo was seeded into), or a temporary one seeded here
with ``python -m dashboard seed --history-days N`` (default 7: the figures need last week; the
demo's own year, DEMO_HISTORY_DAYS, takes minutes more and gives the 同比 columns a figure, but
changes the queries' cost little, every figure being one indexed aggregate over a week).

--docs also writes the screenshots docs/briefing-*.png: pages of the district's PDF (rendered
with pdftoppm) and the /briefing page in headless Chromium.

Usage: python bench/briefing.py [--var-dir DIR] [--history-days N] [--runs N] [--docs]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISTRICT, STREET = "370202", "370202001"


def env_for(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(VAR_DIR=str(var_dir), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING")
    return env


def timed_cli(var_dir: Path, out: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system). On a machine shared with other
    work the wall time includes waiting for a core; the CPU time is what the run itself costs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dashboard", "briefing", *args, "--out", str(out)], cwd=ROOT,
                   env=env_for(var_dir), check=True, stdout=subprocess.DEVNULL, timeout=900)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def seed(var_dir: Path, days: int) -> None:
    print(f"# seeding the demo district into {var_dir} with {days} days of history", flush=True)
    subprocess.run([sys.executable, "-m", "dashboard", "seed", "--history-days", str(days)], cwd=ROOT,
                   env=env_for(var_dir), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=3600)


def warm(var_dir: Path, out: Path, runs: int) -> float:
    from datetime import datetime, timezone

    from dashboard.briefing import build
    from dashboard.briefing.week import resolve
    from dashboard.settings import Settings
    from dashboard.store.engine import make_engine

    settings = Settings.from_env(env_for(var_dir))
    engine = make_engine(settings.effective_database_url)
    now = datetime.now(timezone.utc)
    week = resolve(None, now, settings.timezone)
    build.make(engine, DISTRICT, week, out, tz=settings.timezone, now=now)  # the process warms up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        build.make(engine, DISTRICT, week, out, tz=settings.timezone, now=now)
        times.append(time.perf_counter() - t0)
    engine.dispose()
    return statistics.median(times)


def docs(var_dir: Path, out: Path) -> None:
    """docs/briefing-*.png: PDF pages (pdftoppm) and the page in Chromium."""
    pdf = next(out.glob(f"briefing-{DISTRICT}-*/briefing-{DISTRICT}-*.pdf"))
    tmp = out / "pages"
    tmp.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(pdf), str(tmp / "p")], check=True, timeout=300)
    pages = sorted(tmp.glob("p-*.png"))
    picks = {"briefing-pdf-summary.png": pages[1], "briefing-pdf-charts.png": pages[3],
             "briefing-pdf-hotspots.png": pages[-1]}
    for name, page in picks.items():
        shutil.copy(page, ROOT / "docs" / name)
    shutil.copy(pdf.parent / "charts" / "trend.png", ROOT / "docs" / "briefing-chart-trend.png")
    from dashboard.app import create_app
    from dashboard.settings import Settings
    from tests.integration.wallkit import AppServer, chrome, wait_for

    settings = Settings.from_env(env_for(var_dir), demo=False)
    app = create_app(settings)
    driver = chrome(1600, 1400)
    try:
        with AppServer(app, port=9461, sign_in=True) as srv:
            driver.get(f"{srv.url}/briefing?scope={STREET}")
            wait_for(driver, "document.querySelectorAll('.bf-chart img').length === 8 && Array.from("
                             "document.querySelectorAll('.bf-chart img')).every(i => i.complete)", timeout=300)
            driver.save_screenshot(str(ROOT / "docs" / "briefing-page.png"))
    finally:
        driver.quit()
        app.services.close()
    print("# wrote docs/briefing-*.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--var-dir", help="a VAR_DIR holding the seeded demo (default: seed a temporary one)")
    ap.add_argument("--history-days", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", action="store_true", help="write docs/briefing-*.png too")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-briefing-"))
    var_dir = Path(args.var_dir) if args.var_dir else tmp / "var"
    if not args.var_dir:
        seed(var_dir, args.history_days)
    print(f"# machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    figures = {}
    for name, scope_args in (("briefing_district_s", ("--scope", DISTRICT)),
                             ("briefing_street_s", ("--scope", STREET)),
                             ("briefing_all_streets_s", ("--scope", DISTRICT, "--streets"))):
        runs = [timed_cli(var_dir, tmp / "out", *scope_args) for _ in range(args.runs)]
        figures[name] = statistics.median(r[0] for r in runs)
        print(f"{name} = {figures[name]:.2f}", flush=True)
        print(f"{name[:-2]}_cpu_s = {statistics.median(r[1] for r in runs):.2f}", flush=True)
    print(f"briefing_district_warm_s = {warm(var_dir, tmp / 'warm', args.runs):.2f}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if args.docs:
        docs(var_dir, tmp / "out")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
