"""Settings per environment, read from the process environment."""

import math
import os
import re
import secrets
import socket
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from limits import parse_many
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENVIRONMENTS = ("development", "testing", "production")
SQLITE_BUSY_TIMEOUT_SECONDS = 15
ENVIRONMENT_STAND_INS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DB_POOL")


class ConfigError(SystemExit):
    """A setting is missing or wrong; stops the process with one line, no traceback."""


def environment_name(environ: Mapping[str, str]) -> str:
    """Return the environment to run in: STUDIO_ENV, else production on a PaaS."""
    name = environ.get("STUDIO_ENV", "").strip().lower()
    if name:
        if name not in ENVIRONMENTS:
            raise ConfigError(f"STUDIO_ENV must be one of {', '.join(ENVIRONMENTS)}, not {name!r}.")
        return name
    if "RAILWAY_ENVIRONMENT" in environ or "DYNO" in environ:
        return "production"
    return "development"


def redis_url_checked(url: str | None, verify: bool) -> str | None:
    """Return the Redis URL, told not to check the server's certificate when `verify` is off.

    Heroku Redis speaks TLS (rediss://) with a self-signed certificate, which redis-py
    refuses by default; Heroku's advice is not to verify it. Every client studio makes
    (cache, near cache, limiter, monitor) reads the option from the URL.
    """
    if not url or verify or not url.lower().startswith("rediss://") or "ssl_cert_reqs" in url:
        return url
    return url + ("&" if "?" in url else "?") + "ssl_cert_reqs=none"


def normalize_database_url(raw: str) -> str:
    """Return the URL with postgres:// and postgresql:// pinned to psycopg2."""
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL is not a database URL: expected e.g. postgres://user:password@host/db."
        ) from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg2")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"DATABASE_URL must be PostgreSQL (postgres://...) or SQLite (sqlite:///...), "
            f"not {url.get_backend_name()!r}."
        )
    return url.render_as_string(hide_password=False)


def mask_database_url(raw: str) -> str:
    """Return the URL with its password hidden, for logs, also one given as `?password=`."""
    url = make_url(raw)
    hidden = {key: "***" for key in url.query if "password" in key.lower()}
    masked = url.update_query_dict(hidden).render_as_string(hide_password=True)
    return masked.replace("%2A%2A%2A", "***")  # as the password is shown, not %-encoded


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a number, not {value!r}.")
    return number


def _at_least(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """Return a number setting, refusing one below `minimum` (whole numbers stay int)."""
    read = _int if isinstance(default, int) else _float
    number = read(environ, name, default)  # type: ignore[arg-type]
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, not {environ.get(name)!r}.")
    return number


def _positive(environ: Mapping[str, str], name: str, default: float) -> float:
    """Return a number of seconds that must be above 0."""
    number = _float(environ, name, default)
    if number <= 0:
        raise ConfigError(f"{name} must be more than 0, not {environ.get(name)!r}.")
    return number


def _currency(environ: Mapping[str, str]) -> str:
    """Return the currency shown with money: an ISO 4217 code (EUR) or a short symbol (€)."""
    value = environ.get("CURRENCY", "").strip() or "EUR"
    if len(value) > 5:
        raise ConfigError(f"CURRENCY must be a currency code or symbol (EUR, €), not {value!r}.")
    return value


def _decimal_separator(environ: Mapping[str, str]) -> str:
    """Return the decimal separator the shop types ("." or ","), or "" to refuse guesses."""
    value = environ.get("DECIMAL_SEPARATOR", "").strip()
    if value not in ("", ".", ","):
        raise ConfigError(f'DECIMAL_SEPARATOR must be "." or "," (or unset), not {value!r}.')
    return value


MAX_SESSION_HOURS = 24 * 366
HOST_NAME = re.compile(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?")
IMAGE_SOURCE = re.compile(r"(https?://)?(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:\d{1,5})?")


def _names(environ: Mapping[str, str], name: str, pattern: re.Pattern, example: str) -> tuple:
    """Return a comma-separated list of host names, each checked against `pattern`."""
    entries = [entry.strip().lower() for entry in environ.get(name, "").split(",")]
    for entry in filter(None, entries):
        if not pattern.fullmatch(entry):
            raise ConfigError(f"{name} must list host names such as {example}, not {entry!r}.")
    return tuple(filter(None, entries))


def _allowed_hosts(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the host names studio answers to (a leading dot: any subdomain), or () for any."""
    return _names(environ, "ALLOWED_HOSTS", HOST_NAME, "shop.example.com or .example.com")


def _image_sources(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the origins paint photos may come from, as CSP sources (https:// unless given)."""
    hosts = _names(environ, "IMAGE_HOSTS", IMAGE_SOURCE, "images.example.com or *.example.com")
    return tuple(host if "://" in host else f"https://{host}" for host in hosts)


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """Return one of `choices` (the first is the default)."""
    value = environ.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}.")


def _limits(environ: Mapping[str, str], name: str, default: str) -> str:
    """Return rate limits as Flask-Limiter reads them ("5/minute;10/hour"), checked now."""
    value = environ.get(name, "").strip() or default
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be limits such as 5/minute;10/hour, not {value!r}."
        ) from None
    return value


TIMEOUT_SCOPES = ("connection", "transaction")
POOL_MODES = ("auto", "pgbouncer")


def instance_id(environ: Mapping[str, str]) -> str:
    """Return this instance's name: STUDIO_INSTANCE_ID, Railway's replica, Heroku's dyno, host."""
    for variable in ("STUDIO_INSTANCE_ID", "RAILWAY_REPLICA_ID", "DYNO"):
        value = environ.get(variable, "").strip()
        if value:
            break
    else:
        value = socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._-]", "-", value) or "unknown"


def _pool_number(environ: Mapping[str, str], name: str, default: int, auto: bool) -> int | None:
    """Return a pool setting's number, or None for `auto` (also when unset and `auto`)."""
    value = environ.get(name, "").strip().lower()
    if value == "auto" or (not value and auto):
        return None
    return _at_least(environ, name, default, 0)


def timeout_options(settings: Mapping[str, Any]) -> str:
    """Return the statement and lock timeouts as libpq `options` (-c name=value)."""
    return (
        f"-c statement_timeout={settings['DB_STATEMENT_TIMEOUT_MS']} "
        f"-c lock_timeout={settings['DB_LOCK_TIMEOUT_MS']}"
    )


class Config:
    """Settings shared by every environment."""

    NAME = "base"
    PROXY_HOPS = 0
    SECURE_COOKIES = False
    # Deep pages ask a thread of the worker to rebuild stale page anchors (tests build them).
    PAGE_ANCHOR_REBUILDS = True
    DEFAULT_SSLMODE: str | None = None
    POOL = {
        "pool_size": 3,
        "max_overflow": 5,
        "pool_timeout": 30,
        "pool_recycle": 3600,
    }
    PRE_PING = False
    PRE_PING_IDLE_SECONDS = 0
    # DB_POOL_SIZE unset: sized at start from the server (studio.connection_budget), or fixed.
    AUTO_POOL = False

    def __init__(self, environ: Mapping[str, str], instance_path: str) -> None:
        self.environ = environ
        self.instance_path = Path(instance_path)

    def settings(self) -> dict[str, Any]:
        """Return the Flask settings of this environment."""
        url = normalize_database_url(self.database_url())
        env = self.environ
        max_body = _int(env, "MAX_CONTENT_LENGTH", 2 * 1024 * 1024)
        # Heroku's Redis certificate is self-signed: not checked there unless asked.
        verify_redis = _bool(env, "REDIS_TLS_VERIFY", "DYNO" not in env)
        redis_url = redis_url_checked(env.get("REDIS_URL", "").strip() or None, verify_redis)
        force_https = _bool(env, "FORCE_HTTPS", False)
        secure_cookies = _bool(env, "SESSION_COOKIE_SECURE", self.SECURE_COOKIES)
        # A browser keeps a __Host- cookie only if it is Secure, for Path=/ and no Domain.
        cookie_prefix = "__Host-" if secure_cookies else ""
        return {
            "STUDIO_ENV": self.NAME,
            "SECRET_KEY": self.secret_key(),
            "SQLALCHEMY_DATABASE_URI": url,
            "SQLALCHEMY_ENGINE_OPTIONS": self.engine_options(make_url(url)),
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
            # Below 0 ProxyFix would believe addresses the client wrote itself.
            "PROXY_HOPS": _at_least(env, "PROXY_HOPS", self.PROXY_HOPS, 0),
            "PAGE_ANCHOR_REBUILDS": _bool(env, "PAGE_ANCHOR_REBUILDS", self.PAGE_ANCHOR_REBUILDS),
            # The reorder level of a paint given none (each paint then keeps its own).
            "LOW_STOCK_THRESHOLD": _at_least(env, "LOW_STOCK_THRESHOLD", 5, 0),
            # Settles numbers typed as `4,500` or `1.234`; unset, they are refused as ambiguous.
            "DECIMAL_SEPARATOR": _decimal_separator(env),
            "CURRENCY": _currency(env),
            "MAX_CONTENT_LENGTH": max_body,
            **self.import_settings(),
            "FORCE_HTTPS": force_https,
            "HSTS": _bool(env, "HSTS", self.NAME == "production" or force_https),
            "ALLOWED_HOSTS": _allowed_hosts(env),
            "IMAGE_HOSTS": _image_sources(env),
            "SERVER_TIMING": _choice(env, "SERVER_TIMING", ("admins", "everyone", "off")),
            "READINESS_TIMEOUT_MS": _int(env, "READINESS_TIMEOUT_MS", 2000),
            "SLOW_REQUEST_MS": _int(env, "SLOW_REQUEST_MS", 500),
            "STUDIO_INSTANCES": max(_int(env, "STUDIO_INSTANCES", 1), 1),
            "WEB_CONCURRENCY": self.workers(),
            "THREADS_PER_WORKER": max(_int(env, "THREADS_PER_WORKER", 1), 1),
            "DB_BUDGET_CHECK": _bool(env, "DB_BUDGET_CHECK", self.NAME == "production"),
            "DB_BUDGET_STRICT": _bool(env, "DB_BUDGET_STRICT", False),
            **self.budget_settings(make_url(url)),
            "SLOW_QUERY_MS": _int(env, "SLOW_QUERY_MS", 200),
            "SLOW_QUERY_PARAMETERS_MS": _int(env, "SLOW_QUERY_PARAMETERS_MS", 1000),
            "DB_POOL_PRE_PING": _bool(env, "DB_POOL_PRE_PING", self.PRE_PING),
            "DB_PRE_PING_IDLE_SECONDS": self.pre_ping_idle_seconds(),
            # GET requests' statements without BEGIN and ROLLBACK (studio.database).
            "DB_AUTOCOMMIT_READS": _bool(env, "DB_AUTOCOMMIT_READS", True),
            **self.faults,
            **self.monitoring_settings(),
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url or "memory://",
            # If Redis goes away, keep limiting sign-ins from memory rather than not at all.
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            "RATELIMIT_SWALLOW_ERRORS": True,
            "RATELIMIT_KEY_PREFIX": "studio-limits",
            **self.cache_settings(redis_url),
            # Failed sign-ins only, each tier a longer wait: see studio/throttle.py.
            "LOGIN_LIMIT_PER_IP": _limits(env, "LOGIN_LIMIT_PER_IP", "20/minute;100/hour;300/day"),
            "LOGIN_LIMIT_PER_USERNAME_AND_IP": _limits(
                env, "LOGIN_LIMIT_PER_USERNAME_AND_IP", "5/minute;10/hour;20/day"
            ),
            # Check every tier, so that Retry-After names the wait of the longest one hit.
            "RATELIMIT_FAIL_ON_FIRST_BREACH": False,
            "PASSWORD_MIN_LENGTH": _at_least(env, "PASSWORD_MIN_LENGTH", 12, 8),
            "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").upper(),
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": secure_cookies,
            "SESSION_COOKIE_NAME": f"{cookie_prefix}session",
            "REMEMBER_COOKIE_NAME": f"{cookie_prefix}remember_token",
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "REMEMBER_COOKIE_SECURE": _bool(env, "SESSION_COOKIE_SECURE", self.SECURE_COOKIES),
            **self.session_limits(),
        }

    def budget_settings(self, url: URL) -> dict[str, Any]:
        """Return how the pool is sized: from the server at start (auto) or fixed, and its mode."""
        env = self.environ
        size, overflow = self.pool_numbers()
        postgres = url.get_backend_name() == "postgresql"
        return {
            "DB_POOL": self.pool_mode(),
            "DB_POOL_AUTO": postgres and size is None,
            "DB_MAX_OVERFLOW_AUTO": postgres and overflow is None,
            # A deploy starts new instances beside the live ones (Railway, Heroku's preboot).
            "DB_DEPLOY_OVERLAP": _at_least(env, "DB_DEPLOY_OVERLAP", 1, 0),
            # PgBouncer's own default_pool_size is 20.
            "DB_PGBOUNCER_POOL_SIZE": _at_least(env, "DB_PGBOUNCER_POOL_SIZE", 20, 1),
            "STUDIO_INSTANCE_ID": instance_id(env),
        }

    def pool_mode(self) -> str:
        return _choice(self.environ, "DB_POOL", POOL_MODES)

    def pool_numbers(self) -> tuple[int | None, int | None]:
        """Return DB_POOL_SIZE and DB_MAX_OVERFLOW, None where the server's budget decides."""
        env, pool = self.environ, self.POOL
        size = _pool_number(env, "DB_POOL_SIZE", pool["pool_size"], self.AUTO_POOL)
        if size == 0:
            raise ConfigError("DB_POOL_SIZE must be at least 1 (or auto), not '0'.")
        overflow = _pool_number(env, "DB_MAX_OVERFLOW", pool["max_overflow"], size is None)
        return size, overflow

    def session_limits(self) -> dict[str, Any]:
        """Return how long a browser session may stay unused, and live at all."""
        idle = _positive(self.environ, "SESSION_IDLE_MINUTES", 30.0)
        lifetime = _positive(self.environ, "SESSION_LIFETIME_HOURS", 12.0)
        # A session's end must be a date (a year is more than any admin needs).
        for name, value, most in (
            ("SESSION_LIFETIME_HOURS", lifetime, MAX_SESSION_HOURS),
            ("SESSION_IDLE_MINUTES", idle, MAX_SESSION_HOURS * 60),
        ):
            if value > most:
                raise ConfigError(f"{name} must be at most {most:,}, not {value:g}.")
        return {
            "SESSION_IDLE_MINUTES": idle,
            "SESSION_LIFETIME_HOURS": lifetime,
            # Flask refuses a cookie not signed again for this long (studio.auth.sessions
            # checks the session's own start, which signing again does not move).
            "PERMANENT_SESSION_LIFETIME": timedelta(hours=lifetime),
        }

    def import_settings(self) -> dict[str, Any]:
        """Return the limits of the admin's CSV import (the command line has none)."""
        env = self.environ
        return {
            # The import page alone takes bodies this large; every other route MAX_CONTENT_LENGTH.
            "IMPORT_MAX_BYTES": _at_least(env, "IMPORT_MAX_BYTES", 32 * 1024 * 1024, 1),
            "IMPORT_MAX_ROWS": _at_least(env, "IMPORT_MAX_ROWS", 200_000, 1),
            # The check and the import each get this long, their transaction only; it must
            # stay under the router's 30 s (gunicorn.conf.py gives workers 5 s more).
            "IMPORT_SECONDS": _positive(env, "IMPORT_SECONDS", 25.0),
            "IMPORT_UPLOAD_HOURS": _positive(env, "IMPORT_UPLOAD_HOURS", 24.0),
            # Larger files are imported by a thread of the worker (PostgreSQL), with progress.
            "IMPORT_INLINE_ROWS": _at_least(env, "IMPORT_INLINE_ROWS", 5_000, 0),
        }

    def cache_settings(self, redis_url: str | None) -> dict[str, Any]:
        """Return Flask-Caching's settings: Redis where there is one, else in-process."""
        env = self.environ
        cache_redis_url = (
            redis_url_checked(
                env.get("CACHE_REDIS_URL", "").strip(),
                _bool(env, "REDIS_TLS_VERIFY", "DYNO" not in env),
            )
            or redis_url
        )
        default_type = (
            "studio.redis_backend.ResilientRedisCache" if cache_redis_url else "SimpleCache"
        )
        cache_type = env.get("CACHE_TYPE", "").strip() or default_type
        timeout = _positive(env, "CACHE_REDIS_TIMEOUT", 0.25)
        poll = _positive(env, "CACHE_EPOCH_POLL_SECONDS", 0.5)
        lease = _positive(env, "CACHE_EPOCH_LEASE_SECONDS", 3 * poll)
        if lease <= poll:
            raise ConfigError(
                f"CACHE_EPOCH_LEASE_SECONDS must be more than CACHE_EPOCH_POLL_SECONDS "
                f"({poll:g}), not {env.get('CACHE_EPOCH_LEASE_SECONDS')!r}: a worker would "
                "stop using the cache between two reads of the epoch."
            )
        # Per-process caches cannot see other workers' writes: keep what they hold young.
        processes = self.workers() * max(_int(env, "STUDIO_INSTANCES", 1), 1)
        stale_risk = cache_type == "SimpleCache" and processes > 1
        cap = 5 if stale_risk else None

        def ttl(name: str, default: int) -> int:
            value = _int(env, name, default)
            return min(value, cap) if cap else value

        return {
            "CACHE_TYPE": cache_type,
            "CACHE_REDIS_URL": cache_redis_url,
            "CACHE_KEY_PREFIX": env.get("CACHE_KEY_PREFIX", "studio:"),
            "CACHE_DEFAULT_TIMEOUT": ttl("CACHE_DEFAULT_TIMEOUT", 300),
            "CACHE_THRESHOLD": _int(env, "CACHE_THRESHOLD", 5000),
            # Redis client options: fail within a fraction of a second, never retry.
            "CACHE_OPTIONS": (
                {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": None}
                if "Redis" in cache_type
                else {}
            ),
            "CACHE_CIRCUIT_OPEN_SECONDS": _positive(env, "CACHE_CIRCUIT_OPEN_SECONDS", 5.0),
            # How often each worker asks the database whether the cache was reset, and how
            # long what it read may be believed (studio.services.cache_epochs).
            "CACHE_EPOCH_POLL_SECONDS": poll,
            "CACHE_EPOCH_LEASE_SECONDS": lease,
            # A retired entry's tombstone outlives any request that may have read it before.
            "CACHE_TOMBSTONE_SECONDS": int(self.faults["REQUEST_DEADLINE_SECONDS"]) + 5,
            "CACHE_STALE_RISK": stale_risk,
            "PAINT_CACHE_TTL": ttl("PAINT_CACHE_TTL", 300),
            "LIST_CACHE_TTL": ttl("LIST_CACHE_TTL", 60),
            "STATS_CACHE_TTL": ttl("STATS_CACHE_TTL", 30),
            "AUTH_CACHE_TTL": ttl("AUTH_CACHE_TTL", 300),
            # Each worker's copies of hot Redis values, retired by Redis's invalidations.
            "NEAR_CACHE": "Redis" in cache_type and _bool(env, "NEAR_CACHE", True),
            "NEAR_CACHE_SECONDS": _positive(env, "NEAR_CACHE_SECONDS", 30.0),
            "NEAR_CACHE_ENTRIES": _at_least(env, "NEAR_CACHE_ENTRIES", 10_000, 1),
            # Readers' fills sent to Redis by a thread of each worker (studio.fill_behind).
            "CACHE_FILL_BEHIND": _bool(env, "CACHE_FILL_BEHIND", True),
        }

    @cached_property
    def faults(self) -> dict[str, Any]:
        """Return the time limits, retry and circuit-breaker settings for database failures."""
        env = self.environ
        timeouts_per = env.get("DB_TIMEOUTS_PER", "").strip().lower()
        if timeouts_per and timeouts_per not in TIMEOUT_SCOPES:
            raise ConfigError(
                f"DB_TIMEOUTS_PER must be one of {', '.join(TIMEOUT_SCOPES)}, not {timeouts_per!r}."
            )
        if self.pool_mode() == "pgbouncer":
            # PgBouncer refuses connection options; SET LOCAL ends with the transaction.
            if timeouts_per == "connection":
                raise ConfigError(
                    "DB_TIMEOUTS_PER must be transaction with DB_POOL=pgbouncer "
                    "(PgBouncer refuses connection options), not 'connection'."
                )
            timeouts_per = "transaction"
        timeouts_per = timeouts_per or "connection"
        return {
            # 0 turns a timeout off, as in PostgreSQL.
            "DB_STATEMENT_TIMEOUT_MS": _at_least(env, "DB_STATEMENT_TIMEOUT_MS", 5000, 0),
            "DB_LOCK_TIMEOUT_MS": _at_least(env, "DB_LOCK_TIMEOUT_MS", 2000, 0),
            "DB_TIMEOUTS_PER": timeouts_per,
            "REQUEST_DEADLINE_SECONDS": _positive(env, "REQUEST_DEADLINE_SECONDS", 15.0),
            "DB_PING_TIMEOUT_SECONDS": _positive(env, "DB_PING_TIMEOUT_SECONDS", 2.0),
            "DB_RETRY_ATTEMPTS": _at_least(env, "DB_RETRY_ATTEMPTS", 5, 1),
            "DB_RETRY_SECONDS": _at_least(env, "DB_RETRY_SECONDS", 0.75, 0),
            "DB_RETRY_WAIT_SECONDS": _positive(env, "DB_RETRY_WAIT_SECONDS", 0.05),
            "DB_BREAKER_FAILURES": _at_least(env, "DB_BREAKER_FAILURES", 3, 1),
            # Short enough that a request arriving while it is open can wait for the probe
            # within DB_RETRY_SECONDS: a restart of a fraction of a second then costs no 503.
            "DB_BREAKER_OPEN_SECONDS": _positive(env, "DB_BREAKER_OPEN_SECONDS", 0.5),
            "DB_COMMIT_CONFIRM_SECONDS": _at_least(env, "DB_COMMIT_CONFIRM_SECONDS", 10.0, 0),
        }

    def monitoring_settings(self) -> dict[str, Any]:
        """Return the metrics endpoint's token and the alert thresholds."""
        env = self.environ
        return {
            # Off only to measure what measuring costs (the benchmark compares both).
            "OBSERVABILITY": _bool(env, "OBSERVABILITY", True),
            "METRICS_TOKEN": env.get("METRICS_TOKEN", "").strip() or None,
            # How often each worker samples its pool and process for metrics and alerts.
            "METRICS_SAMPLE_SECONDS": _float(env, "METRICS_SAMPLE_SECONDS", 5.0),
            "ALERT_WINDOW_SECONDS": _int(env, "ALERT_WINDOW_SECONDS", 300),
            "ALERT_QUERY_SECONDS": _float(env, "ALERT_QUERY_SECONDS", 5.0),
            # A worker's pool at its busiest / capacity; the machine's memory in use.
            "ALERT_POOL_PERCENT": _float(env, "ALERT_POOL_PERCENT", 80.0),
            "ALERT_MEMORY_PERCENT": _float(env, "ALERT_MEMORY_PERCENT", 85.0),
            # `flask monitor`'s: the server's usable connections in use; Redis / maxmemory.
            "ALERT_CONNECTIONS_PERCENT": _float(env, "ALERT_CONNECTIONS_PERCENT", 80.0),
            "ALERT_REDIS_MEMORY_PERCENT": _float(env, "ALERT_REDIS_MEMORY_PERCENT", 85.0),
            "ALERT_ERROR_RATE_PERCENT": _float(env, "ALERT_ERROR_RATE_PERCENT", 5.0),
            "ALERT_POOL_TIMEOUTS": _int(env, "ALERT_POOL_TIMEOUTS", 3),
            "ALERT_FAILED_SIGN_INS": _int(env, "ALERT_FAILED_SIGN_INS", 50),
        }

    def pre_ping_idle_seconds(self) -> int:
        return _int(self.environ, "DB_PRE_PING_IDLE_SECONDS", self.PRE_PING_IDLE_SECONDS)

    def workers(self) -> int:
        """Return how many worker processes serve the app (WEB_CONCURRENCY, read by gunicorn)."""
        return max(_int(self.environ, "WEB_CONCURRENCY", 1), 1)

    def database_url(self) -> str:
        url = self.environ.get("DATABASE_URL", "").strip()
        if url:
            return url
        return f"sqlite:///{self.instance_path / 'studio.db'}"

    def secret_key(self) -> str:
        key = self.environ.get("SECRET_KEY", "").strip()
        if key:
            return key
        # Development keeps a generated key beside its database so sessions survive restarts.
        self.instance_path.mkdir(parents=True, exist_ok=True)
        key_file = self.instance_path / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Return SQLAlchemy engine options for this URL, overridable by DB_* variables."""
        if url.get_backend_name() == "sqlite":
            return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
        env, pool = self.environ, self.POOL
        size, overflow = self.pool_numbers()
        return {
            # Auto: the environment's numbers until studio.connection_budget sizes the pool.
            "pool_size": pool["pool_size"] if size is None else size,
            "max_overflow": pool["max_overflow"] if overflow is None else overflow,
            "pool_timeout": _int(env, "DB_POOL_TIMEOUT", pool["pool_timeout"]),
            "pool_recycle": _int(env, "DB_POOL_RECYCLE", pool["pool_recycle"]),
            # Checkouts are pinged by studio.database's own listener (DB_POOL_PRE_PING), so a
            # ping to a frozen server is cut at DB_PING_TIMEOUT_SECONDS like any statement.
            "pool_pre_ping": False,
            "connect_args": self.connect_args(url),
        }

    def connect_args(self, url: URL) -> dict[str, Any]:
        """Return libpq's connection parameters: timeouts, keepalives, SSL, name."""
        env = self.environ
        connect_args: dict[str, Any] = {
            # libpq treats 0 as "wait forever" and anything under 2 s as 2 s.
            "connect_timeout": _at_least(env, "DB_CONNECT_TIMEOUT", 5, 1),
            # Each connection is named studio/<instance>/<pid> when made (studio.database).
            "application_name": "studio",
            # A server that vanished (host down, network cut) is noticed within ~25 s on an
            # idle connection and within tcp_user_timeout on a busy one, not after hours.
            "keepalives": 1,
            "keepalives_idle": _at_least(env, "DB_KEEPALIVES_IDLE", 10, 1),
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": _at_least(env, "DB_TCP_USER_TIMEOUT_MS", 10000, 0),
        }
        sslmode = env.get("DATABASE_SSLMODE", "").strip()
        if not sslmode and "sslmode" not in url.query:
            sslmode = self.DEFAULT_SSLMODE or ""
        if sslmode:
            connect_args["sslmode"] = sslmode
        faults = self.faults
        if faults["DB_TIMEOUTS_PER"] == "connection":
            given = url.query.get("options", "")
            given = " ".join(given) if isinstance(given, tuple) else given
            connect_args["options"] = " ".join(
                part for part in (given, timeout_options(faults)) if part
            )
        return connect_args


class DevelopmentConfig(Config):
    NAME = "development"


class TestingConfig(Config):
    NAME = "testing"
    PAGE_ANCHOR_REBUILDS = False

    def secret_key(self) -> str:
        return self.environ.get("SECRET_KEY") or secrets.token_hex(32)


class ProductionConfig(Config):
    NAME = "production"
    PROXY_HOPS = 1
    SECURE_COOKIES = True
    DEFAULT_SSLMODE = "require"
    # pool_timeout stays well inside the request deadline and the router's 30 s.
    POOL = {
        "pool_size": 5,
        "max_overflow": 10,
        "pool_timeout": 10,
        "pool_recycle": 300,
    }
    PRE_PING = True
    AUTO_POOL = True
    # A connection back in the pool less than this long ago is not pinged: a busy worker
    # would pay a round trip per request for nothing. One that broke meanwhile fails its
    # first statement as a disconnect, which empties the pool, and its work is retried.
    PRE_PING_IDLE_SECONDS = 10

    def database_url(self) -> str:
        url = self.environ.get("DATABASE_URL", "").strip()
        if not url:
            raise ConfigError(
                "DATABASE_URL is not set: production needs a PostgreSQL URL "
                "(e.g. postgres://user:password@host:5432/dbname)."
            )
        return url

    def secret_key(self) -> str:
        key = self.environ.get("SECRET_KEY", "").strip()
        if len(key) < 16:
            raise ConfigError(
                "SECRET_KEY is not set (or shorter than 16 characters): set it to a long random"
                " value, e.g. from: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return key


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_settings(overrides: Mapping[str, Any] | None, instance_path: str) -> dict[str, Any]:
    """Return the settings for the chosen environment with `overrides` applied on top.

    `DATABASE_URL`, `REDIS_URL` and `SECRET_KEY` in the overrides stand in for the
    environment variables, so what derives from them (engine options, cache and
    limiter storage) is worked out as in a real deployment.
    """
    overrides = dict(overrides or {})
    chosen = overrides.pop("STUDIO_ENV", None)
    name = environment_name({"STUDIO_ENV": chosen} if chosen else os.environ)
    environ = dict(os.environ)
    for variable in ENVIRONMENT_STAND_INS:
        if variable in overrides:
            environ[variable] = overrides.pop(variable)
    settings = CONFIGS[name](environ, instance_path).settings()
    settings.update(overrides)
    return settings
