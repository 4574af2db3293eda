"""What a user would write to serve the model with FastAPI: a pydantic model of the row, then
scikit-learn's ``predict_proba`` on a pandas DataFrame (``pandas_app``) or a numpy array
(``numpy_app``). Run with uvicorn from bench/.envs/fastapi; the model pickle and its column
names come from BENCH_MODEL and BENCH_COLUMNS.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel, create_model

MODEL: Any = pickle.loads(Path(os.environ["BENCH_MODEL"]).read_bytes())
COLUMNS: list[str] = json.loads(Path(os.environ["BENCH_COLUMNS"]).read_text())
# The 30 float fields a user would type out by hand.
Row: type[BaseModel] = create_model("Row", **{c: (float, ...) for c in COLUMNS})  # type: ignore[call-overload]
# The pipeline was fitted on a DataFrame; a numpy array makes scikit-learn warn each call.
warnings.filterwarnings("ignore", message="X does not have valid feature names")


class Request(BaseModel):
    inputs: list[Row]  # type: ignore[valid-type]


pandas_app = FastAPI()
numpy_app = FastAPI()


def _answer(probabilities: Any) -> dict[str, Any]:
    classes = MODEL.classes_[probabilities.argmax(axis=1)]
    return {"predictions": classes.tolist(), "probabilities": probabilities.tolist()}


@pandas_app.post("/predict")
async def predict_pandas(request: Request) -> dict[str, Any]:
    frame = pd.DataFrame([row.model_dump() for row in request.inputs])
    return _answer(MODEL.predict_proba(frame))


@numpy_app.post("/predict")
async def predict_numpy(request: Request) -> dict[str, Any]:
    matrix = np.array([[getattr(row, c) for c in COLUMNS] for row in request.inputs])
    return _answer(MODEL.predict_proba(matrix))
