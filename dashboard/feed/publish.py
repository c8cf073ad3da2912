"""Putting messages on the feed: validate, then XADD (never write the store directly)."""
from __future__ import annotations

import redis

from .contract import STREAM, dump, parse


def publish(r: redis.Redis, message) -> str:
    """Validate ``message`` (a model, dict or JSON text) and add it to the stream.

    Returns the stream entry id. Raises contract.InvalidMessage on bad input.
    Producers never trim: only the consumer trims, and never past what the
    group has not acknowledged.
    """
    model = message if hasattr(message, "model_dump_json") else parse(message)
    entry_id = r.xadd(STREAM, {"m": dump(model)})
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def publish_all(r: redis.Redis, messages) -> int:
    """Validate and add ``messages`` in one round trip (a pipeline); all or, on a Redis error, unknown."""
    pipe = r.pipeline(transaction=False)
    for m in messages:
        publish(pipe, m)
    pipe.execute()
    return len(messages)


def publish_raw(r: redis.Redis, payload: bytes | str) -> str:
    """Add an unvalidated payload (tests and replay tools: the consumer must cope)."""
    entry_id = r.xadd(STREAM, {"m": payload})
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
