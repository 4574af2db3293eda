"""What a user would write to serve each benchmark family with FastAPI: a pydantic model of
the row, then the library's ``predict_proba`` on a numpy array (all-numeric families) or a
pandas DataFrame (the pipeline on text columns), one endpoint per family at
``POST /predict/{family}``. Run with uvicorn from bench/.envs/fastapi; the families (pickle,
columns, types) come from the JSON file named by BENCH_FAMILIES.
"""

# No `from __future__ import annotations`: FastAPI reads each endpoint's request model, a
# local variable, from its annotation at runtime.
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from pydantic import create_model

# Fitted on DataFrames, the models warn on every numpy call; the columns are in order.
warnings.filterwarnings("ignore", message="X does not have valid feature names")
app = FastAPI()


def _endpoint(family: dict[str, Any]) -> None:
    model = pickle.loads(Path(family["pickle_path"]).read_bytes())
    columns: list[str] = family["columns"]
    kinds = {"float": float, "str": str}
    fields: Any = {c: (kinds[family["types"][c]], ...) for c in columns}
    row_model: Any = create_model(f"Row_{family['key']}", **fields)
    request_model: Any = create_model(f"Request_{family['key']}", inputs=(list[row_model], ...))

    def answer(probabilities: Any) -> dict[str, Any]:
        classes = model.classes_[probabilities.argmax(axis=1)]
        return {"predictions": classes.tolist(), "probabilities": probabilities.tolist()}

    if family["frame"]:

        async def predict(request: request_model) -> dict[str, Any]:  # type: ignore[valid-type]
            frame = pd.DataFrame([row.model_dump() for row in request.inputs])
            return answer(model.predict_proba(frame))

    else:

        async def predict(request: request_model) -> dict[str, Any]:  # type: ignore[valid-type]
            matrix = np.array([[getattr(row, c) for c in columns] for row in request.inputs])
            return answer(model.predict_proba(matrix))

    app.post(f"/predict/{family['key']}")(predict)


for _family in json.loads(Path(os.environ["BENCH_FAMILIES"]).read_text()):
    _endpoint(_family)
