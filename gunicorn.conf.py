"""gunicorn's settings for studio (read from the working directory, as the Procfile runs it).

What is decided here, and why, is in the README's "Serving" section: the workers (from
WEB_CONCURRENCY, else the cores and memory the container really has), the worker class
and threads (measured), the timeouts against studio's own deadlines and the routers',
keep-alive, recycling, who may set forwarded headers, the access log with the request's
id, and the limits on a request's head. And what makes /metrics count every worker:
prometheus_client keeps each worker's figures in files under PROMETHEUS_MULTIPROC_DIR,
which must be set before the app (and with it prometheus_client) is imported, and cleared
of a previous run's files.
"""

import glob
import importlib.util
import math
import os
import shutil
import tempfile
import time
from pathlib import Path


def _load_serving():
    # By its path: importing the studio package would import Flask, the app and
    # prometheus_client into the master (see studio/serving.py).
    path = Path(__file__).resolve().parent / "studio" / "serving.py"
    spec = importlib.util.spec_from_file_location("studio_serving", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default  # studio itself refuses the setting, with its name, as it starts


serving = _load_serving()
machine = serving.read_machine()
# WEB_CONCURRENCY wins (gunicorn's own default reads it too; Heroku's Python buildpack
# sets it from the dyno's size), then THREADS_PER_WORKER; else the machine decides.
decision = serving.decide(os.environ, machine)
workers = decision.workers
threads = decision.threads
worker_class = decision.worker_class
# The app counts its connection budget and its cache's staleness from these; gunicorn's
# command line may still change them, which on_starting below passes on too.
os.environ["WEB_CONCURRENCY"] = str(workers)
os.environ["THREADS_PER_WORKER"] = str(threads)

# A request gives up its database work at REQUEST_DEADLINE_SECONDS (15) and answers 503,
# plus at most one connection attempt's DB_CONNECT_TIMEOUT (5); the admin's CSV check and
# import within a request stop themselves within IMPORT_SECONDS (25). gunicorn kills a
# worker silent for longer than that, plus 2 s: 27 s, under the 30 s after which Heroku's
# router gives up on a request (Railway's edge waits 15 minutes). A sync worker is silent
# while it serves; a gthread worker's main thread is not, so there it is a heartbeat.
_worst_request = max(
    _seconds("REQUEST_DEADLINE_SECONDS", 15) + _seconds("DB_CONNECT_TIMEOUT", 5),
    _seconds("IMPORT_SECONDS", 25),
)
timeout = math.ceil(_worst_request) + 2
# After SIGTERM, requests under way get this long: Heroku sends SIGKILL 30 s after
# SIGTERM; Railway after RAILWAY_DEPLOYMENT_DRAINING_SECONDS (.railway/railway.py's
# drainingSeconds).
graceful_timeout = 25
# Idle connections from the router stay open longer than the router keeps them (Heroku's
# Router 2.0: 90 s; Railway's edge: 60 s), so the router, not gunicorn, closes them and
# never sends a request on a connection gunicorn is closing. Sync workers close every
# connection after its answer and ignore this.
keepalive = 95
# A worker is replaced after this many requests (each at a different count), so a slow
# leak cannot grow without end; at 1,500 requests a second that is every minute or so.
max_requests = 100_000
max_requests_jitter = 10_000
# gunicorn trusts no peer's X-Forwarded-* (nor SCRIPT_NAME): studio's ProxyFix trusts
# exactly PROXY_HOPS routers (1 in production), one place for one decision. Heroku's
# buildpack sets FORWARDED_ALLOW_IPS='*', which this overrides: with '*' any client
# reaching gunicorn could set the scheme even with PROXY_HOPS=0.
forwarded_allow_ips = ""
# One line per request on stdout, with the id the router logged it under (or studio's):
# the answer's X-Request-ID, which studio.request_ids sets on every answer.
accesslog = "-"
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s fwd="%({x-forwarded-for}i)s"'
)

# The request line may be as long as gunicorn allows (8,190 bytes): studio's own limit on
# a URL (studio.limits.MAX_URL_LENGTH, 6,144) is under it, and answers in JSON under /api.
limit_request_line = 8190
# Browsers send about 20 headers; 50 leaves room for proxies' and tracing headers.
limit_request_fields = 50
# One header at most 8,190 bytes (gunicorn's default, said here): the session cookie is
# well under 1 KB, and a token is 47 characters.
limit_request_field_size = 8190

# A folder of its own when none is given, removed when gunicorn exits.
made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="studio-metrics-"
)
os.makedirs(metrics_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def on_starting(server):
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)
    cfg = server.cfg
    # What gunicorn finally runs (its command line and GUNICORN_CMD_ARGS come last).
    os.environ["WEB_CONCURRENCY"] = str(cfg.workers)
    os.environ["THREADS_PER_WORKER"] = str(cfg.threads)
    server.log.info(
        "studio serving: %d %s workers x %d threads (%s; %g cores, %d MiB), timeout %d s",
        cfg.workers,
        cfg.worker_class_str,
        cfg.threads,
        decision.reason if cfg.workers == workers else "gunicorn's command line",
        machine.cpus,
        machine.memory_bytes // serving.MIB,
        cfg.timeout,
    )


def on_exit(server):
    if made_metrics_dir:
        # A worker killed while it started may still be writing its file there: try again
        # for a moment rather than leave the folder behind.
        for _ in range(10):
            shutil.rmtree(metrics_dir, ignore_errors=True)
            if not os.path.exists(metrics_dir):
                break
            time.sleep(0.1)


def child_exit(server, worker):
    # Imported here, after the variable above is set, like everything of prometheus_client.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
