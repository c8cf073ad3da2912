"""``python -m dashboard consume --workers N``: N consumer processes in one group.

A consumer spends about a third of each message outside the database write
(reading the stream, validating, placing, acknowledging, publishing deltas),
and Python runs that on one core. Two processes overlap one's Python work with
the other's write: bench/ingest.py measured 1.6-1.7x one process's rate on a
2-core machine, into SQLite and PostgreSQL alike. The workers are ordinary
members of the consumer group, so everything the group guarantees holds as it
does for consumers on several machines: each message applied once (the
ledger), a case's steps held until their case exists, a dead worker's pending
entries claimed back by the others.

The parent starts the embedded Redis when there is no ``REDIS_URL`` (the
workers connect to it), forwards SIGTERM/SIGINT to the workers, waits for them
to finish their batch, and exits non-zero if any worker failed. A stop that
comes while it opens the store starts no worker. A worker
whose parent dies gets SIGTERM (Linux ``PR_SET_PDEATHSIG``), so no orphan keeps
consuming.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal

from ..settings import Settings
from .signals import stop_on_signals

log = logging.getLogger(__name__)
MAX_AUTO_WORKERS = 4


def worker_count(settings: Settings, workers: int | None = None) -> int:
    n = settings.consumer_workers if workers is None else workers
    if n > 0:
        return n
    return max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))


def cli_consume_pool(settings: Settings, name: str | None = None, burst: bool = False,
                     workers: int | None = None) -> int:
    from .consumer import cli_consume, default_name

    n = worker_count(settings, workers)
    if n == 1:
        return cli_consume(settings, name=name, burst=burst)
    from ..services import Services

    procs: list = []
    stopping = []

    def _stop_started():
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    def _forward(signum, _frame):
        stopping.append(signum)
        log.info("stop requested; stopping the workers", extra={"signal": signum, "workers": n})
        _stop_started()

    # set before anything slow: a stop while migrating or starting Redis means no worker starts
    old = {sig: signal.signal(sig, _forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    services = None
    try:
        services = Services.open(settings)  # migrations, and the embedded Redis the workers share
        base = name or default_name(settings)
        ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited engine, sockets or threads
        procs.extend(ctx.Process(target=_worker, args=(settings, services.redis_url, f"{base}-{i}", burst),
                                 name=f"{base}-{i}") for i in range(1, n + 1))
        for p in procs:
            if stopping:
                break
            p.start()
        if stopping:  # a stop that came while one was being started reaches it too
            _stop_started()
        started = [p for p in procs if p.pid is not None]
        if started:
            log.info("consumer workers started", extra={"workers": len(started), "names": [p.name for p in started],
                                                        "pids": [p.pid for p in started]})
        for p in procs:
            if p.pid is not None:
                p.join()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for p in procs:  # an exception above: do not leave workers behind
            if p.pid is not None and p.is_alive():
                p.terminate()
                p.join(10)
        if services is not None:
            services.close()
    # a worker still starting (before it could set its handler) ends by the SIGTERM itself
    failed = [p.name for p in procs if p.pid is not None and p.exitcode != 0
              and not (stopping and p.exitcode == -signal.SIGTERM)]
    if failed:
        log.error("consumer workers failed", extra={"workers": failed})
    return 1 if failed else 0


def report_line(name: str, stats: dict, out=None) -> None:
    """The worker's closing ``name: k=v ...`` line, in one write.

    The workers share the parent's stdout. ``print`` writes the text and the
    newline in two calls, which under ``PYTHONUNBUFFERED`` (as in CI) are two
    syscalls, so two workers finishing together interleaved as
    ``p-1: ...p-2: ...`` then two newlines. One write of a short line to a pipe
    is atomic (POSIX, under ``PIPE_BUF``)."""
    import sys

    out = out or sys.stdout
    out.write(f"{name}: " + " ".join(f"{k}={v}" for k, v in stats.items()) + "\n")
    out.flush()


def _worker(settings: Settings, redis_url: str, name: str, burst: bool) -> None:
    stop = stop_on_signals()
    from ..redis_server import connect_settings, die_with_parent

    if die_with_parent is not None:  # elsewhere the parent's finally still stops its workers
        die_with_parent()
    from ..logs import setup_logging
    from ..store.engine import make_engine
    from .consumer import Consumer

    setup_logging(settings.log_level)
    engine = make_engine(settings.effective_database_url)
    block_ms = 1000
    r = connect_settings(settings, redis_url, socket_timeout=block_ms / 1000 + 10, socket_connect_timeout=5)
    consumer = Consumer(engine, r, name=name, block_ms=block_ms, claim_idle_ms=settings.claim_idle_ms,
                        stream_maxlen=settings.stream_maxlen, timezone_name=settings.timezone, stop_event=stop,
                        settings=settings)
    try:
        try:
            consumer.prepare()
        except Exception:  # noqa: BLE001 - the store may be down: run() waits it out
            log.warning("could not load the regions before the first batch", extra={"consumer": name})
        stats = consumer.run(burst=burst)
        report_line(name, stats)
    finally:
        r.close()
        engine.dispose()
