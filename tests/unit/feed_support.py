"""Shared pieces of the feed tests: a tiny jurisdiction and message builders."""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

from shapely.geometry import box
from sqlalchemy import func, select

from dashboard.store.regions import RegionRow, upsert_regions

DISTRICT = "370202"
STREET = "370202001"
COMMUNITY = "370202001001"
X0, Y0, D = 120.370, 36.050, 0.01
GRIDS = [f"{COMMUNITY}{i:03d}" for i in (1, 2, 3)]
OTHER_STREET = "370202002"
OTHER_GRID = "370202002001001"
MICRO = GRIDS[0] + "001"
CST = timezone(timedelta(hours=8))


def regions() -> list[RegionRow]:
    rows = [RegionRow(DISTRICT, "市南区", "district", box(X0, Y0, X0 + 3 * D, Y0 + 2 * D)),
            RegionRow(STREET, "街道一", "street", box(X0, Y0, X0 + 3 * D, Y0 + D), parent_code=DISTRICT),
            RegionRow(COMMUNITY, "社区一", "community", box(X0, Y0, X0 + 3 * D, Y0 + D), parent_code=STREET),
            RegionRow(OTHER_STREET, "街道二", "street", box(X0, Y0 + D, X0 + 3 * D, Y0 + 2 * D),
                      parent_code=DISTRICT),
            RegionRow(OTHER_STREET + "001", "社区二", "community", box(X0, Y0 + D, X0 + 3 * D, Y0 + 2 * D),
                      parent_code=OTHER_STREET),
            RegionRow(OTHER_GRID, "社区二001网格", "grid", box(X0, Y0 + D, X0 + 3 * D, Y0 + 2 * D),
                      parent_code=OTHER_STREET + "001", kind="basic")]
    for i, code in enumerate(GRIDS):
        rows.append(RegionRow(code, f"社区一{i + 1:03d}网格", "grid", box(X0 + i * D, Y0, X0 + (i + 1) * D, Y0 + D),
                              parent_code=COMMUNITY, kind="basic"))
    rows.append(RegionRow(MICRO, "微网格1", "micro", box(X0, Y0, X0 + D / 2, Y0 + D / 2), parent_code=GRIDS[0]))
    return rows


def seed_regions(engine) -> None:
    with engine.begin() as conn:
        upsert_regions(conn, regions())


def point_in(grid_index: int, fx: float = 0.5, fy: float = 0.5) -> dict:
    """A WGS-84 point inside GRIDS[grid_index] (index 3 = the other street's grid)."""
    if grid_index == 3:
        return {"lon": X0 + 3 * D * fx, "lat": Y0 + D + D * fy}
    return {"lon": X0 + (grid_index + fx) * D, "lat": Y0 + D * fy}


OUTSIDE = {"lon": 121.5, "lat": 31.2}  # Shanghai

_counter = itertools.count(1)


def when(minutes_ago: float = 60) -> str:
    return (datetime.now(CST) - timedelta(minutes=minutes_ago)).isoformat()


def envelope(mid: str | None = None, **kw) -> dict:
    m = {"v": 1, "id": mid or f"m{next(_counter)}", "source": "grid_patrol", "occurred_at": when(),
         "actor": {"kind": "staff", "id": "S000001"}}
    m.update(kw)
    return m


def reported(event_id: str, grid_index: int = 0, mid: str | None = None, **kw) -> dict:
    kw.setdefault("location", point_in(grid_index))
    if kw["location"] is None:
        del kw["location"]
    return envelope(mid, type="event.reported", event_id=event_id, category="safety", subcategory="gas",
                    description="楼道燃气味道很重", **kw)


def step(event_id: str, seq: int, name: str = "dispatched", mid: str | None = None, minutes_ago: float = 30,
         **kw) -> dict:
    kw.setdefault("region_code", GRIDS[0])
    return envelope(mid, type="event.step", event_id=event_id, seq=seq, step=name,
                    occurred_at=when(minutes_ago), **kw)


def hazard_found(hazard_id: str, grid_index: int = 1, mid: str | None = None) -> dict:
    return envelope(mid, type="hazard.found", hazard_id=hazard_id, kind="gas_pipe", description="燃气管道锈蚀",
                    deadline_at=(datetime.now(CST) + timedelta(days=3)).isoformat(), location=point_in(grid_index))


def position(actor_id: str, grid_index: int = 2, minutes_ago: float = 1, mid: str | None = None) -> dict:
    return envelope(mid, type="position", actor={"kind": "staff", "id": actor_id}, occurred_at=when(minutes_ago),
                    location=point_in(grid_index))


def patrol(staff_id: str = "S000001", grid_index: int = 0, mid: str | None = None) -> dict:
    return envelope(mid, type="patrol.checkin", actor={"kind": "staff", "id": staff_id},
                    checklist={"elevator": "ok", "gas_pipe": "issue", "hydrant": "ok", "water_pipe": "ok"},
                    location=point_in(grid_index))


def report_at(eid: str, sub: str, cat: str, at: datetime, **kw) -> dict:
    """A case's report at a given moment (the case-clock tests' timelines), message id ``{eid}-r``."""
    return envelope(f"{eid}-r", type="event.reported", event_id=eid, category=cat, subcategory=sub,
                    region_code=GRIDS[0], occurred_at=at.isoformat(), **kw)


def step_at(eid: str, seq: int, name: str, at: datetime, **kw) -> dict:
    """Step ``seq`` of a case at a given moment, message id ``{eid}-s{seq}``."""
    return envelope(f"{eid}-s{seq}", type="event.step", event_id=eid, seq=seq, step=name,
                    region_code=GRIDS[0], occurred_at=at.isoformat(), **kw)


def xadd_all(r, messages) -> list[str]:
    from dashboard.feed.contract import STREAM

    pipe = r.pipeline(transaction=False)
    for m in messages:
        pipe.xadd(STREAM, {"m": m if isinstance(m, (bytes, str)) else json.dumps(m, ensure_ascii=False)})
    return [i.decode() if isinstance(i, bytes) else i for i in pipe.execute()]


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def dead_letters(r) -> list[dict]:
    from dashboard.feed.contract import DEAD_LETTER

    out = []
    for sid, fields in r.xrange(DEAD_LETTER):
        out.append({k.decode(): v.decode("utf-8", "surrogateescape") for k, v in fields.items()})
    return out


def live_app():
    """A WSGI app with only the SSE endpoint, for gunicorn in tests (settings from the environment)."""
    import flask

    from dashboard.api import live
    from dashboard.services import Services
    from dashboard.settings import Settings

    app = flask.Flask("feed-live")
    live.register(app, Services.open(Settings.from_env()))
    return app


def alive(pid: int) -> bool:
    """Is the process running (a zombie, exited but not reaped, is not)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def case_services(stack, make_services, **overrides):
    """Services on ``stack`` with the test regions and no automatic escalation sweep: the case tests
    send their own timelines, whose deadlines may pass, and an escalation there would be noise."""
    services = make_services(*stack, escalation_sweep_s=0, **overrides)
    seed_regions(services.engine)
    return services


def consume(services, **kw) -> dict:
    """One burst of a consumer (named c1 unless told) over what the stream holds."""
    from dashboard.feed.consumer import Consumer

    kw.setdefault("name", "c1")
    return Consumer(services, **kw).run(burst=True)
