"""Provisional deadlines counted again once the calendar knows their year.

A deadline whose count crosses a year that neither ``chinesecalendar`` nor the operators' file
(data/holidays.yaml, HOLIDAYS_FILE) knows is counted on weekdays and marked provisional
(``deadline_provisional``). When the operators fill in that year and restart, ``recount`` counts
each such case's clock again on the calendar as it now is:

- It is a replay, not a re-count from the report: the case's clock is rebuilt from its report and
  its steps (``event_step``, in the order they were applied) through ``CaseContext.advance``, the
  function the consumer applies steps with. So a deadline an operator set (registered, dispatched,
  escalated or extended with ``deadline_at``) stays the instant it was; only its 即将到期 and
  its allowance may move. A derived one (the report's allowance, an escalation's, a resumption's)
  moves by the holidays and make-up working days the year brought, through any suspension.
- Only cases whose count now lies wholly in known years are replayed: a deadline still reaching
  an unknown year would come out the same, provisional again.
- Each changed case gets a system step ``recounted`` (actor ``system:calendar``, negative seq like
  the store's other steps) naming the old and the new deadline, so its history says why the
  deadline moved. The step also bumps ``system_steps``, the version the consumer checks, so a
  batch that read the case before the recount retries with the recounted clock instead of writing
  over it; the recount itself updates a case only if its version is still the one it read.
- The changed cases' deltas go to the screens (grid:deltas) like a batch's.

Hazards (``recount_hazards``): a rectification deadline counted on the working calendar (an
order's working days, a failed re-inspection's same allowance again) keeps where its count started
and its working seconds (``hazard.deadline_from``, ``allowance_s``; migration 0006), so it is
counted again from those, on the calendar as it now is, and its 即将到期 (``due_soon_at``) with
it. A deadline the message gave as an instant stays that instant, as an operator's does on a case;
only its 即将到期 moves. A hazard has no step history, so the move is logged, not recorded as a
step; its ``last_seq`` (the version the consumer checks) is bumped. A provisional hazard stored
before migration 0006 has no 即将到期 and no basis: it is left as it is; the others stored before
it get their 即将到期 (``fill_hazard_due_soon``).

The consumer runs all three once when it starts (``Consumer.run``); ``python -m dashboard
recount-deadlines`` runs them by hand and lists what moved (``--dry-run`` writes nothing).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import orjson
from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from ..store.schema import event as E
from ..store.schema import event_step as S
from ..store.schema import hazard as H

log = logging.getLogger(__name__)

ACTOR = "system:calendar"
STEP = "recounted"
# the event row's clock: what the replay rebuilds and the recount writes
CLOCK = ("deadline_at", "deadline_basis", "allowance_s", "due_soon_at", "deadline_provisional", "remaining_s")
# steps whose deadline_at (in the step's payload) is an operator's instant; any other step's
# deadline_at in a payload (a resumption's, an automatic escalation's) was derived, and is derived
# again by the replay
SETS_DEADLINE = ("registered", "dispatched", "escalated", "extended")
CHUNK = 500
PASSES = 3


@dataclass(frozen=True)
class Change:
    event_id: str
    state: str
    before: dict
    after: dict
    row: dict   # the event row as recounted (its delta for the screens)


def replayable(cal, row) -> bool:
    """Is case ``row``'s deadline provisional, and does its count now lie in known years only?"""
    if not row["deadline_provisional"] or row["deadline_at"] is None:
        return False
    y0, y1 = sorted((cal.local(row["reported_at"]).year, cal.local(row["deadline_at"]).year))
    return all(cal.knows_year(y) for y in range(y0, y1 + 1))


def _instant(value) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def replay(ctx, row, steps: Iterable) -> dict:
    """The clock of case ``row`` (an event row) rebuilt from its report and ``steps`` (its
    event_step rows, in the order they were applied) on ``ctx``'s calendar."""
    from ..feed.casework import set_deadline

    ev = {"category": row["category"], "subcategory": row["subcategory"], **{k: None for k in CLOCK}}
    set_deadline(ev, ctx.fresh(row["category"], row["subcategory"], row["reported_at"]))
    for st in steps:
        if st["step"] == STEP:
            continue
        deadline_at = None
        if st["seq"] > 0 and st["step"] in SETS_DEADLINE and st["payload"]:
            deadline_at = _instant(orjson.loads(st["payload"]).get("deadline_at"))
        # a system step (seq < 0): an automatic escalation gets its tier's allowance afresh, as the
        # consumer gave it; a merge recorded on its target does nothing to the clock
        ctx.advance(ev, st["step"], st["at"], deadline_at)
    return {k: ev[k] for k in CLOCK}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) < 1e-6
    return a == b


def _changed(before: dict, after: dict) -> bool:
    return not all(_same(before[k], after[k]) for k in CLOCK)


def _text(at: datetime | None, tz) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at is not None else "none"


def _steps(conn: Connection, ids: list[str]) -> dict[str, list]:
    out: dict[str, list] = {i: [] for i in ids}
    rows = conn.execute(select(S.c.event_id, S.c.seq, S.c.step, S.c.at, S.c.payload)
                        .where(S.c.event_id.in_(ids)).order_by(S.c.event_id, S.c.id)).mappings()
    for r in rows:
        out[r["event_id"]].append(r)
    return out


def _write(conn: Connection, row: dict, after: dict, now: datetime, tz) -> bool:
    """The recounted clock and its step, if the case is still as read (its version)."""
    version = row["system_steps"] or 0
    res = conn.execute(update(E).where(E.c.id == row["id"], E.c.last_seq == row["last_seq"],
                                       E.c.system_steps == row["system_steps"])
                       .values(**after, system_steps=version + 1, updated_at=now))
    if res.rowcount != 1:
        return False
    old, new = row["deadline_at"], after["deadline_at"]
    note = (f"deadline recounted on the calendar as it now is: {_text(old, tz)} -> {_text(new, tz)}"
            + ("" if after["deadline_provisional"] else " (no longer provisional)"))
    key = f"{row['id']}|{version + 1}|{old and old.isoformat()}|{new and new.isoformat()}"
    conn.execute(S.insert().values(
        event_id=row["id"], seq=-(version + 1), step=STEP, at=now, actor=ACTOR, note=note,
        message_id="recount:" + hashlib.blake2s(key.encode(), digest_size=16).hexdigest(),
        payload=orjson.dumps({"from": old, "deadline_at": new, "provisional": after["deadline_provisional"]}).decode()))
    return True


def recount(engine: Engine, ctx, *, tz=None, now: datetime | None = None, dry_run: bool = False,
            redis=None) -> list[Change]:
    """Replay every provisional deadline the calendar can now count (module docstring); returns
    what changed (or, with ``dry_run``, what would). With ``redis``, the changed cases' deltas go
    to the screens. A case that changed between its read and its write (a consumer's batch, or
    another consumer's recount) is read again, up to ``PASSES`` times."""
    tz = tz or ctx.cal.tz
    now = now or datetime.now(timezone.utc)
    changes = _passes(lambda: _pass(engine, ctx, tz, now, dry_run), "cases")
    if changes and not dry_run:
        log.info("provisional deadlines recounted", extra={"cases": len(changes)})
        if redis is not None:
            from ..feed import deltas as D

            _publish(redis, [D.event_delta(c.row, tz) for c in changes])
    return changes


def _passes(one_pass, what: str) -> list:
    """``one_pass()`` -> (changes, how many changed under it), again while some did, up to
    ``PASSES`` times (a dry run writes nothing, so it never misses one)."""
    changes: list = []
    for _ in range(PASSES):
        done, missed = one_pass()
        changes += done
        if not missed:
            return changes
    log.warning(f"{what} kept changing while their deadlines were recounted; left for the next start",
                extra={what: missed})
    return changes


def _publish(redis, deltas: list[dict]) -> None:
    """The moved cases' or hazards' deltas to the screens (grid:deltas), a chunk an entry."""
    from ..feed import deltas as D

    pipe = redis.pipeline(transaction=False)
    for k in range(0, len(deltas), CHUNK):
        D.publish_command(pipe, deltas[k:k + CHUNK])
    pipe.execute()


def _candidates(conn: Connection, cal) -> tuple[list[str], int]:
    """The provisional cases the calendar can now count (their ids), and how many still wait for
    a year it does not know. Reads three columns of each provisional row, not the rows: late in a
    year most provisional cases still wait, and every consumer start runs this."""
    rows = conn.execute(select(E.c.id, E.c.reported_at, E.c.deadline_at, E.c.deadline_provisional)
                        .where(E.c.deadline_provisional.is_(True))).mappings().all()
    ready = [r["id"] for r in rows if replayable(cal, r)]
    return ready, len(rows) - len(ready)


def waiting(engine: Engine, cal) -> int:
    """How many provisional deadlines still reach a year the calendar does not know."""
    with engine.connect() as conn:
        return _candidates(conn, cal)[1]


def _pass(engine: Engine, ctx, tz, now: datetime, dry_run: bool) -> tuple[list[Change], int]:
    with engine.connect() as conn:
        ready, _ = _candidates(conn, ctx.cal)
    changes: list[Change] = []
    missed = 0
    for i in range(0, len(ready), CHUNK):
        ids = ready[i:i + CHUNK]
        with engine.begin() as conn:
            # the rows as this transaction reads them: their version is the one the write checks
            chunk = [dict(r) for r in conn.execute(select(E).where(E.c.id.in_(ids))).mappings()
                     if replayable(ctx.cal, r)]
            steps = _steps(conn, [r["id"] for r in chunk])
            for row in chunk:
                after = replay(ctx, row, steps[row["id"]])
                before = {k: row[k] for k in CLOCK}
                if not _changed(before, after):
                    continue
                if dry_run or _write(conn, row, after, now, tz):
                    changes.append(Change(row["id"], row["state"], before, after, {**row, **after}))
                else:
                    missed += 1
    return changes, missed


# --- hazards ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HazardChange:
    hazard_id: str
    state: str
    before: datetime
    after: datetime
    provisional: bool
    row: dict   # the hazard row as recounted (its delta for the screens)


def _hazard_start(row) -> datetime | None:
    """Where a hazard's clock starts: its counted deadline's start, else its latest order."""
    return row["deadline_from"] or row["ordered_at"]


def _hazard_ready(cal, row) -> bool:
    start = _hazard_start(row)
    if row["deadline_at"] is None or row["due_soon_at"] is None or start is None:
        return False  # stored before migration 0006: no 即将到期, no basis
    y0, y1 = sorted((cal.local(start).year, cal.local(row["deadline_at"]).year))
    return all(cal.knows_year(y) for y in range(y0, y1 + 1))


def _hazard_clock(ctx, row) -> dict:
    """Hazard ``row``'s deadline, 即将到期 and provisional flag on ``ctx``'s calendar."""
    if row["deadline_from"] is not None and row["allowance_s"] is not None:   # counted: count again
        due, provisional, _ = ctx.after_working_seconds(row["deadline_from"], row["allowance_s"])
    else:   # an instant the message gave: kept
        due, provisional = row["deadline_at"], False
    soon, soon_provisional = ctx.hazard_due_soon(_hazard_start(row), due)
    return {"deadline_at": due, "due_soon_at": soon, "deadline_provisional": provisional or soon_provisional}


def _hazard_candidates(conn: Connection, cal) -> tuple[list[str], int]:
    rows = conn.execute(select(H.c.id, H.c.deadline_from, H.c.ordered_at, H.c.deadline_at, H.c.due_soon_at)
                        .where(H.c.deadline_provisional.is_(True))).mappings().all()
    ready = [r["id"] for r in rows if _hazard_ready(cal, r)]
    return ready, len(rows) - len(ready)


def hazards_waiting(engine: Engine, cal) -> int:
    """How many provisional hazard deadlines the calendar cannot count again yet (a year it does
    not know, or stored before migration 0006)."""
    with engine.connect() as conn:
        return _hazard_candidates(conn, cal)[1]


def _write_hazard(conn: Connection, row, after: dict, now: datetime) -> bool:
    """``after`` (a recounted deadline, a 即将到期) into hazard ``row``, if it is still as read (its
    version, ``last_seq``, which the write bumps)."""
    res = conn.execute(update(H).where(H.c.id == row["id"], H.c.last_seq == row["last_seq"])
                       .values(**after, last_seq=row["last_seq"] + 1, updated_at=now))
    return res.rowcount == 1


def _hazard_pass(engine: Engine, ctx, now: datetime, dry_run: bool) -> tuple[list[HazardChange], int]:
    with engine.connect() as conn:
        ready, _ = _hazard_candidates(conn, ctx.cal)
    changes: list[HazardChange] = []
    missed = 0
    for i in range(0, len(ready), CHUNK):
        with engine.begin() as conn:
            rows = [dict(r) for r in conn.execute(select(H).where(H.c.id.in_(ready[i:i + CHUNK]))).mappings()
                    if r["deadline_provisional"] and _hazard_ready(ctx.cal, r)]
            for row in rows:
                after = _hazard_clock(ctx, row)
                if all(_same(after[k], row[k]) for k in after):
                    continue
                if not dry_run:
                    if not _write_hazard(conn, row, after, now):
                        missed += 1
                        continue
                    after.update(last_seq=row["last_seq"] + 1, updated_at=now)
                changes.append(HazardChange(row["id"], row["state"], row["deadline_at"], after["deadline_at"],
                                            after["deadline_provisional"], {**row, **after}))
    return changes, missed


def recount_hazards(engine: Engine, ctx, *, tz=None, now: datetime | None = None, dry_run: bool = False,
                    redis=None) -> list[HazardChange]:
    """Count every provisional hazard deadline the calendar now can again from its basis; returns
    what changed. A hazard changed between read and write (a consumer's batch) is read again, up to
    ``PASSES`` times; with ``redis`` the changed hazards' deltas go to the screens."""
    tz = tz or ctx.cal.tz
    now = now or datetime.now(timezone.utc)
    changes = _passes(lambda: _hazard_pass(engine, ctx, now, dry_run), "hazards")
    if changes and not dry_run:
        for c in changes:
            log.info("hazard deadline recounted", extra={"hazard_id": c.hazard_id, "from": c.before.isoformat(),
                                                         "to": c.after.isoformat(), "provisional": c.provisional})
        if redis is not None:
            from ..feed import deltas as D

            _publish(redis, [D.hazard_delta(c.row, tz) for c in changes])
    return changes


# Hazards stored before migration 0006 that the wall may still count: under rectification, or
# rectified and awaiting re-inspection (a failure orders again). "open" is the old consumer's state.
FILL_STATES = ("found", "ordered", "rectified", "open")


def fill_hazard_due_soon(engine: Engine, ctx, *, now: datetime | None = None, dry_run: bool = False) -> int:
    """即将到期 for the hazards stored before migration 0006, which have a deadline but no
    ``due_soon_at`` (until their next order, extension or failed re-inspection): counted from their
    latest order (or, without one, from when they were found) to the deadline, as the consumer counts
    it. A provisional one among them is left alone: its deadline is a weekday count nothing can
    redo. Version-checked like the recount (``last_seq`` bumped); returns how many were filled
    (with ``dry_run``, would be)."""
    now = now or datetime.now(timezone.utc)
    missing = (H.c.due_soon_at.is_(None), H.c.deadline_at.is_not(None), H.c.state.in_(FILL_STATES),
               H.c.deadline_provisional.is_(False))
    with engine.connect() as conn:
        ids = list(conn.execute(select(H.c.id).where(*missing)).scalars())
    if dry_run:
        return len(ids)
    filled = 0
    for i in range(0, len(ids), CHUNK):
        with engine.begin() as conn:
            rows = conn.execute(select(H.c.id, H.c.ordered_at, H.c.found_at, H.c.deadline_at, H.c.last_seq)
                                .where(H.c.id.in_(ids[i:i + CHUNK]), *missing)).mappings().all()
            for row in rows:
                soon, provisional = ctx.hazard_due_soon(row["ordered_at"] or row["found_at"], row["deadline_at"])
                # a hazard a consumer moved meanwhile keeps what that step gave it (an order or an
                # extension sets its mark); one still without is filled at the next start
                filled += _write_hazard(conn, row, {"due_soon_at": soon, "deadline_provisional": provisional}, now)
    if filled:
        log.info("hazards stored before their 即将到期 was kept now have one", extra={"hazards": filled})
    return filled
