"""Putting messages on the feed: validate, then XADD (never write the store directly).

Durability: with ``replicas`` > 0 (setting REDIS_WAIT_REPLICAS) a message counts as accepted
only once Redis ``WAIT`` says that many replicas hold it, so a fail-over to one of them cannot
lose it; short of that the publisher raises ``NotReplicated`` and the caller retries. A retry
may add the same message twice: the consumer's ledger applies a message id once.
"""
from __future__ import annotations

import logging
import time

import redis

from .contract import STREAM, dump, parse

log = logging.getLogger(__name__)


class NotReplicated(redis.RedisError):
    """The message is on the primary, but fewer replicas than asked acknowledged it in time."""


def _wait(pipe, replicas: int, timeout_ms: int) -> None:
    # WAIT counts the writes of its own connection: it goes in the same pipeline as the XADD
    pipe.execute_command("WAIT", replicas, timeout_ms)


def _check(got, replicas: int, timeout_ms: int) -> None:
    if int(got) < replicas:
        raise NotReplicated(f"{int(got)} of {replicas} replicas acknowledged within {timeout_ms} ms")


def _sid(entry_id) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def publish(r: redis.Redis, message, *, replicas: int = 0, timeout_ms: int = 1000, also=None) -> str:
    """Validate ``message`` (a model, dict or JSON text) and add it to the stream.

    Returns the stream entry id. Raises contract.InvalidMessage on bad input, NotReplicated when
    ``replicas`` did not acknowledge it in ``timeout_ms``. ``also(pipe, model)``: more writes sent
    with it in one round trip (before the WAIT, so it covers them too). Producers never trim: only
    the consumer trims, and never past what the group has not acknowledged.
    """
    model = message if hasattr(message, "model_dump_json") else parse(message)
    if not replicas and also is None:
        return _sid(r.xadd(STREAM, {"m": dump(model)}))
    pipe = r if isinstance(r, redis.client.Pipeline) else r.pipeline(transaction=False)
    pipe.xadd(STREAM, {"m": dump(model)})
    if also is not None:
        also(pipe, model)
    if replicas:
        _wait(pipe, replicas, timeout_ms)
    if pipe is r:  # the caller's pipeline executes (and checks) later
        return ""
    out = pipe.execute()
    if replicas:
        _check(out[-1], replicas, timeout_ms)
    return _sid(out[0])


def publish_all(r: redis.Redis, messages, *, replicas: int = 0, timeout_ms: int = 1000) -> int:
    """Validate and add ``messages`` in one round trip (a pipeline); all or, on a Redis error, unknown."""
    pipe = r.pipeline(transaction=False)
    for m in messages:
        model = m if hasattr(m, "model_dump_json") else parse(m)
        pipe.xadd(STREAM, {"m": dump(model)})
    if replicas:
        _wait(pipe, replicas, timeout_ms)
    out = pipe.execute()
    if replicas:
        _check(out[-1], replicas, timeout_ms)
    return len(messages)


def publish_raw(r: redis.Redis, payload: bytes | str) -> str:
    """Add an unvalidated payload (tests and replay tools: the consumer must cope)."""
    return _sid(r.xadd(STREAM, {"m": payload}))


# --- riding out an outage or a fail-over ---------------------------------------------------------
TRANSIENT_REPLIES = ("READONLY", "MASTERDOWN", "NOREPLICAS", "LOADING", "TRYAGAIN", "CLUSTERDOWN")


def transient(exc: BaseException) -> bool:
    """Will the same write succeed later (Redis restarting, failing over, replicas catching up)?"""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, NotReplicated)):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).upper().startswith(TRANSIENT_REPLIES)


def retrying(call, *, deadline_s: float, lo: float = 0.05, hi: float = 2.0, sleep=time.sleep):
    """``call()`` until it succeeds, retrying transient Redis errors with capped exponential back-off
    for at most ``deadline_s`` seconds; then the last error is raised (the caller says unavailable)."""
    end = time.monotonic() + deadline_s
    wait = lo
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            left = end - time.monotonic()
            if not transient(exc) or left <= 0:
                raise
            log.info("publish failed; retrying", extra={"error": f"{exc.__class__.__name__}: {exc}",
                                                        "retry_in_s": round(min(wait, left), 3)})
            sleep(min(wait, left))
            wait = min(hi, wait * 2)


def publish_retrying(r: redis.Redis, message, *, deadline_s: float = 10.0, replicas: int = 0,
                     timeout_ms: int = 1000, also=None, **backoff) -> str:
    """``publish`` that rides out a restart or a fail-over for up to ``deadline_s`` seconds.

    A retry after an unknown outcome (the connection broke after the XADD, or WAIT fell short)
    may add the message again; the consumer applies its id once.
    """
    model = message if hasattr(message, "model_dump_json") else parse(message)
    return retrying(lambda: publish(r, model, replicas=replicas, timeout_ms=timeout_ms, also=also),
                    deadline_s=deadline_s, **backoff)


def publish_all_retrying(r: redis.Redis, messages, *, deadline_s: float = 10.0, replicas: int = 0,
                         timeout_ms: int = 1000, **backoff) -> int:
    models = [m if hasattr(m, "model_dump_json") else parse(m) for m in messages]
    return retrying(lambda: publish_all(r, models, replicas=replicas, timeout_ms=timeout_ms),
                    deadline_s=deadline_s, **backoff)
