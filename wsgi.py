"""The WSGI application, as gunicorn (`gunicorn wsgi:app`) and `flask --app wsgi` load it."""

import sys

from studio import create_app
from studio.config import ConfigError

# A worker that exits with 1 is replaced by gunicorn for ever, each refusing in turn, while
# the master holds the port and no request is answered; 4 is gunicorn's "the application
# could not be loaded", which stops gunicorn itself, so the platform sees a crashed process.
APP_LOAD_ERROR = 4

try:
    app = create_app()
except ConfigError as refusal:
    sys.stderr.write(f"{refusal}\n")
    raise SystemExit(APP_LOAD_ERROR) from None
