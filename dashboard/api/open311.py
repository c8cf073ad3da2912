"""Open311 GeoReport v2 under /open311/v2/, as the published spec has it.

Resources (each in .json and .xml, XML being the spec's required format):
GET services, GET services/{service_code}, GET requests, POST requests
(form-encoded, with api_key), GET requests/{service_request_id}; plus the
service discovery file at /open311/discovery.json.

Services are the subcategories of dashboard.domain.CATEGORIES (code
``category-subcategory``) and one general service per category (code
``category``); names are zh-CN unless ``?lang=en``. A POST validates, then
XADDs one ``event.reported`` message (source ``mini_program``: the resident
channel); the id is known at once, so the answer carries
``service_request_id`` (no token), and the request reads back once the
consumer has stored it. lat/long are WGS-84.

Personal data: Open311 lets a client send email, first/last name, phone,
device_id and account_id. None of them is put on the feed or stored. They are
reduced to a pseudonymous actor id (a keyed hash, ``o311-…``) so repeat
reports by one person can be linked without keeping who they are; the 12345
hotline's own system keeps contact details where a call-back is needed.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree as ET

import redis
from flask import Response, jsonify, request
from sqlalchemy import and_, or_, select

from ..domain import CATEGORIES, CLOSED_STATES, EVENT_LEVELS, OPEN_STATES, label
from ..store.schema import building, event, event_step, region
from ..store.scope import in_scope
from . import auth
from .reports import (
    BadRequest, MAX_BODY, new_event_id, new_message_id, pending_entry, submit, validate_report,
)

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
FORMATS = "any(json, xml)"
MAX_REQUESTS = 1000
DEFAULT_DAYS = 90
SOURCE = "mini_program"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
URGENT_ATTRIBUTE = "urgent"


class Open311Error(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


# --- services ------------------------------------------------------------------------

def service_codes() -> dict[str, tuple[str, str | None]]:
    """service_code -> (category, subcategory or None)."""
    out: dict[str, tuple[str, str | None]] = {}
    for cat, entry in CATEGORIES.items():
        for sub in entry[4]:
            out[f"{cat}-{sub}"] = (cat, sub)
        out[cat] = (cat, None)
    return out


def service_code_of(category: str, subcategory: str | None) -> str:
    return f"{category}-{subcategory}" if subcategory else category


def service_name(category: str, subcategory: str | None, lang: str) -> str:
    if subcategory:
        return label("subcategory", subcategory, lang)
    other = "其他" if lang == "zh" else "other"
    return f"{label('category', category, lang)}（{other}）" if lang == "zh" else \
        f"{label('category', category, lang)} ({other})"


def services_list(lang: str) -> list[dict]:
    out = []
    for code, (cat, sub) in service_codes().items():
        entry = CATEGORIES[cat]
        level = EVENT_LEVELS[entry[2]][0 if lang == "zh" else 1]
        name = service_name(cat, sub, lang)
        group = label("category", cat, lang)
        if lang == "zh":
            desc = f"{group} · {name}：默认{level}办理，处置时限{entry[3]}小时"
        else:
            desc = f"{group} · {name}: handled at {level} by default, within {entry[3]} hours"
        keywords = [group, name, cat] + ([sub] if sub else [])
        out.append({"service_code": code, "service_name": name, "description": desc, "metadata": True,
                    "type": "realtime", "keywords": ",".join(keywords), "group": group})
    return out


def service_definition(code: str, lang: str) -> dict:
    zh = lang == "zh"
    return {"service_code": code, "attributes": [{
        "variable": True, "code": URGENT_ATTRIBUTE, "datatype": "singlevaluelist", "required": False,
        "datatype_description": "是否紧急（危及人身或财产安全）" if zh else "Urgent: danger to people or property",
        "order": 1, "description": "紧急" if zh else "Urgent",
        "values": [{"key": "0", "name": "否" if zh else "No"}, {"key": "1", "name": "是" if zh else "Yes"}],
    }]}


# --- service requests -------------------------------------------------------------------

def _w3c(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def agency_of(level: int, lang: str) -> str:
    return EVENT_LEVELS.get(level, ("", ""))[0 if lang == "zh" else 1]


def service_notice(category: str, lang: str) -> str:
    hours = CATEGORIES[category][3]
    return (f"已受理，将在{hours}小时内处置" if lang == "zh"
            else f"Accepted; to be handled within {hours} hours")


def request_json(row, note: str | None, lang: str) -> dict:
    return {
        "service_request_id": row["id"],
        "status": "open" if row["state"] in OPEN_STATES else "closed",
        "status_notes": note or label("step", row["state"], lang),
        "service_name": service_name(row["category"], row["subcategory"], lang),
        "service_code": service_code_of(row["category"], row["subcategory"]),
        "description": row["description"] or "",
        "agency_responsible": agency_of(row["level"], lang),
        "service_notice": service_notice(row["category"], lang) if row["category"] in CATEGORIES else None,
        "requested_datetime": _w3c(row["reported_at"]),
        "updated_datetime": _w3c(row["updated_at"]),
        "expected_datetime": _w3c(row["deadline_at"]),
        "address": row["address"],
        "address_id": None,
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": None,
    }


REQUEST_COLUMNS = (event.c.id, event.c.state, event.c.category, event.c.subcategory, event.c.description,
                   event.c.level, event.c.reported_at, event.c.updated_at, event.c.deadline_at,
                   event.c.address, event.c.lat, event.c.lon)


def query_requests(services, *, ids=None, codes=None, start=None, end=None, statuses=None,
                   lang="zh", scope=None, limit=MAX_REQUESTS) -> list[dict]:
    stmt = select(*REQUEST_COLUMNS).where(in_scope(event.c.grid_code, scope))
    if ids:
        stmt = stmt.where(event.c.id.in_(ids))
    else:
        if codes:
            known = service_codes()
            terms = []
            for code in codes:
                cat, sub = known[code]
                terms.append(and_(event.c.category == cat,
                                  event.c.subcategory == sub if sub else event.c.subcategory.is_(None)))
            stmt = stmt.where(or_(*terms))
        if start is not None:
            stmt = stmt.where(event.c.reported_at >= start)
        if end is not None:
            stmt = stmt.where(event.c.reported_at <= end)
        if statuses and set(statuses) != {"open", "closed"}:
            states = OPEN_STATES if "open" in statuses else CLOSED_STATES
            stmt = stmt.where(event.c.state.in_(list(states)))
    stmt = stmt.order_by(event.c.reported_at.desc(), event.c.id).limit(limit)
    with services.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
        notes = latest_notes(conn, [r["id"] for r in rows])
    return [request_json(r, notes.get(r["id"]), lang) for r in rows]


def latest_notes(conn, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        rows = conn.execute(select(event_step.c.event_id, event_step.c.seq, event_step.c.note)
                            .where(event_step.c.event_id.in_(chunk)).order_by(event_step.c.event_id,
                                                                              event_step.c.seq)).all()
        for eid, _seq, note in rows:
            if note:
                out[eid] = note
    return out


def parse_w3c(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a w3 datetime, e.g. 2010-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name} must carry a time zone (Z or ±HH:MM)")
    return value


def comma_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


# --- POST ---------------------------------------------------------------------------------

def pseudonym(key: str, form) -> str | None:
    """A keyed hash of whatever identifies the reporter; the identity itself is dropped."""
    parts = [(form.get(f) or "").strip().lower() for f in ("account_id", "email", "phone", "device_id")]
    if not any(parts):
        return None
    digest = hmac.new(key.encode(), "|".join(parts).encode(), hashlib.sha256).hexdigest()
    return f"o311-{digest[:24]}"


def located(services, form) -> tuple[dict | None, str | None]:
    """(location, address) from lat/long, address_id (a building code) or address_string (a building name)."""
    lat, lon = form.get("lat", "").strip(), form.get("long", "").strip()
    address = (form.get("address_string") or "").strip() or None
    if lat or lon:
        if not (lat and lon):
            raise Open311Error(400, "lat and long must be given together")
        try:
            flat, flon = float(lat), float(lon)
        except ValueError:
            raise Open311Error(400, "lat and long must be numbers (WGS-84 degrees)") from None
        if not (-90 <= flat <= 90) or not (-180 <= flon <= 180):
            raise Open311Error(400, "lat must be within ±90 and long within ±180")
        return {"lon": flon, "lat": flat, "crs": "wgs84"}, address
    address_id = (form.get("address_id") or "").strip()
    with services.engine.connect() as conn:
        if address_id:
            row = conn.execute(select(building.c.lon, building.c.lat, building.c.name)
                               .where(building.c.code == address_id)).first()
            if row is None:
                raise Open311Error(400, f"address_id {address_id} is not a known building code")
            return {"lon": row.lon, "lat": row.lat, "crs": "wgs84"}, address or row.name
        if address:
            rows = conn.execute(select(building.c.lon, building.c.lat).where(building.c.name == address)
                                .limit(2)).all()
            if len(rows) == 1:
                return {"lon": rows[0].lon, "lat": rows[0].lat, "crs": "wgs84"}, address
            raise Open311Error(400, "address_string could not be located (not one known building name); "
                                    "send lat and long")
    raise Open311Error(400, "a location is required: lat and long, or address_string, or address_id")


def attributes_of(form) -> dict[str, str]:
    out = {}
    for key in form:
        if key.startswith("attribute[") and key.endswith("]"):
            out[key[len("attribute["):-1]] = form.get(key)
    return out


def post_message(services, form, key: str) -> dict:
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    known = service_codes()
    if code not in known:
        raise Open311Error(400, f"service_code {code} was not found")
    cat, sub = known[code]
    attrs = attributes_of(form)
    unknown = sorted(set(attrs) - {URGENT_ATTRIBUTE})
    if unknown:
        raise Open311Error(400, f"attribute[{unknown[0]}] is not an attribute of service {code}")
    urgent = attrs.get(URGENT_ATTRIBUTE, "0")
    if urgent not in ("0", "1"):
        raise Open311Error(400, f"attribute[{URGENT_ATTRIBUTE}] must be 0 or 1")
    location, address = located(services, form)
    description = (form.get("description") or "").strip()
    media = (form.get("media_url") or "").strip()
    if media:  # the contract has no media field: keep the link with the text rather than drop it
        description = f"{description}\n[media_url] {media}".strip()
    actor = {"kind": "resident"}
    alias = pseudonym(key, form)
    if alias:
        actor["id"] = alias
    msg = {"type": "event.reported", "v": 1, "id": new_message_id("o311"), "event_id": new_event_id(),
           "source": SOURCE, "occurred_at": datetime.now(timezone.utc).isoformat(), "actor": actor,
           "category": cat, "urgent": urgent == "1", "description": description, "location": location}
    if sub:
        msg["subcategory"] = sub
    if address:
        msg["address"] = address
    return msg


# --- output -------------------------------------------------------------------------------

def _xml_value(parent, name: str, value) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for k, v in value.items():
            _xml_value(child, k, v)
    elif isinstance(value, list):
        item = {"attributes": "attribute", "values": "value", "endpoints": "endpoint",
                "formats": "format"}.get(name, "item")
        for v in value:
            _xml_value(child, item, v)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)


def render(fmt: str, data, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "json":
        resp = jsonify(data)
        resp.status_code = status
        return resp
    top = ET.Element(root)
    if item is None:
        for k, v in data.items():
            _xml_value(top, k, v)
    else:
        for entry in data:
            _xml_value(top, item, entry)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    return render(fmt, [{"code": status, "description": description}], "errors", "error", status)


def lang_of(services) -> str:
    lang = request.args.get("lang") or services.settings.ui_lang
    return "en" if lang.lower().startswith("en") else "zh"


def check_jurisdiction(services) -> None:
    jid = request.values.get("jurisdiction_id")
    if not jid:
        return
    with services.engine.connect() as conn:
        found = conn.execute(select(region.c.code).where(region.c.code == jid)
                             .where(region.c.parent_code.is_(None))).first()
    if found is None:
        raise Open311Error(404, f"jurisdiction_id {jid} was not found")


def reader_scope(services) -> str | None:
    """The scope of a read: a signed-in session's (or narrower, ``?scope=``: another street is a
    403, audited); an Open311 client without a session (a resident's app, an API-key system)
    reads the jurisdiction's public record, as GeoReport v2 publishes it. Either way no reporter
    identity is ever in an answer (``request_json`` has no such field, and none is stored)."""
    from werkzeug.exceptions import Forbidden

    from ..access.web import current_principal, request_scope

    if current_principal() is None:
        return None
    try:
        return request_scope(services, request.args.get("scope") or None, where=request.path) or None
    except Forbidden:
        raise Open311Error(403, "scope outside yours") from None


def register(server, services) -> None:
    settings = services.settings

    def handled(view):
        def wrapper(fmt, *args, **kwargs):
            try:
                if request.content_length is not None and request.content_length > MAX_BODY:
                    raise Open311Error(413, f"body larger than {MAX_BODY} bytes")
                check_jurisdiction(services)
                return view(fmt, *args, **kwargs)
            except Open311Error as exc:
                return error(fmt, exc.status, exc.description)
            except BadRequest as exc:
                fields = exc.body.get("fields") or [{"field": "", "error": exc.body.get("message", "")}]
                return error(fmt, 400 if exc.status == 422 else exc.status,
                             "; ".join(f"{f['field']}: {f['error']}" if f["field"] else f["error"] for f in fields))
            except redis.RedisError as exc:
                log.warning("open311 request not queued", extra={"error": str(exc)})
                return error(fmt, 503, "the feed is unavailable; retry later")
        wrapper.__name__ = f"open311_{view.__name__}"
        return wrapper

    @handled
    def services_view(fmt):
        return render(fmt, services_list(lang_of(services)), "services", "service")

    @handled
    def definition_view(fmt, service_code):
        if service_code not in service_codes():
            raise Open311Error(404, f"service_code {service_code} was not found")
        return render(fmt, service_definition(service_code, lang_of(services)), "service_definition", None)

    @handled
    def requests_view(fmt):
        args = request.args
        ids = comma_list(args.get("service_request_id"))
        if ids:  # the spec: service_request_id overrides all other parameters
            rows = query_requests(services, ids=ids[:MAX_REQUESTS], lang=lang_of(services),
                                  scope=reader_scope(services))
            return render(fmt, rows, "service_requests", "request")
        codes = comma_list(args.get("service_code"))
        unknown = [c for c in codes if c not in service_codes()]
        if unknown:
            raise Open311Error(400, f"service_code {unknown[0]} was not found")
        statuses = comma_list(args.get("status"))
        bad = [s for s in statuses if s not in ("open", "closed")]
        if bad:
            raise Open311Error(400, f"status must be open or closed, not {bad[0]}")
        start = parse_w3c("start_date", args["start_date"]) if args.get("start_date") else None
        end = parse_w3c("end_date", args["end_date"]) if args.get("end_date") else None
        if start and end and end < start:
            raise Open311Error(400, "end_date is before start_date")
        if end is None:
            end = (start + timedelta(days=DEFAULT_DAYS)) if start else datetime.now(timezone.utc)
        if start is None:
            start = end - timedelta(days=DEFAULT_DAYS)
        if end - start > timedelta(days=DEFAULT_DAYS):
            raise Open311Error(400, f"start_date to end_date may not span more than {DEFAULT_DAYS} days")
        rows = query_requests(services, codes=codes, start=start, end=end, statuses=statuses,
                              lang=lang_of(services), scope=reader_scope(services))
        return render(fmt, rows, "service_requests", "request")

    @handled
    def request_view(fmt, service_request_id):
        scope = reader_scope(services)
        rows = query_requests(services, ids=[service_request_id], lang=lang_of(services), scope=scope)
        if rows:
            return render(fmt, rows, "service_requests", "request")
        try:  # a scoped reader learns nothing of another street's report, not even that it is queued
            pending = pending_entry(services, service_request_id) if scope is None else None
        except redis.RedisError:
            pending = None
        if pending:
            raise Open311Error(404, f"service_request_id {service_request_id} is pending: accepted, "
                                    f"not yet stored")
        raise Open311Error(404, f"service_request_id {service_request_id} was not found")

    @handled
    def post_view(fmt):
        if request.mimetype not in FORM_TYPES:
            raise Open311Error(415, "POST requests must be application/x-www-form-urlencoded")
        ok, key = auth.check(request, settings)
        if not ok:
            raise Open311Error(403, "api_key was not provided" if not key else "api_key is invalid")
        message = post_message(services, request.form, key)
        model = validate_report(services, message)
        entry_id = submit(services, model)
        log.info("open311 request queued", extra={"event_id": model.event_id, "message_id": model.id,
                                                  "stream_id": entry_id})
        lang = lang_of(services)
        body = [{"service_request_id": model.event_id, "service_notice": service_notice(model.category, lang),
                 "account_id": None}]
        return render(fmt, body, "service_requests", "request")

    @handled
    def discovery_view(fmt):
        base = request.host_url.rstrip("/") + PREFIX
        return render(fmt, {
            "changeset": "2026-11-22T00:00:00Z", "contact": "网格化治理指挥中心 (grid governance command center)",
            "key_service": "API keys: INGEST_API_KEYS",
            "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                           "changeset": "2026-11-22T00:00:00Z", "type": "production",
                           "formats": ["application/json", "text/xml"]}],
        }, "discovery", None)

    # rate limits per API key (or client address), answered in the format asked for
    def breached(request_limit) -> Response:
        wait = auth.retry_after(request_limit)
        fmt = "xml" if request.path.endswith(".xml") else "json"
        resp = error(fmt, 429, f"rate limit exceeded ({request_limit.limit}); retry in {wait} s")
        resp.headers["Retry-After"] = str(wait)
        return resp

    limit = auth.limiter(server, services).limit
    reads = limit(lambda: settings.api_read_rate_limit, on_breach=breached)
    services_view, definition_view, requests_view, request_view, discovery_view = (
        reads(v) for v in (services_view, definition_view, requests_view, request_view, discovery_view))
    post_view = limit(lambda: settings.api_rate_limit, on_breach=breached)(post_view)

    server.add_url_rule(f"{PREFIX}/services.<{FORMATS}:fmt>", "open311_services", services_view, methods=["GET"])
    server.add_url_rule(f"{PREFIX}/services/<service_code>.<{FORMATS}:fmt>", "open311_definition",
                        definition_view, methods=["GET"])
    server.add_url_rule(f"{PREFIX}/requests.<{FORMATS}:fmt>", "open311_requests", requests_view, methods=["GET"])
    server.add_url_rule(f"{PREFIX}/requests.<{FORMATS}:fmt>", "open311_post", post_view, methods=["POST"])
    server.add_url_rule(f"{PREFIX}/requests/<service_request_id>.<{FORMATS}:fmt>", "open311_request",
                        request_view, methods=["GET"])
    server.add_url_rule(f"/open311/discovery.<{FORMATS}:fmt>", "open311_discovery", discovery_view, methods=["GET"])
