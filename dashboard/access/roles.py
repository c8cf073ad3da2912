"""The roles, and the level of region a principal of each is bound to."""
from __future__ import annotations

ADMINISTRATOR = "administrator"
DISTRICT_OPERATOR = "district_operator"
STREET_SECRETARY = "street_secretary"
COMMUNITY_WORKER = "community_worker"
WALL = "wall"

# roles of people who sign in with a password; a wall is a display token, never a user
USER_ROLES = (ADMINISTRATOR, DISTRICT_OPERATOR, STREET_SECRETARY, COMMUNITY_WORKER)
ROLES = USER_ROLES + (WALL,)

# the level of the region a role's scope must be; None: any level (an administrator may also have
# no scope at all: everything; a wall may show a district, a street or a community)
SCOPE_LEVEL: dict[str, str | None] = {
    ADMINISTRATOR: None,
    DISTRICT_OPERATOR: "district",
    STREET_SECRETARY: "street",
    COMMUNITY_WORKER: "community",
    WALL: None,
}

LABEL = {  # zh, en
    ADMINISTRATOR: ("管理员", "Administrator"),
    DISTRICT_OPERATOR: ("区指挥中心操作员", "District operator"),
    STREET_SECRETARY: ("街道党工委书记", "Street secretary"),
    COMMUNITY_WORKER: ("社区工作者", "Community worker"),
    WALL: ("大屏", "Wall display"),
}


class RoleError(ValueError):
    """A role or a role's scope that cannot be (one line for the user)."""


def check_role_scope(role: str, scope: str, level_of) -> None:
    """Raise RoleError unless ``scope`` suits ``role``; ``level_of(code)`` gives a region's level
    or None when there is no such region."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    if not scope:
        if role == ADMINISTRATOR:
            return
        raise RoleError(f"role {role} needs a scope (a region code)")
    level = level_of(scope)
    if level is None:
        raise RoleError(f"unknown scope {scope!r}: no region has that code")
    want = SCOPE_LEVEL[role]
    if want is not None and level != want:
        raise RoleError(f"role {role} needs a {want} code; {scope} is a {level}")
