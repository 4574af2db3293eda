"""An artifact root in object storage (S3): a real S3 server (moto's) on 127.0.0.1, reached
over HTTP by pyarrow's S3 client, as a team's MinIO or S3 bucket would be."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.artifacts import ArtifactStore
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import (
    ArtifactIntegrityError,
    ArtifactStoreUnavailableError,
    InvalidInputError,
)
from tests.conftest import S3_BUCKET as BUCKET


def _machine(root: Path, cache: Path, store_url: str) -> Client:
    """A client as on one machine of the team: its own project folder and artifact cache,
    the shared metadata store and the shared bucket."""
    init_project(root)
    settings = load_settings(
        cwd=root,
        environ={
            "MODELRAIL_STORE": store_url,
            "MODELRAIL_ARTIFACTS": f"s3://{BUCKET}/models",
            "MODELRAIL_ARTIFACT_CACHE": str(cache),
        },
        create=False,
    )
    return Client(settings=settings, user="tester")


def _model() -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    return X, LogisticRegression().fit(X, (X["a"] > 0).astype(int))


def test_a_model_logged_on_one_machine_loads_on_another_through_the_bucket(
    s3: pafs.FileSystem, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    X, model = _model()
    laptop = _machine(tmp_path / "laptop", tmp_path / "laptop-cache", store)
    with laptop, laptop.start_run("train") as run:
        version = run.log_model(model, "shared", input_example=X[:3])
    sha = version.artifact_sha256
    stored = s3.get_file_info(f"{BUCKET}/models/sha256/{sha[:2]}/{sha[2:]}")
    assert stored.type == pafs.FileType.File and stored.size == version.artifact_size

    with _machine(tmp_path / "server", tmp_path / "server-cache", store) as server:
        loaded = server.load_model("shared:1")
        assert loaded.predict(X).tolist() == model.predict(X).tolist()
    cached = tmp_path / "server-cache" / "sha256" / sha[:2] / sha[2:]
    assert cached.is_file()


def test_a_damaged_cached_copy_is_fetched_again(s3: pafs.FileSystem, tmp_path: Path) -> None:
    store = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "cache")
    blob = store.put_bytes(b"model bytes" * 1000)
    store.verify(blob.sha256, size=blob.size)
    cached = store.path_for(blob.sha256)
    cached.write_bytes(b"damaged")
    assert store.read_verified(blob.sha256, size=blob.size) == b"model bytes" * 1000
    shutil.rmtree(tmp_path / "cache")
    elsewhere = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "other-cache")
    assert elsewhere.read_verified(blob.sha256, size=blob.size) == b"model bytes" * 1000


def test_a_changed_object_in_the_bucket_is_refused_and_not_cached(
    s3: pafs.FileSystem, tmp_path: Path
) -> None:
    blob = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "a").put_bytes(b"x" * 5000)
    key = f"{BUCKET}/blobs/sha256/{blob.sha256[:2]}/{blob.sha256[2:]}"
    with s3.open_output_stream(key) as out:
        out.write(b"y" * 5000)
    reader = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "b")
    with pytest.raises(ArtifactIntegrityError) as refused:
        reader.verify(blob.sha256, size=blob.size, label="shared:1")
    assert f"shared:1 (s3://{key})" in refused.value.message
    assert "changed after it was stored" in refused.value.message
    assert not (tmp_path / "b" / "sha256" / blob.sha256[:2] / blob.sha256[2:]).exists()


def test_an_object_missing_from_the_bucket_is_named(s3: pafs.FileSystem, tmp_path: Path) -> None:
    store = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "cache")
    with pytest.raises(ArtifactIntegrityError, match=rf"s3://{BUCKET}/blobs/sha256/ab/c+ "):
        store.verify("ab" + "c" * 62, size=10)


def test_an_unreachable_object_store_is_a_store_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "modelrail-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "modelrail-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = ArtifactStore(f"s3://{BUCKET}/blobs", cache=tmp_path / "cache")
    with pytest.raises(ArtifactStoreUnavailableError) as failed:
        store.put_bytes(b"model")
    assert failed.value.exit_code == 3
    assert failed.value.message.startswith(f"the artifact store s3://{BUCKET}/blobs failed: ")


def test_a_root_url_pyarrow_cannot_open_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"artifact root 'nosuch://bucket/x'") as refused:
        ArtifactStore("nosuch://key:secret@bucket/x?token=abc", cache=tmp_path)
    assert "secret" not in refused.value.message and "abc" not in refused.value.message
