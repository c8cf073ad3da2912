"""One resident's or vehicle's record (issue 18, privacy).

GET /api/v1/people/<id>[?scope=][&reveal=1]
GET /api/v1/vehicles/<id>[?scope=][&reveal=1]

Masked by default (``dashboard.access.masking``); ``reveal=1`` answers in full to a role that may
(administrator, district operator, a community worker inside their community) and writes the view
to the audit log. A sign-in is always needed (401), a wall token never gets a record (403), a
record outside the scope is 404 like an absent one (audited), a wider ``?scope=`` is 403 (audited).
Never cached: ``Cache-Control: no-store``.
"""
from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import Forbidden

from ..access.records import view_record
from ..access.web import client_ip, current_principal, request_scope

ROUTES = {"person": "/api/v1/people/<record_id>", "vehicle": "/api/v1/vehicles/<record_id>"}
MESSAGES = {401: "sign-in required", 403: "not allowed for this role", 404: "no such record in this scope"}
ERRORS = {401: "unauthorized", 403: "forbidden", 404: "not_found"}


def _json(body: dict, status: int = 200):
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def answer(services, kind: str, record_id: str):
    where = request.path
    principal = current_principal()
    if principal is None:
        return _json({"error": ERRORS[401], "message": MESSAGES[401]}, 401)
    try:
        scope = request_scope(services, request.args.get("scope") or None, where=where)
    except Forbidden:
        return _json({"error": "forbidden", "message": "scope outside yours"}, 403)
    reveal = request.args.get("reveal") in ("1", "true", "yes")
    got = view_record(services.engine, principal, kind, record_id, scope, reveal=reveal, ip=client_ip(),
                      where=where)
    if got.status != 200:
        return _json({"error": ERRORS[got.status], "message": MESSAGES[got.status]}, got.status)
    return _json({"kind": kind, "revealed": got.revealed, "record": got.record})


def register(server, services) -> None:
    for kind, rule in ROUTES.items():
        server.add_url_rule(rule, endpoint=f"people_api_{kind}",
                            view_func=lambda record_id, kind=kind: answer(services, kind, record_id))
