"""The lean peer: FastAPI under uvicorn with an `async def` endpoint that calls predict_proba once and
takes the label by argmax (an `async def` runs on the event loop; a `def` endpoint would go through a
thread pool, which is slower for work this short).

Same model file and payload as the service (PEER_MODEL_PATH), loaded when the app starts.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

state: dict = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    model = joblib.load(os.environ["PEER_MODEL_PATH"])
    state["model"] = model
    state["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    state["keys"] = [str(c) for c in state["classes"]]
    yield


app = FastAPI(lifespan=lifespan)


class Instances(BaseModel):
    instances: list


@app.get("/ready")
async def ready() -> dict:
    return {"status": "ready"}


@app.post("/predict")
async def predict(body: Instances) -> dict:
    model, classes, keys = state["model"], state["classes"], state["keys"]
    instances = body.instances
    if instances and isinstance(instances[0], dict):  # a table keyed by column name
        import pandas as pd

        instances = pd.DataFrame(instances)
    probabilities = model.predict_proba(instances)
    labels = np.argmax(probabilities, axis=1)
    return {"predictions": [{"label": classes[i], "probabilities": dict(zip(keys, row.tolist(), strict=True))}
                            for i, row in zip(labels.tolist(), probabilities, strict=True)]}
