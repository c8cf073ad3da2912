"""Command line: ``python -m dashboard [serve|seed|import-grids|export-regions|consume|simulate|settings]``.

Each subcommand is a ``Command``: a function adding its options and a function
running it. Failures the user can fix end as one line on stderr and exit 2.
``serve`` is the default: ``python -m dashboard --port 8052`` is
``python -m dashboard serve --port 8052``.

A capability in its own package adds its subcommand with one entry in
``COMMANDS``: ``"name": module_command("help", "dashboard.pkg.cli")``, where
that module defines ``add_arguments(parser)`` and ``run(args, settings)``. It
is imported only when the parser is built, and it imports nothing from here
(errors come from ``dashboard.errors``), so no import cycle.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import CliError
from .settings import Settings, SettingsError, settings_table_markdown

__all__ = ["CliError", "Command", "COMMANDS", "DEFAULT_COMMAND", "build_parser", "main", "module_command"]


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], int | None]
    common: bool = True  # takes --database-url / --redis-url


def module_command(help: str, module: str, common: bool = True) -> Command:
    """A subcommand defined in ``module`` (``add_arguments(parser)``, ``run(args, settings)``)."""
    def add_arguments(p):
        importlib.import_module(module).add_arguments(p)

    def run(args, settings):
        return importlib.import_module(module).run(args, settings)
    return Command(help, add_arguments, run, common)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="overrides DATABASE_URL")
    p.add_argument("--redis-url", help="overrides REDIS_URL")


# --- serve ---------------------------------------------------------------------------------------

def _serve_args(p):
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--no-demo", action="store_true", help="no seeding, no simulator")
    p.add_argument("--web-workers", type=int, metavar="N",
                   help="web server processes behind the port (default WEB_WORKERS, 1)")
    p.add_argument("--debug", action="store_true")


def _serve(args, settings):
    from .server import serve

    over = {k: v for k, v in (("host", args.host), ("port", args.port), ("web_workers", args.web_workers)) if v}
    if args.no_demo:
        over["demo"] = False
    return serve(settings.replace(**over), debug=args.debug)


# --- seed ----------------------------------------------------------------------------------------

def _seed_args(p):
    p.add_argument("--seed", type=int, help="random seed (default DEMO_SEED)")
    p.add_argument("--force", action="store_true", help="replace the demo district if present")
    p.add_argument("--history-days", type=int,
                   help="days of history written after seeding (default DEMO_HISTORY_DAYS: a year and two weeks; "
                        "the last 7 through the stream)")


def _seed(args, settings):
    from .demo.seed import cli_seed

    return cli_seed(settings, seed=args.seed, force=args.force, history_days=args.history_days)


# --- import-grids / export-regions ---------------------------------------------------------------

def _import_args(p):
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


def _import(args, settings):
    from .boundary.cli import cli_import

    return cli_import(settings, args)


def _export_args(p):
    p.add_argument("--level", choices=["street", "community", "grid", "micro"], required=True)
    p.add_argument("--format", choices=["geojson", "gpkg", "shp"], default="geojson")
    p.add_argument("--crs", default="EPSG:4326", help="EPSG:4326 (default), EPSG:4490, any EPSG code, or gcj02")
    p.add_argument("--scope", help="only this region's descendants")
    p.add_argument("-o", "--output", default="-",
                   help="output file; '-' or none: standard output (geojson only)")


def _export(args, settings):
    from .boundary.cli import cli_export

    return cli_export(settings, args)


# --- consume / simulate / settings ---------------------------------------------------------------

def _consume_args(p):
    p.add_argument("--name", help="consumer name in the group (default CONSUMER_NAME or host-pid)")
    p.add_argument("--burst", action="store_true", help="stop when the stream is drained")
    p.add_argument("--workers", type=int, help="consumer processes in the group (default CONSUMER_WORKERS; "
                                               "0: one per CPU core, at most 4)")


def _consume(args, settings):
    from .feed.pool import cli_consume_pool

    return cli_consume_pool(settings, name=args.name, burst=args.burst, workers=args.workers)


def _simulate_args(p):
    p.add_argument("--rate", type=float, help="new reports per second at the day's peak (default SIM_RATE)")
    p.add_argument("--speed", type=float, help="time compression (default SIM_SPEED)")
    p.add_argument("--seed", type=int, help="random seed (default DEMO_SEED)")
    p.add_argument("--duration", type=float, help="stop after this many real seconds")


def _simulate(args, settings):
    from .feed.simulate import cli_simulate

    return cli_simulate(settings, rate=args.rate, speed=args.speed, seed=args.seed, duration=args.duration)


def _settings(args, settings):
    print(settings_table_markdown())
    return 0


DEFAULT_COMMAND = "serve"
COMMANDS: dict[str, Command] = {
    "serve": Command("run the web app, the feed consumer and (demo) the simulator [default]", _serve_args, _serve),
    "seed": Command("build the demo district (Qingdao Shinan, 370202)", _seed_args, _seed),
    "import-grids": Command("import grid boundaries from GeoJSON / Shapefile / GeoPackage", _import_args, _import),
    "export-regions": Command("write region boundaries for other systems (geojson to standard output "
                              "without -o)", _export_args, _export),
    "consume": Command("run the feed consumer (stream -> store -> screens)", _consume_args, _consume),
    "simulate": Command("feed a realistic live district into the stream", _simulate_args, _simulate),
    "settings": Command("print the settings table (markdown)", lambda p: None, _settings, common=False),
    "users": module_command("manage users and wall display tokens (add, list, disable, passwd, token, revoke, "
                            "import)", "dashboard.access.cli_users"),
    "audit": module_command("query the audit log (sign-ins, user and token changes, scope refusals)",
                            "dashboard.access.cli_audit"),
    "briefing": module_command("write a weekly briefing: charts, PDF, XLSX, summary, ZIP", "dashboard.briefing.cli"),
    "units": module_command("the register of handling units: import FILE (CSV or YAML), list, seed-demo",
                            "dashboard.cases.cli_units"),  # C2
    "recount-deadlines": module_command("count provisional deadlines again once the holiday file knows their "
                                        "year (--dry-run lists them)", "dashboard.cases.cli_recount"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard", description="Grid governance command center (网格化治理指挥中心)",
        epilog=f"Without a command, '{DEFAULT_COMMAND}' runs, with any of its options: "
               "python -m dashboard --port 8052")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help)
        if cmd.common:
            _common(p)
        cmd.add_arguments(p)
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """The arguments with the default command named when none is: nothing, or options first
    (``--port 8052``). ``-h`` alone still asks for the overview of every command."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return [DEFAULT_COMMAND, *argv]
    return list(argv)


def settings_from_args(args) -> Settings:
    over = {}
    if getattr(args, "database_url", None):
        over["database_url"] = args.database_url
    if getattr(args, "redis_url", None):
        over["redis_url"] = args.redis_url
    return Settings.from_env(**over)


def main(argv: list[str] | None = None) -> int:
    argv = with_default_command(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .logs import setup_logging

    setup_logging(settings.log_level)
    try:
        return int(COMMANDS[args.command].run(args, settings) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of a pipe stopped early (``| head``): not an error worth a trace
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
