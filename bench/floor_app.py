"""The floor: the most this stack can do. Flask under gunicorn (sync workers) parsing the same JSON
body with orjson and answering a constant, with no model and no checks, metrics or logs.

A service row's ratio to this one says how much of the stack's capacity the service's own request
path (checks, metrics, logs, the model) leaves.
"""

from __future__ import annotations

import orjson
from flask import Flask, Response, request

app = Flask(__name__)
_ANSWER = orjson.dumps({"predictions": [{"label": 0}]})


@app.get("/ready")
def ready():
    return Response(b'{"status":"ready"}', mimetype="application/json")


@app.post("/predict")
def predict():
    body = orjson.loads(request.get_data())
    if not body.get("instances"):
        return Response(b'{"error":"no instances"}', status=400, mimetype="application/json")
    return Response(_ANSWER, mimetype="application/json")
