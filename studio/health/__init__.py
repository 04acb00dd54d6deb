"""Liveness and readiness endpoints for the platform's router and operators."""

from .views import bp

__all__ = ["bp"]
