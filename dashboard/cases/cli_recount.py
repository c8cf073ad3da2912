"""``python -m dashboard recount-deadlines [--dry-run]``: provisional deadlines counted again.

Run after filling a year into the holiday file (HOLIDAYS_FILE, data/holidays.yaml). The consumer
does the same once at every start; this lists what moves (cases, then hazards), and with
``--dry-run`` writes nothing. With REDIS_URL set, the changed cases' and hazards' deltas go to the
open screens; without it (the embedded Redis belongs to the running app) they see the change at
their next refresh.
"""
from __future__ import annotations

from ..errors import CliError


def add_arguments(p) -> None:
    p.add_argument("--dry-run", action="store_true", help="list what would move; write nothing")


def run(args, settings) -> int:
    from ..feed.casework import CaseContext
    from ..store.engine import make_engine, migrate
    from .recount import fill_hazard_due_soon, hazards_waiting, recount, recount_hazards, waiting
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
        hazards = recount_hazards(engine, ctx, dry_run=args.dry_run, redis=r)
        filled = fill_hazard_due_soon(engine, ctx, dry_run=args.dry_run)
        tz = ctx.cal.tz
        for c in changes:
            old, new = c.before["deadline_at"], c.after["deadline_at"]
            print(f"{c.event_id}\t{c.state}\t{_at(old, tz)}\t->\t{_at(new, tz)}"
                  f"\t{'provisional' if c.after['deadline_provisional'] else 'final'}")
        for h in hazards:
            print(f"hazard {h.hazard_id}\t{h.state}\t{_at(h.before, tz)}\t->\t{_at(h.after, tz)}"
                  f"\t{'provisional' if h.provisional else 'final'}")
        verb = "would be recounted (dry run: nothing written)" if args.dry_run else "recounted"
        year = f"waiting for a year the calendar does not know yet ({ctx.cal.overrides.path or 'HOLIDAYS_FILE'})"
        print(f"{len(changes)} deadlines {verb}; {waiting(engine, ctx.cal)} still provisional, {year}")
        print(f"{len(hazards)} hazard deadlines {verb}; {hazards_waiting(engine, ctx.cal)} still provisional "
              f"(a year not known yet, or stored before their count was kept)")
        if filled:
            print(f"{filled} hazards stored without 即将到期 "
                  f"{'would be given one' if args.dry_run else 'given one'}")
        return 0
    finally:
        if r is not None:
            r.close()
        engine.dispose()


def _at(value, tz) -> str:
    return value.astimezone(tz).isoformat(timespec="minutes") if value is not None else "-"
