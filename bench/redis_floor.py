"""The floor of any read cached in Redis: Flask and one `redis.get` of a stored JSON body.

It answers studio's GET /api/v1/paints/<id> with a body bench.run stored beforehand (the
naive app's JSON of each paint in the hot set, under REDIS_FLOOR_PREFIX); no token, no
database. A cached studio read makes at least this round trip, unless it keeps a copy in
its own process.
"""

import os

import redis
from flask import Flask, Response, abort

PREFIX = os.environ.get("REDIS_FLOOR_PREFIX", "bench-floor:")

app = Flask(__name__)
# Connects on the first request, in the worker, not at import.
client = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.get("/api/v1/paints/<int:paint_id>")
def get_paint(paint_id: int):
    body = client.get(f"{PREFIX}paint:{paint_id}")
    if body is None:
        abort(404)
    return Response(body, mimetype="application/json")
