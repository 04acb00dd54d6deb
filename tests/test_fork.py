"""A process forked from one that used the database opens connections of its own."""

import os

import pytest
from sqlalchemy import text

from studio.extensions import db

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


@ON_POSTGRESQL
def test_a_forked_child_shares_no_connection_with_its_parent(extra_apps):
    app = extra_apps()  # a pool of its own, with nothing in it yet
    with app.app_context():
        parent_backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        db.session.remove()  # back to the pool, as gunicorn's master would leave it
        assert db.engine.pool.checkedin() == 1
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # the child: report its own backend, never the parent's socket
            try:
                pooled = db.engine.pool.checkedin()
                backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
                os.write(writer, f"{pooled} {backend}".encode())
            finally:
                os._exit(0)
        os.close(writer)
        _, status = os.waitpid(child, 0)
        pooled, child_backend = map(int, os.read(reader, 100).split())
        os.close(reader)
        assert status == 0
        assert pooled == 0 and child_backend != parent_backend
        # The parent's own connection was left alone and still works.
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() == parent_backend
        db.session.remove()
