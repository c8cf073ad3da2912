"""Automatic escalation on breach (升级): a case whose deadline passed unhandled moves one tier up,
exactly once per breach however many consumers or web workers sweep.

``sweep`` finds the cases due (an open case held by a unit, no feedback yet, not suspended, tier
above 1, its deadline passed) and claims each breach by inserting a ``case_escalation`` row: its
primary key (case, breached deadline) is the claim, so of two sweepers racing exactly one inserts
it and the other's insert does nothing. The claims commit first; then one "case.escalate" message
per claim goes onto the feed stream with a message id derived from the claim, and the claim is
marked published. The consumer applies the message (a step ``escalated`` by
``system:auto-escalation``, routed to a unit of the next tier up, with a new deadline), once: its
ledger dedups the message id.

A crash between the commit and the XADD leaves a claim unpublished: a later sweep re-publishes it
(the same sweeper at once, any other once the claim is ``republish_after_s`` old, so a claimer
still about to publish is not raced needlessly; a double publish would be deduplicated anyway).
A claim whose case has moved on since (handled, suspended, given a new deadline) is not
re-published: the escalation would be stale.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import and_, func, literal_column, or_, select, update
from sqlalchemy.engine import Engine

from ..store.schema import case_escalation as C
from ..store.schema import event as E
from .machine import CASE_STEPS

log = logging.getLogger(__name__)

ACTOR = "system:auto-escalation"
MESSAGE_TYPE = "case.escalate"
# where a unit holds the case and an escalation is a legal step (machine.CASE_RULES), less a
# suspended case: its clock is stopped, so its stored deadline has not really passed
DUE_STATES = tuple(s for s in CASE_STEPS["escalated"].sources if s != "suspended")
REPUBLISH_AFTER_S = 60.0
DEFAULT_SWEEP_S = 30.0


def message_id(event_id: str, deadline_at: datetime) -> str:
    """The claim's stream message id: the same for the same breach on every worker (the feed's
    ids are at most 64 characters; a case id alone may be 64, so a digest)."""
    key = f"{event_id}|{deadline_at.astimezone(timezone.utc).isoformat(timespec='microseconds')}"
    return "esc-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def due_query(now: datetime, limit: int, dialect: str = "postgresql"):
    """Cases due for escalation, each with its claim if one exists but is unpublished.

    Index-backed: ``state IN (DUE_STATES)`` is a range per state on ix_event_state_reported
    (state, reported_at, grid_code, deadline_at), which only holds the open cases of those
    states, a small share of a year's cases (closed and evaluated ones are never read), and
    ``deadline_at < now`` is tested on the index entry itself before the row is fetched.
    ix_event_deadline_grid would be the wrong index: every past case's deadline lies before now.
    The claim is found by its primary key (event_id, deadline_at). Nothing due: a few index
    pages, no writes.
    """
    j = E.outerjoin(C, and_(C.c.event_id == E.c.id, C.c.deadline_at == E.c.deadline_at))
    deadline = E.c.deadline_at
    open_ = E.c.state.in_(DUE_STATES)
    if dialect == "sqlite":
        # SQLite's statistics give the average rows per state, not the few open ones: it would
        # take ix_event_deadline_grid for the range (and the ORDER BY) and read a year of cases.
        # Unary + keeps the comparison off that index; PostgreSQL's histograms need no help.
        deadline = literal_column("+event.deadline_at", type_=E.c.deadline_at.type)
        open_ = func.likelihood(open_, literal_column("0.01"))
    return (select(E.c.id, E.c.level, E.c.deadline_at, C.c.message_id, C.c.claimed_by, C.c.claimed_at,
                   C.c.from_level)
            .select_from(j)
            .where(open_, deadline < now, E.c.level > 1,
                   E.c.feedback_at.is_(None), E.c.suspended_at.is_(None),
                   or_(C.c.event_id.is_(None), C.c.published_at.is_(None)))
            .order_by(deadline, E.c.id)
            .limit(limit))


def build_message(mid: str, event_id: str, deadline_at: datetime, level: int, now: datetime) -> dict:
    due = deadline_at.astimezone(timezone.utc)
    return {"v": 1, "type": MESSAGE_TYPE, "id": mid, "event_id": event_id,
            "deadline_at": due.isoformat(), "occurred_at": now.astimezone(timezone.utc).isoformat(),
            "reason": f"deadline {due:%Y-%m-%d %H:%M} UTC passed unhandled at tier {level}: "
                      f"escalated to tier {level - 1}"}


def _publish(redis, messages: list[dict]) -> None:
    from ..feed.publish import publish_all

    publish_all(redis, messages)


def _insert_ignoring_conflicts(conn, rows: list[dict]):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING message_id: the claims this sweeper won."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(C).values(rows).on_conflict_do_nothing().returning(C.c.message_id)
    return set(conn.execute(stmt).scalars())


def due(engine: Engine, now: datetime, limit: int = 1000) -> list:
    """The rows of ``due_query``: read on a connection of their own, because SQLite cannot turn a
    read into a write once another writer has committed in between (the claim is its own write)."""
    if now.tzinfo is None:
        raise ValueError("the sweep needs a time zone-aware now")
    with engine.connect() as conn:
        return conn.execute(due_query(now, limit, conn.dialect.name)).all()


def sweep(engine: Engine, redis, *, now: datetime, worker: str, calendar=None, limit: int = 1000,
          republish_after_s: float = REPUBLISH_AFTER_S,
          publish: Callable[[object, list[dict]], None] | None = None) -> list[str]:
    """Claim and publish every breach due at ``now``; returns the message ids published.

    ``calendar`` is accepted for the interface's sake: the stored ``deadline_at`` is already
    computed in working time (and moved by suspensions), so the sweep compares it with ``now``
    directly. ``publish(redis, messages)`` replaces the XADD step (default: the feed's
    ``publish_all``, one round trip); tests inject a crash there.
    """
    rows = due(engine, now, limit)
    if not rows:
        return []
    return settle(engine, redis, rows, now=now, worker=worker, republish_after_s=republish_after_s,
                  publish=publish)


def settle(engine: Engine, redis, rows, *, now: datetime, worker: str,
           republish_after_s: float = REPUBLISH_AFTER_S,
           publish: Callable[[object, list[dict]], None] | None = None) -> list[str]:
    """Claim the unclaimed breaches among ``rows`` (``due``'s), commit, publish what this sweeper
    won and the unpublished claims it should re-publish, mark them published."""
    worker = worker[:64]
    retry_before = now - timedelta(seconds=republish_after_s)
    to_claim, out = [], []
    for r in rows:
        if r.message_id is None:
            mid = message_id(r.id, r.deadline_at)
            to_claim.append({"event_id": r.id, "deadline_at": r.deadline_at, "from_level": r.level,
                             "to_level": r.level - 1, "claimed_at": now, "claimed_by": worker,
                             "message_id": mid, "published_at": None})
        elif r.claimed_by == worker or r.claimed_at <= retry_before:
            out.append(build_message(r.message_id, r.id, r.deadline_at, r.from_level, now))
    if to_claim:
        with engine.begin() as conn:
            won = _insert_ignoring_conflicts(conn, to_claim)
        out += [build_message(c["message_id"], c["event_id"], c["deadline_at"], c["from_level"], now)
                for c in to_claim if c["message_id"] in won]
    if not out:
        return []
    (publish or _publish)(redis, out)
    ids = [m["id"] for m in out]
    with engine.begin() as conn:
        conn.execute(update(C).where(C.c.message_id.in_(ids), C.c.published_at.is_(None)).values(published_at=now))
    log.info("cases escalated on breach", extra={"count": len(ids), "worker": worker})
    return ids


def consumer_tick(consumer) -> list[str]:
    """The sweep inside a feed consumer's loop, at most every ESCALATION_SWEEP_S (0: never).
    A failure is logged and left for the next tick: claims stay in the store and are re-published."""
    settings = getattr(getattr(consumer, "services", None), "settings", None)
    every = getattr(settings, "escalation_sweep_s", DEFAULT_SWEEP_S)
    if not every or every <= 0 or not consumer._every("escalation", every):
        return []
    try:
        return sweep(consumer.engine, consumer.redis, now=datetime.now(timezone.utc), worker=consumer.name)
    except Exception as exc:  # noqa: BLE001 - the consumer's loop must go on
        log.warning("escalation sweep failed", extra={"error": f"{exc.__class__.__name__}: {str(exc)[:300]}",
                                                      "consumer": consumer.name})
        return []
