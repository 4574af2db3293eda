"""What the flavors that save a model in its library's own format share (XGBoost, LightGBM,
CatBoost): the packages they record, the class a file is loaded back into, the plain JSON
values kept beside the file, and the error when the installed library refuses a file.

None of these formats can run code when read: a file holds trees and numbers, and the
Python class it is loaded into is looked up by name inside the library itself, never
imported from wherever the details say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from modelrail.errors import ModelFlavorError


def packages(library: str, version: str) -> dict[str, str]:
    """``{distribution: version}`` a prediction needs: the library (by its canonical
    distribution name, whatever wheel installed it: ``xgboost-cpu`` is still ``xgboost``),
    and numpy and pandas, which carry the input into it."""
    import numpy
    import pandas

    return {library: version, "numpy": numpy.__version__, "pandas": pandas.__version__}


def class_path(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__name__}"


def library_class(details: Mapping[str, Any], library: Any, *bases: type[Any]) -> type[Any]:
    """The class named by ``details["estimator"]``, looked up in ``library``'s top-level
    namespace only, and only if it is one of ``bases`` or a subclass of one: details
    edited by hand cannot make a load import or build anything else."""
    estimator = str(details.get("estimator", ""))
    module, _, name = estimator.rpartition(".")
    found = getattr(library, name, None) if module.split(".", 1)[0] == library.__name__ else None
    if not isinstance(found, type) or not issubclass(found, bases):
        raise ModelFlavorError(
            f"this {library.__name__} model records its class as {estimator!r}, which is not "
            f"one of the {library.__name__} model classes this flavor loads"
        )
    return found


def plain(value: Any) -> Any:
    """A label or category as a JSON value (numpy scalars become Python ones)."""
    item = value.item() if hasattr(value, "item") and callable(value.item) else value
    if item is None or isinstance(item, bool | int | float | str):
        return item
    raise ModelFlavorError(
        f"cannot record the value {value!r} ({type(value).__name__}): class labels and "
        "categories must be text, numbers or booleans"
    )


def plain_list(values: Iterable[Any]) -> list[Any]:
    return [plain(v) for v in values]


def refused(
    exc: Exception, *, library: str, installed: str, file_format: str, details: Mapping[str, Any]
) -> ModelFlavorError:
    """The error for a model file the installed library cannot read, naming the model's
    class, the format, and the library version that saved it against the one here (a
    newer version's file is the usual cause, and the fix is to upgrade)."""
    saved = str(details.get("packages", {}).get(library, "")) or "an unrecorded version"
    estimator = str(details.get("estimator", f"{library} model"))
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    if _release(saved) > _release(installed):
        advice = (
            f"it was saved by {library} {saved}, newer than the {library} {installed} "
            f"installed here: pip install '{library}>={saved}'"
        )
    else:
        advice = (
            f"it was saved by {library} {saved} and {library} {installed} is installed here; "
            "the file may be damaged or not a model"
        )
    return ModelFlavorError(
        f"cannot load this {estimator} ({file_format} file): {advice}. {library} said: {reason}"
    )


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version ("3.2.0rc1" -> (3, 2, 0)); () when it has none,
    which compares older than any release."""
    numbers = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
    return tuple(numbers)
