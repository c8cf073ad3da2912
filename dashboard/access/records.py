"""One person's or vehicle's record, masked by default, in full for a role that may and audited.

Shared by the API (``dashboard/api/people.py``) and the record page (``callbacks/record.py``), so both
answer the same way: a record outside the principal's scope reads as absent (and the attempt is
audited), a wall or an anonymous viewer never gets one, and every reveal writes one audit row
naming the record and the fields shown, in the same transaction as the read.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..store.schema import person, region, sensitive_columns, vehicle
from ..store.scope import code_in_scope
from . import audit
from .masking import mask_row, may_reveal, may_see_records

KINDS = {
    "person": (person, ("id", "grid_code", "name", "id_number", "phone", "gender", "birth_year", "key_class")),
    "vehicle": (vehicle, ("id", "grid_code", "plate", "kind")),
}


@dataclass(frozen=True)
class Answer:
    status: int               # 200, 401 (nobody), 403 (role), 404 (absent or outside the scope)
    record: dict | None = None
    revealed: bool = False
    reason: str = ""


def read_record(engine, kind: str, record_id: int) -> dict | None:
    table, cols = KINDS[kind]
    with engine.connect() as conn:
        row = conn.execute(select(*(table.c[c] for c in cols), region.c.name.label("grid_name"))
                           .select_from(table.outerjoin(region, region.c.code == table.c.grid_code))
                           .where(table.c.id == record_id)).mappings().first()
    return dict(row) if row is not None else None


def view_record(engine, principal, kind: str, record_id, scope: str | None, *, reveal: bool = False,
                ip: str = "", where: str = "") -> Answer:
    """The record as ``principal`` may see it inside ``scope`` (the request's effective scope, already
    checked against the principal's own). ``reveal``: in full, audited, for a role that may."""
    if kind not in KINDS:
        return Answer(404, reason="kind")
    if principal is None:
        return Answer(401, reason="anonymous")
    if not may_see_records(principal):
        audit.record(engine, audit.RECORD_REFUSED, actor=principal.actor, ip=ip, kind=kind, record=str(record_id),
                     reason="role", role=principal.role, where=where)
        return Answer(403, reason="role")
    if reveal and not may_reveal(principal):
        audit.record(engine, audit.RECORD_REFUSED, actor=principal.actor, ip=ip, kind=kind, record=str(record_id),
                     reason="reveal_role", role=principal.role, where=where)
        return Answer(403, reason="reveal_role")
    try:
        rid = int(record_id)
    except (TypeError, ValueError):
        return Answer(404, reason="id")
    row = read_record(engine, kind, rid)
    if row is None:
        return Answer(404, reason="absent")
    if not code_in_scope(row["grid_code"], scope) or not code_in_scope(row["grid_code"], principal.scope or None):
        # as absent to the viewer, audited: asking for another street's resident is worth knowing
        audit.record(engine, audit.RECORD_REFUSED, actor=principal.actor, ip=ip, kind=kind, record=str(rid),
                     reason="outside", scope=scope or "", where=where)
        return Answer(404, reason="outside")
    table = KINDS[kind][0].name
    if not reveal:
        return Answer(200, mask_row(table, row))
    fields = [c for c in sensitive_columns().get(table, ()) if row.get(c) is not None]
    audit.record(engine, audit.RECORD_REVEALED, actor=principal.actor, ip=ip, kind=kind, record=str(rid),
                 grid=row["grid_code"], fields=fields, where=where)
    return Answer(200, row, revealed=True)
