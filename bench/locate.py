"""Jurisdiction benchmarks: prints one `name = value` line per figure.

    python bench/locate.py [--points N] [--repeat 3] [--batch 500] [--seed S] [--skip-store]

Figures (issue 2, Speed; floors made fair in issue 14):
  locate_points_per_s        the call the consumer makes (dashboard/feed/resolve.py): `Locator.locate_many`
                             (lon/lat arrays -> grid codes, '' outside), district scale (573 grids, ~7,000
                             micro-grids), --points points uniform over the grids, best of --repeat runs
                             (target >= 500,000)
  locate_batch_points_per_s  the same call in the consumer's batch size (--batch, default 500 messages per
                             XREADGROUP), over the same points: what one consumer batch pays per point
  locate_indices_points_per_s  `locate_many_indices` (int32 indices, no code lookup): the index alone
  locate_micro_points_per_s  `locate_many_indices(level="micro")`
  locate_single_us           one `Locator.locate` call (grid, micro-grid and the parent chain), mean µs over
                             20,000 points, best of --repeat runs                               (target < 50)
  locate_strtree_points_per_s  the floor: shapely's own index, `shapely.STRtree(grid polygons)` built before
                             the clock like the locator, timed over the same points and best of the same
                             --repeat runs: `shapely.points(x, y)` (it needs geometries, the locator takes
                             arrays), `tree.query(points, predicate="intersects")` (boundaries inside, the
                             locator's rule), and one code per point (the lowest, the locator's tie rule)
  locate_strtree_query_points_per_s  the query call alone (points made before the clock), same predicate
  locate_strtree_within_points_per_s  the query alone with predicate="within" (boundaries outside)
  locate_ratio_vs_strtree    locate_points_per_s / locate_strtree_points_per_s (like with like: points in,
                             codes out, same runs)
  locate_mismatch_vs_strtree points where the two answers differ (interior points: 0 expected)
  locate_build_s, locate_strtree_build_s  building each index once
Then seed_s and import_6000_s (and their _postgres twins), see bench_seed and bench_import.
Each figure comes from a small function returning a dict, so more can be added to BENCHES.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.geo.locate import Locator  # noqa: E402


def demo_region_rows(seed: int = 370202) -> list[dict]:
    """The demo district (dashboard.demo.seed.build_regions) as plain dicts; no database."""
    from dashboard.demo.seed import build_regions

    return [{"code": r.code, "name": r.name, "level": r.level, "parent_code": r.parent_code,
             "kind": r.kind, "geom": r.geom} for r in build_regions(seed)]


def points_inside(grid_geoms, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform over the union of the grids (rejection sampling on its bounding box)."""
    union = shapely.union_all(grid_geoms)
    shapely.prepare(union)
    minx, miny, maxx, maxy = union.bounds
    xs, ys, have = [], [], 0
    while have < n:
        x = rng.uniform(minx, maxx, 2 * n)
        y = rng.uniform(miny, maxy, 2 * n)
        keep = shapely.contains_xy(union, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def strtree_codes(tree, codes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The floor: shapely's STRtree answers the same question (points in, one code out per point)."""
    hit = tree.query(shapely.points(x, y), predicate="intersects")
    first = np.full(len(x), len(codes), dtype=np.int64)  # len(codes) reads the trailing '' below
    np.minimum.at(first, hit[0], hit[1])  # a point on a shared edge: the lowest code, as the locator
    return np.append(codes, "")[first]


def bench_locate(rows: list[dict] | None = None, *, n_points: int = 1_000_000, n_single: int = 20_000,
                 repeat: int = 3, batch: int = 500, seed: int = 1) -> dict:
    rows = rows if rows is not None else demo_region_rows()
    t = time.perf_counter()
    locator = Locator.from_regions(rows)
    build_s = time.perf_counter() - t

    rng = np.random.default_rng(seed)
    grid_geoms = list(locator.grid_index.geoms)
    codes = locator.codes("grid")
    x, y = points_inside(grid_geoms, n_points, rng)

    many = locator.locate_many
    codes_s = _best_of(lambda: many(x, y), repeat)
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, n_points, batch)]

    def in_batches():
        for bx, by in batches:
            many(bx, by)
    batch_s = _best_of(in_batches, repeat)
    index_s = _best_of(lambda: locator.locate_many_indices(x, y), repeat)
    micro_s = _best_of(lambda: locator.locate_many_indices(x, y, level="micro"), repeat)

    xs, ys = x[:n_single].tolist(), y[:n_single].tolist()
    locate = locator.locate

    def singles():
        for lon, lat in zip(xs, ys):
            locate(lon, lat)
    single_s = _best_of(singles, repeat)

    t = time.perf_counter()
    tree = shapely.STRtree(grid_geoms)
    tree_build_s = time.perf_counter() - t
    floor_s = _best_of(lambda: strtree_codes(tree, codes, x, y), repeat)
    pts = shapely.points(x, y)
    query_s = _best_of(lambda: tree.query(pts, predicate="intersects"), repeat)
    within_s = _best_of(lambda: tree.query(pts, predicate="within"), repeat)
    # Interior points have one answer; a disagreement would be a bug in the index.
    mismatch = int((many(x, y) != strtree_codes(tree, codes, x, y)).sum())

    rate = n_points / codes_s
    floor = n_points / floor_s
    return {
        "locate_grids": len(locator),
        "locate_micro_grids": len(locator.micro_codes),
        "locate_points": n_points,
        "locate_repeat": repeat,
        "locate_build_s": round(build_s, 3),
        "locate_points_per_s": int(rate),
        "locate_batch_points_per_s": int(n_points / batch_s),
        "locate_indices_points_per_s": int(n_points / index_s),
        "locate_micro_points_per_s": int(n_points / micro_s),
        "locate_single_us": round(single_s / n_single * 1e6, 2),
        "locate_strtree_build_s": round(tree_build_s, 3),
        "locate_strtree_points_per_s": int(floor),
        "locate_strtree_query_points_per_s": int(n_points / query_s),
        "locate_strtree_within_points_per_s": int(n_points / within_s),
        "locate_ratio_vs_strtree": round(rate / floor, 1),
        "locate_mismatch_vs_strtree": mismatch,
    }


def _timed_on_both(name: str, run) -> dict:
    """``name`` = seconds of ``run(engine)`` on a fresh SQLite file, ``name_postgres`` likewise on a
    throw-away PostgreSQL schema when one is reachable."""
    import tempfile

    from dashboard.store.engine import make_engine, migrate

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        t0 = time.perf_counter()
        run(engine)
        out[name] = round(time.perf_counter() - t0, 2)
        engine.dispose()
    pg = _postgres_engine()
    if pg is not None:
        engine, drop = pg
        try:
            t0 = time.perf_counter()
            run(engine)
            out[f"{name}_postgres"] = round(time.perf_counter() - t0, 2)
        finally:
            drop()
    return out


def bench_seed() -> dict:
    """seed_s: the whole demo district (regions, buildings, houses, people …), as `python -m
    dashboard seed` writes it."""
    from dashboard.demo.seed import seed_demo

    return _timed_on_both("seed_s", lambda engine: seed_demo(engine, 370202))


def bench_import() -> dict:
    """import_6000_s: a 6,000-grid GeoPackage in CGCS2000 (EPSG:4490) imported into a fresh store,
    validated, parents dissolved from the codes."""
    import tempfile

    from dashboard.boundary.importer import import_file
    from dashboard.boundary.synthetic import make_synthetic_grid_file

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/grids6000.gpkg"
        make_synthetic_grid_file(path, n=6000, fmt="gpkg")

        def run(engine):
            result = import_file(engine, path)
            if result.imported != 6000:
                raise SystemExit(f"import_6000: only {result.imported} grids imported")
        return _timed_on_both("import_6000_s", run)


def _postgres_engine():
    """A migrated engine on a throw-away schema of TEST_DATABASE_URL / DATABASE_URL, or None."""
    import os
    import uuid

    import sqlalchemy as sa

    from dashboard.store.engine import make_engine, migrate

    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or \
        "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    if not url.startswith("postgresql"):
        return None
    schema = "bench_" + uuid.uuid4().hex[:8]
    base = sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        admin = make_engine(base.render_as_string(hide_password=False))
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception:  # noqa: BLE001 - no PostgreSQL here: skip the figure, say so
        print("# PostgreSQL not reachable: *_postgres figures skipped", flush=True)
        return None
    engine = make_engine(base.update_query_dict({"options": f"-csearch_path={schema}"})
                         .render_as_string(hide_password=False))
    migrate(engine)

    def drop():
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return engine, drop


BENCHES = [bench_locate, bench_seed, bench_import]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="points for the bulk figures")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs, for every timed call")
    ap.add_argument("--batch", type=int, default=500, help="the consumer's batch size")
    ap.add_argument("--skip-store", action="store_true", help="only the locator figures (no seed/import)")
    args = ap.parse_args(argv)
    for bench in BENCHES[:1] if args.skip_store else BENCHES:
        figures = (bench_locate(n_points=args.points, seed=args.seed, repeat=args.repeat, batch=args.batch)
                   if bench is bench_locate else bench())
        for name, value in figures.items():
            print(f"{name} = {value}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
