"""Masking of residents' personal fields, and who may see one record in full.

The columns are the schema's own list (``store.schema.sensitive_columns()``: ``info={"sensitive":
True}``), so a new personal column is masked without touching this module. Each field masks the
way a Chinese office prints it: names keep the surname and the last character (张*峰), ID numbers
the region and the last four (370202********1234), mobile numbers the prefix and the last four
(138****1234), plates the province and city letter and the last two (鲁B·***45).

Who may reveal: administrators and district operators (the command center dispatches to people),
and community workers, but only inside their own community (their scope; the caller checks it
with ``web.request_scope``). Street secretaries see masked records (they steer, they do not visit
households); a wall token never sees a record at all, masked or not. A reveal is one record at a
time and is written to the audit log (``audit.RECORD_REVEALED``).
"""
from __future__ import annotations

from ..store.schema import sensitive_columns
from .roles import ADMINISTRATOR, COMMUNITY_WORKER, DISTRICT_OPERATOR, WALL

MASK = "*"
REVEAL_ROLES = frozenset({ADMINISTRATOR, DISTRICT_OPERATOR, COMMUNITY_WORKER})
RECORD_ROLES = frozenset({ADMINISTRATOR, DISTRICT_OPERATOR, COMMUNITY_WORKER, "street_secretary"})
assert WALL not in RECORD_ROLES


def mask_name(name: str) -> str:
    """张三峰 -> 张*峰, 张三 -> 张*, 欧阳娜娜 -> 欧**娜; a Latin name keeps its first and last letter."""
    s = (name or "").strip()
    if len(s) <= 1:
        return MASK if s else ""
    if len(s) == 2:
        return s[0] + MASK
    return s[0] + MASK * (len(s) - 2) + s[-1]


def mask_id_number(value: str) -> str:
    """370202199001011234 -> 370202********1234 (an 18-digit resident ID; 15-digit ones alike)."""
    s = (value or "").strip()
    if len(s) <= 10:
        return MASK * len(s)
    return s[:6] + MASK * (len(s) - 10) + s[-4:]


def mask_phone(value: str) -> str:
    """13812341234 -> 138****1234; a landline 0532-83881234 -> 0532****1234."""
    s = (value or "").strip()
    if not s:
        return ""
    if len(s) < 8:
        return MASK * len(s)
    keep = s.find("-") + 1 if "-" in s[:5] else 3  # an area code, or a mobile's network prefix
    return s[:keep] + MASK * (len(s) - keep - 4) + s[-4:]


def mask_plate(value: str) -> str:
    """鲁B12345 -> 鲁B·***45 (a dot after the issuing office, as plates are printed)."""
    s = (value or "").strip().replace("·", "").replace("-", "").replace(" ", "")
    if len(s) <= 4:
        return MASK * len(s)
    return s[:2] + "·" + MASK * (len(s) - 4) + s[-2:]


MASKERS = {"name": mask_name, "id_number": mask_id_number, "phone": mask_phone, "plate": mask_plate}


def mask_value(column: str, value):
    """The masked form of one personal value; an unknown personal column is hidden whole."""
    if value is None:
        return None
    fn = MASKERS.get(column)
    return fn(str(value)) if fn else MASK * 4


def mask_row(table: str, row: dict) -> dict:
    """``row`` with every personal column of ``table`` masked (other columns untouched)."""
    cols = sensitive_columns().get(table, ())
    return {k: (mask_value(k, v) if k in cols else v) for k, v in row.items()}


def may_see_records(principal) -> bool:
    """A principal that may open one person's or vehicle's record (masked)."""
    return principal is not None and getattr(principal, "role", None) in RECORD_ROLES \
        and getattr(principal, "kind", "") == "user"


def may_reveal(principal) -> bool:
    """A principal that may see one record in full (the record must still be inside its scope)."""
    return may_see_records(principal) and principal.role in REVEAL_ROLES
