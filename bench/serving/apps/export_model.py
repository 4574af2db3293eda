"""Save the pickled benchmark model in a peer's own format (run with that peer's Python).

python export_model.py mlflow MODEL.pkl EXAMPLE.json OUT_DIR
python export_model.py bentoml MODEL.pkl EXAMPLE.json     (store: $BENTOML_HOME)
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str]) -> None:
    kind, model_path, example_path = argv[:3]
    model = pickle.loads(Path(model_path).read_bytes())
    example = pd.read_json(example_path, orient="records")
    if kind == "mlflow":
        import mlflow.sklearn

        mlflow.sklearn.save_model(model, argv[3], input_example=example)
    elif kind == "bentoml":
        import bentoml

        bentoml.sklearn.save_model("bench-model", model)
    else:
        raise SystemExit(f"unknown format {kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
