"""``python -m dashboard users add|list|disable|enable|passwd|token|tokens|revoke|import``.

Passwords are generated (and printed once) unless ``--password-stdin`` gives one (a password on
the command line would show in the process list). The actor in the audit log is ``cli:<OS user>``.
"""
from __future__ import annotations

import csv
import getpass
import sys

from ..errors import CliError
from .roles import USER_ROLES
from .users import AccessError, add_token, add_user, list_tokens, list_users, revoke_token, set_disabled, set_password


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{add,list,disable,enable,passwd,token,tokens,revoke,import}")
    a = sub.add_parser("add", help="add a user")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=USER_ROLES)
    a.add_argument("--scope", default="", help="region code: district, street or community as the role needs "
                                               "(an administrator may have none: everything)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("list", help="list users")
    for name, text in (("disable", "disable a user (their sessions end)"), ("enable", "enable a user again")):
        sub.add_parser(name, help=text).add_argument("username")
    pw = sub.add_parser("passwd", help="set a new password (lifts a lock-out; older sessions end)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    tk = sub.add_parser("token", help="make a wall display token bound to a scope (printed once)")
    tk.add_argument("--scope", required=True)
    tk.add_argument("--label", required=True, help="where the wall is, e.g. 'hall-1'")
    sub.add_parser("tokens", help="list wall tokens")
    rv = sub.add_parser("revoke", help="revoke a wall token (its wall is refused from its next request)")
    rv.add_argument("token_id", type=int)
    im = sub.add_parser("import", help="add users from a CSV file with columns username,role,scope "
                                       "(all or nothing: a repeated name or an unknown scope refuses the file)")
    im.add_argument("file")


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in a bare container
        return "cli"


def _password(args) -> tuple[str, bool]:
    """(password, generated)."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on standard input")
        return line, False
    from .passwords import generate_password

    return generate_password(), True


def _engine(settings):
    from ..store.engine import make_engine, migrate

    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    return engine


def run(args, settings) -> int:
    engine = _engine(settings)
    try:
        return _run(engine, args)
    except AccessError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()


def _run(engine, args) -> int:
    who = actor()
    if args.action == "add":
        password, generated = _password(args)
        add_user(engine, args.username, password, args.role, args.scope, actor=who)
        print(f"added {args.username} ({args.role}, scope {args.scope or 'all'})")
        if generated:
            print(f"password: {password}")
    elif args.action == "list":
        print("username\trole\tscope\tstate\tfailures\tlocked_until")
        for u in list_users(engine):
            print(f"{u['username']}\t{u['role']}\t{u['scope'] or '-'}\t{'disabled' if u['disabled'] else 'enabled'}"
                  f"\t{u['failed_count']}\t{u['locked_until'].isoformat() if u['locked_until'] else '-'}")
    elif args.action in ("disable", "enable"):
        set_disabled(engine, args.username, args.action == "disable", actor=who)
        print(f"{args.action}d {args.username}")
    elif args.action == "passwd":
        password, generated = _password(args)
        set_password(engine, args.username, password, actor=who)
        print(f"new password set for {args.username}" + (f": {password}" if generated else ""))
    elif args.action == "token":
        tid, token = add_token(engine, args.label, args.scope, actor=who)
        print(f"wall token {tid} ({args.label}, scope {args.scope}); shown once:")
        print(token)
        print(f"open the wall at /wall?token={token}")
    elif args.action == "tokens":
        print("id\tlabel\tscope\tcreated_by\tcreated_at\trevoked_at")
        for tk in list_tokens(engine):
            print(f"{tk['id']}\t{tk['label']}\t{tk['scope']}\t{tk['created_by']}\t{tk['created_at'].isoformat()}"
                  f"\t{tk['revoked_at'].isoformat() if tk['revoked_at'] else '-'}")
    elif args.action == "revoke":
        revoke_token(engine, args.token_id, actor=who)
        print(f"revoked wall token {args.token_id}")
    elif args.action == "import":
        for username, role, scope, password in import_users(engine, args.file, actor=who):
            print(f"{role}\t{username}\t{password}\t{scope}")
    return 0


def read_user_file(path: str) -> list[dict]:
    """Rows of a users CSV (username, role, scope), each with its line number; file problems as CliError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"username", "role", "scope"} - set(reader.fieldnames or ())
            if missing:
                raise CliError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need username,role,scope)")
            return [{"line": reader.line_num, **{k: (v or "").strip() for k, v in row.items() if k}} for row in reader]
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None


def import_users(engine, path: str, *, actor: str) -> list[tuple[str, str, str, str]]:
    """Check every row first (names unique in the file and new to the store, roles known, scopes
    real and of the role's level); refuse the file naming each bad row; then add them all, with
    generated passwords, in one transaction."""
    from sqlalchemy import select

    from ..store.schema import access_user
    from .passwords import generate_password
    from .roles import RoleError, check_role_scope
    from .users import USERNAME_RE, level_of

    rows = read_user_file(path)
    problems, seen = [], {}
    with engine.connect() as conn:
        existing = set(conn.execute(select(access_user.c.username)).scalars())
        for r in rows:
            where = f"{path}:{r['line']}"
            name = r["username"]
            if not USERNAME_RE.match(name):
                problems.append(f"{where}: user name {name!r} is not valid")
            elif name in seen:
                problems.append(f"{where}: duplicate user name {name!r} (also line {seen[name]})")
            elif name in existing:
                problems.append(f"{where}: user {name!r} exists already")
            seen.setdefault(name, r["line"])
            if r["role"] not in USER_ROLES:
                problems.append(f"{where}: unknown role {r['role']!r}")
                continue
            try:
                check_role_scope(r["role"], r["scope"], lambda code: level_of(conn, code))
            except RoleError as exc:
                problems.append(f"{where}: {exc}")
    if problems:
        raise CliError("refused, nothing imported:\n" + "\n".join(problems))
    from .passwords import hash_password
    from . import audit
    from .users import now

    out = []
    with engine.begin() as conn:
        t = now()
        for r in rows:
            password = generate_password()
            conn.execute(access_user.insert().values(
                username=r["username"], password_hash=hash_password(password), role=r["role"], scope=r["scope"],
                disabled=False, failed_count=0, created_at=t, updated_at=t))
            audit.record(conn, audit.USER_ADDED, actor=actor, user=r["username"], role=r["role"], scope=r["scope"],
                         source=path)
            out.append((r["username"], r["role"], r["scope"], password))
    return out
