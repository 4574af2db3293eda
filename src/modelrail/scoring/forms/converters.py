"""Building the candidate fast forms of a model with well-kept converters:

- ``compiled-linear``: linear scikit-learn models and pipelines of scalers (``compiled.py``);
- ``onnxruntime``: skl2onnx for scikit-learn estimators and whole pipelines (text one-hot
  encoding included), onnxmltools for XGBoost and LightGBM, CatBoost's own exporter;
- ``treelite``: Treelite for tree ensembles (scikit-learn forests and histogram gradient
  boosting, XGBoost, LightGBM), which the ONNX converters sometimes refuse.

Each builder returns the form's bytes with what running them needs, or raises ``Skip`` with
the reason it does not apply; a converter's own failure becomes such a reason too, never an
error for the user (``build.py``). Whether the result agrees with the model is decided by
verification, not here.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelrail.entities import Signature
from modelrail.scoring.forms.record import COMPILED_LINEAR, ONNXRUNTIME, TREELITE

# ONNX opsets the converters are asked for: what onnxmltools 1.16 supports at most, and
# what every onnxruntime since 1.17 runs.
_OPSET = 15
_ML_OPSET = 3
_NUMERIC = frozenset({"float64", "int64", "bool"})


class Skip(Exception):
    """This form does not apply, or could not be built: the message says why."""


@dataclass(frozen=True)
class Built:
    kind: str
    data: bytes
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """What a form is built from: the model as logged, the flavor's predictor over it, and
    the version's signature and input example."""

    model: Any
    predictor: Any
    flavor: str
    signature: Signature
    example: Any  # the example as a DataFrame of the signature's columns

    @property
    def numeric(self) -> bool:
        return all(c.dtype in _NUMERIC for c in self.signature.inputs)

    @property
    def text_columns(self) -> list[str]:
        return [c.name for c in self.signature.inputs if c.dtype == "string"]

    @property
    def classifier(self) -> bool:
        return self.signature.has_probabilities and bool(self.signature.classes)


Builder = Callable[[Subject], Built]


def builders() -> dict[str, Builder]:
    """Every candidate, in the order they are tried."""
    return {COMPILED_LINEAR: compiled_linear, ONNXRUNTIME: onnx_form, TREELITE: treelite_form}


def require_module(name: str, extra: str) -> Any:
    """Import an optional converter or runtime, or skip the form naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name} is not installed (pip install 'modelrail[{extra}]')") from exc


def _common_checks(subject: Subject) -> None:
    if len(subject.signature.outputs) > 1:
        raise Skip("multi-output")
    if any(c.dtype == "datetime" for c in subject.signature.inputs):
        raise Skip("date inputs")


# -- compiled linear ---------------------------------------------------------------------


def compiled_linear(subject: Subject) -> Built:
    from modelrail.scoring.compiled import compile_model, form_to_bytes

    if subject.flavor != "sklearn":
        raise Skip("not a scikit-learn model")
    if not subject.numeric:
        raise Skip("text inputs")
    _common_checks(subject)
    form = compile_model(subject.predictor)
    if form is None:
        raise Skip("not linear")
    data = form_to_bytes(form)
    if data is None:
        raise Skip("labels of mixed types")
    return Built(COMPILED_LINEAR, data, {"link": form.link})


# -- ONNX Runtime ------------------------------------------------------------------------


def onnx_form(subject: Subject) -> Built:
    _common_checks(subject)
    if subject.flavor == "onnx":
        raise Skip("the model is ONNX already")
    require_module("onnxruntime", "onnx")
    if subject.flavor == "sklearn":
        return _from_sklearn(subject)
    if subject.flavor in ("xgboost", "lightgbm"):
        return _from_boosting(subject)
    if subject.flavor == "catboost":
        return _from_catboost(subject)
    raise Skip(f"no ONNX converter for {subject.flavor} models")


def _from_sklearn(subject: Subject) -> Built:
    skl2onnx = require_module("skl2onnx", "onnx")
    options = {"zipmap": False} if subject.classifier else None
    text = subject.text_columns
    if text:
        example = subject.example.copy()
        for spec in subject.signature.inputs:
            if spec.dtype != "string":
                example[spec.name] = example[spec.name].astype(np.float32)
            else:
                example[spec.name] = example[spec.name].astype(object)
        layout = "columns"
    else:
        example = subject.example.to_numpy(dtype=np.float32)
        layout = "matrix"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = skl2onnx.to_onnx(
                subject.predictor,
                example,
                options=options,
                target_opset={"": _OPSET + 2, "ai.onnx.ml": _ML_OPSET},
            )
    except Exception as exc:  # skl2onnx raises RuntimeError, ValueError, NotImplementedError
        raise Skip(f"skl2onnx cannot convert it: {_short(exc)}") from exc
    _track_missing(proto, subject.predictor)
    return _onnx_built(proto, subject, layout, text)


_TREE_ENSEMBLES = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})


def _track_missing(proto: Any, model: Any) -> None:
    """skl2onnx sends a missing value down every split's 'false' branch, where scikit-learn's
    trees learned a side per split (``missing_go_to_left``; left is ONNX's 'true' branch of
    ``BRANCH_LEQ``): copy those sides in, so rows with a NaN are scored by the form as the
    model scores them instead of being left to the model."""
    trees = _sklearn_trees(model)
    ensembles = [n for n in proto.graph.node if n.op_type in _TREE_ENSEMBLES]
    if not trees or len(ensembles) != 1:
        return
    attributes = {a.name: a for a in ensembles[0].attribute}
    tree_ids = list(attributes["nodes_treeids"].ints)
    node_ids = list(attributes["nodes_nodeids"].ints)
    if not tree_ids or max(tree_ids) + 1 != len(trees):
        return
    tracks = [
        int(trees[tree].tree_.missing_go_to_left[node])
        for tree, node in zip(tree_ids, node_ids, strict=True)
    ]
    existing = attributes.get("nodes_missing_value_tracks_true")
    if existing is not None:
        del existing.ints[:]
        existing.ints.extend(tracks)
    else:
        from onnx import helper

        ensembles[0].attribute.append(
            helper.make_attribute("nodes_missing_value_tracks_true", tracks)
        )


def _sklearn_trees(model: Any) -> list[Any] | None:
    """A forest's trees (or a lone tree), each with its learned missing-value sides."""
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    trees = [final] if hasattr(final, "tree_") else getattr(final, "estimators_", None)
    if not isinstance(trees, list) or not trees:
        return None
    if not all(hasattr(getattr(t, "tree_", None), "missing_go_to_left") for t in trees):
        return None
    return trees


def _from_boosting(subject: Subject) -> Built:
    onnxmltools = require_module("onnxmltools", "onnx")
    if not subject.numeric:
        raise Skip("text categories (the converter takes numbers only)")
    from onnxmltools.convert.common.data_types import FloatTensorType

    width = len(subject.signature.inputs)
    types = [("X", FloatTensorType([None, width]))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if subject.flavor == "xgboost":
                booster = _xgboost_booster(subject.model).copy()
                booster.feature_names = None  # the converter wants f0, f1 ... names
                booster.feature_types = None
                proto = onnxmltools.convert_xgboost(
                    booster, initial_types=types, target_opset=_OPSET
                )
            else:
                proto = onnxmltools.convert_lightgbm(
                    subject.model, initial_types=types, target_opset=_OPSET, zipmap=False
                )
    except Skip:
        raise
    except Exception as exc:  # the converters raise RuntimeError, ValueError, KeyError ...
        raise Skip(f"onnxmltools cannot convert it: {_short(exc)}") from exc
    return _onnx_built(proto, subject, "matrix", [])


def _from_catboost(subject: Subject) -> Built:
    """CatBoost's own ONNX exporter (numeric features only)."""
    import tempfile
    from pathlib import Path

    onnx = require_module("onnx", "onnx")
    if not subject.numeric:
        raise Skip("text categories (CatBoost exports numeric features only)")
    with tempfile.TemporaryDirectory(prefix="modelrail-catboost-") as folder:
        path = Path(folder) / "model.onnx"
        try:
            subject.model.save_model(str(path), format="onnx")
            proto = onnx.load_model_from_string(path.read_bytes())
        except Exception as exc:  # CatBoostError for what its exporter does not support
            raise Skip(f"CatBoost cannot export it to ONNX: {_short(exc)}") from exc
    return _onnx_built(proto, subject, "matrix", [])


def _xgboost_booster(model: Any, *, categories: bool = False) -> Any:
    get = getattr(model, "get_booster", None)
    booster = get() if callable(get) else model
    types = getattr(booster, "feature_types", None)
    if not categories and types and "c" in types:
        raise Skip("text categories (the converter takes numbers only)")
    return booster


def _onnx_built(proto: Any, subject: Subject, layout: str, text: list[str]) -> Built:
    outputs = [o for o in proto.graph.output]
    if subject.classifier:
        output = next((o.name for o in outputs if "prob" in o.name.lower()), None)
        if output is None and len(outputs) >= 2:
            output = outputs[1].name
    else:
        output = outputs[0].name if outputs else None
    if output is None:
        raise Skip("the converted graph has no output to read")
    details = {"layout": layout, "float": "float32", "output": output, "text_columns": text}
    return Built(ONNXRUNTIME, bytes(proto.SerializeToString()), details)


# -- Treelite ----------------------------------------------------------------------------


def treelite_form(subject: Subject) -> Built:
    _common_checks(subject)
    if subject.flavor not in ("sklearn", "xgboost", "lightgbm"):
        raise Skip(f"not a tree ensemble ({subject.flavor})")
    categories = _tree_categories(subject)
    if not subject.numeric and set(subject.text_columns) - set(categories):
        raise Skip("text inputs")
    treelite = require_module("treelite", "treelite")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _treelite_model(treelite, subject)
            data = bytes(model.serialize_bytes())
    except Skip:
        raise
    except Exception as exc:  # treelite.TreeliteError and the importers' own errors
        raise Skip(f"treelite cannot import it: {_short(exc)}") from exc
    details = _treelite_details(subject)
    if categories:
        # Text reaches the trees as its code among the training categories, as the tree
        # library's own predictor hands it over (an unseen or missing value: missing).
        names = getattr(getattr(subject.predictor, "columns", None), "names", None)
        details["features"] = list(names or [c.name for c in subject.signature.inputs])
        details["categories"] = {name: list(values) for name, values in categories.items()}
    return Built(TREELITE, data, details)


def _tree_categories(subject: Subject) -> dict[str, list[Any]]:
    """XGBoost's and LightGBM's categorical columns and their training categories."""
    if subject.flavor not in ("xgboost", "lightgbm"):
        return {}
    dtypes = getattr(getattr(subject.predictor, "columns", None), "dtypes", None) or {}
    return {str(name): [_plain(v) for v in dtype.categories] for name, dtype in dtypes.items()}


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _treelite_model(treelite: Any, subject: Subject) -> Any:
    if subject.flavor == "xgboost":
        return treelite.frontend.from_xgboost(_xgboost_booster(subject.model, categories=True))
    if subject.flavor == "lightgbm":
        booster = getattr(subject.model, "booster_", subject.model)
        return treelite.frontend.from_lightgbm(booster)
    if getattr(subject.model, "steps", None) is not None:
        raise Skip("a pipeline (Treelite takes a bare tree ensemble)")
    if not _is_tree_ensemble(subject.model):
        raise Skip("not a tree ensemble")
    import treelite.sklearn

    return treelite.sklearn.import_model(subject.model)


def _treelite_details(subject: Subject) -> dict[str, Any]:
    """scikit-learn's trees (not its histogram boosting) compare features as float32: the
    form rounds its input the same way, or a value between a float32 and its float64 would
    go down the other branch."""
    module = type(subject.model).__module__
    histogram = "HistGradientBoosting" in type(subject.model).__name__
    if subject.flavor == "sklearn" and module.startswith(("sklearn.ensemble", "sklearn.tree")):
        return {} if histogram else {"round": "float32"}
    return {}


def _is_tree_ensemble(model: Any) -> bool:
    module = type(model).__module__
    return module.startswith(("sklearn.ensemble", "sklearn.tree"))


def _short(exc: BaseException, most: int = 100) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= most else text[: most - 3] + "..."
