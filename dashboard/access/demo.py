"""The demo's users: one of each role, made on the first start of the demo.

Passwords (and the wall's token) are generated, printed once, and written to
``VAR_DIR/demo-users.txt`` (mode 0600), one line each: ``role<TAB>username<TAB>password<TAB>scope``
(for the wall: the token's label and the token itself), so scripts can read it.
"""
from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select

from ..store.schema import access_user, region
from .passwords import generate_password
from .roles import ADMINISTRATOR, COMMUNITY_WORKER, DISTRICT_OPERATOR, STREET_SECRETARY, WALL
from .users import add_token, add_user

FILE = "demo-users.txt"
DEMO_STREET = "370202001"  # the demo district's first street (八大峡街道)
ACTOR = "demo-seed"


def _codes(conn) -> dict[str, str] | None:
    """The district, a street (370202001 when there is one) and that street's first community."""
    district = conn.execute(select(func.min(region.c.code)).where(region.c.level == "district")).scalar()
    if district is None:
        return None
    street = conn.execute(select(region.c.code).where(region.c.code == DEMO_STREET)).scalar() or conn.execute(
        select(func.min(region.c.code)).where(region.c.level == "street")).scalar()
    community = street and conn.execute(select(func.min(region.c.code)).where(region.c.level == "community")
                                        .where(region.c.parent_code == street)).scalar()
    if not street or not community:
        return None
    return {"district": district, "street": street, "community": community}


def ensure_demo_users(services, out=print) -> Path | None:
    """Make the demo users when the store has none (and regions to scope them to); returns the file."""
    engine, path = services.engine, services.settings.var_path / FILE
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(access_user)).scalar_one():
            if path.exists():
                out(f"演示账号见 {path} (demo users: {path})")
            return None
        codes = _codes(conn)
    if codes is None:
        return None
    lines = []
    for role, username, scope in ((ADMINISTRATOR, "admin", ""), (DISTRICT_OPERATOR, "operator", codes["district"]),
                                  (STREET_SECRETARY, "secretary", codes["street"]),
                                  (COMMUNITY_WORKER, "worker", codes["community"])):
        password = generate_password()
        add_user(engine, username, password, role, scope, actor=ACTOR)
        lines.append((role, username, password, scope))
    _, token = add_token(engine, "demo-wall", codes["district"], actor=ACTOR)
    lines.append((WALL, "demo-wall", token, codes["district"]))
    write_users_file(path, lines)
    out(f"演示账号（仅显示一次，已写入 {path}）· demo users (shown once, written to {path}):")
    for role, username, password, scope in lines:
        out(f"  {role}\t{username}\t{password}\t{scope or '-'}")
    return path


def write_users_file(path: Path, lines) -> None:
    """Written to a new file that is 0600 from its creation (never readable by others, not even
    for a moment), then moved into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for role, username, password, scope in lines:
            f.write(f"{role}\t{username}\t{password}\t{scope}\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode is masked by the umask; the file must not be wider than 0600
    os.replace(tmp, path)
