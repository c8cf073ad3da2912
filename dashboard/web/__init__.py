"""The production web server: an ASGI front (uvicorn) carrying the live push itself and handing
every other request to the Dash/Flask app through a thread pool (``asgi.py``); how
``python -m dashboard`` runs it with one or several worker processes (``run.py``); the session
key every worker shares (``secret.py``)."""
