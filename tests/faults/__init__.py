"""Fault tests: studio under gunicorn on its own PostgreSQL and Redis, broken on purpose."""
