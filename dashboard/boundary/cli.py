"""``import-grids`` and ``export-regions``: options in, one summary line and the report out.

Both open only the database engine (no Redis, no Services): they are batch
tools a surveying department runs against the store.
"""
from __future__ import annotations

import sys

from ..errors import CliError
from ..settings import Settings


def _engine(settings: Settings):
    import logging

    from ..store.engine import make_engine, migrate

    # a batch tool's stderr is for the user: no per-migration or per-write chatter
    for name in ("alembic", "pyogrio"):
        logging.getLogger(name).setLevel(logging.WARNING)

    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    return engine


def parse_fields(items: list[str]) -> dict[str, str]:
    from .reader import ROLES

    out = {}
    for item in items or []:
        role, sep, name = item.partition("=")
        role, name = role.strip(), name.strip()
        if not sep or not role or not name:
            raise CliError(f"--field {item}: expected ROLE=FIELD, e.g. --field code=WGBM")
        if role not in ROLES:
            raise CliError(f"--field {item}: unknown role '{role}' (roles: {', '.join(ROLES)})")
        out[role] = name
    return out


def _line(p: dict) -> str:
    return f"{p['severity']:<7} {p['code'] or '-'}  {p['problem']}: {p['detail']}"


def cli_import(settings: Settings, args) -> int:
    from .importer import import_file
    from .reader import BoundaryError

    fields = parse_fields(args.field)
    from pathlib import Path

    if not Path(args.file).exists():
        raise CliError(f"{args.file}: no such file")
    if args.tolerance is not None and args.tolerance < 0:
        raise CliError("--tolerance must be >= 0 (m²)")
    engine = _engine(settings)
    try:
        result = import_file(engine, args.file, layer=args.layer, encoding=args.encoding, crs=args.crs,
                             gcj02=args.gcj02, level=args.level, fields=fields, tolerance=args.tolerance,
                             strict=args.strict, dry_run=args.dry_run, progress=None)
    except BoundaryError as exc:
        if args.report:
            _write_json(args.report, [exc.entry()])
        if exc.usage:
            raise CliError(str(exc)) from None
        print(f"import failed: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for p in result.problems:
        print(_line(p))
    print(result.summary())
    if args.report:
        result.write_report(args.report)
    return 0 if result.ok else 1


def _write_json(path, data) -> None:
    import json
    from pathlib import Path

    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def cli_export(settings: Settings, args) -> int:
    """``-o FILE`` writes a file; no ``-o`` or ``-o -`` writes to standard output (so it pipes),
    and the summary line then goes to stderr, leaving stdout to the data."""
    from .export import STREAMABLE, ExportError, export_regions

    to_stdout = args.output in (None, "", "-")
    if to_stdout and args.format not in STREAMABLE:  # before opening the store: nothing to wait for
        raise CliError(f"--format {args.format} cannot be written to standard output "
                       f"(only {', '.join(STREAMABLE)}): give a file with -o FILE")
    engine = _engine(settings)
    try:
        n = export_regions(engine, args.level, sys.stdout.buffer if to_stdout else args.output,
                           fmt=args.format, crs=args.crs, scope=args.scope)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    where = "standard output" if to_stdout else args.output
    print(f"exported {n} {args.level} regions to {where} ({args.format}, {args.crs})",
          file=sys.stderr if to_stdout else sys.stdout)
    return 0
