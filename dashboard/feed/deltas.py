"""Compact deltas for open screens (one DELTAS entry per committed batch).

Every screen receives these, so they stay small: short keys, no nulls beyond
the ones the format names, descriptions cut to 60 characters. Each delta is
``{"k": kind, "op": "upsert"|"remove", "g": grid_code, "id": ..., ...}``;
docs/feed.md lists the fields per kind.
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo

import orjson

from .contract import DELTAS

DELTAS_MAXLEN = 50_000  # a replay buffer for screens that reconnect, not a ledger
TEXT_CHARS = 60


_OMIT_MICROSECONDS = orjson.OPT_OMIT_MICROSECONDS
_WHOLE_MINUTES: dict[tzinfo, bool] = {}


def iso(value: datetime | None, tz: tzinfo) -> str | None:
    """``value`` in ``tz`` as ISO 8601 to the second, exactly ``isoformat(timespec="seconds")``.

    Every delta carries a few of these: ``datetime.isoformat`` formats through C's printf, about
    1 us a time here, orjson in a third of that. orjson rounds an offset to whole minutes
    (Shanghai's LMT, +08:05:43, before 1901), so it is used only for a fixed zone without seconds,
    as the consumer's (``fixed_zone``) is.
    """
    if value is None:
        return None
    local = value.astimezone(tz)
    whole = _WHOLE_MINUTES.get(tz)
    if whole is None:
        whole = _WHOLE_MINUTES[tz] = type(tz) is timezone and tz.utcoffset(None).seconds % 60 == 0
    if whole:
        return orjson.dumps(local, option=_OMIT_MICROSECONDS)[1:-1].decode()
    return local.isoformat(timespec="seconds")


def event_delta(row: dict, tz: tzinfo, op: str = "upsert", memo: dict | None = None) -> dict:
    """``memo`` (one per batch) keeps the texts of deadlines: a batch's reports outside working
    hours share theirs."""
    text = row.get("description") or ""
    dl, ds = row.get("deadline_at"), row.get("due_soon_at")
    if memo is None:
        dl, ds = iso(dl, tz), iso(ds, tz)
    else:
        key = (dl, ds)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = (iso(dl, tz), iso(ds, tz))
        dl, ds = hit
    return {
        "k": "event", "op": op, "g": row["grid_code"], "id": row["id"],
        "lon": row.get("lon"), "lat": row.get("lat"),
        "cat": row["category"], "sub": row.get("subcategory"), "lvl": row["level"],
        "urg": bool(row.get("urgent")), "st": row["state"], "src": row["source"],
        "at": iso(row["reported_at"], tz), "dl": dl,
        "h": row.get("handler"), "txt": text[:TEXT_CHARS], "addr": row.get("address"),
        # the case engine's clock and links (no people: units are offices, ids are cases)
        "ds": ds, "pv": bool(row.get("deadline_provisional")),
        "u": row.get("unit_code"), "sv": row.get("supervisions") or 0,
        "dup": row.get("duplicate_of"), "mi": row.get("merged_into"),
    }


def hazard_delta(row: dict, tz: tzinfo, op: str = "upsert") -> dict:
    return {
        "k": "hazard", "op": op, "g": row["grid_code"], "id": row["id"],
        "lon": row.get("lon"), "lat": row.get("lat"), "kind": row["kind"], "st": row["state"],
        "dl": iso(row.get("deadline_at"), tz), "pv": bool(row.get("deadline_provisional")),
    }


def position_delta(row: dict, tz: tzinfo) -> dict:
    return {
        "k": "position", "op": "upsert", "g": row.get("grid_code") or "", "id": row["actor_id"],
        "ak": row["actor_kind"], "lon": row["lon"], "lat": row["lat"], "at": iso(row["at"], tz),
    }


def patrol_delta(row: dict, tz: tzinfo, lon: float | None = None, lat: float | None = None) -> dict:
    out = {
        "k": "patrol", "op": "upsert", "g": row["grid_code"], "id": row["id"],
        "staff": row["staff_code"], "at": iso(row["at"], tz), "issues": row["issues"],
    }
    if lon is not None:  # where the check-in happened, for the coverage layer
        out["lon"], out["lat"] = lon, lat
    return out


def encode(deltas: list[dict]) -> bytes:
    return orjson.dumps(deltas)


def decode(payload: bytes | str) -> list[dict]:
    return orjson.loads(payload)


def publish_command(pipe, deltas: list[dict], digest: list | None = None) -> None:
    """Queue the XADD of one batch's deltas on a Redis pipeline; ``digest`` (field ``o``) is what
    the other consumers' duplicate indexes take from them (casework.DuplicateIndex.digest)."""
    if deltas:
        fields = {"d": encode(deltas)}
        if digest:
            fields["o"] = orjson.dumps(digest)
        pipe.xadd(DELTAS, fields, maxlen=DELTAS_MAXLEN, approximate=True)


def zone(name: str | None) -> tzinfo:
    return ZoneInfo(name or "Asia/Shanghai")


def fixed_zone(tz: tzinfo, now: datetime) -> tzinfo:
    """The zone's offset now, as a fixed offset: an ISO time with an offset is the same instant
    whichever offset it is written in, and a fixed offset converts much faster than a ZoneInfo."""
    return timezone(now.astimezone(tz).utcoffset())
