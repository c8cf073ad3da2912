"""POST /api/v1/reports: the ingest API of the mini-program and 12345 hotline channels.

The API validates a report against the feed contract and the store's cheap
facts (is the point inside the jurisdiction, does the region code exist), then
XADDs one ``event.reported`` message and answers 202 with the new ids. It
never writes the database: the consumer stores the message, and
GET /api/v1/reports/<id> reads it back from then on (404 "pending" before).

Errors are JSON naming the field: ``{"error": "invalid", "fields":
[{"field": "location.lon", "error": "..."}]}``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import redis
from flask import Response, jsonify, request
from sqlalchemy import select

from ..domain import OPEN_STATES
from ..feed.contract import InvalidMessage, parse
from ..feed.publish import publish_retrying
from ..store.schema import event, event_step, region
from ..store.scope import in_scope
from . import auth

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
PENDING_KEY = "grid:api:pending:"      # + event id -> message id, until the consumer stores it
PENDING_TTL_S = 7 * 24 * 3600
# Idempotency-Key (the IETF draft's header): a client that retries after a lost answer gets the
# first request's ids, and the message goes out again under the first one's id, which the consumer
# applies once. Kept per API key for a day: "<body sha-256> <message id> <event id>".
IDEMPOTENCY_KEY = "grid:api:idem:"
IDEMPOTENCY_TTL_S = 24 * 3600
IDEMPOTENCY_RE = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, as the draft's examples
REPORT_FIELDS = {"category", "subcategory", "description", "location", "region_code", "occurred_at",
                 "source", "reporter", "address", "urgent", "level"}
API_SOURCES = ("grid_patrol", "mini_program", "hotline_12345", "diversion_110", "whistle")
DEFAULT_ACTOR_KIND = {"hotline_12345": "operator", "diversion_110": "department", "whistle": "department",
                      "grid_patrol": "staff"}


class BadRequest(Exception):
    """A client error: HTTP status plus a JSON body."""

    def __init__(self, status: int, body: dict):
        super().__init__(body.get("error"))
        self.status = status
        self.body = body


def invalid(*fields: tuple[str, str]) -> BadRequest:
    return BadRequest(422, {"error": "invalid", "fields": [{"field": f, "error": e} for f, e in fields]})


# --- ids -----------------------------------------------------------------------

def new_event_id() -> str:
    """'EV' + 12 hex digits of milliseconds + 12 random hex digits: unique and time-sortable."""
    return f"EV{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def new_message_id(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --- checks against the store ----------------------------------------------------

def inside_jurisdiction(services, lon: float, lat: float) -> bool:
    """True when the WGS-84 point lies in a grid of the jurisdiction."""
    return bool(services.locator.locate(lon, lat).inside)


PLACE_LEVELS = ("grid", "micro")  # the consumer places a report by a grid or micro-grid code


def region_exists(services, code: str) -> bool:
    with services.engine.connect() as conn:
        return conn.execute(select(region.c.code).where(region.c.code == code)
                            .where(region.c.level.in_(PLACE_LEVELS))).first() is not None


def contract_errors(exc: InvalidMessage, rename: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The contract's errors as (field, error), with the message type tag taken off the path."""
    out = []
    for e in exc.errors:
        field, msg = e["field"], e["error"]
        for tag in ("event.reported.", "event.reported"):
            if field.startswith(tag):
                field = field[len(tag):]
                break
        msg = msg.removeprefix("Value error, ")
        if not field or field == "(message)":
            field = "location" if "region_code" in msg else ("subcategory" if "subcategory" in msg else "(body)")
        for old, new in (rename or {}).items():
            if field == old or field.startswith(old + "."):
                field = new + field[len(old):]
        out.append((field, msg))
    return out


def validate_report(services, message: dict, rename: dict[str, str] | None = None,
                    earlier: list[tuple[str, str]] | None = None):
    """Contract first, then the store's cheap facts. Returns the model or raises BadRequest(422).

    ``earlier``: problems the caller found in the body's shape; reported together with the contract's.
    """
    earlier = list(earlier or [])
    try:
        model = parse(message)
    except InvalidMessage as exc:
        seen = {f for f, _ in earlier}
        raise invalid(*earlier, *(e for e in contract_errors(exc, rename) if e[0] not in seen)) from None
    if earlier:
        raise invalid(*earlier)
    problems = []
    if model.location is not None:
        lon, lat = model.location.wgs84()
        if not inside_jurisdiction(services, lon, lat):
            problems.append(("location", f"point ({model.location.lon}, {model.location.lat}, "
                                         f"{model.location.crs}) is outside the jurisdiction"))
    if model.region_code is not None and not region_exists(services, model.region_code):
        problems.append(("region_code", f"{model.region_code} is not a grid or micro-grid code of the jurisdiction"))
    if problems:
        raise invalid(*problems)
    return model


PUBLISH_DEADLINE_S = 3.0  # a request rides out a short outage or a fail-over, then answers 503
RETRY_AFTER_S = 2         # what a 503 tells the client to wait


def submit(services, model) -> str:
    """XADD the validated report and remember it as pending, in one round trip, retried across a
    short Redis outage or fail-over; with REDIS_WAIT_REPLICAS, accepted only once replicated.
    Returns the stream entry id; raises a RedisError when the feed stays unavailable."""
    settings = services.settings

    def pending(pipe, m):
        pipe.set(PENDING_KEY + m.event_id, m.id, ex=PENDING_TTL_S)

    return publish_retrying(services.redis, model, deadline_s=PUBLISH_DEADLINE_S, also=pending,
                            replicas=settings.redis_wait_replicas, timeout_ms=settings.redis_wait_timeout_ms)


def first_ids(r: redis.Redis, api_key: str, idem: str, raw: bytes, ids: tuple[str, str]) -> tuple[tuple[str, str], bool]:
    """((message id, event id), replayed): ``ids`` reserved for this API key's ``idem``, or the ids
    the first request with it reserved (``replayed``). The same key with another body: 422."""
    if not IDEMPOTENCY_RE.fullmatch(idem):
        raise BadRequest(400, {"error": "invalid_idempotency_key",
                               "message": "Idempotency-Key must be 1 to 255 printable ASCII characters"})
    name = IDEMPOTENCY_KEY + hashlib.sha256(f"{api_key}\0{idem}".encode()).hexdigest()
    digest = hashlib.sha256(raw).hexdigest()
    while True:
        if r.set(name, f"{digest} {ids[0]} {ids[1]}", nx=True, ex=IDEMPOTENCY_TTL_S):
            return ids, False
        got = r.get(name)
        if got is not None:  # (else it expired in between: reserve again)
            first_digest, mid, eid = (got.decode() if isinstance(got, bytes) else got).split()
            if first_digest != digest:
                raise BadRequest(422, {"error": "idempotency_key_reused",
                                       "message": "this Idempotency-Key was sent with another body"})
            return (mid, eid), True


# --- request body ----------------------------------------------------------------

def read_body(mimetypes: tuple[str, ...]) -> bytes:
    if request.mimetype not in mimetypes:
        raise BadRequest(415, {"error": "unsupported_media_type",
                               "message": f"Content-Type must be {' or '.join(mimetypes)}, "
                                          f"not {request.mimetype or '(none)'}"})
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large()
    data = request.stream.read(MAX_BODY + 1)  # chunked bodies carry no length: read at most one byte too many
    if len(data) > MAX_BODY:
        raise too_large()
    return data


def too_large() -> BadRequest:
    return BadRequest(413, {"error": "too_large", "message": f"body larger than {MAX_BODY} bytes"})


def report_message(body: Any, now: datetime | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """The event.reported message for a JSON report body, and the problems of the body's shape."""
    if not isinstance(body, dict):
        raise invalid(("(body)", "the body must be a JSON object"))
    problems = [(k or '""', "unknown field") for k in sorted(set(body) - REPORT_FIELDS)]
    source = body.get("source")
    if source is not None and source not in API_SOURCES:
        problems.append(("source", f"must be one of {', '.join(API_SOURCES)}"))
    actor = reporter_actor(body.get("reporter"), source if source in API_SOURCES else None, problems)
    msg: dict[str, Any] = {
        "type": "event.reported", "v": 1, "id": new_message_id(), "event_id": new_event_id(),
        "occurred_at": (body["occurred_at"] if body.get("occurred_at") is not None
                        else (now or datetime.now(timezone.utc)).isoformat()),
        "actor": actor,
    }
    for key in ("source", "category", "subcategory", "description", "location", "region_code",
                "address", "urgent", "level"):
        if body.get(key) is not None:
            msg[key] = body[key]
    return msg, problems


def reporter_actor(reporter: Any, source: str | None, problems: list) -> dict:
    kind = DEFAULT_ACTOR_KIND.get(source or "", "resident")
    if reporter is None:
        return {"kind": kind}
    if isinstance(reporter, str):
        return {"kind": kind, "name": reporter}
    if isinstance(reporter, dict):
        return {"kind": kind, **reporter}
    problems.append(("reporter", "must be a name (string) or an object {kind, id, name}"))
    return {"kind": kind}


# --- reading back ------------------------------------------------------------------

def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def load_event(services, event_id: str, scope: str | None = None) -> dict | None:
    """The stored event with its steps, or None. The reporter column is left out."""
    cols = [c for c in event.c if c.name != "reporter"]
    with services.engine.connect() as conn:
        row = conn.execute(select(*cols).where(event.c.id == event_id)
                           .where(in_scope(event.c.grid_code, scope))).mappings().first()
        if row is None:
            return None
        # by time, as docs/cases.md orders a history: a system step's seq is negative (an automatic
        # escalation, a recount), so ordering by seq put those first whenever they happened
        steps = conn.execute(select(event_step.c.seq, event_step.c.step, event_step.c.at, event_step.c.note)
                             .where(event_step.c.event_id == event_id)
                             .order_by(event_step.c.at, event_step.c.id)).mappings().all()
    out = {k: _iso(v) for k, v in row.items()}
    out["status"] = "open" if row["state"] in OPEN_STATES else "closed"
    out["steps"] = [{k: _iso(v) for k, v in s.items()} for s in steps]
    return out


def pending_entry(services, event_id: str) -> str | None:
    value = services.redis.get(PENDING_KEY + event_id)
    return value.decode() if isinstance(value, bytes) else value


# --- routes ---------------------------------------------------------------------------

def _json(body: dict, status: int) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    return resp


def rate_limited(request_limit) -> Response:
    wait = auth.retry_after(request_limit)
    resp = _json({"error": "rate_limited", "message": f"more than {request_limit.limit} for this API key; "
                                                      f"retry in {wait} s", "retry_after": wait}, 429)
    resp.headers["Retry-After"] = str(wait)
    return resp


def register(server, services) -> None:
    settings = services.settings
    limit = auth.limiter(server, services).limit
    writes = limit(lambda: settings.api_rate_limit, on_breach=rate_limited)
    reads = limit(lambda: settings.api_read_rate_limit, on_breach=rate_limited)

    def unauthorized(key):
        return _json({"error": "unauthorized",
                      "message": "missing API key (header X-API-Key or parameter api_key)" if not key
                      else "unknown API key"}, 401)

    @server.post("/api/v1/reports")
    @writes
    def post_report():
        ok, key = auth.check(request, settings)
        if not ok:
            return unauthorized(key)
        try:
            raw = read_body(("application/json",))
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise BadRequest(400, {"error": "invalid_json", "message": str(exc)}) from None
            message, problems = report_message(body)
            model = validate_report(services, message, rename={"actor": "reporter"}, earlier=problems)
            replayed = False
            idem = request.headers.get("Idempotency-Key")
            if idem is not None:
                (mid, eid), replayed = first_ids(services.redis, key, idem, raw, (model.id, model.event_id))
                model = model.model_copy(update={"id": mid, "event_id": eid})
            entry_id = submit(services, model)
        except BadRequest as exc:
            return _json(exc.body, exc.status)
        except redis.RedisError as exc:
            log.warning("report not queued", extra={"error": f"{exc.__class__.__name__}: {exc}"})
            resp = _json({"error": "unavailable", "message": "the feed is unavailable; retry later"}, 503)
            resp.headers["Retry-After"] = str(RETRY_AFTER_S)
            return resp
        log.info("report queued", extra={"event_id": model.event_id, "message_id": model.id,
                                         "stream_id": entry_id, "source": model.source})
        resp = _json({"id": model.event_id, "message_id": model.id, "stream_id": entry_id,
                      "status": "pending", "status_url": f"/api/v1/reports/{model.event_id}"}, 202)
        resp.headers["Location"] = f"/api/v1/reports/{model.event_id}"
        if replayed:
            resp.headers["Idempotent-Replayed"] = "true"
        return resp

    @server.get("/api/v1/reports/<event_id>")
    @reads
    def get_report(event_id: str):
        ok, key = auth.check(request, settings)
        if not ok:
            return unauthorized(key)
        stored = load_event(services, event_id)
        if stored is not None:
            return _json(stored, 200)
        try:
            entry = pending_entry(services, event_id)
        except redis.RedisError:
            entry = None
        if entry:
            return _json({"id": event_id, "status": "pending", "message_id": entry,
                          "message": "queued; not yet stored by the consumer"}, 404)
        return _json({"id": event_id, "error": "not_found", "message": "no such report"}, 404)
