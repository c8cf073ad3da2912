"""The scope rule: what a principal may see is their scope or a narrower one they ask for.

Pure: the caller hands in who is asking and a way to tell whether a code is a region. Codes are
hierarchical (a region's descendants start with its code: ``dashboard.store.scope``), so "narrower"
is "starts with the principal's scope". A refusal is an exception carrying the reason, which the
caller writes to the audit log (``dashboard.access.audit.scope_refused``).
"""
from __future__ import annotations

import re
from typing import Callable

CODE_RE = re.compile(r"^\d{6,24}$")  # the same form ?scope= takes on the wall

INVALID = "invalid"   # not a region code at all
OUTSIDE = "outside"   # wider than the principal's scope, or beside it
UNKNOWN = "unknown"   # shaped like a code, but no region has it


class ScopeRefused(Exception):
    def __init__(self, reason: str, requested: str, allowed: str):
        super().__init__(f"scope {requested!r} refused ({reason}); allowed: {allowed or 'all'}")
        self.reason = reason
        self.requested = requested
        self.allowed = allowed


def effective_scope(principal, requested: str | None, exists: Callable[[str], bool]) -> str:
    """The scope to serve ``principal`` (anything with ``.scope``: '' means everything) when it
    asks for ``requested`` (None or '': its own). Never wider than its own: raises ScopeRefused."""
    allowed = principal.scope or ""
    if requested is None or requested == "":
        return allowed
    if not isinstance(requested, str) or not CODE_RE.match(requested):
        raise ScopeRefused(INVALID, str(requested)[:64], allowed)
    if not requested.startswith(allowed):
        raise ScopeRefused(OUTSIDE, requested, allowed)
    if requested != allowed and not exists(requested):
        raise ScopeRefused(UNKNOWN, requested, allowed)
    return requested
