"""KPI cost at city scale: 6,000 grids, 50,000 open events plus 50,000 closed in 30 days.

Prints one `name = value` line per figure:
  kpi_wall_figures_city_s   one wall_figures() for the whole city
  kpi_wall_figures_live_city_s  one wall_figures() for the city reusing its slow parts
                            (what the panels' callback pays on most ticks)
  kpi_wall_figures_street_s one wall_figures() for one street
  kpi_grid_measures_city_s  one grid_measures() for the whole city
  kpi_panels_render_s       building the three panel trees from the figures

Usage: python bench/kpi.py [--database-url URL] (default: a temporary SQLite file).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard import kpi  # noqa: E402
from dashboard.store.engine import make_engine, migrate  # noqa: E402
from dashboard.synthetic_city import city_regions, insert_events, insert_hazards, insert_regions  # noqa: E402


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(timezone.utc)
    rows = city_regions(streets=30, communities=10, grids=20, seed=7)  # 6,000 grids
    insert_regions(engine, rows)
    insert_events(engine, rows, 50_000, now=now, open_share=1.0, prefix="o")
    insert_events(engine, rows, 50_000, seed=9, now=now - timedelta(days=10), open_share=0.0, prefix="c")
    insert_hazards(engine, rows, 5_000, now=now)
    street = next(r.code for r in rows if r.level == "street")
    tz = "Asia/Shanghai"
    print(f"kpi_grids = {sum(r.level == 'grid' for r in rows)}")
    print(f"kpi_wall_figures_city_s = {best_of(lambda: kpi.wall_figures(engine, None, now, tz)):.3f}")
    slow = kpi.slow_figures(engine, None, now, tz)
    print(f"kpi_wall_figures_live_city_s = {best_of(lambda: kpi.wall_figures(engine, None, now, tz, slow=slow)):.3f}")
    print(f"kpi_wall_figures_street_s = {best_of(lambda: kpi.wall_figures(engine, street, now, tz)):.3f}")
    print(f"kpi_grid_measures_city_s = {best_of(lambda: kpi.grid_measures(engine, None, now, tz)):.3f}")
    from layouts import panels

    data = kpi.wall_figures(engine, None, now, tz)
    print(f"kpi_panels_render_s = {best_of(lambda: (panels.header_figures(data), panels.panels_left(data), panels.panels_right(data))):.3f}")
    engine.dispose()
    tmp.cleanup()


if __name__ == "__main__":
    main()
