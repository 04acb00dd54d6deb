"""gunicorn's settings for studio (read from the working directory, as the Procfile runs it).

Workers come from WEB_CONCURRENCY, which gunicorn reads itself. What is set here:
the worker timeout, above studio's own request deadline; and what makes /metrics count
every worker: prometheus_client keeps each worker's figures in files under
PROMETHEUS_MULTIPROC_DIR, which must be set before the app (and with it
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
