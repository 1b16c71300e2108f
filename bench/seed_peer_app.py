"""A peer written the way the seed articles write it: Flask under gunicorn (sync workers), the model
loaded at start, and both `predict` and `predict_proba` called for every request.

Same model file and payload as the service (PEER_MODEL_PATH).
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["PEER_MODEL_PATH"])


@app.get("/ready")
def ready():
    return jsonify(status="ready")


@app.post("/predict")
def predict():
    instances = request.get_json()["instances"]
    if instances and isinstance(instances[0], dict):  # a table keyed by column name
        instances = pd.DataFrame(instances)
    labels = model.predict(instances)
    probabilities = model.predict_proba(instances)
    classes = [str(c) for c in model.classes_]
    return jsonify(predictions=[{"label": label.item() if hasattr(label, "item") else label,
                                 "probabilities": dict(zip(classes, row.tolist(), strict=True))}
                                for label, row in zip(labels, probabilities, strict=True)])
