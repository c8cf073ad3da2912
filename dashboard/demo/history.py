"""The demo district's past: a year of reports and their case cycles, applied by the feed's own code.

A command center never starts from an empty day: its trends, rates, street ranking and 三零
communities read weeks of history, and 同比 (the standard rates' and the weekly briefing's
comparison with the same period a year earlier) reads a year. The backfill runs ONE simulator
``Generator`` from ``days`` ago up to now, without position pings (nobody needs last month's
walk): every case follows the case rules from its report to its end or to now, across the whole
span. Cases still open at the end are what the live simulator then carries on (``Recovered``).

Two ways into the store, one generator:

* the older part (all but the last ``STREAM_DAYS``) is written with ``write_direct``: the
  consumer's own code (placing, ``apply_batch`` with the case engine, the duplicate index, the
  ledger) without the Redis stream, in big batches: the same rows the consumer writes
  (test_cases410), minus the round trips. Its patrol check-ins are drawn but not sent
  (``Generator(patrols_from=...)``): only today's patrol coverage reads check-in rows, and a
  year of them would be two in five of the history's messages; the hazards they find are sent.
* the last ``STREAM_DAYS`` (this week and last, check-ins included) go through the real feed:
  XADD to the stream, the consumer group validates and applies them once each, a day at a time,
  trimming what was acknowledged so the stream never holds much more than a day of history.

Generating and writing overlap: the generator runs in a child process and hands over each day's messages as the contract's JSON
text, unvalidated there (``Generator(as_json=True)``); this process validates each on arrival,
as the consumer does, and writes. The writer is the longer half (for the demo's year ~130 s of
CPU against the generator's ~90 s), so on two cores the year costs about the writer's time (README).

How long (DEMO_HISTORY_DAYS, 386): the weekly briefing compares a week with the same ISO week
number a year earlier, which is 53 weeks back when that year had 53; from a Sunday night, last
week's year-ago week starts 385 days back (2027-01-10: 2026-W53 against 2025-W52); one more day
for the first reports (test_seed022).
"""
from __future__ import annotations

import json
import logging
import os
import queue as queue_mod
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from sqlalchemy import exc as sa_exc
from tqdm import tqdm

from ..domain import OPEN_STATES
from ..feed.apply import Item, MaybeReplay, apply_batch
from ..feed.consumer import Consumer, tune_gc
from ..feed.contract import HEALTH, dump, parse
from ..feed.publish import publish_all
from ..feed.simulate import Generator, World

log = logging.getLogger(__name__)

SEED_OFFSET = 1  # the history's random stream differs from the live simulator's of the same seed
KEEP_IN_STREAM = 20_000  # acknowledged history left in the stream after each day
# The last days go through the stream and the consumer group, as the live feed does: the week the
# wall and the weekly briefing look at most, and the only days whose patrol check-ins are sent.
STREAM_DAYS = 7
DIRECT_BATCH = 10_000  # messages per transaction of write_direct: fewer commits and look-ups
AHEAD_DAYS = 8  # days the generating process may run ahead of the writer (memory bound)


def backfill(services, days: int, *, seed: int | None = None, rate: float | None = None,
             now: datetime | None = None, progress: bool = False, stop_event=None,
             stream_days: int | None = None, parallel: bool | None = None) -> dict:
    """Generate ``days`` days of past reports, steps and hazards up to ``now`` and apply them:
    the last ``stream_days`` (default STREAM_DAYS) through the stream and the consumer group,
    the days before with ``write_direct``. ``parallel`` (default: when the machine has two cores
    or more) generates in a child process while this one writes. Returns counts.

    The history is stored, not pushed: open screens are not sent a year of deltas (the panels
    read it from the store on their next tick).
    """
    s = services.settings
    if days <= 0:
        return {"days": 0, "published": 0}
    started, cpu = time.perf_counter(), time.process_time()
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(days=days)
    split = max(start, now - timedelta(days=STREAM_DAYS if stream_days is None else stream_days))
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2
    spec = {"seed": (s.demo_seed if seed is None else seed) + SEED_OFFSET, "start": start, "until": now,
            "split": split, "rate": s.sim_rate if rate is None else rate, "tz": s.timezone}
    consumer = Consumer(_without_sweep(services), name="history-backfill", batch=2000, push=False, stop_event=stop_event,
                        stream_maxlen=KEEP_IN_STREAM)
    consumer.resolver.resolve([])  # the district's locator, built now: tune_gc then keeps it out of the collector's way
    tune_gc()  # as the consumer does: a year of batches allocates millions of short-lived objects
    stats = {"days": days, "stream_days": round((now - split) / timedelta(days=1), 2), "published": 0,
             "direct": 0, "streamed": 0}
    direct = {"applied": 0, "dead": 0}
    buffer: list = []
    counts: dict = {}
    stream_s = 0.0
    done = 0
    t = start
    bar = tqdm(total=days, unit="day", disable=not progress, desc="history")

    def flush() -> None:
        if buffer:
            # validated again on arrival, as the consumer does; the text is what the ledger keeps
            _add(direct, write_direct(services, [parse(r) for r in buffer], consumer, first=stats["direct"] + 1,
                                      raws=buffer))
            stats["direct"] += len(buffer)
            buffer.clear()

    days_in = _days_parallel(services.engine, spec, stop_event) if parallel else _days_here(services.engine, spec)
    try:
        for t, raws in days_in:
            if t is None:  # the end: the generator's counts
                counts = raws
                break
            # the wall's header says why its figures are still moving (feed health, read by every screen)
            services.redis.hset(HEALTH, mapping={"history": f"{done}/{days}", "history_at": time.time()})
            stats["published"] += len(raws)
            if t <= split:
                buffer += raws
                if len(buffer) >= DIRECT_BATCH or t == split:
                    flush()
            else:
                flush()
                t0 = time.perf_counter()
                _feed_day(services, raws, consumer)
                stats["streamed"] += len(raws)
                stream_s += time.perf_counter() - t0
            done += 1
            bar.update(1)
            if stop_event is not None and stop_event.is_set():
                break
        if not (stop_event is not None and stop_event.is_set()):
            flush()
    finally:
        days_in.close()  # stops the generating process if it is still running
        bar.close()
        try:
            services.redis.hdel(HEALTH, "history", "history_at")
        except redis.RedisError:  # Redis went away: read_health ignores progress not renewed for a while
            log.warning("could not clear the history progress from the feed health")
    stats.update({"stopped": not counts, **counts, "direct_dead": direct["dead"],
                  "dead_letters": consumer.stats.get("dead", 0) + direct["dead"],
                  "stream_s": round(stream_s, 1), "cpu_s": round(time.process_time() - cpu, 1),
                  "s": round(time.perf_counter() - started, 1)})
    log.info("history backfilled", extra=stats)
    return stats


def _add(total: dict, got: dict) -> None:
    for k in total:
        total[k] += got[k]


class _without_sweep:
    """The services with the escalation sweep off for the backfill's consumer: it applies the past
    a day at a time, and a sweep at today's clock would escalate every case of that day whose
    deadline passed before the rest of its history (its feedback) had been fed."""

    def __init__(self, services):
        self._services = services
        settings = services.settings
        self.settings = settings.replace(escalation_sweep_s=0) if hasattr(settings, "escalation_sweep_s") else settings

    def __getattr__(self, name):
        return getattr(self._services, name)


# --- generating: the day's messages as the contract's JSON text ----------------------------------

def _generator(engine, spec: dict) -> Generator:
    return Generator(World.load(engine), seed=spec["seed"], start=spec["start"], rate=spec["rate"], speed=1.0,
                     tz=spec["tz"], positions=False, patrols_from=spec["split"], as_json=True)


def _days_here(engine, spec: dict, tune: bool = False):
    """(day end, [JSON text]) per day, then (None, counts): generated in this process (``tune``:
    a process of its own, whose collector may ignore the district loaded at the start)."""
    gen = _generator(engine, spec)
    if tune:
        tune_gc()
    for t in _ends(spec):
        yield t, gen.advance(t)  # JSON text: the writer validates it
    yield None, dict(gen.counts)


def _ends(spec: dict) -> list[datetime]:
    """Day ends from the start, with the split between the two parts as one of them."""
    out, t = [], spec["start"]
    while t < spec["until"]:
        nxt = min(t + timedelta(days=1), spec["until"])
        if t < spec["split"] < nxt:
            nxt = spec["split"]
        out.append(nxt)
        t = nxt
    return out


def _spec_json(spec: dict) -> str:
    return json.dumps({k: v.isoformat() if isinstance(v, datetime) else v for k, v in spec.items()})


def _spec_from_json(text: str) -> dict:
    spec = json.loads(text)
    for k in ("start", "until", "split"):
        spec[k] = datetime.fromisoformat(spec[k])
    return spec


def _generate(url: str, spec_text: str) -> int:
    """The child process (``python -m dashboard.demo.history URL SPEC``): every day's messages on
    standard output, a line ``D <day end> <n>`` then n lines of JSON (the contract's JSON has no
    raw newline), and a last line ``E <counts>``."""
    from ..store.engine import make_engine

    engine = make_engine(url)
    out = sys.stdout
    try:
        for t, payload in _days_here(engine, _spec_from_json(spec_text), tune=True):
            if t is None:
                payload["generator_cpu_s"] = round(time.process_time(), 1)
                out.write(f"E {json.dumps(payload)}\n")
            else:
                out.write(f"D {t.isoformat()} {len(payload)}\n")
                out.writelines(r + "\n" for r in payload)
        out.flush()
    finally:
        engine.dispose()
    return 0


def _days_parallel(engine, spec: dict, stop_event=None):
    """As ``_days_here``, from a child process that generates while the caller writes. A child
    process of its own (not multiprocessing: the server that starts the history has threads, and
    a script calling ``backfill`` need not guard its main module); a thread reads its output into
    a queue of at most AHEAD_DAYS days, so it never waits for the writer's batches."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.demo.history",
                             engine.url.render_as_string(hide_password=False), _spec_json(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=root,
                            text=True, encoding="utf-8", bufsize=1 << 20)
    days: queue_mod.Queue = queue_mod.Queue(maxsize=AHEAD_DAYS)
    stopping = threading.Event()

    def put(item) -> bool:
        while not stopping.is_set():
            try:
                days.put(item, timeout=0.5)
                return True
            except queue_mod.Full:
                continue
        return False

    def read() -> None:
        try:
            for line in proc.stdout:
                if line.startswith("D "):
                    _d, at, n = line.split()
                    if not put((datetime.fromisoformat(at), [proc.stdout.readline()[:-1] for _ in range(int(n))])):
                        return
                elif line.startswith("E "):
                    put((None, json.loads(line[2:])))
                    return
            put(("error", f"exit code {proc.wait()}: {proc.stderr.read()[-2000:]}"))
        except Exception as exc:  # noqa: BLE001 - the caller says what went wrong
            put(("error", f"{exc.__class__.__name__}: {exc}"))

    reader = threading.Thread(target=read, name="history-generator-reader", daemon=True)
    reader.start()
    try:
        while True:
            try:
                t, payload = days.get(timeout=1.0)
            except queue_mod.Empty:
                if stop_event is not None and stop_event.is_set():
                    return
                continue
            if t == "error":
                raise RuntimeError(f"the history's generating process failed: {payload}")
            yield t, payload
            if t is None:
                return
    finally:
        stopping.set()
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(5)
        for f in (proc.stdout, proc.stderr):
            f.close()


# --- writing ------------------------------------------------------------------------------------

def write_direct(services, msgs: list, consumer: Consumer, *, first: int = 1, raws: list | None = None) -> dict:
    """Apply ``msgs`` (contract models, in time order) to the store with the consumer's own code
    (placing by dashboard.feed.resolve, dashboard.feed.apply.apply_batch with its case context: the
    rules, the calendar, the units, the duplicates), DIRECT_BATCH at a time, without the stream:
    the same rows the consumer would write (test_cases410 compares them), minus the Redis round
    trips. Nothing is pushed to screens. The ledger's stream id is ``0-<n>`` from ``first``:
    these messages never had a stream entry (``raws``: their JSON text, when the caller has it). Like the consumer, a batch is first applied without
    the look-ups that only find replays, and again with them if it holds one."""
    counts = {"applied": 0, "dead": 0}
    n = first - 1
    for i in range(0, len(msgs), DIRECT_BATCH):
        items = []
        for j, m in enumerate(msgs[i:i + DIRECT_BATCH], i):
            n += 1
            items.append(Item(f"0-{n}", dump(m) if raws is None else raws[j], m))
        placed, misplaced = consumer.resolver.resolve(items)
        optimistic = True
        while True:
            try:
                with services.engine.begin() as conn:
                    out = apply_batch(conn, placed, tz=consumer.tz, ctx=consumer.cases, optimistic=optimistic)
                break
            except (sa_exc.IntegrityError, MaybeReplay):
                if not optimistic:
                    raise
                optimistic = False  # a replay: apply again, looking everything up
        consumer.cases.duplicates.follow(out.deltas, OPEN_STATES)
        if placed:  # forget cases past the duplicate window by the history's clock, not today's
            consumer.cases.duplicates.prune(max(it.msg.occurred_at for it in placed))
        counts["applied"] += out.applied
        counts["dead"] += len(out.dead) + len(misplaced)
        for _sid, _raw, reason, mid in list(out.dead)[:3]:
            log.warning("history: message refused", extra={"message_id": mid, "reason": reason})
    return counts


def _feed_day(services, raws: list, consumer: Consumer) -> int:
    for i in range(0, len(raws), 1000):
        publish_all(services.redis, raws[i:i + 1000])
    consumer.run(burst=True)
    while consumer.trim():  # never past what a group has not acknowledged
        pass
    return len(raws)


if __name__ == "__main__":  # the generating child process of _days_parallel
    sys.exit(_generate(sys.argv[1], sys.argv[2]))
