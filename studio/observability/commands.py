"""The extension's commands: `flask tune` (pool advice) and `flask monitor` (the servers' view)."""

import os
import sys
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import serving
from ..connection_budget import application_name, me
from ..extensions import db
from . import budget, metrics, monitor


@click.command("tune")
@click.option(
    "--metrics-url",
    help="Read what the running app observed from its /metrics (e.g. https://shop.example/metrics).",
)
@click.option(
    "--token",
    envvar="METRICS_TOKEN",
    help="Bearer token for --metrics-url (default: METRICS_TOKEN).",
)
@click.option(
    "--metrics-file",
    type=click.File("r"),
    help="Read a saved /metrics scrape instead ('-' for standard input).",
)
@with_appcontext
def tune(metrics_url: str | None, token: str | None, metrics_file: Any) -> None:
    """Check the connection pools against the database server's limits and advise settings.

    With --metrics-url or --metrics-file (or, beside gunicorn, PROMETHEUS_MULTIPROC_DIR)
    the advice also uses the pool peaks, waits and timeouts the running workers saw.
    """
    if db.engine.dialect.name != "postgresql":
        raise click.ClickException(
            "tune reads PostgreSQL's limits; DATABASE_URL is not PostgreSQL."
        )
    observed = observed_pool_figures(metrics_url, token, metrics_file)
    config = current_app.config
    served = web_serving()
    if served is not None:
        click.echo(
            f"- The web process: {served.workers} worker(s) x {served.threads} thread(s), "
            f"as gunicorn.conf.py serves on this machine ({served.reason}); "
            "WEB_CONCURRENCY and THREADS_PER_WORKER are not set here."
        )
    plan = budget.deployment(current_app, served)
    advice = budget.advise(budget.read_server_limits(), plan, observed, me(config))
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    sized = "sized at start (DB_POOL_SIZE=auto)" if config["DB_POOL_AUTO"] else "as set"
    click.echo(
        f"- This process ({application_name(*me(config))}) has pool_size {options['pool_size']}"
        f" + max_overflow {options['max_overflow']}, {sized}; mode DB_POOL={config['DB_POOL']}."
    )
    for line in advice.reasoning:
        click.echo(f"- {line}")
    for problem in advice.problems:
        click.echo(f"PROBLEM: {problem}")
    if not advice.problems:
        click.echo("The current settings fit.")
    click.echo("Recommended:")
    for name, value in advice.recommended.items():
        click.echo(f"  {name}={value}")


def web_serving() -> serving.Serving | None:
    """Return what gunicorn.conf.py would serve with here, when this shell does not say.

    A one-off shell (`heroku run`, `railway ssh`) has neither setting: gunicorn sets them
    only for its own workers, and advice for 1 worker of 1 thread would halve the web's.
    """
    if "WEB_CONCURRENCY" in os.environ and "THREADS_PER_WORKER" in os.environ:
        return None
    try:
        return serving.decide(os.environ, serving.read_machine())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _hint(exc: Exception) -> str:
    """Say what the usual refusals of a /metrics scrape mean."""
    status = getattr(exc, "code", None)
    if status == 400:
        return " (is the URL's host one of ALLOWED_HOSTS? studio refuses any other Host)"
    if status in (401, 403):
        return " (give the metrics token: --token or METRICS_TOKEN)"
    return ""


def observed_pool_figures(url: str | None, token: str | None, saved: Any) -> budget.Observed | None:
    """Return what the running workers observed, from a scrape, a file or the shared files."""
    try:
        if url:
            found = metrics.parse_exposition(metrics.fetch(url, token))
        elif saved is not None:
            found = metrics.parse_exposition(saved.read())
        elif metrics.multiprocess_dir():
            found = metrics.samples()
        else:
            click.echo("- No metrics given (--metrics-url or --metrics-file): limits only.")
            return None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the metrics: {exc}{_hint(exc)}") from None
    observed = budget.observed_from(found)
    if observed is None:
        raise click.ClickException("the metrics hold no pool figures of studio's.")
    return observed


@click.command("monitor")
@click.option("--once", is_flag=True, help="Print one snapshot; exit 1 if any alert is raised.")
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between snapshots in the live view.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (one line) per snapshot.")
@with_appcontext
def run_monitor(once: bool, interval: float, as_json: bool) -> None:
    """Watch the database's connections, queries and sizes and Redis's memory and hits."""
    if once:
        sys.exit(1 if monitor.show(as_json) else 0)
    try:
        monitor.watch(interval, as_json)
    except KeyboardInterrupt:
        pass


COMMANDS = (tune, run_monitor)
