"""Production entry point (ASGI): ``uvicorn dashboard.asgi:app --workers N --host 0.0.0.0 --port 8050``.

The live push (``/api/v1/live``) is served on uvicorn's event loop by one Redis reader per worker
(``dashboard.push``); everything else goes to the Dash/Flask app through a thread pool
(``dashboard.web.asgi``). The web process only serves: run the consumer (and, for a demo, the
simulator) as their own processes, ``python -m dashboard consume`` and ``python -m dashboard
simulate``. Settings come from the environment; every worker must see the same REDIS_URL,
DATABASE_URL and SECRET_KEY (or VAR_DIR holding the generated one).
``python -m dashboard --web-workers N`` runs the same thing with the consumer in one command.
"""
from __future__ import annotations


def create():
    from .access.startup import require_secret_key
    from .app import create_app
    from .settings import Settings
    from .web.asgi import make_asgi

    require_secret_key(Settings.from_env())  # outside demo mode SECRET_KEY must be set
    return make_asgi(create_app())


def __getattr__(name: str):
    # built on first use, so importing this module (a test, the CLI) opens nothing
    if name == "app":
        global app
        app = create()
        return app
    raise AttributeError(name)
