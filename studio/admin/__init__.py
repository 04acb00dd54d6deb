"""The HTML admin where the shop's admins work, at /admin."""

from .views import bp

__all__ = ["bp"]
