"""The extension's pages: /metrics for the operators' scraper, /admin/performance for admins."""

import hmac
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, render_template, request
from flask_login import current_user
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import signals
from ..extensions import login_manager
from ..services import accounts, cached_reads
from . import metrics
from .report import active_alerts, ago, clock, gather, report_charts
from .state import observatory

bp = Blueprint("observability", __name__, template_folder="templates")
bp.add_app_template_filter(clock)
bp.add_app_template_filter(ago)
REFRESH_SECONDS = 5
# The blueprints whose pages show the alert banner: the signed-in admin's.
ADMIN_PAGES = frozenset({"admin", "observability"})


class CacheCollector(Collector):
    """The cache's counters, read when scraped (shared by all workers where Redis keeps them)."""

    def collect(self) -> Iterable[Metric]:
        status = cached_reads.status()
        for name in ("hits", "misses", "errors"):
            yield CounterMetricFamily(
                f"studio_cache_{name}", f"Cache {name} counted by studio.", value=status[name]
            )
        hit_rate = status["hit_rate"]
        yield GaugeMetricFamily(
            "studio_cache_hit_ratio",
            "Hits / (hits + misses); NaN before the first lookup.",
            value=float("nan") if hit_rate is None else hit_rate,
        )
        yield GaugeMetricFamily(
            "studio_cache_up",
            "1 while the cache answers, 0 while it is bypassed.",
            value=1 if status["state"] == "ok" else 0,
        )


def authorised() -> bool:
    """Accept METRICS_TOKEN or any active admin's API token as a Bearer credential."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return False
    expected = current_app.config.get("METRICS_TOKEN")
    if expected and hmac.compare_digest(secret.encode(), expected.encode()):
        return True
    return accounts.user_for_token(secret) is not None


@bp.get("/metrics")
def exposition():
    if not authorised():
        return Response(
            "Send METRICS_TOKEN or an API token as 'Authorization: Bearer <token>'.\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # This worker's gauges are fresh; the others' are as of their last sample.
    observatory().sampler.sample()
    body, content_type = metrics.exposition(extra=[CacheCollector()])
    return Response(body, content_type=content_type)


@bp.get("/admin/performance")
def performance():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    signals.admin_identified.send("session")
    # Anything but refresh=0 keeps the page reloading itself.
    refresh = None if request.args.get("refresh") == "0" else REFRESH_SECONDS
    report = gather()
    charts = report_charts(report, current_app.config["ALERT_POOL_PERCENT"])
    return render_template(
        "observability/performance.html", report=report, charts=charts, refresh=refresh
    )


def alerts_banner() -> dict[str, object]:
    """Give every signed-in admin page the alerts on in any worker."""
    # Admin pages only: their blueprints have turned everyone else away by now.
    if request.blueprint not in ADMIN_PAGES:
        return {}
    return {"admin_alerts": active_alerts()}
