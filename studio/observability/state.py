"""What one app measured in this process, kept in its extensions."""

from dataclasses import dataclass

from flask import Flask, current_app

from .alerts import AlertBook
from .queries import SlowQueries
from .sampling import Sampler
from .sign_ins import FailedSignIns
from .timing import RequestTimes

EXTENSION_KEY = "studio.observability"


@dataclass
class Observatory:
    """What one app measured in this process."""

    requests: RequestTimes
    slow_queries: SlowQueries
    alerts: AlertBook
    sampler: Sampler
    failed_sign_ins: FailedSignIns


def observatory(app: Flask | None = None) -> Observatory:
    """Return the figures of the given app, or of the current one."""
    return (app or current_app).extensions[EXTENSION_KEY]
