"""The live channel's wire format and the checks both servers share.

Events (docs/feed.md): ``hello`` (the resume point), default messages (``data: [delta, ...]``
with ``id: <stream id>``), ``ping`` (feed health), ``gap`` (the resume point fell out of the
replay buffer), and ``: skip`` comments that only move the resume point.
"""
from __future__ import annotations

import json
import re

from ..store.scope import code_in_scope

PING_S = 2.0
RETRY_MS = 1000
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$|^\d{1,20}$")
SCOPE = re.compile(r"^\d{6,24}$")
SCOPE_ERROR = {"error": "scope must be a region code (6 to 24 digits)", "field": "scope"}
SINCE_ERROR = {"error": "since / Last-Event-ID must be a stream id like 1700000000000-0", "field": "since"}


class BadRequest(ValueError):
    def __init__(self, body: dict):
        super().__init__(body["error"])
        self.body = body


def parse_request(scope: str | None, since: str | None) -> tuple[str | None, str | None]:
    """(scope, since) from the query / header values, or BadRequest with the JSON body to answer."""
    scope = (scope or "").strip() or None
    if scope is not None and not SCOPE.match(scope):
        raise BadRequest(SCOPE_ERROR)
    if since is not None:
        since = since.strip()
        if since in ("$", ""):
            since = None
        elif not STREAM_ID.match(since):
            raise BadRequest(SINCE_ERROR)
    return scope, since


def s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


def filter_scope(deltas: list[dict], scope: str | None) -> list[dict]:
    if not scope:
        return deltas
    return [d for d in deltas if code_in_scope(d.get("g"), scope)]


def sse(event: str | None = None, data=None, id: str | None = None, comment: str | None = None) -> str:
    out = []
    if comment is not None:
        out.append(f": {comment}")
    if id is not None:
        out.append(f"id: {id}")
    if event is not None:
        out.append(f"event: {event}")
    if data is not None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        out.extend(f"data: {line}" for line in text.split("\n"))
    return "\n".join(out) + "\n\n"


def is_gap(since: str, oldest: str | None, info) -> bool:
    """Has the replay buffer dropped entries after ``since``? ``oldest``: the stream's first id;
    ``info``: XINFO STREAM's answer (or the exception it raised)."""
    if since in ("0", "0-0") or oldest is None:
        return False
    if key(oldest) <= key(since):
        return False
    # Redis 7 counts entries ever added; Redis 6 cannot tell, so assume the worst (a reload)
    if isinstance(info, Exception) or not info:
        return True
    info = {s(k): v for k, v in info.items()}
    added = info.get("entries-added")
    return True if added is None else int(added) > int(info["length"])
