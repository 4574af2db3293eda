"""Batch inputs in object storage: Parquet and CSV files read in place from a real S3 server
(moto's, on 127.0.0.1) through pyarrow's S3 client."""

from __future__ import annotations

import gzip
import io
from contextlib import closing
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrail.batch.schedules import create_schedule
from modelrail.batch.sources import open_source
from modelrail.errors import BatchInputError
from tests.batch.conftest import FEATURES, ScoringProject, expected_predictions, make_output
from tests.conftest import S3_BUCKET


def _put(s3: Any, key: str, data: bytes) -> None:
    with s3.open_output_stream(f"{S3_BUCKET}/{key}", compression=None) as out:
        out.write(data)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=64)
    return sink.getvalue()


def test_a_parquet_folder_in_a_bucket_scores_like_the_same_files_on_disk(
    s3: Any, scoring: ScoringProject
) -> None:
    table = pa.Table.from_pandas(scoring.frame, preserve_index=False)
    halves = (table.slice(0, 150), table.slice(150))
    for index, half in enumerate(halves):
        _put(s3, f"day=1/part-{index}.parquet", _parquet_bytes(half))
        scoring.parquet(f"local/day=1/part-{index}.parquet", half.to_pandas())
    _put(s3, "day=1/_SUCCESS.parquet", b"")  # skipped, as Spark skips it
    _put(s3, "day=1/.hidden.parquet", b"not parquet")

    output = make_output("sqlite", scoring.root)
    record = scoring.run(scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/day=1/",)))
    assert (record.status, record.rows_read) == ("succeeded", len(scoring.frame))
    assert record.input_description.startswith(f"2 Parquet files in s3://{S3_BUCKET}/day=1 (")
    written = {row["id"]: row["prediction"] for row in output.rows()}
    assert written == expected_predictions(scoring.models.binary_v1, scoring.frame)

    # The same files on disk have the same fingerprint: it covers names, sizes and bytes.
    local = scoring.run(
        scoring.spec(
            make_output("parquet", scoring.root), inputs=(str(scoring.root / "data/local/day=1"),)
        )
    )
    assert local.input_fingerprint == record.input_fingerprint


def test_gzipped_csv_files_in_a_bucket_by_glob(s3: Any, scoring: ScoringProject) -> None:
    for index, part in enumerate((scoring.frame[:100], scoring.frame[100:])):
        _put(s3, f"in/2026/11/{index}.csv.gz", gzip.compress(part.to_csv(index=False).encode()))
    _put(s3, "in/2026/11/notes.txt", b"not an input")
    output = make_output("parquet", scoring.root)
    spec = scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/in/**/*.csv.gz",))
    with closing(open_source(spec)) as source:
        assert source.description.startswith(f"2 CSV files in s3://{S3_BUCKET}/in/2026/11 (")
    record = scoring.run(spec)
    assert (record.status, record.rows_written) == ("succeeded", len(scoring.frame))
    written = {row["id"]: row["prediction"] for row in output.rows()}
    assert written == expected_predictions(scoring.models.binary_v1, scoring.frame)


def test_a_missing_column_in_a_bucket_file_is_named_before_anything_is_written(
    s3: Any, scoring: ScoringProject
) -> None:
    frame = scoring.frame.drop(columns=[FEATURES[2]])
    _put(s3, "bad/x.parquet", _parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False)))
    output = make_output("sqlite", scoring.root)
    with pytest.raises(BatchInputError) as refused:
        scoring.run(scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/bad/x.parquet",)))
    assert f"input column '{FEATURES[2]}' is missing from s3://{S3_BUCKET}/bad/x.parquet" in (
        refused.value.message
    )


def test_object_store_inputs_that_match_nothing_or_cannot_run_are_refused(
    s3: Any, scoring: ScoringProject
) -> None:
    output = make_output("sqlite", scoring.root)
    with pytest.raises(BatchInputError, match=rf"no input file matches 's3://{S3_BUCKET}/none/'"):
        scoring.run(scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/none/",)))
    _put(s3, "one/x.parquet", _parquet_bytes(pa.Table.from_pandas(scoring.frame[:10])))
    both = (scoring.parquet(), f"s3://{S3_BUCKET}/one/")
    with pytest.raises(BatchInputError, match=r"the inputs mix local files .* and object-store"):
        scoring.run(scoring.spec(output, inputs=both))
    with pytest.raises(BatchInputError, match="the spark engine reads local or shared paths"):
        scoring.run(scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/one/",), engine="spark"))
    with pytest.raises(BatchInputError, match="file_pattern watches local or mounted"):
        create_schedule(
            scoring.client,
            "arrivals",
            scoring.spec(output),
            file_pattern=f"s3://{S3_BUCKET}/one/*.parquet",
        )
    nightly = scoring.spec(output, inputs=(f"s3://{S3_BUCKET}/one/",))
    made = create_schedule(scoring.client, "nightly", nightly, cron="0 2 * * *")
    assert made.spec.inputs == (f"s3://{S3_BUCKET}/one/",)  # not made a local path
