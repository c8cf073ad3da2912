"""Production entry point: ``gunicorn -k gthread --threads 16 -w 1 'dashboard.wsgi:server'``.

The web process only serves; run the consumer (and, for a demo, the
simulator) as their own processes: ``python -m dashboard consume`` and
``python -m dashboard simulate``. Settings come from the environment.
"""
from .app import create_app

app = create_app()
server = app.server
