"""GET /metrics: every worker's figures in Prometheus' text format, for a Bearer token."""

import hmac
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..observability import metrics, observatory
from ..services import accounts, cached_reads

bp = Blueprint("metrics", __name__)


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
