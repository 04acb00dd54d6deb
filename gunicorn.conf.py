"""gunicorn's settings for studio (read from the working directory, as the Procfile runs it).

Workers come from WEB_CONCURRENCY, which gunicorn reads itself. What is set here
makes /metrics count every worker: prometheus_client keeps each worker's figures
in files under PROMETHEUS_MULTIPROC_DIR, which must be set before the app (and
with it prometheus_client) is imported, and cleared of a previous run's files.
"""

import glob
import os
import tempfile

# A request gives up its database work at REQUEST_DEADLINE_SECONDS (20) and answers 503,
# plus at most a connection attempt's DB_CONNECT_TIMEOUT (5): gunicorn kills a worker only
# after that, and platforms' routers cut requests at 30 s.
timeout = 30

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
