"""The baseline: paint detail as a first Flask app would write it (the seeds' "before").

Plain Flask and Flask-SQLAlchemy on studio's `paints` table: NullPool (a new database
connection for every request), the API token checked by a query on every request,
`db.session.get` for the paint and no cache.
"""

from flask import abort
from sqlalchemy.pool import NullPool

from .paint_app import Paint, check_token, create_app, db, paint_json


def get_paint(paint_id: int):
    check_token()
    paint = db.session.get(Paint, paint_id)
    if paint is None:
        abort(404)
    return paint_json(paint)


app = create_app(__name__, {"poolclass": NullPool}, get_paint)
