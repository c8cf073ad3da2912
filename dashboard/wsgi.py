"""WSGI entry point, kept for WSGI servers: ``gunicorn -k gthread --threads 16 -w 1 'dashboard.wsgi:server'``.

It does NOT carry the scalable push: under WSGI ``/api/v1/live`` is the Flask route of
``dashboard/api/live.py``, which holds a server thread and a Redis connection per open page, so a
16-thread worker stops answering at its 17th live page. Use the ASGI entry for production,
``uvicorn dashboard.asgi:app`` (see dashboard/asgi.py and the README's production layout).
Settings come from the environment.
"""
from .app import create_app

app = create_app()
server = app.server
