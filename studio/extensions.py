"""Unbound extension instances, bound to an app by the factory."""

from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names keep Alembic migrations identical on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
# A connection's execution option: it only reads, so on SQLite it begins a plain transaction
# and never queues behind a writer (see database.configure_sqlite).
READS_ONLY = "studio_reads_only"
# Set in a connection's info while it runs a GET's statements without a transaction (on
# PostgreSQL, see database.autocommit_reads): nothing may be committed through it.
AUTOCOMMIT = "studio_autocommit"
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
cache = Cache()
# Client addresses are right behind the platform's router because ProxyFix runs first.
limiter = Limiter(key_func=get_remote_address)
