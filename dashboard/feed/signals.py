"""The consumer's stop: SIGTERM and SIGINT heard from the first moment of the process."""
from __future__ import annotations

import signal
import threading


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set, for a consumer's ``stop_event``.

    Called first thing, before anything slow (migrations, the embedded Redis, the regions): a
    stop that comes while the process starts is kept, and the run then ends at once with its
    stats line, instead of the signal's default action killing the process unannounced. This
    module imports nothing heavy, so a pool worker calls it before its own imports.

    The handler only sets the event. A log write from a handler that interrupts another write
    to the same stream raises "reentrant call"; the consumer logs its stop ("consumer stopped",
    with its stats) once its loop sees the event."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop
