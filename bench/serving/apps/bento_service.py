"""The model served by BentoML the documented way: a service class loading the model from
BentoML's model store (BENTOML_HOME), one worker, records in, pandas + predict_proba.
"""

from __future__ import annotations

from typing import Any

import bentoml
import pandas as pd


@bentoml.service(workers=1)
class BenchModel:
    model_ref = bentoml.models.BentoModel("bench-model:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)

    @bentoml.api
    def predict(self, inputs: list[dict[str, float]]) -> dict[str, Any]:
        probabilities = self.model.predict_proba(pd.DataFrame(inputs))
        classes = self.model.classes_[probabilities.argmax(axis=1)]
        return {"predictions": classes.tolist(), "probabilities": probabilities.tolist()}
