"""Who may open a live page, for which scope, and for how long (the ASGI side of the sign-in).

``admit`` runs when a page opens, in a thread (it reads the database): the principal is the
request's session cookie or its ``?token=`` (``dashboard.access.identity.identify_asgi``); none
with ``ACCESS_REQUIRED`` is a 401; the scope is ``effective_scope`` (the principal's own, or
narrower as asked) and a wider or foreign one is a 403, written to the audit log. Anonymous with
access off: what was asked, as before.

``Guard.watch`` keeps the page under its principal's id. One task per process re-checks every
watched principal each ``RECHECK_S`` (two queries however many pages: ``identity.still_valid``)
and drops the pages of a revoked token, a disabled user or a changed password: their connections
are cut within ``RECHECK_S`` plus a query, well inside the issue's 5 s.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..access import audit
from ..access.identity import identify_asgi, still_valid
from ..access.scope import ScopeRefused, effective_scope

log = logging.getLogger(__name__)

RECHECK_S = 1.0
WHERE = "/api/v1/live"


@dataclass
class Admission:
    status: int                 # 200, or the refusal's 401 / 403
    scope: str | None = None    # what the page is served
    principal: object = None
    body: dict | None = None


def client_ip(asgi_scope) -> str:
    client = asgi_scope.get("client")
    return client[0] if client else ""


def admit(services, asgi_scope, requested: str | None) -> Admission:
    """Blocking (database): call through ``asyncio.to_thread``."""
    principal = identify_asgi(services, asgi_scope)
    if principal is None:
        if services.settings.access_required:
            return Admission(401, body={"error": "unauthorized", "message": "sign-in required"})
        return Admission(200, scope=requested)
    from ..access.web import _exists

    try:
        scope = effective_scope(principal, requested, _exists(services))
    except ScopeRefused as exc:
        audit.scope_refused(services.engine, principal, exc, ip=client_ip(asgi_scope), where=WHERE)
        return Admission(403, principal=principal, body={"error": "forbidden", "message": str(exc)})
    return Admission(200, scope=scope or None, principal=principal)


class Guard:
    """The open pages of each principal, and the task that ends them when it is no longer valid."""

    def __init__(self, services, recheck_s: float = RECHECK_S):
        self.services = services
        self.recheck_s = recheck_s
        self.pages: dict[str, set] = {}   # principal id -> its open pages
        self.hub = None
        self._task: asyncio.Task | None = None
        self._loop = None
        self.ended = 0                    # pages ended because their principal went (for tests, /healthz)

    def watch(self, principal, page, hub) -> None:
        if principal is None:
            return
        self.hub = hub
        self.pages.setdefault(principal.get_id(), set()).add(page)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._task = asyncio.ensure_future(self._run())

    def forget(self, principal, page) -> None:
        if principal is None:
            return
        group = self.pages.get(principal.get_id())
        if group is not None:
            group.discard(page)
            if not group:
                del self.pages[principal.get_id()]

    async def check_once(self) -> int:
        """Drop the pages of principals no longer valid; returns how many pages were dropped."""
        idents = set(self.pages)
        if not idents:
            return 0
        valid = await asyncio.to_thread(still_valid, self.services, idents)
        dropped = 0
        for ident in idents - valid:
            for page in list(self.pages.pop(ident, ())):
                if self.hub is not None:  # the response is ended, not cut: the browser sees a closed stream
                    self.hub.drop(page, "revoked", abort=False)
                dropped += 1
                self.ended += 1
            log.info("live pages ended: principal no longer valid", extra={"principal": ident.split(":")[0]})
            await asyncio.to_thread(audit.record, self.services.engine, audit.SESSION_REFUSED,
                                    session=ident.rsplit(":", 1)[0], where=WHERE)
        return dropped

    async def _run(self) -> None:
        while self.pages:
            await asyncio.sleep(self.recheck_s)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database away: pages stay, checked again next round
                log.warning("live push: principal re-check failed", extra={"error": repr(exc)})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing
                pass
            self._task = None
