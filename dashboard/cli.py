"""Command line: ``python -m dashboard [serve|seed|import-grids|export-regions|consume|simulate|settings]``.

Each subcommand is a small function here that parses options and calls into
the package; failures the user can fix end as one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .settings import Settings, SettingsError, settings_table_markdown


class CliError(Exception):
    """An error worth one clear line to the user (exit status 2)."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="overrides DATABASE_URL")
    p.add_argument("--redis-url", help="overrides REDIS_URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard",
                                     description="Grid governance command center (网格化治理指挥中心)")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("serve", help="run the web app, the feed consumer and (demo) the simulator [default]")
    _common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--no-demo", action="store_true", help="no seeding, no simulator")
    p.add_argument("--debug", action="store_true")

    p = sub.add_parser("seed", help="build the demo district (Qingdao Shinan, 370202)")
    _common(p)
    p.add_argument("--seed", type=int, help="random seed (default DEMO_SEED)")
    p.add_argument("--force", action="store_true", help="replace the demo district if present")
    p.add_argument("--history-days", type=int,
                   help="days of past reports fed through the stream after seeding (default DEMO_HISTORY_DAYS)")

    p = sub.add_parser("import-grids", help="import grid boundaries from GeoJSON / Shapefile / GeoPackage")
    _common(p)
    p.add_argument("file")
    p.add_argument("--layer", help="layer name in a GeoPackage")
    p.add_argument("--encoding", help="attribute encoding (default: detect GBK / UTF-8)")
    p.add_argument("--crs", help="CRS of a file that declares none, e.g. EPSG:4490")
    p.add_argument("--gcj02", action="store_true", help="coordinates are GCJ-02 (AMap/Tencent)")
    p.add_argument("--level", choices=["street", "community", "grid", "micro"], default="grid",
                   help="level of the features in the file (default grid)")
    p.add_argument("--field", action="append", default=[], metavar="ROLE=NAME",
                   help="map a field, e.g. --field code=WGBM --field name=WGMC (roles: code, name, "
                        "parent_code, parent_name, street_name, kind, households, population)")
    p.add_argument("--tolerance", type=float, default=1.0, help="overlap/gap tolerance in m² (default 1)")
    p.add_argument("--strict", action="store_true", help="any problem is fatal")
    p.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    p.add_argument("--report", metavar="FILE", help="write the validation report as JSON")

    p = sub.add_parser("export-regions", help="write region boundaries for other systems")
    _common(p)
    p.add_argument("--level", choices=["street", "community", "grid", "micro"], required=True)
    p.add_argument("--format", choices=["geojson", "gpkg", "shp"], default="geojson")
    p.add_argument("--crs", default="EPSG:4326", help="EPSG:4326 (default), EPSG:4490, any EPSG code, or gcj02")
    p.add_argument("--scope", help="only this region's descendants")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("consume", help="run the feed consumer (stream -> store -> screens)")
    _common(p)
    p.add_argument("--name", help="consumer name in the group (default CONSUMER_NAME or host-pid)")
    p.add_argument("--burst", action="store_true", help="stop when the stream is drained")
    p.add_argument("--workers", type=int, help="consumer processes in the group (default CONSUMER_WORKERS; "
                                               "0: one per CPU core, at most 4)")

    p = sub.add_parser("simulate", help="feed a realistic live district into the stream")
    _common(p)
    p.add_argument("--rate", type=float, help="new reports per second at the day's peak (default SIM_RATE)")
    p.add_argument("--speed", type=float, help="time compression (default SIM_SPEED)")
    p.add_argument("--seed", type=int, help="random seed (default DEMO_SEED)")
    p.add_argument("--duration", type=float, help="stop after this many real seconds")

    sub.add_parser("settings", help="print the settings table (markdown)")
    return parser


def settings_from_args(args) -> Settings:
    over = {}
    if getattr(args, "database_url", None):
        over["database_url"] = args.database_url
    if getattr(args, "redis_url", None):
        over["redis_url"] = args.redis_url
    return Settings.from_env(**over)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    if args.command is None:  # defaults of the serve subcommand
        args = build_parser().parse_args(["serve", *(argv or [])])
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .logs import setup_logging

    setup_logging(settings.log_level)
    try:
        return int(_dispatch(command, args, settings) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(command: str, args, settings: Settings):
    if command == "settings":
        print(settings_table_markdown())
        return 0
    if command == "serve":
        from .server import serve

        over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
        if args.no_demo:
            over["demo"] = False
        return serve(settings.replace(**over), debug=args.debug)
    if command == "seed":
        from .demo.seed import cli_seed

        return cli_seed(settings, seed=args.seed, force=args.force, history_days=args.history_days)
    if command == "import-grids":
        from .boundary.cli import cli_import

        return cli_import(settings, args)
    if command == "export-regions":
        from .boundary.cli import cli_export

        return cli_export(settings, args)
    if command == "consume":
        from .feed.pool import cli_consume_pool

        return cli_consume_pool(settings, name=args.name, burst=args.burst, workers=args.workers)
    if command == "simulate":
        from .feed.simulate import cli_simulate

        return cli_simulate(settings, rate=args.rate, speed=args.speed, seed=args.seed, duration=args.duration)
    raise CliError(f"unknown command {command}")
