"""``python -m dashboard recount-deadlines [--dry-run]``: provisional deadlines counted again.

Run after filling a year into the holiday file (HOLIDAYS_FILE, data/holidays.yaml). The consumer
does the same once at every start; this lists what moves, and with ``--dry-run`` writes nothing.
With REDIS_URL set, the changed cases' deltas go to the open screens; without it (the embedded
Redis belongs to the running app) they see the change at their next refresh.
"""
from __future__ import annotations

from ..errors import CliError


def add_arguments(p) -> None:
    p.add_argument("--dry-run", action="store_true", help="list what would move; write nothing")


def run(args, settings) -> int:
    from ..feed.casework import CaseContext
    from ..store.engine import make_engine, migrate
    from .recount import recount, waiting
    from .workcalendar import CalendarError

    try:
        ctx = CaseContext.from_settings(settings)
    except CalendarError as exc:
        raise CliError(str(exc)) from None
    engine = make_engine(settings.effective_database_url)
    r = None
    try:
        migrate(engine)
        if settings.redis_url and not args.dry_run:
            from ..redis_server import connect_settings

            r = connect_settings(settings)
        changes = recount(engine, ctx, dry_run=args.dry_run, redis=r)
        tz = ctx.cal.tz
        for c in changes:
            old, new = c.before["deadline_at"], c.after["deadline_at"]
            print(f"{c.event_id}\t{c.state}\t{_at(old, tz)}\t->\t{_at(new, tz)}"
                  f"\t{'provisional' if c.after['deadline_provisional'] else 'final'}")
        left = waiting(engine, ctx.cal)
        verb = "would be recounted (dry run: nothing written)" if args.dry_run else "recounted"
        print(f"{len(changes)} deadlines {verb}; {left} still provisional, waiting for a year the "
              f"calendar does not know yet ({ctx.cal.overrides.path or 'HOLIDAYS_FILE'})")
        return 0
    finally:
        if r is not None:
            r.close()
        engine.dispose()


def _at(value, tz) -> str:
    return value.astimezone(tz).isoformat(timespec="minutes") if value is not None else "-"
