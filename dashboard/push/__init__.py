"""The live push: server-sent events for every open page, from one reader per web process.

``protocol`` holds the SSE format and the resume rules (shared with the thread-per-page Flask
route in ``dashboard/api/live.py`` that WSGI servers still use); ``hub`` reads the deltas stream
once per process and fans entries out to pages; ``endpoint`` is the ASGI handler of
``/api/v1/live``.
"""
