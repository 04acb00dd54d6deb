"""The JSON API used by scripts, at /api/v1."""

from .views import bp

__all__ = ["bp"]
