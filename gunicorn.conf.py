"""gunicorn's settings for studio (read from the working directory, as the Procfile runs it).

Workers come from WEB_CONCURRENCY, which gunicorn reads itself. What is set here:
the worker timeout, above studio's own request deadline; the limits on a request's
head, so an over-long one gets gunicorn's short 414 or 431 before the app sees it; and
what makes /metrics count every worker: prometheus_client keeps each worker's figures in
files under PROMETHEUS_MULTIPROC_DIR, which must be set before the app (and with it
prometheus_client) is imported, and cleared of a previous run's files.
"""

import glob
import os
import tempfile


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default  # studio itself refuses the setting, with its name, as it starts


# A request gives up its database work at REQUEST_DEADLINE_SECONDS (15) and answers 503,
# plus at most one connection attempt's DB_CONNECT_TIMEOUT (5): gunicorn kills a worker only
# well after that (30 s, platforms' routers' limit, unless the deadline asks for more). The
# admin's CSV check and import run under IMPORT_SECONDS (25) instead, on a connection they
# already hold, and stop themselves within it.
timeout = max(
    30,
    int(_seconds("REQUEST_DEADLINE_SECONDS", 15) + _seconds("DB_CONNECT_TIMEOUT", 5)) + 5,
    int(_seconds("IMPORT_SECONDS", 25)) + 5,
)

# The request line may be as long as gunicorn allows (8,190 bytes): studio's own limit on
# a URL (studio.limits.MAX_URL_LENGTH, 6,144) is under it, and answers in JSON under /api.
limit_request_line = 8190
# Browsers send about 20 headers; 50 leaves room for proxies' and tracing headers.
limit_request_fields = 50
# One header at most 8,190 bytes (gunicorn's default, said here): the session cookie is
# well under 1 KB, and a token is 47 characters.
limit_request_field_size = 8190

metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="studio-metrics-"
)
os.makedirs(metrics_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


def on_starting(server):
    for stale in glob.glob(os.path.join(metrics_dir, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    # Imported here, after the variable above is set, like everything of prometheus_client.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
