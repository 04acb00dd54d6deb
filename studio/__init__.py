"""studio: the paint shop's inventory, in the browser and over a JSON API."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import admin, api, auth, cli, health, observability
from .auth.sessions import CookieSessionsOutsideApi, load_user
from .config import load_settings
from .connection_budget import apply_pool_size
from .database import IdConverter, register_engine_events, register_request_deadline
from .errors import register_error_handlers
from .extensions import cache, csrf, db, login_manager, migrate
from .limits import register_request_limits
from .logs import configure_logging, log_startup
from .request_ids import register_request_ids
from .security import register_security
from .services.cached_reads import register_cache_epochs
from .throttle import init_limiter

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides settings (a test's database, say)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_settings(config, app.instance_path))
    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    # Its clock starts on request_started, before every before_request hook (CSRF's and
    # the limiter's too); its after_request hook, registered before security's, runs after
    # it, so a request's total includes the other hooks and an HTTPS redirect is timed too.
    observability.init_app(app)
    register_security(app)
    cli.register_commands(app)
    register_request_limits(app)
    register_proxy_fix(app)
    register_request_ids(app)
    log_startup(app)
    return app


def register_extensions(app: Flask) -> None:
    apply_pool_size(app)  # before the engine is made, which takes the pool's size
    db.init_app(app)
    register_engine_events(app)
    register_request_deadline(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.user_loader(load_user)
    app.session_interface = CookieSessionsOutsideApi()
    csrf.init_app(app)
    init_limiter(app, auth.bp.name)
    cache.init_app(app)
    register_cache_epochs(app)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(health.bp)


def register_proxy_fix(app: Flask) -> None:
    # Railway and Heroku put one router in front; trust exactly that many hops.
    hops = app.config["PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=hops)
