"""Memory stays bounded whatever the size of the input: a Parquet input of 3 million rows x 30
float columns (744 MB as a table in memory) is scored into SQLite and into a Parquet folder by
processes whose peak RSS stays far below the input's size and does not grow from 1 to 3
million rows.

Each run is a fresh process (its ``VmHWM`` is the peak of the whole process). The memory the
run itself takes is measured against the same process once modelrail, scikit-learn and the
model are loaded, so the figure does not depend on how heavy those imports are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings

WIDTH = 30
SMALL, LARGE = 1_000_000, 3_000_000
BATCH_ROWS = 65_536  # the large input is 46 batches
PIECE = 100_000

_SCORE = """
import json, sys
from pathlib import Path
from modelrail.batch.runner import run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.refs import Ref
from modelrail.registry import load_model_version

def high_water():
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak (the pytest
    # process, which other tests may have grown), VmHWM belongs to this program alone.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

root, source, output, rows = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
    load_model_version(client.artifacts, client.get_model_version(Ref.parse("wide:1")))
    loaded = high_water()
    spec = JobSpec(reference="wide:1", inputs=(source,), output=output, table="scores",
                   id_columns=("id",), batch_rows=rows)
    record = run_batch(client, spec)
peak = high_water()
print(json.dumps({"rows": record.rows_written, "loaded_mb": loaded / 1024, "peak_mb": peak / 1024}))
"""


def write_input(path: Path, rows: int) -> float:
    """``rows`` x (id + WIDTH floats), written a piece at a time; the table's size in MB."""
    rng = np.random.default_rng(0)
    schema = pa.schema([("id", pa.int64()), *((f"x{i}", pa.float64()) for i in range(WIDTH))])
    columns = [pa.array(rng.normal(size=PIECE)) for _ in range(WIDTH)]
    options = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    with pq.ParquetWriter(path, schema, **options) as writer:
        for start in range(0, rows, PIECE):
            ids = pa.array(np.arange(start, start + PIECE, dtype=np.int64))
            writer.write_table(pa.Table.from_arrays([ids, *columns], schema=schema))
    return rows * (WIDTH + 1) * 8 / 1e6


@pytest.fixture(scope="module")
def wide_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("wide")
    init_project(root)
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(size=(500, WIDTH)), columns=[f"x{i}" for i in range(WIDTH)])
    model = LogisticRegression().fit(train, (train["x0"] - train["x1"] > 0).astype(int))
    settings = load_settings(cwd=root, environ={}, create=False)
    with Client(settings=settings) as client, client.start_run("wide") as run:
        run.log_model(model, name="wide", input_example=train[:5])
    yield root
    shutil.rmtree(root, ignore_errors=True)  # a gigabyte of input


@pytest.mark.slow
def test_peak_memory_is_bounded_and_does_not_grow_with_the_input(wide_project: Path) -> None:
    sizes = {
        rows: write_input(wide_project / f"in-{rows}.parquet", rows) for rows in (SMALL, LARGE)
    }
    assert sizes[LARGE] > 700
    outputs = {"sqlite": "sqlite:///scores-{rows}.db", "parquet": "scores-{rows}"}
    children = {
        (kind, rows): subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SCORE,
                str(wide_project),
                str(wide_project / f"in-{rows}.parquet"),
                output.format(rows=rows),
                str(BATCH_ROWS),
            ],
            cwd=wide_project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for kind, output in outputs.items()
        for rows in (SMALL, LARGE)
    }
    found = {}
    for key, child in children.items():
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        found[key] = json.loads(out.splitlines()[-1])
        assert found[key]["rows"] == key[1]
    for kind in outputs:
        small, large = found[(kind, SMALL)], found[(kind, LARGE)]
        table = sizes[LARGE]
        taken = large["peak_mb"] - large["loaded_mb"]
        report = (
            f"{kind}: peak {small['peak_mb']:.0f} MB for {SMALL:,} rows, {large['peak_mb']:.0f} "
            f"MB for {LARGE:,} rows ({taken:.0f} MB above the {large['loaded_mb']:.0f} MB of "
            f"the loaded process), input table {table:.0f} MB"
        )
        assert taken < 0.4 * table, report
        assert large["peak_mb"] < 0.75 * table, report
        assert large["peak_mb"] <= 1.25 * small["peak_mb"], report
