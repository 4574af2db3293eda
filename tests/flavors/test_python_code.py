"""Custom Python models: their code ships with the version, their state is skops data, and
they load in another process that has neither their source nor a pickle."""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import ModelVersion
from modelrail.errors import ArtifactIntegrityError, ModelFlavorError
from modelrail.flavors import get_flavor

MODEL = "custom-scorer"

LINEAR = """
import numpy as np


class Linear:
    \"\"\"A logistic model with fitted numpy weights.\"\"\"

    def __init__(self, weights, bias):
        self.weights = np.asarray(weights, dtype=float)
        self.bias = float(bias)
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X):
        z = np.asarray(X, dtype=float) @ self.weights + self.bias
        p = 1.0 / (1.0 + np.exp(-z)){flip}
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)
"""

# A package: a wrapper around a scikit-learn estimator, with a data file it reads on import.
PACKAGE = {
    "__init__.py": "",
    "scale.json": '{"scale": 2.0}',
    "wrapped.py": """
import json
from importlib import resources
from pathlib import Path

import numpy as np

SCALE = json.loads((Path(__file__).parent / "scale.json").read_text())["scale"]
# Read as an installed package's data would be, too.
assert json.loads(resources.files(__package__).joinpath("scale.json").read_text())["scale"] == SCALE


class Scaled:
    def __init__(self, estimator):
        self.estimator = estimator
        self.classes_ = estimator.classes_

    def predict(self, X):
        return self.estimator.predict(np.asarray(X, dtype=float) * SCALE)

    def predict_proba(self, X):
        return self.estimator.predict_proba(np.asarray(X, dtype=float) * SCALE)
""",
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Shipped code is extracted under the test's folder; the modules the tests import are
    forgotten afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.split(".", 1)[0] in ("my_model", "scorers", "helpers"):
            del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    init_project(root)
    return root


@pytest.fixture
def client(project: Path) -> Iterator[Client]:
    with Client(settings=load_settings(cwd=project, environ={}, create=False)) as made:
        yield made


def write_module(folder: Path, name: str = "my_model", flip: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(LINEAR.format(flip="\n        p = 1.0 - p" if flip else ""), "utf-8")
    return path


def linear(folder: Path, *, flip: bool = False) -> tuple[Path, Any]:
    """``my_model.py`` written to ``folder`` and imported from there, and a model of it."""
    source = write_module(folder, flip=flip)
    return source, import_from(folder, "my_model").Linear([1.0, -1.0], 0.0)


def log_linear(client: Client, folder: Path, *, flip: bool = False) -> Any:
    """Log a model of ``my_model.py`` written to ``folder``, shipping that file."""
    source, model = linear(folder, flip=flip)
    log(client, model, [source])
    return model


def write_package(folder: Path) -> Path:
    package = folder / "scorers"
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(text, "utf-8")
    return package


def scaled(folder: Path) -> Any:
    """The package's wrapper around a fitted scikit-learn estimator."""
    X = features()
    estimator = LogisticRegression().fit(X.to_numpy(), (X["a"] > 0).astype(int))
    return import_from(folder, "scorers.wrapped").Scaled(estimator)


def import_from(folder: Path, name: str) -> ModuleType:
    """Import ``name`` from ``folder`` as a training script would."""
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def features(rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(rng.normal(size=(rows, 2)), columns=["a", "b"])


def log(client: Client, model: Any, code_paths: list[Path]) -> ModelVersion:
    with client.start_run("custom") as run:
        return run.log_model(model, MODEL, input_example=features(5), code_paths=code_paths)


def run_python(project: Path, tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter (isolated mode: no PYTHONPATH, no current folder on
    sys.path) in the project folder, with a cache of its own."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "other-cache"),
    }
    return subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load_elsewhere(project: Path, tmp_path: Path) -> dict[str, Any]:
    """Version 1 loaded and scored in another process: probabilities, predictions, the class
    of the loaded model and whether its module stayed in sys.modules."""
    done = run_python(
        project,
        tmp_path,
        f"""
        import json, sys
        import numpy as np
        import modelrail
        loaded = modelrail.load_model("{MODEL}:1")
        rows = np.random.default_rng(7).normal(size=(40, 2))
        print(json.dumps({{
            "proba": loaded.predict_proba(rows).tolist(),
            "predict": loaded.predict(rows).tolist(),
            "class": type(loaded.model).__module__ + "." + type(loaded.model).__name__,
            "left_behind": "my_model" in sys.modules,
        }}))
        """,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_a_custom_model_loads_in_another_process_after_its_source_is_gone(
    client: Client, project: Path, tmp_path: Path
) -> None:
    source = write_module(tmp_path / "src")
    model = import_from(tmp_path / "src", "my_model").Linear([1.5, -2.0], 0.25)
    version = log(client, model, [source])
    assert version.flavor == "python"
    details = version.flavor_details
    assert details["estimator"] == "my_model.Linear" and details["runs_code"] is True
    assert details["code"] == {"my_model.py": _sha256(source.read_bytes())}
    assert {"numpy", "skops"} <= set(details["packages"]) and "unsafe" not in details
    expected = model.predict_proba(features().to_numpy())
    source.unlink()
    answer = load_elsewhere(project, tmp_path)
    np.testing.assert_allclose(answer["proba"], expected)
    assert answer["predict"] == (expected[:, 1] > 0.5).astype(int).tolist()
    assert answer["class"] == "my_model.Linear" and answer["left_behind"] is False


def test_a_package_wrapping_an_estimator_ships_with_its_data_files(
    client: Client, project: Path, tmp_path: Path
) -> None:
    package = write_package(tmp_path / "src")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"not shipped")
    model = scaled(tmp_path / "src")
    version = log(client, model, [package])
    assert set(version.flavor_details["code"]) == {
        "scorers/__init__.py",
        "scorers/scale.json",
        "scorers/wrapped.py",
    }
    assert "scikit-learn" in version.flavor_details["packages"]
    expected = model.predict_proba(features().to_numpy())
    for path in sorted(package.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    answer = load_elsewhere(project, tmp_path)
    np.testing.assert_allclose(answer["proba"], expected)


def test_a_class_defined_in_the_running_script_is_refused_saying_how_to_ship_it(
    project: Path, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            import modelrail
            from modelrail.errors import ModelFlavorError

            class Constant:
                def predict(self, X):
                    return np.zeros(len(X))

            for options in ({{}}, {{"code_paths": [{str(script)!r}]}}):
                try:
                    with modelrail.start_run(experiment="custom") as run:
                        run.log_model(Constant(), "{MODEL}", input_example=np.ones((2, 2)),
                                      **options)
                except ModelFlavorError as exc:
                    print(exc)
            """
        ),
        "utf-8",
    )
    done = run_python(project, tmp_path, f"exec(open({str(script)!r}).read())")
    assert done.returncode == 0, done.stderr
    without, with_code = done.stdout.strip().splitlines()
    for message in (without, with_code):
        assert "__main__" in message or "script being run" in message
        assert "code_paths=['my_model.py']" in message
    assert "import it from there" in with_code


def test_the_artifact_is_a_zip_of_code_and_skops_state_not_a_pickle(
    client: Client, tmp_path: Path
) -> None:
    log_linear(client, tmp_path / "src")
    version = client.get_model_version(f"{MODEL}:1")
    source = tmp_path / "src" / "my_model.py"
    data = client.artifacts.read_verified(version.artifact_sha256)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["code/my_model.py", "state.skops"]
        assert archive.read("code/my_model.py") == source.read_bytes()
        state = archive.read("state.skops")
    with zipfile.ZipFile(io.BytesIO(state)) as inner:
        assert "schema.json" in inner.namelist()
        assert not [n for n in inner.namelist() if n.endswith((".pkl", ".pickle", ".joblib"))]


def test_a_changed_code_file_is_refused_by_its_sha256(client: Client, tmp_path: Path) -> None:
    log_linear(client, tmp_path / "src")
    version = client.get_model_version(f"{MODEL}:1")
    client.load_model(f"{MODEL}:1")
    (extracted,) = (tmp_path / "cache" / "modelrail" / "code").glob("*/my_model.py")
    extracted.write_text(extracted.read_text() + "\nimport os  # slipped in\n", "utf-8")
    with pytest.raises(ArtifactIntegrityError, match=r"my_model\.py .* changed after it was"):
        client.load_model(f"{MODEL}:1")
    # A zip whose code is not what the registry recorded (the artifact's own sha256 aside).
    recorded = version.flavor_details
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr("code/my_model.py", LINEAR.format(flip="\n        p = 1.0 - p"))
        archive.writestr("state.skops", b"")
    with pytest.raises(ArtifactIntegrityError, match="does not match the sha256"):
        get_flavor("python").load(forged.getvalue(), recorded)


def test_two_versions_of_the_same_module_name_load_side_by_side(
    client: Client, tmp_path: Path
) -> None:
    model = log_linear(client, tmp_path / "v1")
    del sys.modules["my_model"]
    log_linear(client, tmp_path / "v2", flip=True)
    user_module = sys.modules["my_model"]
    one, two = client.load_model(f"{MODEL}:1"), client.load_model(f"{MODEL}:2")
    rows = features().to_numpy()
    p1, p2 = one.predict_proba(rows), two.predict_proba(rows)
    assert p1 is not None and p2 is not None
    np.testing.assert_allclose(p1, model.predict_proba(rows))
    np.testing.assert_allclose(p2[:, 1], p1[:, 0])
    assert type(one.model) is not type(two.model)
    # The module the user imported is left in place, not replaced by either shipped copy.
    assert sys.modules["my_model"] is user_module
    assert type(two.model) is not user_module.Linear


def test_a_module_of_the_same_name_from_elsewhere_is_not_reused(
    client: Client, tmp_path: Path
) -> None:
    model = log_linear(client, tmp_path / "src")
    del sys.modules["my_model"]
    elsewhere = tmp_path / "other-project"
    elsewhere.mkdir()
    (elsewhere / "my_model.py").write_text("class Linear:\n    pass\n", "utf-8")
    other = import_from(elsewhere, "my_model")
    loaded = client.load_model(f"{MODEL}:1")
    np.testing.assert_allclose(loaded.predict(features()), model.predict(features()))
    assert sys.modules["my_model"] is other and not hasattr(other.Linear, "predict")


def test_a_class_from_a_local_file_that_is_not_shipped_is_refused(
    client: Client, tmp_path: Path
) -> None:
    source = write_module(tmp_path / "src")
    (tmp_path / "src" / "helpers.py").write_text("class Extra:\n    pass\n", "utf-8")
    model = import_from(tmp_path / "src", "my_model").Linear([1.0, -1.0], 0.0)
    model.extra = import_from(tmp_path / "src", "helpers").Extra()
    with pytest.raises(ModelFlavorError, match=r"helpers\.Extra: .* add its file to code_paths"):
        log(client, model, [source])
    unrelated = tmp_path / "src" / "helpers.py"
    plain = import_from(tmp_path / "src", "my_model").Linear([1.0, -1.0], 0.0)
    with pytest.raises(ModelFlavorError, match=r"neither in code_paths .*ship helpers"):
        log(client, plain, [unrelated])
    assert client.list_models() == []


def test_shipping_a_different_file_than_the_one_imported_is_refused(
    client: Client, tmp_path: Path
) -> None:
    write_module(tmp_path / "src")
    model = import_from(tmp_path / "src", "my_model").Linear([1.0, -1.0], 0.0)
    changed = write_module(tmp_path / "elsewhere", flip=True)
    with pytest.raises(ModelFlavorError, match=r"imported from .* which differs from"):
        log(client, model, [changed])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes.txt", "not a .py file or a folder"),
        ("json.py", "would hide Python's or modelrail's own json"),
        ("my-model.py", "is not a Python module name"),
    ],
)
def test_code_paths_that_cannot_ship_are_refused(
    client: Client, tmp_path: Path, name: str, message: str
) -> None:
    source, model = linear(tmp_path / "src")
    odd = tmp_path / "src" / name
    odd.write_text("x = 1\n", "utf-8")
    with pytest.raises(ModelFlavorError, match=message):
        log(client, model, [source, odd])


def test_compiled_files_in_a_shipped_folder_are_refused(client: Client, tmp_path: Path) -> None:
    package = write_package(tmp_path / "src")
    (package / "fast.so").write_bytes(b"\x7fELF")
    model = scaled(tmp_path / "src")
    with pytest.raises(ModelFlavorError, match=r"compiled file scorers/fast\.so"):
        log(client, model, [package])


def test_a_class_defined_inside_a_function_is_refused(client: Client, tmp_path: Path) -> None:
    source = write_module(tmp_path / "src")

    class Local:
        def predict(self, X: Any) -> Any:
            return np.zeros(len(X))

    with pytest.raises(ModelFlavorError, match="inside a function or another class"):
        log(client, Local(), [source])


def _sha256(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()
