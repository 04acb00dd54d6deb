"""GET /metrics: Prometheus exposition for the operators' scraper, behind a token."""

from .views import bp

__all__ = ["bp"]
