"""WSGI entry point, kept for WSGI servers: ``gunicorn -k gthread --threads 16 -w 1 'dashboard.wsgi:server'``.

It does NOT carry the scalable push: under WSGI ``/api/v1/live`` is the Flask route of
``dashboard/api/live.py``, which holds a server thread and a Redis connection per open page, so a
16-thread worker stops answering at its 17th live page. Use the ASGI entry for production,
``uvicorn dashboard.asgi:app`` (see dashboard/asgi.py and the README's production layout).
Settings come from the environment.
"""
from .access.startup import require_secret_key
from .app import create_app
from .settings import Settings

require_secret_key(Settings.from_env())  # outside demo mode SECRET_KEY must be set
app = create_app()
server = app.server
