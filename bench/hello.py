"""The ceiling: a bare Flask JSON hello-world, served like studio."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return {"hello": "world"}
