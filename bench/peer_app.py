"""A well-written peer: FastAPI under uvicorn calling predict_proba once per request.

Same model file and payload as the service; the model is loaded when the app starts, as in the
article (which fetched it from S3 at start-up).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    state["model"] = joblib.load(os.environ["PEER_MODEL_PATH"])
    yield


app = FastAPI(lifespan=lifespan)


class Instances(BaseModel):
    instances: list


@app.get("/ready")
def ready() -> dict:
    return {"status": "ready"}


@app.post("/predict")
def predict(body: Instances) -> dict:
    model = state["model"]
    instances = body.instances
    if instances and isinstance(instances[0], dict):  # a table keyed by column name
        import pandas as pd

        instances = pd.DataFrame(instances)
    probabilities = model.predict_proba(instances)
    classes = [str(c) for c in model.classes_]
    return {"predictions": [dict(zip(classes, row.tolist(), strict=True)) for row in probabilities]}
