"""The HTML admin where the shop's admins work, at /admin."""

from . import history_views, import_views, vocabulary_views  # noqa: F401  (their pages join the admin's blueprint)
from .views import bp

__all__ = ["bp"]
