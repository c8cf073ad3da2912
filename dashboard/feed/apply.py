"""Applying a validated batch of feed messages to the store in ONE transaction.

``apply_batch(conn, items)`` runs inside the caller's transaction and returns
what happened: the deltas for the screens and the messages to dead-letter.
It is idempotent by message id (the ``feed_message`` ledger): a message whose
id is in the ledger changes nothing. Steps of a case are applied in ``seq``
order: a step that arrives before its predecessor, or before its event, is
held in ``feed_pending`` (and written to the ledger) and applied when the gap
fills; ``expire_pending`` dead-letters what waited too long.

Every case step goes through the case engine (``dashboard.cases.machine.apply_step``,
the only place the rules live) and every hazard update through ``apply_hazard_step``: a
step the rules refuse is dead-lettered with the machine's reason (naming the case, its
state and the step) and changes nothing. Deadlines run on the working calendar
(``casework.CaseContext``); docs/cases.md ("The consumer") describes the clock.

Concurrency: several consumers may apply batches at the same time. Rows about
to change are read ``FOR UPDATE`` (PostgreSQL; SQLite has one writer at a
time) and updated with an optimistic check on their version columns (an
event's ``last_seq`` and ``system_steps``, a hazard's ``last_seq``), so a
lost update raises ``Conflict`` and the caller retries the batch with fresh
state; a ledger primary-key clash does the same for a message two consumers
both saw.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterable

import orjson
from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection

from ..cases.machine import CASE_STATES, HAZARD_RULES, HAZARD_STEPS, Case, Hazard, IllegalStep, Step
from ..cases.machine import apply_hazard_step, apply_step
from ..store.schema import event, event_step, feed_message, feed_pending, hazard, patrol, position
from . import deltas as D
from .casework import CaseContext, default_context
from .contract import CLOCK_SKEW, MESSAGE_TYPES, InvalidMessage, parse

log = logging.getLogger(__name__)

CHUNK = 900  # ids per lookup query
OPEN_STATES = frozenset(s for s, v in CASE_STATES.items() if v[2] == "open")
SYSTEM_ESCALATION = "system:auto-escalation"
# steps that may set a case's deadline (deadline_at); extended requires one (later than the current)
SETS_DEADLINE = ("registered", "dispatched", "escalated", "extended")


class Conflict(RuntimeError):
    """Another writer changed a row this batch read; retry with fresh state."""


class MaybeReplay(RuntimeError):
    """An optimistic try would dead-letter a message that may only be a replay; look it up."""


def deadline_for(category: str, level: int, reported_at: datetime, subcategory: str | None = None,
                 ctx: CaseContext | None = None) -> datetime:
    """When a new case must be handled by: the taxonomy's allowance for its 小类 (natural hours,
    working hours or working days: data/taxonomy.yaml) from the report, on the working calendar.
    ``level`` does not change the allowance: every tier of a kind gets the same (an escalation
    starts it again for the new tier)."""
    return (ctx or default_context()).fresh(category, subcategory, reported_at).at


@dataclass
class Item:
    """One validated message with its place resolved against the store."""
    stream_id: str
    raw: bytes | str
    msg: Any
    grid: str | None = None
    lon: float | None = None   # WGS-84
    lat: float | None = None
    held_at: datetime | None = None  # when it was first held in feed_pending (a released message)


@dataclass
class Outcome:
    deltas: list[dict] = field(default_factory=list)
    dead: list[tuple[str, Any, str, str]] = field(default_factory=list)  # stream_id, payload, reason, message id
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    released: int = 0
    stale: int = 0   # case.escalate messages the case had moved past (recorded, nothing changed)
    # the batch's reports with a point, for the consumer's duplicate index once committed
    # (DuplicateIndex.merge: cheaper than learning them again from the deltas)
    reports: Any = None
    # apply_batch(defer_deltas=True): builds ``deltas`` once the caller has committed (they are
    # read from the batch's rows only, so they need not hold SQLite's one write lock)
    build_deltas: Any = None

    def finish(self) -> "Outcome":
        if self.build_deltas is not None:
            self.build_deltas()
            self.build_deltas = None
        return self


def _member(column, values: list, pg: bool):
    """``column IN values`` as ONE parameter, not one per value: an array on PostgreSQL
    (``= ANY``), a JSON array on SQLite (``json_each``). The statement then compiles once and
    is cached, instead of being rendered again for every batch size."""
    if pg:
        from sqlalchemy import String, any_
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    from sqlalchemy import func

    listed = func.json_each(bindparam(None, json.dumps(list(values)))).table_valued("value")
    return column.in_(select(listed.c.value))


def _chunks(seq: list, n: int = CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _utc(value: datetime) -> datetime:
    """A message's time in the standard library's UTC: pydantic's own time-zone class makes
    every later offset lookup (stored text, deltas, deadlines) several times slower."""
    return value.astimezone(timezone.utc)


def _stream_key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms or 0), int(n or 0)


def _actor(msg) -> str:
    a = msg.actor
    return a.id or a.kind



def _json(payload: dict) -> str | None:
    return orjson.dumps(payload).decode() if payload else None


def _system_message_id(kind: str, mid: str) -> str:
    """A unique ledger-free id for a step the store adds because of message ``mid``."""
    return f"{kind}:{hashlib.blake2s(mid.encode(), digest_size=16).hexdigest()}"


def _reachable(state: str) -> set[str]:
    """Hazard states reachable from ``state`` by one or more steps."""
    seen: set[str] = set()
    todo = [state]
    while todo:
        s = todo.pop()
        for r in HAZARD_RULES:
            if s in r.sources and r.target not in ("=", "resume"):
                if r.target not in seen:
                    seen.add(r.target)
                    todo.append(r.target)
    return seen


_HAZARD_LATER = {s: _reachable(s) for s in ("found", "ordered", "rectified", "passed", "closed")}


EVENT_MUTABLE = ("state", "handler", "level", "registered_at", "dispatched_at", "responded_at",
                 "closed_at", "deadline_at", "escalations", "reopened", "satisfaction", "last_seq",
                 "updated_at", "unit_code", "feedback_at", "returns", "extensions", "supervisions",
                 "suspended_at", "resume_state", "remaining_s", "deadline_basis", "allowance_s",
                 "due_soon_at", "deadline_provisional", "merged_into", "system_steps")
HAZARD_MUTABLE = ("state", "deadline_at", "rectified_at", "reinspected_at", "last_seq", "updated_at",
                  "ordered_at", "closed_at", "failures", "deadline_provisional", "deadline_from", "allowance_s",
                  "due_soon_at")


class _Batch:
    def __init__(self, conn: Connection, now: datetime, tz: tzinfo, ctx: CaseContext):
        self.conn = conn
        self.now = now
        self.tz = tz
        self.ctx = ctx
        self.pg = conn.dialect.name == "postgresql"
        self.out = Outcome()
        self.events: dict[str, dict] = {}
        self.event_version: dict[str, tuple[int, int]] = {}   # id -> (last_seq, system_steps) as read
        self.new_events: dict[str, dict] = {}
        self.dirty_events: set[str] = set()
        self.hazards: dict[str, dict] = {}
        self.hazard_version: dict[str, int] = {}
        self.new_hazards: dict[str, dict] = {}
        self.dirty_hazards: set[str] = set()
        self.steps: list[dict] = []
        self.returned_units: dict[str, list[str]] = {}  # case -> units that returned it in this batch
        self.patrols: list[dict] = []
        self.positions: dict[str, dict] = {}
        self.position_at: dict[str, datetime] = {}
        self.pending: dict[str, list[dict]] = {}   # target -> held rows (as read or added)
        self.pending_new: list[dict] = []
        self.pending_done: list[str] = []
        self.ledger: list[dict] = []
        self.seen: set[str] = set()
        self.handlers = {t: getattr(self, "on_" + t.replace(".", "_")) for t in MESSAGE_TYPES}
        # reports of this batch, for duplicates within it (the shared index learns them after commit)
        self.batch_reports = ctx.duplicates.like()
        self.out.reports = self.batch_reports

    # --- loading ------------------------------------------------------------
    def load(self, items: list[Item], recheck_events: Iterable[str] = (), recheck_hazards: Iterable[str] = (),
             optimistic: bool = False):
        """Read what the batch's messages touch. ``optimistic`` skips the lookups that only find
        replays and clashes (the ledger; the event or hazard a message creates): the primary keys
        find those at write time, and the caller then applies the batch again without it."""
        conn = self.conn
        event_ids, hazard_ids, actor_ids = set(recheck_events), set(recheck_hazards), set()
        reports = False
        for it in items:
            t = it.msg.type
            if t.startswith("event."):
                if t == "event.reported":
                    reports = True
                    if optimistic:
                        continue
                elif it.msg.into:
                    event_ids.add(it.msg.into)  # a merge's target
                event_ids.add(it.msg.event_id)
            elif t.startswith("hazard."):
                if not (optimistic and t == "hazard.found"):
                    hazard_ids.add(it.msg.hazard_id)
            elif t == "position":
                actor_ids.add(it.msg.actor.id)
            elif t == "case.escalate":
                event_ids.add(it.msg.event_id)
        if reports and not self.ctx.duplicates.seeded:
            self.ctx.duplicates.seed(conn, self.now, OPEN_STATES)
        for part in _chunks(sorted(event_ids)):
            stmt = select(event).where(_member(event.c.id, part, self.pg)).order_by(event.c.id)
            if self.pg:
                stmt = stmt.with_for_update()
            for row in conn.execute(stmt).mappings():
                self.events[row["id"]] = dict(row)
                self.event_version[row["id"]] = (row["last_seq"], row["system_steps"])
        for part in _chunks(sorted(hazard_ids)):
            stmt = select(hazard).where(_member(hazard.c.id, part, self.pg)).order_by(hazard.c.id)
            if self.pg:
                stmt = stmt.with_for_update()
            for row in conn.execute(stmt).mappings():
                self.hazards[row["id"]] = dict(row)
                self.hazard_version[row["id"]] = row["last_seq"]
        targets = sorted(event_ids | hazard_ids)
        if targets and not has_pending(conn):
            targets = []  # the usual case: nothing is held, so there is nothing to look up
        for part in _chunks(targets):
            for row in conn.execute(select(feed_pending).where(_member(feed_pending.c.target, part, self.pg))).mappings():
                self.pending.setdefault(row["target"], []).append(dict(row))
        for part in _chunks(sorted(actor_ids)):
            for aid, at in conn.execute(select(position.c.actor_id, position.c.at)
                                        .where(_member(position.c.actor_id, part, self.pg))):
                self.position_at[aid] = at
        if not optimistic:
            # The ledger last, after the row locks above: a consumer that committed this very message
            # while we waited for its event's lock is seen here (PostgreSQL's read committed reads
            # per statement), so a replay is a duplicate, not "step already applied" (tests/faults/
            # test_faults002 found the dead letters when the ledger was read first).
            ids = list({it.msg.id for it in items})
            for part in _chunks(ids):
                self.seen.update(conn.execute(
                    select(feed_message.c.message_id).where(_member(feed_message.c.message_id, part, self.pg))
                ).scalars())

    # --- bookkeeping ----------------------------------------------------------
    def dead(self, item: Item, reason: str) -> None:
        self.out.dead.append((item.stream_id, item.raw, reason, item.msg.id))

    def record(self, item: Item) -> None:
        self.ledger.append({"message_id": item.msg.id, "kind": item.msg.type,
                            "stream_id": item.stream_id, "applied_at": self.now})

    def park(self, item: Item, target: str, seq: int | None, reason: str, released: bool = False) -> None:
        """Hold a message in feed_pending. A released message held again (a hazard step still
        early) keeps its first time, so it still expires, and is in the ledger already."""
        row = {"message_id": item.msg.id, "kind": item.msg.type, "target": target, "seq": seq,
               "stream_id": item.stream_id, "payload": _payload_text(item), "reason": reason[:200],
               "received_at": item.held_at or self.now}
        self.pending_new.append(row)
        self.pending.setdefault(target, []).append(row)
        if not released:
            self.record(item)
        self.out.parked += 1

    def take_pending(self, target: str, pred) -> dict | None:
        rows = self.pending.get(target)
        if not rows:
            return None
        for i, row in enumerate(rows):
            if pred(row):
                del rows[i]
                if row in self.pending_new:
                    self.pending_new.remove(row)
                else:
                    self.pending_done.append(row["message_id"])
                return row
        return None

    def released_item(self, row: dict) -> Item | None:
        try:
            msg = parse(row["payload"], strict=True)
        except InvalidMessage as exc:  # held under an older contract; should not happen
            self.out.dead.append((row["stream_id"], row["payload"], f"held message no longer valid: {exc.reason}",
                                  row["message_id"]))
            return None
        self.out.released += 1
        return Item(stream_id=row["stream_id"], raw=row["payload"], msg=msg, held_at=row["received_at"])

    # --- messages -------------------------------------------------------------
    def handle(self, item: Item) -> None:
        mid = item.msg.id
        if mid in self.seen:
            self.out.duplicates += 1
            return
        self.seen.add(mid)
        self.handlers[item.msg.type](item)

    def on_event_reported(self, item: Item) -> None:
        m = item.msg
        if m.event_id in self.events:
            self.dead(item, f"event {m.event_id} already exists (reported by another message)")
            return
        ctx = self.ctx
        rule = ctx.rule(m.category, m.subcategory)
        level = m.level or rule.tier
        at = _utc(m.occurred_at)
        # the clock starts at the report (docs/cases.md): a report left unregistered is late too
        dl = ctx.fresh(m.category, m.subcategory, at)
        dup = None
        if item.lon is not None and m.subcategory is not None:
            dup = ctx.duplicates.report(self.batch_reports, m.event_id, m.subcategory, item.lon, item.lat,
                                        at.timestamp())
        row = {
            "id": m.event_id, "grid_code": item.grid, "category": m.category, "subcategory": m.subcategory,
            "level": level, "urgent": m.urgent, "state": "reported", "source": m.source,
            "lon": item.lon, "lat": item.lat, "address": m.address, "description": m.description,
            "reporter": _actor(m), "handler": None, "occurred_at": at, "reported_at": at,
            "registered_at": None, "dispatched_at": None, "responded_at": None, "closed_at": None,
            "deadline_at": dl.at,
            "escalations": 0, "reopened": 0, "satisfaction": None, "last_seq": 1, "updated_at": self.now,
            "unit_code": None, "feedback_at": None, "returns": 0, "extensions": 0, "supervisions": 0,
            "suspended_at": None, "resume_state": None, "remaining_s": None, "deadline_basis": dl.basis,
            "allowance_s": dl.allowance_s, "due_soon_at": dl.due_soon_at, "deadline_provisional": dl.provisional,
            "merged_into": None, "duplicate_of": dup, "system_steps": 0,
        }
        self.events[m.event_id] = row
        self.new_events[m.event_id] = row
        self.record(item)
        self.out.applied += 1
        if self.pending:  # steps held for this event (usually none are held at all)
            self.drain_event(m.event_id)

    def on_event_step(self, item: Item, released: bool = False) -> None:
        m = item.msg
        ev = self.events.get(m.event_id)
        if ev is None:
            if self._held_seq(m.event_id, m.seq):
                self.dead(item, f"step seq {m.seq} of event {m.event_id} is already held by another message")
            else:
                self.park(item, m.event_id, m.seq, f"event {m.event_id} not known yet", released)
            return
        if m.seq <= ev["last_seq"]:
            self.dead(item, f"step seq {m.seq} of event {m.event_id} is already applied")
            return
        if m.occurred_at < ev["reported_at"] - CLOCK_SKEW:
            self.dead(item, f"step seq {m.seq} of event {m.event_id} at {m.occurred_at.isoformat()} "
                            f"is before the event was reported ({ev['reported_at'].isoformat()})")
            return
        if m.seq > ev["last_seq"] + 1:
            if self._held_seq(m.event_id, m.seq):
                self.dead(item, f"step seq {m.seq} of event {m.event_id} is already held by another message")
            else:
                self.park(item, m.event_id, m.seq,
                          f"waiting for step seq {ev['last_seq'] + 1} of event {m.event_id}", released)
            return
        refused = self.step(ev, m)
        if refused is not None:
            # nothing changed: the case keeps its state and last_seq (a corrected step may follow)
            self.dead(item, refused)
            return
        if not released:
            self.record(item)
        self.out.applied += 1
        self.drain_event(m.event_id)

    def _held_seq(self, event_id: str, seq: int) -> bool:
        return any(r["seq"] == seq for r in self.pending.get(event_id, ()))

    @staticmethod
    def _case(ev: dict) -> Case:
        return Case(ev["id"], ev["state"], ev["level"], ev["deadline_at"], resume_to=ev["resume_state"],
                    merged_into=ev["merged_into"], escalations=ev["escalations"], reopened=ev["reopened"],
                    returns=ev["returns"])

    def _dirty(self, ev: dict) -> None:
        ev["updated_at"] = self.now
        if ev["id"] not in self.new_events:
            self.dirty_events.add(ev["id"])

    def _route(self, ev: dict, level: int, exclude: tuple[str, ...] = ()) -> str | None:
        register = self.ctx.register(self.conn)
        if register is None:
            return None
        return self.ctx.routing().route(register, level=level, category=ev["category"],
                                        subcategory=ev["subcategory"], source=ev["source"],
                                        grid_code=ev["grid_code"], exclude=exclude)

    def _returned_by(self, ev: dict) -> tuple[str, ...]:
        """The units that sent the case back (回退): routing passes them over. Rare, so read from
        the steps (this batch's and the stored ones) only for a case that was returned."""
        if not ev["returns"]:
            return ()
        out = list(self.returned_units.get(ev["id"], ()))
        if ev["id"] not in self.new_events:
            out += [json.loads(p).get("unit") for p in self.conn.execute(
                select(event_step.c.payload).where(event_step.c.event_id == ev["id"],
                                                   event_step.c.step == "returned")).scalars() if p]
        return tuple(dict.fromkeys(u for u in out if u))

    def _check_unit(self, ev: dict, unit: str, level: int) -> str | None:
        register = self.ctx.register(self.conn)
        if register is None:
            return None  # no register of units yet (routing not installed): the unit is taken as given
        return self.ctx.routing().check_dispatch(register, unit, level=level, grid_code=ev["grid_code"])

    def step(self, ev: dict, m) -> str | None:
        """Apply producer step ``m`` to case ``ev``; returns the dead-letter reason when refused
        (and then ``ev`` is unchanged)."""
        at = _utc(m.occurred_at)
        s = m.step
        cid, state = ev["id"], ev["state"]

        def refuse(why: str) -> str:
            return str(IllegalStep("case", cid, state, s, why))

        payload: dict[str, Any] = {}
        if m.deadline_at is not None:
            if s not in SETS_DEADLINE:
                return refuse("only registered, dispatched, escalated and extended set a deadline (deadline_at)")
            payload["deadline_at"] = _utc(m.deadline_at)
        if m.into is not None:
            if s != "merged":
                return refuse("only merged names a case to merge into (into)")
            payload["into"] = m.into
        if m.level is not None:
            if s != "escalated":
                return refuse("only escalated changes the tier (level)")
            payload["level"] = m.level
        if m.satisfaction is not None:
            if s != "evaluated":
                return refuse("only evaluated carries a satisfaction")
            payload["satisfaction"] = m.satisfaction
        if m.unit is not None:
            if s not in ("dispatched", "escalated"):
                return refuse("only dispatched and escalated send the case to a unit (unit)")
            payload["unit"] = m.unit
        try:
            new = apply_step(self._case(ev), Step(s, _actor(m), at, m.note or "", payload))
        except IllegalStep as exc:
            return str(exc)
        target = None
        if s == "merged":
            target = self.events.get(m.into)
            if target is None:
                return refuse(f"the case it is merged into, {m.into}, does not exist")
            if target["state"] not in OPEN_STATES:
                return refuse(f"the case it is merged into, {m.into}, is {target['state']}, not open")
        unit = m.unit
        if unit is not None:
            why = self._check_unit(ev, unit, new.level)
            if why:
                return refuse(why)
        # --- legal: apply it -------------------------------------------------------------
        ctx = self.ctx
        if ev["responded_at"] is None:
            ev["responded_at"] = at
        if s == "registered":
            if ev["registered_at"] is None:
                ev["registered_at"] = at
        elif s == "dispatched":
            ev["dispatched_at"] = ev["dispatched_at"] or at
            ev["unit_code"] = unit or self._route(ev, new.level, self._returned_by(ev)) or ev["unit_code"]
            payload["unit"] = ev["unit_code"]
        elif s == "escalated":  # without deadline_at, the new tier gets the kind's allowance afresh
            ev["unit_code"] = unit or self._route(ev, new.level)
            payload["unit"] = ev["unit_code"]
        elif s == "returned":
            payload["unit"] = ev["unit_code"]  # the unit that sent it back
            ev["unit_code"] = None
        elif s == "suspended":
            ev["suspended_at"] = at
        elif s == "resumed":
            ev["suspended_at"] = None
        elif s == "extended":
            ev["extensions"] += 1
        elif s == "feedback":
            if ev["feedback_at"] is None:
                ev["feedback_at"] = at
        elif s == "closed":
            ev["closed_at"] = at
        elif s == "reopened":
            ev["closed_at"] = None
        elif s == "evaluated":
            if m.satisfaction is not None:
                ev["satisfaction"] = m.satisfaction
        elif s == "supervised":
            ev["supervisions"] += 1
        resuming = s == "resumed" and ev["remaining_s"] is not None
        ctx.advance(ev, s, at, payload.get("deadline_at"))  # the clock (casework: shared with the replay)
        if s == "suspended" and ev["deadline_at"] is not None:
            payload["remaining_s"] = ev["remaining_s"]
        elif resuming:
            payload["deadline_at"] = ev["deadline_at"]
        if m.handler:
            ev["handler"] = m.handler
            payload["handler"] = m.handler
        ev["state"], ev["level"], ev["resume_state"] = new.state, new.level, new.resume_to
        ev["escalations"], ev["reopened"], ev["returns"] = new.escalations, new.reopened, new.returns
        ev["merged_into"] = new.merged_into
        ev["last_seq"] = m.seq
        self._dirty(ev)
        self.steps.append({"event_id": cid, "seq": m.seq, "step": s, "at": at, "actor": _actor(m),
                           "note": m.note or None, "message_id": m.id, "payload": _json(payload)})
        if s == "returned" and payload.get("unit"):  # for _returned_by, without scanning the steps
            self.returned_units.setdefault(cid, []).append(payload["unit"])
        if target is not None:
            # the target's history records the merge as a system step (the merged case keeps its own)
            self.system_step(target, "merged_in", at, _actor(m), f"{cid} merged into this case"
                             + (f": {m.note}" if m.note else ""), {"from": cid}, _system_message_id("merge", m.id))
        return None

    def system_step(self, ev: dict, step: str, at: datetime, actor: str, note: str | None, payload: dict,
                    message_id: str) -> None:
        """A step the store adds itself: seq -1, -2, ... (never the producer's 2, 3, ...)."""
        ev["system_steps"] += 1
        self._dirty(ev)
        self.steps.append({"event_id": ev["id"], "seq": -ev["system_steps"], "step": step, "at": at,
                           "actor": actor, "note": note, "message_id": message_id, "payload": _json(payload)})

    def on_case_escalate(self, item: Item) -> None:
        """An automatic escalation claimed by the sweep: applied once (the ledger), or recorded as
        stale when the case has moved on since the claim (nothing changes then)."""
        m = item.msg
        ev = self.events.get(m.event_id)
        if ev is None:
            self.dead(item, f"case.escalate: case {m.event_id} does not exist")
            return
        at = _utc(m.occurred_at)
        breached = _utc(m.deadline_at)
        stale = None
        if ev["deadline_at"] is None or ev["deadline_at"] != breached:
            stale = "its deadline changed"
        elif ev["feedback_at"] is not None:
            stale = "it was handled (feedback)"
        elif ev["state"] == "suspended":
            stale = "it is suspended"
        else:
            try:
                new = apply_step(self._case(ev), Step("escalated", SYSTEM_ESCALATION, at, m.reason or "",
                                                      {"level": ev["level"] - 1}))
            except IllegalStep as exc:
                stale = exc.why
        self.record(item)
        if stale is not None:
            self.out.stale += 1
            log.info("stale automatic escalation", extra={"event_id": m.event_id, "message_id": m.id,
                                                          "reason": stale})
            return
        if ev["responded_at"] is None:
            ev["responded_at"] = at
        self.ctx.advance(ev, "escalated", at)  # the new tier's allowance afresh
        ev["unit_code"] = self._route(ev, new.level)
        ev["state"], ev["level"], ev["escalations"] = new.state, new.level, new.escalations
        self.system_step(ev, "escalated", at, SYSTEM_ESCALATION, m.reason or None,
                         {"level": new.level, "breached": breached, "deadline_at": ev["deadline_at"],
                          "unit": ev["unit_code"]}, m.id)
        self.out.applied += 1

    def drain_event(self, event_id: str) -> None:
        ev = self.events[event_id]
        while True:
            nxt = ev["last_seq"] + 1
            row = self.take_pending(event_id, lambda r, n=nxt: r["seq"] == n)
            if row is None:
                return
            item = self.released_item(row)
            if item is not None:
                self.on_event_step(item, released=True)
                if ev["last_seq"] == nxt:
                    return  # on_event_step drained further
                # refused (dead-lettered): what waits behind it keeps waiting for a valid seq nxt

    # --- hazards ----------------------------------------------------------------
    def _hazard_deadline(self, m, at: datetime) -> tuple[datetime, bool, float | None] | None:
        """(deadline, provisional, working seconds counted from ``at``, or None for an instant given)."""
        if getattr(m, "deadline_at", None) is not None:
            return _utc(m.deadline_at), False, None
        if getattr(m, "working_days", None) is not None:
            return self.ctx.after_working_days(at, m.working_days)
        return None

    def _hazard_clock(self, hz: dict, due: tuple, at: datetime) -> None:
        # what a counted deadline came from, so recount_hazards can count it again once the
        # calendar knows its year; an instant the message gave keeps none. Provisional as a
        # case's: the count (the deadline's, or for an instant its 即将到期's) crosses an unknown year
        hz["deadline_from"], hz["allowance_s"] = (at, due[2]) if due[2] is not None else (None, None)
        hz["due_soon_at"], soon_provisional = self.ctx.hazard_due_soon(hz["ordered_at"] or at, due[0])
        hz["deadline_provisional"] = due[1] or soon_provisional

    def on_hazard_found(self, item: Item) -> None:
        m = item.msg
        if m.hazard_id in self.hazards:
            self.dead(item, f"hazard {m.hazard_id} already exists (found by another message)")
            return
        at = _utc(m.occurred_at)
        row = {"id": m.hazard_id, "grid_code": item.grid, "kind": m.kind, "state": "found",
               "lon": item.lon, "lat": item.lat, "description": m.description, "found_at": at,
               "deadline_at": None, "rectified_at": None, "reinspected_at": None,
               "last_seq": 1, "updated_at": self.now, "ordered_at": None, "closed_at": None, "failures": 0,
               "deadline_provisional": False, "deadline_from": None, "allowance_s": None,
               "due_soon_at": None}
        due = self._hazard_deadline(m, at)
        if due is not None:  # found with a deadline: rectification ordered at once (found + ordered)
            try:
                h = apply_hazard_step(Hazard(m.hazard_id), Step("ordered", _actor(m), at, "", {"deadline_at": due[0]}))
            except IllegalStep as exc:
                self.dead(item, str(exc))
                return
            row.update(state=h.state, deadline_at=h.deadline_at, ordered_at=at)
            self._hazard_clock(row, due, at)
        self.hazards[m.hazard_id] = row
        self.new_hazards[m.hazard_id] = row
        self.record(item)
        self.out.applied += 1
        self.drain_hazard(m.hazard_id)

    def _hazard_step(self, item: Item, released: bool, step: str, note: str = "") -> None:
        """Hazard updates carry no sequence number, and consumers in a group apply them in any
        order (one consumer's batch commits before another's older one). A step the rules refuse
        from the hazard's state but that a later state allows (a predecessor may still be on its
        way) is held like an early case step, and tried again when the hazard changes; a step no
        later state allows is dead-lettered at once."""
        m = item.msg
        hz = self.hazards.get(m.hazard_id)
        if hz is None:
            self.park(item, m.hazard_id, None, f"hazard {m.hazard_id} not known yet", released)
            return
        at = _utc(m.occurred_at)
        payload: dict[str, Any] = {}
        if step in ("ordered", "extended", "failed"):
            due = self._hazard_deadline(m, at)
            if due is None and step == "failed" and hz["state"] == "rectified":
                # no new deadline given: the same allowance again, on the working calendar
                due = self.ctx.again(at, hz["ordered_at"] or hz["found_at"], hz["deadline_at"])
            if due is not None:
                payload["deadline_at"] = due[0]
        try:
            h = apply_hazard_step(Hazard(hz["id"], hz["state"], hz["deadline_at"], hz["failures"]),
                                  Step(step, _actor(m), at, note, payload))
        except IllegalStep as exc:
            rule = HAZARD_STEPS[step]
            if hz["state"] not in rule.sources and _HAZARD_LATER[hz["state"]] & set(rule.sources):
                self.park(item, m.hazard_id, None, str(exc), released)
            else:
                self.dead(item, str(exc))
            return
        if step == "ordered":
            hz["ordered_at"] = at
        elif step == "rectified":
            hz["rectified_at"] = at
        elif step == "passed":
            hz["reinspected_at"] = at
        elif step == "failed":
            hz["reinspected_at"] = at
            hz["ordered_at"] = at
        elif step == "closed":
            hz["closed_at"] = at
        if "deadline_at" in payload:
            self._hazard_clock(hz, due, at)
        hz["state"], hz["deadline_at"], hz["failures"] = h.state, h.deadline_at, h.failures
        hz["last_seq"] += 1
        hz["updated_at"] = self.now
        if m.hazard_id not in self.new_hazards:
            self.dirty_hazards.add(m.hazard_id)
        if not released:
            self.record(item)
        self.out.applied += 1
        self.drain_hazard(m.hazard_id)

    def on_hazard_ordered(self, item: Item, released: bool = False) -> None:
        self._hazard_step(item, released, "ordered", item.msg.note)

    def on_hazard_deadline(self, item: Item, released: bool = False) -> None:
        self._hazard_step(item, released, "extended", item.msg.note)

    def on_hazard_rectified(self, item: Item, released: bool = False) -> None:
        self._hazard_step(item, released, "rectified", item.msg.note)

    def on_hazard_reinspected(self, item: Item, released: bool = False) -> None:
        self._hazard_step(item, released, "passed" if item.msg.passed else "failed", item.msg.note)

    def on_hazard_closed(self, item: Item, released: bool = False) -> None:
        self._hazard_step(item, released, "closed", item.msg.note)

    def drain_hazard(self, hazard_id: str) -> None:
        rows = sorted(self.pending.get(hazard_id, ()), key=lambda r: _stream_key(r["stream_id"]))
        for row in rows:
            if self.take_pending(hazard_id, lambda r, mid=row["message_id"]: r["message_id"] == mid) is None:
                continue  # applied by a nested drain already
            item = self.released_item(row)
            if item is not None:
                getattr(self, "on_" + item.msg.type.replace(".", "_"))(item, released=True)

    def on_position(self, item: Item) -> None:
        m = item.msg
        aid = m.actor.id
        self.record(item)
        self.out.applied += 1
        last = self.position_at.get(aid)
        if last is not None and last > m.occurred_at:
            return  # a late ping: the newer position stays
        self.position_at[aid] = m.occurred_at
        self.positions[aid] = {"actor_id": aid, "actor_kind": m.actor.kind, "grid_code": item.grid,
                               "lon": item.lon, "lat": item.lat, "at": _utc(m.occurred_at)}

    def on_patrol_checkin(self, item: Item) -> None:
        m = item.msg
        row = {"id": m.id, "staff_code": m.actor.id, "grid_code": item.grid, "at": m.occurred_at,
               "checklist": json.dumps(m.checklist, sort_keys=True),
               "issues": sum(1 for v in m.checklist.values() if v == "issue")}
        self.patrols.append(row)
        self.out.deltas.append(D.patrol_delta(row, self.tz, item.lon, item.lat))
        self.record(item)
        self.out.applied += 1

    # --- writing --------------------------------------------------------------
    def write(self) -> None:
        conn = self.conn
        if self.new_events:
            rows = list(self.new_events.values())
            insert_rows(conn, event, rows, _set_columns(rows, EVENT_NULL_AT_REPORT))
        if self.dirty_events:
            rows = [{**{c: self.events[i][c] for c in EVENT_MUTABLE}, "_id": i, "_v": self.event_version[i][0],
                     "_sv": self.event_version[i][1]} for i in sorted(self.dirty_events)]
            if update_rows(conn, event, EVENT_MUTABLE, _EVENT_VERSION, rows) != len(rows):
                raise Conflict("an event changed under this batch")
        if self.steps:
            insert_rows(conn, event_step, self.steps)
        if self.new_hazards:
            insert_rows(conn, hazard, list(self.new_hazards.values()))
        if self.dirty_hazards:
            rows = [{**{c: self.hazards[i][c] for c in HAZARD_MUTABLE}, "_id": i, "_v": self.hazard_version[i]}
                    for i in sorted(self.dirty_hazards)]
            if update_rows(conn, hazard, HAZARD_MUTABLE, _HAZARD_VERSION, rows) != len(rows):
                raise Conflict("a hazard changed under this batch")
        if self.positions:
            conn.execute(_upsert_position(conn), list(self.positions.values()))
        if self.patrols:
            insert_rows(conn, patrol, self.patrols)
        if self.pending_done:
            res = conn.execute(delete(feed_pending).where(feed_pending.c.message_id == bindparam("_mid")),
                               [{"_mid": m} for m in self.pending_done])
            if res.rowcount != len(self.pending_done):
                raise Conflict("a held message was released by another consumer")
        if self.pending_new:
            insert_rows(conn, feed_pending, self.pending_new)
        if self.ledger:
            insert_rows(conn, feed_message, self.ledger)

    def build_deltas(self) -> None:
        tz = self.tz
        out = self.out.deltas
        memo: dict = {}
        for i in list(self.new_events) + sorted(self.dirty_events):
            out.append(D.event_delta(self.events[i], tz, memo=memo))
        for i in list(self.new_hazards) + sorted(self.dirty_hazards):
            out.append(D.hazard_delta(self.hazards[i], tz))
        for row in self.positions.values():
            out.append(D.position_delta(row, tz))


def _payload_text(item: Item) -> str:
    raw = item.raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            pass
    elif isinstance(raw, str):
        return raw
    return item.msg.model_dump_json(exclude_none=True)


_INSERTS: dict[tuple, tuple] = {}
_dumps = orjson.dumps

# Columns a report leaves NULL (nullable, no default) until a later step sets them: a batch's new
# events are inserted without those that are NULL in all of them, so the insert binds a
# third fewer parameters (most new events get no step in the batch that reports them).
EVENT_NULL_AT_REPORT = frozenset((
    "handler", "registered_at", "dispatched_at", "responded_at", "closed_at", "satisfaction", "unit_code",
    "feedback_at", "suspended_at", "resume_state", "remaining_s", "merged_into", "duplicate_of"))


def _set_columns(rows: list[dict], maybe_null: frozenset) -> tuple:
    """The keys of ``rows`` less those of ``maybe_null`` that are None in every row."""
    return tuple(c for c in rows[0] if c not in maybe_null or any(r[c] is not None for r in rows))


def _utc_text(value: datetime) -> str:
    """The exact text SQLAlchemy's SQLite DateTime writes for UTCDateTime (naive UTC, always six
    fraction digits, so text order is time order). This runs for every stored moment:
    ``isoformat`` formats through C's printf (about 1 us here), orjson, cut to shape, in half
    that; shifting by the offset costs half of ``astimezone(utc)``."""
    if value.tzinfo is not timezone.utc:  # rarely: the consumer keeps its moments in UTC
        off = value.utcoffset()
        if off is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = (value - off).replace(tzinfo=timezone.utc)
    b = _dumps(value)  # b'"YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00"': no fraction when it is 0
    if b[20] == 46:  # "."
        return (b[1:11] + b" " + b[12:27]).decode()
    return (b[1:11] + b" " + b[12:20] + b".000000").decode()


def _naive_utc(value: datetime) -> datetime:
    off = value.utcoffset()
    if off is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return (value - off).replace(tzinfo=None)


def _tuples(rows: list[dict], cols: tuple, at: list[int], to_db) -> list[tuple]:
    """Rows as value tuples in ``cols`` order, UTCDateTime columns (positions ``at``) converted."""
    get = itemgetter(*cols)
    one = len(cols) == 1
    # A batch repeats the same moments (now, occurred_at = reported_at, a shared deadline), mostly
    # as the same objects: keyed by identity, as hashing an aware datetime asks for its offset.
    # The rows keep every key alive until this returns, so no id is reused meanwhile.
    memo: dict = {id(None): None}
    out = []
    for r in rows:
        t = [get(r)] if one else list(get(r))
        for i in at:
            v = t[i]
            try:
                t[i] = memo[id(v)]
            except KeyError:
                t[i] = memo[id(v)] = to_db(v)
        out.append(tuple(t))
    return out


# PostgreSQL binary COPY needs each column's type; these are the ones the feed's tables use.
_PG_COPY_TYPES = (("UTCDateTime", "timestamp"), ("Boolean", "bool"), ("Integer", "int4"), ("Float", "float8"),
                  ("Text", "text"), ("String", "varchar"))


def _pg_copy_type(column) -> str | None:
    for cls in type(column.type).__mro__:
        for name, pg in _PG_COPY_TYPES:
            if cls.__name__ == name:
                return pg
    return None


def insert_rows(conn: Connection, table, rows: list[dict], cols: tuple | None = None) -> None:
    """Insert without per-row parameter processing (the hot path of ingest).

    SQLite: one Core executemany, the statement compiled once per table and
    column set. PostgreSQL (psycopg): binary COPY FROM STDIN inside the batch's
    transaction. Values go to the driver as they are, except UTCDateTime
    columns, converted here exactly as ``UTCDateTime`` + the dialect's DateTime
    would (naive UTC; SQLite as its canonical text).
    """
    from ..store.types import UTCDateTime

    cols = cols or tuple(rows[0])  # ``cols``: the rows' other keys are left to the table's default
    dialect = conn.dialect
    key = (table.name, dialect.name, cols)
    entry = _INSERTS.get(key)
    if entry is None:
        at = [i for i, c in enumerate(cols) if isinstance(table.c[c].type, UTCDateTime)]
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            prep = dialect.identifier_preparer
            types = [_pg_copy_type(table.c[c]) for c in cols]
            binary = all(types)
            sql = (f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in cols)}) FROM STDIN"
                   + (" (FORMAT BINARY)" if binary else ""))
            entry = ("copy", sql, cols, at, types if binary else None)
        else:
            compiled = table.insert().compile(dialect=dialect, column_keys=list(cols))
            order = tuple(compiled.positiontup) if compiled.positional else cols
            dt = {cols[j] for j in at}
            entry = ("sql", str(compiled), order, [i for i, c in enumerate(order) if c in dt], compiled.positional)
        _INSERTS[key] = entry
    how, sql, order, at, extra = entry
    if how == "copy":
        _copy_rows(conn, sql, _tuples(rows, order, at, _naive_utc), extra)
        return
    to_db = _utc_text if dialect.name == "sqlite" else _naive_utc
    if extra:  # positional parameters
        params = _tuples(rows, order, at, to_db)
    else:
        dt = {order[i] for i in at}
        params = [{c: (to_db(r[c]) if c in dt and r[c] is not None else r[c]) for c in order} for r in rows]
    conn.exec_driver_sql(sql, params)


# The optimistic check of an update: the row is still at the version this batch read.
_EVENT_VERSION = (("id", "_id"), ("last_seq", "_v"), ("system_steps", "_sv"))
_HAZARD_VERSION = (("id", "_id"), ("last_seq", "_v"))
_UPDATES: dict[tuple, tuple] = {}


def update_rows(conn: Connection, table, cols: tuple, where: tuple, rows: list[dict]) -> int:
    """``UPDATE table SET cols WHERE column = :name AND ...`` for each row (one executemany);
    returns the rows changed. As ``insert_rows``: compiled once, values to the driver as they
    are but for UTCDateTime columns, converted here (Core's per-row bind processing was a
    fifth of applying a batch of case steps)."""
    from ..store.types import UTCDateTime

    dialect = conn.dialect
    key = (table.name, dialect.name, cols, where)
    entry = _UPDATES.get(key)
    if entry is None:
        stmt = (update(table).where(and_(*(table.c[c] == bindparam(b) for c, b in where)))
                .values({c: bindparam(c) for c in cols}))
        compiled = stmt.compile(dialect=dialect)
        dt = {c for c in cols if isinstance(table.c[c].type, UTCDateTime)}
        names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.binds)
        entry = _UPDATES[key] = (str(compiled), names, [i for i, n in enumerate(names) if n in dt],
                                 compiled.positional)
    sql, names, at, positional = entry
    to_db = _utc_text if dialect.name == "sqlite" else _naive_utc
    params = _tuples(rows, names, at, to_db)
    if not positional:
        params = [dict(zip(names, p)) for p in params]
    return conn.exec_driver_sql(sql, params).rowcount


def _copy_rows(conn: Connection, sql: str, rows: list[tuple], types: list[str] | None) -> None:
    import psycopg

    try:
        with conn.connection.driver_connection.cursor() as cur:
            with cur.copy(sql) as copy:
                if types:
                    copy.set_types(types)
                for r in rows:
                    copy.write_row(r)
    except psycopg.Error as exc:  # the same exception family as statements run through SQLAlchemy
        from sqlalchemy import exc as sa_exc

        raise sa_exc.DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _upsert_position(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(position)
    ex = stmt.excluded
    # a ping delivered late (another consumer, a retry) never moves a worker back in time
    return stmt.on_conflict_do_update(
        index_elements=[position.c.actor_id],
        set_={"actor_kind": ex.actor_kind, "grid_code": ex.grid_code, "lon": ex.lon, "lat": ex.lat, "at": ex.at},
        where=ex.at >= position.c.at,
    )


def apply_batch(conn: Connection, items: list[Item], *, tz: tzinfo | None = None, now: datetime | None = None,
                recheck_events: Iterable[str] = (), recheck_hazards: Iterable[str] = (),
                optimistic: bool = False, ctx: CaseContext | None = None, defer_deltas: bool = False) -> Outcome:
    """Apply ``items`` (in stream order) inside the caller's transaction.

    ``optimistic=True`` is the consumer's first try at a batch: it assumes no message is a
    replay and no report names an existing event, which holds for nearly every batch, and
    saves two lookups per message. If the assumption fails, writing raises
    ``IntegrityError`` (a primary key clash), or ``MaybeReplay`` when a message would be
    dead-lettered (a replayed step looks like a step applied twice): roll back and call
    again without it. ``defer_deltas=True``: the deltas are built by ``Outcome.finish()``, which
    the caller calls after its commit.
    """
    now = now or datetime.now(timezone.utc)
    b = _Batch(conn, now, D.fixed_zone(tz or D.zone(None), now), ctx or default_context())
    b.load(items, recheck_events, recheck_hazards, optimistic=optimistic)
    for it in items:
        b.handle(it)
    if optimistic and b.out.dead:
        raise MaybeReplay(b.out.dead[0][2])
    for eid in recheck_events:
        if eid in b.events:
            b.drain_event(eid)
    for hid in recheck_hazards:
        if hid in b.hazards:
            b.drain_hazard(hid)
    b.write()
    if defer_deltas:
        b.out.build_deltas = b.build_deltas
    else:
        b.build_deltas()
    return b.out


def ready_targets(conn: Connection) -> tuple[list[str], list[str]]:
    """Held messages whose turn has come (a consumer parked them while another filled the gap)."""
    ev = conn.execute(
        select(feed_pending.c.target).distinct()
        .select_from(feed_pending.join(event, event.c.id == feed_pending.c.target))
        .where(feed_pending.c.kind == "event.step", feed_pending.c.seq == event.c.last_seq + 1)
    ).scalars().all()
    hz = conn.execute(
        select(feed_pending.c.target).distinct()
        .select_from(feed_pending.join(hazard, hazard.c.id == feed_pending.c.target))
        .where(feed_pending.c.kind.like("hazard.%"))
    ).scalars().all()
    return list(ev), list(hz)


def expire_pending(conn: Connection, older_than: datetime) -> list[tuple[str, str, str, str]]:
    """Remove held messages older than ``older_than``; returns (stream_id, payload, reason, message id)."""
    rows = conn.execute(
        delete(feed_pending).where(feed_pending.c.received_at < older_than)
        .returning(feed_pending.c.message_id, feed_pending.c.stream_id, feed_pending.c.payload,
                   feed_pending.c.reason, feed_pending.c.received_at)
    ).all()
    out = []
    for mid, sid, payload, reason, received in rows:
        waited = (datetime.now(timezone.utc) - received).total_seconds()
        out.append((sid, payload, f"{reason}; gave up after {waited:.0f} s", mid))
    return out


def has_pending(conn: Connection) -> bool:
    return conn.execute(select(feed_pending.c.message_id).limit(1)).first() is not None
