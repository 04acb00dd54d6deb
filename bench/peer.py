"""The pooled peer: the simplest sound Flask-SQLAlchemy app (the seeds' "after").

As bench/naive.py, but with connections kept in a QueuePool of 5, each checked with a
pre-ping when taken from the pool, and the paint read with `db.get_or_404`. studio's reads
that miss the cache, or run without it, are measured against this app.
"""

from sqlalchemy.pool import QueuePool

from .paint_app import Paint, check_token, create_app, db, paint_json

POOL = {"poolclass": QueuePool, "pool_size": 5, "pool_pre_ping": True}


def get_paint(paint_id: int):
    check_token()
    return paint_json(db.get_or_404(Paint, paint_id))


app = create_app(__name__, POOL, get_paint)
