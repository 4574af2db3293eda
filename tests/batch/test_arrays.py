"""Columns moved between Arrow and numpy through their buffers: the same values as pyarrow's
own conversions, for slices, nulls, booleans and texts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from modelrail.batch import arrays
from tests.batch.conftest import ScoringProject, make_output


def test_numbers_are_read_with_slices_and_nulls() -> None:
    column = pa.array([1.5, None, 3.0, 4.0, None, 6.0]).slice(1, 4)
    assert arrays.to_numpy(column, nulls_as_nan=True).tolist()[1:3] == [3.0, 4.0]
    assert np.isnan(arrays.to_numpy(column, nulls_as_nan=True)[[0, 3]]).all()
    assert arrays.valid(column).tolist() == [False, True, True, False]
    ids = pa.array(np.arange(10, dtype=np.int64)).slice(7)
    assert arrays.to_numpy(ids).tolist() == [7, 8, 9]
    stamps = pa.array([5, 6], pa.timestamp("us", tz="UTC"))
    assert arrays.to_numpy(stamps).tolist() == [5, 6]


def test_booleans_round_trip_at_any_offset() -> None:
    values = np.array([True, False, True, True, False, False, True, False, True, True])
    made = arrays.from_numpy(values, pa.bool_())
    assert made.to_pylist() == values.tolist()
    assert arrays.to_numpy(made.slice(3, 5)).tolist() == values[3:8].tolist()


def test_numbers_are_built_in_the_asked_type() -> None:
    made = arrays.from_numpy(np.array([1, 2, 3]), pa.int32())
    assert made.type == pa.int32() and made.to_pylist() == [1, 2, 3]
    assert arrays.repeated(7, pa.int32(), 3).to_pylist() == [7, 7, 7]
    when = arrays.repeated(1_000_000, pa.timestamp("us", tz="UTC"), 2)
    assert [v.timestamp() for v in when.to_pylist()] == [1.0, 1.0]


def test_texts_keep_their_characters() -> None:
    assert arrays.strings(["ä", "", "chat 🐈"]).to_pylist() == ["ä", "", "chat 🐈"]
    assert arrays.repeated_string("run-7é", 3).to_pylist() == ["run-7é"] * 3
    assert arrays.repeated_string("", 2).to_pylist() == ["", ""]
    assert arrays.repeated_string("x", 0).to_pylist() == []


def test_text_beyond_one_string_array_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit one Arrow string array"):
        arrays.repeated_string("x" * 1024, 2_200_000)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc is chosen on Linux")
def test_a_batch_run_scores_with_arrows_jemalloc_pool_whatever_was_imported_first(
    scoring: ScoringProject,
) -> None:
    """The pool can only be chosen before pyarrow loads: the client (and its artifact store)
    must not load it, or batch scoring falls back to mimalloc and peaks 40-50 MB higher."""
    output = make_output("parquet", scoring.root)
    script = """
import sys
from pathlib import Path
from modelrail.client import Client
from modelrail.config import load_settings
loaded_by_client = "pyarrow" in sys.modules
from modelrail.batch import JobSpec, run_batch
import pyarrow as pa
settings = load_settings(cwd=Path(sys.argv[1]), environ={}, create=False)
with Client(settings=settings) as client:
    record = run_batch(client, JobSpec.from_json(sys.argv[2]))
print(record.status, loaded_by_client, pa.default_memory_pool().backend_name)
"""
    found = subprocess.run(
        [sys.executable, "-c", script, str(scoring.root), scoring.spec(output).to_json()],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"},
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "succeeded False jemalloc"


@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_a_batch_run_of_a_compiled_model_loads_neither_pandas_nor_scikit_learn(
    scoring: ScoringProject, kind: str
) -> None:
    """What lets a run start in a fraction of a second and stay small: checked in a fresh
    process, as ``modelrail batch run`` starts one."""
    output = make_output(kind, scoring.root)
    spec = scoring.spec(output)
    script = """
import sys
from pathlib import Path
from modelrail.batch import JobSpec, run_batch
from modelrail.client import Client
from modelrail.config import load_settings
settings = load_settings(cwd=Path(sys.argv[1]), environ={}, create=False)
with Client(settings=settings) as client:
    record = run_batch(client, JobSpec.from_json(sys.argv[2]))
print(record.status, sorted(m for m in ("pandas", "sklearn", "scipy") if m in sys.modules))
"""
    found = subprocess.run(
        [sys.executable, "-c", script, str(scoring.root), spec.to_json()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "succeeded []"
    assert len(output.rows()) == len(scoring.frame)
