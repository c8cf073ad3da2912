"""``python -m dashboard units import FILE | list | seed-demo``: the register of handling units.

``import`` reads a CSV or YAML file (data/units.example.csv / .yaml show the columns) and adds or
updates its units, all or nothing: a mistake refuses the file naming its line (exit 2).
"""
from __future__ import annotations

from ..errors import CliError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{import,list,seed-demo}")
    im = sub.add_parser("import", help="add or update units from a CSV or YAML file (columns code, name_zh, "
                                       "name_en, tier, unit_type, region_code, parent_code, active)")
    im.add_argument("file")
    im.add_argument("--dry-run", action="store_true", help="check the file; write nothing")
    ls = sub.add_parser("list", help="list the units (tab-separated)")
    ls.add_argument("--tier", type=int, choices=(1, 2, 3))
    ls.add_argument("--region", help="only units serving this region or inside it")
    sub.add_parser("seed-demo", help="(re)build the demo's units from the regions in the store")


def run(args, settings) -> int:
    from ..store.engine import make_engine, migrate
    from .units import UnitFileError, import_units, list_units, read_units, seed_demo_units

    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        if args.action == "import":
            try:
                with engine.begin() as conn:
                    if args.dry_run:
                        n = len(read_units(args.file, conn))
                        print(f"{args.file}: {n} units, no errors (dry run: nothing written)")
                        return 0
                    added, updated = import_units(conn, args.file)
            except UnitFileError as exc:
                raise CliError(str(exc)) from None
            print(f"{args.file}: {added} units added, {updated} updated")
        elif args.action == "list":
            with engine.connect() as conn:
                rows = list_units(conn, tier=args.tier, region=args.region)
            print("code\ttier\tunit_type\tregion_code\tparent_code\tactive\tname_zh\tname_en\tsource")
            for u in rows:
                print(f"{u['code']}\t{u['tier']}\t{u['unit_type']}\t{u['region_code']}\t{u['parent_code'] or '-'}\t"
                      f"{'yes' if u['active'] else 'no'}\t{u['name_zh']}\t{u['name_en']}\t{u['source']}")
        elif args.action == "seed-demo":
            with engine.begin() as conn:
                n = seed_demo_units(conn)
            print(f"{n} demo units written")
        return 0
    finally:
        engine.dispose()
