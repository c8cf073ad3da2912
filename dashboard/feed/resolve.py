"""Checking messages against the store: where is it, and does its region exist?

A message is placed by its location (WGS-84, or GCJ-02 converted) or its
region code. The point must lie inside the jurisdiction (a grid), and a
region code must be a grid or micro-grid that exists; a micro-grid resolves
to its grid. When both are given the region code decides the grid (the
reporter named it) and the location is kept as the point. Points are located
in one vectorised call per batch (``Locator.locate_many``).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ..store.schema import region
from .apply import Item

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0  # how often to look for re-imported regions


class Resolver:
    def __init__(self, engine: Engine, locator_factory: Callable[[], object]):
        self.engine = engine
        self.locator_factory = locator_factory
        self.locator = None
        self.grid_of: dict[str, str] = {}     # grid or micro code -> grid code
        self.level_of: dict[str, str] = {}    # every region code -> level
        self.stamp = None
        self.checked = 0.0

    def _stamp(self):
        with self.engine.connect() as conn:
            return tuple(conn.execute(select(func.count(), func.max(region.c.updated_at))).one())

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self.locator is not None and now - self.checked < CHECK_EVERY_S:
            return
        self.checked = now
        stamp = self._stamp()
        if not force and stamp == self.stamp and self.locator is not None:
            return
        with self.engine.connect() as conn:
            rows = conn.execute(select(region.c.code, region.c.level, region.c.parent_code)).all()
        self.level_of = {code: level for code, level, _ in rows}
        self.grid_of = {}
        for code, level, parent in rows:
            if level == "grid":
                self.grid_of[code] = code
            elif level == "micro" and parent:
                self.grid_of[code] = parent
        self.locator = self.locator_factory()
        self.stamp = stamp
        log.info("regions loaded", extra={"regions": len(rows), "grids": sum(1 for v in self.level_of.values()
                                                                                if v == "grid")})

    def resolve(self, items: list[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
        """Fill grid/lon/lat; returns (placed items, [(item, reason)] that fail)."""
        self.refresh()
        ok: list[Item] = []
        bad: list[tuple[Item, str]] = []
        # case.escalate names a case already placed: it has neither a location nor a region code
        located = [it for it in items if getattr(it.msg, "location", None) is not None]
        if located:
            for it in located:
                it.lon, it.lat = it.msg.location.wgs84()
            lons = np.fromiter((it.lon for it in located), float, len(located))
            lats = np.fromiter((it.lat for it in located), float, len(located))
            codes = self.locator.locate_many(lons, lats)
            for it, code in zip(located, codes):
                it.grid = str(code) if code else ""
        for it in items:
            m = it.msg
            if getattr(m, "location", None) is not None and not it.grid:
                bad.append((it, f"location ({it.lon:.6f}, {it.lat:.6f}) is outside the jurisdiction"))
                continue
            if getattr(m, "region_code", None) is not None:
                grid = self.grid_of.get(m.region_code)
                if grid is None:
                    if m.region_code not in self.level_of:
                        self.refresh(force=time.monotonic() - self.checked > 5)  # maybe just imported
                        grid = self.grid_of.get(m.region_code)
                    if grid is None:
                        level = self.level_of.get(m.region_code)
                        bad.append((it, f"region_code {m.region_code} does not exist" if level is None else
                                    f"region_code {m.region_code} is a {level}, not a grid or micro-grid"))
                        continue
                it.grid = grid
            ok.append(it)
        return ok, bad
