"""Helpers for helper A3's access tests: residents and vehicles with known personal data in the feed
district (one inside the test community, one in the other street)."""
from __future__ import annotations

from dashboard.store.schema import person, vehicle
from tests.unit import feed_support as F

INSIDE = {"id": 501, "grid_code": F.GRIDS[0], "name": "张三峰", "id_number": "370202199001011234",
          "phone": "13812341234", "gender": "M", "birth_year": 1990, "key_class": "elderly_alone"}
OUTSIDE = {"id": 502, "grid_code": F.OTHER_GRID, "name": "李四海", "id_number": "370202198502025678",
           "phone": "13987654321", "gender": "F", "birth_year": 1985, "key_class": None}
CAR = {"id": 601, "grid_code": F.GRIDS[1], "plate": "鲁B12345", "kind": "car", **F.point_in(1)}
PERSONAL = [INSIDE[k] for k in ("name", "id_number", "phone")] + [OUTSIDE[k] for k in ("name", "id_number", "phone")] \
    + [CAR["plate"]]


def seed_people(engine) -> None:
    with engine.begin() as conn:
        conn.execute(person.insert(), [INSIDE, OUTSIDE])
        conn.execute(vehicle.insert(), [CAR])
