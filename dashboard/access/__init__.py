"""Who sees what: users, roles, wall tokens, sign-in, scope rule and audit log (issue 18).

- ``roles``: the five roles and which level of region each is bound to.
- ``scope``: ``effective_scope(principal, requested, exists)``, the pure rule (never wider).
- ``passwords``: Argon2id hashing (argon2-cffi).
- ``users``: users and wall tokens in the SQL store (tables in ``dashboard.store.schema``).
- ``audit``: the append-only audit log (``record``, ``query``).
- ``signin``: password checks with lock-out; one message for every failure.
- ``web``: ``register(server, services)``: Flask-Login, /signin, /signout, idle expiry,
  the ``ACCESS_REQUIRED`` gate, ``/api/v1/me``.
- ``identity``: who an ASGI request is (the Flask session cookie or a wall ``?token=``), for
  the live push that is not served by Flask.
- ``demo``: the demo's users, one of each role (``var/demo-users.txt``).
- ``cli_users`` / ``cli_audit``: ``python -m dashboard users …`` and ``python -m dashboard audit``.
"""
