"""Masking of residents' personal fields (dashboard/access/masking.py): the forms an office prints,
every sensitive column of the schema covered, and who may reveal. Pure: no store."""
from __future__ import annotations

import pytest

from dashboard.access import masking as M
from dashboard.access.users import Principal
from dashboard.store.schema import sensitive_columns


@pytest.mark.parametrize("fn,value,masked", [
    (M.mask_name, "张三峰", "张*峰"), (M.mask_name, "张三", "张*"), (M.mask_name, "欧阳娜娜", "欧**娜"),
    (M.mask_name, "李", "*"), (M.mask_name, "", ""),
    (M.mask_id_number, "370202199001011234", "370202********1234"),
    (M.mask_id_number, "37020219900101123X", "370202********123X"),
    (M.mask_id_number, "370202900101123", "370202*****1123"),
    (M.mask_phone, "13812341234", "138****1234"), (M.mask_phone, "0532-83881234", "0532-****1234"),
    (M.mask_phone, "12345", "*****"),
    (M.mask_plate, "鲁B12345", "鲁B·***45"), (M.mask_plate, "鲁B·12345", "鲁B·***45"),
    (M.mask_plate, "鲁BD12345", "鲁B·****45"),
])
def test_access201_each_field_masks_as_an_office_prints_it(fn, value, masked):
    assert fn(value) == masked


def test_access202_every_sensitive_column_of_the_schema_is_masked_and_nothing_else():
    cols = sensitive_columns()
    assert cols  # the schema marks some
    for table, names in cols.items():
        row = {name: "370202199001011234" for name in names} | {"id": 7, "grid_code": "370202001001001"}
        out = M.mask_row(table, row)
        for name in names:
            assert out[name] != row[name] and "*" in out[name], (table, name)
            assert name in M.MASKERS, f"{table}.{name}: a personal column without its own mask"
        assert out["id"] == 7 and out["grid_code"] == row["grid_code"]
    assert M.mask_row("person", {"name": None})["name"] is None


def _p(role, kind="user", scope="370202"):
    return Principal(kind=kind, id=1, name="x", role=role, scope=scope)


def test_access203_who_may_see_records_and_who_may_reveal_them():
    assert M.may_reveal(_p("administrator", scope="")) and M.may_reveal(_p("district_operator"))
    assert M.may_reveal(_p("community_worker", scope="370202001001"))
    assert M.may_see_records(_p("street_secretary", scope="370202001")) and not M.may_reveal(_p("street_secretary"))
    assert not M.may_see_records(_p("wall", kind="token")) and not M.may_reveal(_p("wall", kind="token"))
    assert not M.may_see_records(None) and not M.may_reveal(None)
