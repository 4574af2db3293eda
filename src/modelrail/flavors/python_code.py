"""Custom Python models: a class with ``predict`` (and optionally ``predict_proba``) whose
code ships with the version, like MLflow's ``python_function`` with ``code_paths``.

The artifact is one zip: the files of ``code_paths`` under ``code/`` (their layout kept) and
the model object's state under ``state.skops``, written by skops as data, not as a pickle.
Loading imports the shipped code (see ``shipped_code``) and rebuilds the object from that
state, trusting only the types recorded when it was logged. Loading runs the shipped code,
which the version records (``runs_code``) and ``modelrail models show`` says; the code and
the types are the ones the registry recorded, checked by sha256 first.

Every class the state holds must be importable on another machine: from the shipped files,
or from an installed package. A class from ``__main__`` or from a local file that is not
shipped is refused when the model is logged, saying which file to add.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from modelrail.errors import ArtifactIntegrityError, ModelFlavorError
from modelrail.flavors.base import SaveOptions
from modelrail.flavors.shipped_code import (
    collect,
    extracted,
    imported_names,
    module_file,
    sha256,
    shipped_imports,
    top_names,
)

FORMAT = "python-code"
_CODE = "code/"
_STATE = "state.skops"
# Fixed entry times, so the same code and state always make the same bytes (and sha256).
_EPOCH = (1980, 1, 1, 0, 0, 0)


class PythonCodeFlavor:
    name = "python"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        import skops
        import skops.io as sio

        if not callable(getattr(model, "predict", None)):
            raise ModelFlavorError(f"cannot log {_type_name(type(model))}: it has no predict()")
        files = collect(options.code_paths)
        _check_importable(type(model), [_type_name(type(model))], files)
        try:
            state = sio.dumps(model)
            trusted = sorted(sio.get_untrusted_types(data=state))
        except Exception as exc:  # skops raises plain TypeError/ValueError for what it cannot
            raise ModelFlavorError(
                f"skops cannot save the state of this {type(model).__name__}: {exc}"
            ) from exc
        modules = _state_modules(state)
        _check_importable(type(model), trusted, files)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for relative, content in files.items():
                archive.writestr(zipfile.ZipInfo(_CODE + relative, _EPOCH), content)
            archive.writestr(zipfile.ZipInfo(_STATE, _EPOCH), state)
        tops = top_names(files)
        used = (modules | imported_names(files)) - tops
        return {
            "format": FORMAT,
            "estimator": _type_name(type(model)),
            "trusted_types": trusted,
            "code": {relative: sha256(content) for relative, content in files.items()},
            "packages": {**_distributions(used), "skops": skops.__version__},
            "runs_code": True,
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        import skops.io as sio

        label = str(details.get("estimator", "a custom model"))
        recorded: Mapping[str, str] = details.get("code", {})
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                sources = {relative: archive.read(_CODE + relative) for relative in recorded}
                state = archive.read(_STATE)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelFlavorError(f"the artifact of {label} is not shipped code: {exc}") from exc
        for relative, content in sources.items():
            if sha256(content) != recorded[relative] or not _safe(relative):
                raise ArtifactIntegrityError(
                    f"shipped code file {relative} of {label} does not match the sha256 the "
                    "registry recorded; refusing to load it"
                )
        folder = extracted(sources, label)
        trusted = list(details.get("trusted_types", []))
        with shipped_imports(folder, sources):
            try:
                return sio.loads(state, trusted=trusted)
            except Exception as exc:  # the shipped code may raise anything while importing
                raise ModelFlavorError(
                    f"cannot load {label} with its shipped code: {type(exc).__name__}: {exc}"
                ) from exc

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        # The model itself. Without ``feature_names_in_`` serving and batch scoring pass it a
        # float matrix for all-numeric inputs, and ``load_model`` whatever the caller gives:
        # custom models should accept both a DataFrame and an array (docs/registry.md).
        return model


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _safe(relative: str) -> bool:
    parts = relative.split("/")
    return not relative.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _check_importable(model_class: type, types: list[str], files: Mapping[str, bytes]) -> None:
    """Refuse a model another machine could not rebuild: each of its classes must come from
    the shipped code (the very files this process imported) or from an installed package."""
    if model_class.__qualname__ != model_class.__name__:
        raise ModelFlavorError(
            f"cannot log {_type_name(model_class)}: its class is defined inside a function or "
            "another class, where no other process can import it; define it at the top level "
            "of a module file and ship that file with code_paths"
        )
    tops = top_names(files)
    for name in dict.fromkeys(types):
        module = name.rpartition(".")[0]
        top = module.split(".", 1)[0]
        if module == "__main__":
            raise ModelFlavorError(
                f"cannot log {name}: the class is defined in the script being run (__main__), "
                "which code_paths cannot ship. Move it to a module file, e.g. my_model.py, "
                "import it from there (from my_model import ...) and log with "
                "code_paths=['my_model.py']"
            )
        if top in tops:
            _check_shipped_file(name, module, files)
        elif top not in sys.stdlib_module_names and top not in _installed_tops():
            raise ModelFlavorError(
                f"cannot log {name}: its module {module} is neither in code_paths (they ship "
                f"{', '.join(sorted(tops))}) nor an installed package, so no other machine "
                f"could import it; add its file to code_paths"
            )


def _check_shipped_file(name: str, module: str, files: Mapping[str, bytes]) -> None:
    relative = module_file(files, module)
    if relative is None:
        raise ModelFlavorError(
            f"cannot log {name}: code_paths ship {module.split('.', 1)[0]} but not the module "
            f"{module} that defines it"
        )
    imported = getattr(sys.modules.get(module), "__file__", None)
    if imported is not None and Path(imported).read_bytes() != files[relative]:
        raise ModelFlavorError(
            f"cannot log {name}: its class was imported from {imported}, which differs from "
            f"the {relative} code_paths ship; ship the file the model was built with"
        )


def _state_modules(state: bytes) -> frozenset[str]:
    """The top-level modules of every type skops wrote into the state."""
    with zipfile.ZipFile(io.BytesIO(state)) as archive:
        schema = json.loads(archive.read("schema.json"))
    return frozenset(m.split(".", 1)[0] for m in _values(schema, "__module__"))


def _values(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _values(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item, key)


def _distributions(modules: frozenset[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed packages that provide ``modules``."""
    found: dict[str, str] = {}
    for module in sorted(modules):
        for distribution in _installed_tops().get(module, ()):
            try:
                found[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:  # pragma: no cover - listed but gone
                continue
    return found


@cache
def _installed_tops() -> Mapping[str, list[str]]:
    # Read once per process: scanning every installed distribution takes a while.
    return metadata.packages_distributions()
