"""The prediction log's channel and writer on real files: rows copied into blocks and rows
queued as records read back the same, the bound drops and counts, files roll by rows and by
seconds (the clock is the only thing mocked), and a file that cannot be written is counted
while the writer goes on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from modelrail.monitoring.log_channel import BLOCK_ROWS, RowBlock, TallyCounts
from modelrail.monitoring.logfiles import read_predictions
from modelrail.monitoring.prediction_log import PredictionLog
from modelrail.monitoring.prediction_rows import Origin
from modelrail.monitoring.profiling import label_text
from modelrail.scoring.columns import Columns

ORIGIN = Origin(
    model="m",
    version=3,
    environment="prod",
    source="serve",
    rate=1.0,
    positions=(0, 2),  # the middle feature is excluded
    names=("a", "c"),
    numeric=(True, True),
    classifier=True,
)
TEXT = Origin(
    model="t",
    version=1,
    environment=None,
    source="serve",
    rate=0.5,
    positions=(0, 1),
    names=("plan", "age"),
    numeric=(False, True),
    classifier=False,
)


def files(root: Path, model: str = "m") -> list[Path]:
    return sorted((root / "predictions" / f"model={model}").glob("date=*/*.parquet"))


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def add(log_channel: object, request: int, rows: int = 1) -> None:
    """A request of ``rows`` rows whose features are request*10 + (0, 1, 2)."""
    matrix = np.tile(np.array([[0.0, 1.0, 2.0]]) + request * 10, (rows, 1))
    probabilities = np.tile(np.array([[0.25, 0.75]]), (rows, 1))
    log_channel.add(  # type: ignore[attr-defined]
        ORIGIN,
        b"r%d" % request,
        time.perf_counter(),
        matrix,
        np.ones(rows, dtype=np.int64),
        probabilities,
        0.002,
        rows,
    )


def test_rows_copied_into_blocks_and_queued_as_records_read_back_alike(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    channel = log.channel()
    add(channel, 1)
    add(channel, 2, rows=3)
    columns = Columns(
        ("plan", "age"),
        (np.array(["basic", None], dtype=object), np.array([31.0, np.nan])),
    )
    assert channel.add(
        TEXT, b"t1", time.perf_counter(), columns, np.array([4.5, 6.0]), None, 0.001, 2
    )
    log.stop()
    table = read_predictions(tmp_path, "m").sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    assert table.column("request_id").to_pylist() == ["r1", "r2", "r2", "r2"]
    assert table.column("row").to_pylist() == [0, 0, 1, 2]
    assert table.column("input.a").to_pylist() == [10.0, 20.0, 20.0, 20.0]
    assert table.column("input.c").to_pylist() == [12.0, 22.0, 22.0, 22.0]
    assert "input.b" not in table.column_names
    assert table.column("prediction").to_pylist() == ["1"] * 4
    assert table.column("prediction_value").to_pylist() == [0.75] * 4
    assert set(table.column("latency_ms").to_pylist()) == {2.0}
    assert set(table.column("version").to_pylist()) == {3}
    text = read_predictions(tmp_path, "t").to_pylist()
    assert [(r["input.plan"], r["input.age"]) for r in text] == [("basic", 31.0), (None, None)]
    assert [(r["prediction"], r["prediction_value"]) for r in text] == [("4.5", 4.5), ("6", 6.0)]
    assert {r["sample_rate"] for r in text} == {0.5} and {r["environment"] for r in text} == {None}


def test_a_full_block_goes_to_the_writer_without_being_sealed(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, queue_rows=10 * BLOCK_ROWS)
    channel = log.channel()
    for request in range(BLOCK_ROWS):
        add(channel, request)
    assert len(channel.items) == 0  # the block is full but nothing asked for it yet
    add(channel, BLOCK_ROWS)
    assert [type(item) for item in channel.items] == [RowBlock]
    log.stop()
    assert read_predictions(tmp_path, "m").num_rows == BLOCK_ROWS + 1


def test_answers_of_another_type_start_a_new_block_and_keep_their_values(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    channel = log.channel()
    matrix = np.zeros((1, 3))
    for request, value in enumerate([np.array([1]), np.array([2.5]), np.array(["yes"])]):
        channel.add(ORIGIN, b"%d" % request, 0.0, matrix, value, None, 0.0, 1)
    log.stop()
    table = read_predictions(tmp_path, "m").sort_by("request_id")
    assert table.column("prediction").to_pylist() == ["1", "2.5", "yes"]


def test_a_full_queue_drops_the_request_and_counts_it(tmp_path: Path) -> None:
    counts = TallyCounts()
    log = PredictionLog(tmp_path, counts, queue_rows=5)
    channel = log.channel()
    add(channel, 1, rows=2)
    add(channel, 2, rows=2)
    add(channel, 3, rows=2)  # 6 rows would not fit
    assert counts.dropped_by == {("m", "queue_full"): 1}
    channel.seal()
    log.flush()  # the writer took them: there is room again
    add(channel, 4, rows=2)
    log.stop()
    assert counts.dropped_by == {("m", "queue_full"): 1}
    assert counts.written_by == {"m": 3}
    ids = set(read_predictions(tmp_path, "m").column("request_id").to_pylist())
    assert ids == {"r1", "r2", "r4"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_files_roll_by_rows_and_by_seconds(tmp_path: Path) -> None:
    clock = Clock()
    log = PredictionLog(tmp_path, file_rows=10, file_seconds=5.0, collect_every_s=0.01, clock=clock)
    channel = log.channel()
    log.start()
    try:
        for request in range(10):
            add(channel, request)
        channel.seal()
        assert wait_for(lambda: len(files(tmp_path)) == 1)  # 10 rows: a file at once
        add(channel, 10)
        channel.seal()
        time.sleep(0.3)  # the writer has taken it; by its clock no time has passed
        assert len(files(tmp_path)) == 1
        clock.now += 5.0
        assert wait_for(lambda: len(files(tmp_path)) == 2)
    finally:
        log.stop()
    assert read_predictions(tmp_path, "m").num_rows == 11


def test_a_file_that_cannot_be_written_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be")
    counts = TallyCounts()
    log = PredictionLog(blocked, counts, file_seconds=0.0, collect_every_s=0.01)
    channel = log.channel()
    log.start()
    try:
        add(channel, 1)
        add(channel, 2)
        channel.seal()
        assert wait_for(lambda: counts.failures_by.get("m") == 1)
        assert counts.dropped_by == {("m", "write_error"): 2}
        blocked.unlink()  # the disk has room again
        add(channel, 3)
        channel.seal()
        assert wait_for(lambda: counts.written_by.get("m") == 1)
    finally:
        log.stop()
    assert read_predictions(blocked, "m").column("request_id").to_pylist() == ["r3"]


def test_stop_writes_what_was_never_sealed(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, collect_every_s=60.0)
    channel = log.channel()
    log.start()
    add(channel, 1)
    add(channel, 2)
    log.stop()
    assert read_predictions(tmp_path, "m").num_rows == 2


@pytest.mark.parametrize("rows", [BLOCK_ROWS + 1, 3 * BLOCK_ROWS])
def test_a_request_larger_than_a_block_is_queued_whole(tmp_path: Path, rows: int) -> None:
    log = PredictionLog(tmp_path, queue_rows=10 * BLOCK_ROWS)
    channel = log.channel()
    add(channel, 1)
    add(channel, 2, rows=rows)
    log.stop()
    table = read_predictions(tmp_path, "m")
    assert table.num_rows == rows + 1
    assert sorted(table.column("row").to_pylist())[-1] == rows - 1


def test_answers_of_several_outputs_are_logged_as_json_lists(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    channel = log.channel()
    regression = Origin("two", 1, None, "serve", 1.0, (0,), ("x",), (True,), False)
    for request in range(2):
        outputs = np.array([[1.5, 2.0], [3.0, -1.25]]) + request
        channel.add(regression, b"%d" % request, 0.0, np.ones((2, 1)), outputs, None, 0.0, 2)
    log.stop()
    table = read_predictions(tmp_path, "two").sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    assert table.column("prediction").to_pylist() == [
        "[1.5,2.0]",
        "[3.0,-1.25]",
        "[2.5,3.0]",
        "[4.0,-0.25]",
    ]
    assert table.column("prediction_value").null_count == 4


def test_a_request_laid_out_otherwise_is_queued_whole_and_the_block_kept(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path)
    channel = log.channel()
    add(channel, 1, rows=2)
    inputs = np.asfortranarray(np.array([[20.0, 21.0, 22.0], [30.0, 31.0, 32.0]]))
    probabilities = np.array([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0]])[:, :2]  # a strided view
    channel.add(ORIGIN, b"r2", 0.0, inputs, np.array([0, 1]), probabilities, 0.0, 2)
    add(channel, 3)
    log.stop()
    table = read_predictions(tmp_path, "m").sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    assert table.column("request_id").to_pylist() == ["r1", "r1", "r2", "r2", "r3"]
    assert table.column("input.a").to_pylist() == [10.0, 10.0, 20.0, 30.0, 30.0]
    assert table.column("input.c").to_pylist() == [12.0, 12.0, 22.0, 32.0, 32.0]
    assert table.column("prediction_value").to_pylist() == [0.75, 0.75, 0.9, 0.5, 0.75]


def test_logged_times_read_as_the_profile_counts_them(tmp_path: Path) -> None:
    # A profile writes 2024-03-01 09:30:00 (no trailing zeros); a log that wrote Arrow's
    # 2024-03-01 09:30:00.000000000 would make every logged time a new category: drift.
    when = Origin(
        model="w",
        version=1,
        environment=None,
        source="serve",
        rate=1.0,
        positions=(0,),
        names=("visited",),
        numeric=(False,),
        classifier=False,
    )
    times = np.array(["2024-03-01T09:30", "NaT", "2024-03-02T10:00:00.25"], "datetime64[ns]")
    log = PredictionLog(tmp_path)
    log.channel().add(
        when, b"t", time.perf_counter(), Columns(("visited",), (times,)), np.zeros(3), None, 0, 3
    )
    log.stop()
    logged = read_predictions(tmp_path, "w").sort_by("row").column("input.visited")
    assert logged.to_pylist() == ["2024-03-01 09:30:00", None, "2024-03-02 10:00:00.25"]
    assert logged.to_pylist() == label_text(times).to_pylist()
