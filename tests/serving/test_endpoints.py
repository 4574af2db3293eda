"""The prediction server's endpoints, over real HTTP: native and MLflow protocols, health,
readiness, the model listing, Prometheus metrics and the OpenAPI docs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelrail.scoring.forms.record import PROBABILITY_ATOL, VALUE_RTOL
from tests.serving.conftest import MODEL_NAMES, RunningServer, Zoo, records

CLASSIFIERS = ("cancer", "iris", "forest")


def assert_matches_scikit_learn(zoo: Zoo, name: str, rows: pd.DataFrame, document: Any) -> None:
    predictions, probabilities = zoo.expected(name, rows)
    if name in CLASSIFIERS:
        assert document["predictions"] == predictions.tolist()
        assert probabilities is not None
        # A verified predictor form reproduces them within the stated tolerance.
        np.testing.assert_allclose(
            document["probabilities"], probabilities, rtol=0, atol=PROBABILITY_ATOL
        )
    else:
        scale = VALUE_RTOL * float(np.abs(predictions).max())
        np.testing.assert_allclose(
            document["predictions"], predictions, rtol=VALUE_RTOL, atol=scale
        )
        assert "probabilities" not in document


def assert_names_the_model(reply: Any, name: str, version: int = 1) -> None:
    assert reply.headers["x-model-name"] == name
    assert reply.headers["x-model-version"] == str(version)


# -- POST /v1/models/NAME/predict ------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_with_records_answers_what_scikit_learn_predicts(
    dev_server: RunningServer, zoo: Zoo, name: str
) -> None:
    rows = zoo.rows(name)
    reply = dev_server.post(f"/v1/models/{name}/predict", {"inputs": records(rows)})
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    document = reply.json()
    assert (document["model"], document["version"], document["environment"]) == (name, 1, "dev")
    assert_names_the_model(reply, name)
    assert reply.headers["x-model-environment"] == "dev"
    assert_matches_scikit_learn(zoo, name, rows, document)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_with_columns_and_data_answers_what_scikit_learn_predicts(
    dev_server: RunningServer, zoo: Zoo, name: str
) -> None:
    rows = zoo.rows(name, start=40, count=5)
    body = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    reply = dev_server.post(f"/v1/models/{name}/predict", body)
    assert reply.status == 200, reply.text
    assert (reply.json()["model"], reply.json()["version"]) == (name, 1)
    assert_names_the_model(reply, name)
    assert_matches_scikit_learn(zoo, name, rows, reply.json())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_with_columns_in_another_order_answers_the_same(
    dev_server: RunningServer, zoo: Zoo, name: str
) -> None:
    rows = zoo.rows(name, start=20, count=4)
    reordered = list(reversed(rows.columns))
    body = {"columns": reordered, "data": rows[reordered].to_numpy().tolist()}
    reply = dev_server.post(f"/v1/models/{name}/predict", body)
    assert reply.status == 200, reply.text
    assert_matches_scikit_learn(zoo, name, rows, reply.json())


def test_predict_with_records_whose_keys_are_in_another_order_answers_the_same(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    rows = zoo.rows("cancer", start=10, count=3)
    shuffled = [dict(reversed(list(r.items()))) for r in records(rows)]
    reply = dev_server.post("/v1/models/cancer/predict", {"inputs": shuffled})
    assert reply.status == 200, reply.text
    assert_matches_scikit_learn(zoo, "cancer", rows, reply.json())


def test_predict_with_one_record_answers_one_prediction(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    rows = zoo.rows("iris", start=3, count=1)
    reply = dev_server.post("/v1/models/iris/predict", {"inputs": records(rows)})
    assert reply.status == 200, reply.text
    assert len(reply.json()["predictions"]) == 1
    assert len(reply.json()["probabilities"][0]) == 3
    assert_matches_scikit_learn(zoo, "iris", rows, reply.json())


def test_predict_answers_string_class_labels_as_strings(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    rows = zoo.rows("iris-names", start=0, count=6)
    reply = dev_server.post("/v1/models/iris-names/predict", {"inputs": records(rows)})
    assert reply.status == 200, reply.text
    predictions, probabilities = zoo.expected("iris-names", rows)
    assert reply.json()["predictions"] == predictions.tolist()
    assert set(reply.json()["predictions"]) <= {"setosa", "versicolor", "virginica"}
    np.testing.assert_allclose(
        reply.json()["probabilities"], probabilities, rtol=0, atol=PROBABILITY_ATOL
    )


def test_one_server_answers_each_model_by_name(dev_server: RunningServer, zoo: Zoo) -> None:
    for _ in range(3):
        for name in ("cancer", "iris", "diabetes"):
            rows = zoo.rows(name, start=0, count=2)
            reply = dev_server.post(f"/v1/models/{name}/predict", {"inputs": records(rows)})
            assert reply.status == 200, reply.text
            assert reply.json()["model"] == name
            assert_names_the_model(reply, name)
            assert_matches_scikit_learn(zoo, name, rows, reply.json())


# -- POST /invocations (MLflow's scoring protocol) ---------------------------------------------


def _split(rows: pd.DataFrame) -> dict[str, Any]:
    # What an MLflow client sends: pandas' "split" orientation, index included.
    split = rows.to_dict(orient="split")
    return {"dataframe_split": {**split, "index": [int(i) for i in split["index"]]}}


MLFLOW_BODIES: dict[str, Callable[[pd.DataFrame], Any]] = {
    "dataframe_split": _split,
    "dataframe_split without index": lambda rows: {
        "dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    },
    "dataframe_records": lambda rows: {"dataframe_records": records(rows)},
    "instances as rows": lambda rows: {"instances": rows.to_numpy().tolist()},
    "instances as records": lambda rows: {"instances": records(rows)},
    "inputs as rows": lambda rows: {"inputs": rows.to_numpy().tolist()},
    "inputs as columns": lambda rows: {"inputs": rows.to_dict(orient="list")},
    "instances as columns": lambda rows: {"instances": rows.to_dict(orient="list")},
    "params are ignored": lambda rows: {"dataframe_records": records(rows), "params": {}},
}


@pytest.mark.parametrize("protocol", MLFLOW_BODIES)
def test_invocations_answer_what_scikit_learn_predicts(
    cancer_server: RunningServer, zoo: Zoo, protocol: str
) -> None:
    rows = zoo.rows("cancer", start=200, count=6)
    reply = cancer_server.post("/invocations", MLFLOW_BODIES[protocol](rows))
    assert reply.status == 200, reply.text
    assert (reply.json()["model"], reply.json()["version"]) == ("cancer", 1)
    assert_names_the_model(reply, "cancer")
    assert_matches_scikit_learn(zoo, "cancer", rows, reply.json())


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8"])
def test_invocations_with_csv_answer_what_scikit_learn_predicts(
    cancer_server: RunningServer, zoo: Zoo, content_type: str
) -> None:
    rows = zoo.rows("cancer", start=300, count=5)
    reply = cancer_server.post("/invocations", rows.to_csv(index=False), content_type=content_type)
    assert reply.status == 200, reply.text
    assert_names_the_model(reply, "cancer")
    assert_matches_scikit_learn(zoo, "cancer", rows, reply.json())


@pytest.mark.parametrize("protocol", ["dataframe_split", "inputs as columns", "csv"])
def test_invocations_with_columns_in_another_order_answer_the_same(
    cancer_server: RunningServer, zoo: Zoo, protocol: str
) -> None:
    rows = zoo.rows("cancer", start=150, count=4)
    reordered = rows[list(reversed(rows.columns))]
    if protocol == "csv":
        reply = cancer_server.post(
            "/invocations", reordered.to_csv(index=False), content_type="text/csv"
        )
    else:
        reply = cancer_server.post("/invocations", MLFLOW_BODIES[protocol](reordered))
    assert reply.status == 200, reply.text
    assert_matches_scikit_learn(zoo, "cancer", rows, reply.json())


def test_invocations_and_the_model_path_answer_alike_on_a_one_model_server(
    cancer_server: RunningServer, zoo: Zoo
) -> None:
    rows = zoo.rows("cancer", start=400, count=3)
    native = cancer_server.post("/v1/models/cancer/predict", {"inputs": records(rows)})
    mlflow = cancer_server.post("/invocations", {"dataframe_records": records(rows)})
    assert native.status == mlflow.status == 200
    assert native.json() == mlflow.json()
    assert native.json()["environment"] is None  # a fixed version, not an environment's


def test_invocations_on_a_server_with_several_models_answer_404_naming_them(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    reply = dev_server.post("/invocations", {"dataframe_records": records(zoo.rows("cancer"))})
    assert reply.status == 404
    error = reply.json()
    assert error["field"] == "model" and error["status"] == 404
    for name in (*MODEL_NAMES, "iris-names"):
        assert name in error["error"]
    assert "/v1/models/NAME/predict" in error["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/diabetes/predict", {"inputs": [{"age": 1.0}]}),
        ("/v1/models/diabetes/predict", b"{not json"),
        ("/v1/models/diabetes/predict", {"inputs": []}),
    ],
)
def test_a_refused_request_still_names_the_model_in_its_headers(
    dev_server: RunningServer, path: str, body: Any
) -> None:
    reply = dev_server.post(path, body)
    assert 400 <= reply.status < 500
    assert_names_the_model(reply, "diabetes")


# -- errors of routing -------------------------------------------------------------------------


def test_predict_with_an_unknown_model_answers_404_naming_it(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    reply = dev_server.post(
        "/v1/models/no-such-model/predict", {"inputs": records(zoo.rows("iris"))}
    )
    assert reply.status == 404
    assert reply.json()["field"] == "model"
    assert "no-such-model" in reply.json()["error"]
    assert "cancer" in reply.json()["error"]  # and says which models there are


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/cancer/predict"),
        ("PUT", "/v1/models/cancer/predict"),
        ("GET", "/invocations"),
        ("POST", "/health"),
        ("POST", "/ready"),
        ("DELETE", "/v1/models"),
        ("POST", "/metrics"),
    ],
)
def test_a_wrong_method_answers_405(dev_server: RunningServer, method: str, path: str) -> None:
    reply = dev_server.request(method, path, b"{}" if method in ("POST", "PUT") else None)
    assert reply.status == 405, reply.text
    assert reply.json()["field"] == "method"
    assert method in reply.json()["error"] and path in reply.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/v1/predict"),
        ("POST", "/v1/models/cancer/explain"),
        ("GET", "/v1/models/cancer/explain"),
    ],
)
def test_an_unknown_path_answers_404(dev_server: RunningServer, method: str, path: str) -> None:
    reply = dev_server.request(method, path, b"{}" if method == "POST" else None)
    assert reply.status == 404, reply.text
    assert reply.json()["field"] == "path"
    assert path in reply.json()["error"]


def test_the_connection_stays_open_across_requests(dev_server: RunningServer, zoo: Zoo) -> None:
    with dev_server.connect() as http_:
        for _ in range(20):
            assert (
                http_.post(
                    "/v1/models/cancer/predict", {"inputs": records(zoo.rows("cancer"))}
                ).status
                == 200
            )
            assert http_.post("/v1/models/nope/predict", {"inputs": []}).status == 404
            assert http_.get("/health").status == 200
        assert http_.connections == 1


# -- health, readiness, listing ----------------------------------------------------------------


def test_health_answers_alive(dev_server: RunningServer) -> None:
    reply = dev_server.get("/health")
    assert reply.status == 200
    assert reply.json() == {"status": "alive"}


def test_ready_answers_200_with_the_loaded_versions(dev_server: RunningServer) -> None:
    reply = dev_server.get("/ready")
    assert reply.status == 200
    ready = reply.json()
    assert ready["ready"] is True
    assert ready["environment"] == "dev"
    assert ready["waiting_for"] == [] and ready["failures"] == {}
    assert {name: m["version"] for name, m in ready["models"].items()} == {
        name: 1 for name in (*MODEL_NAMES, "iris-names")
    }
    # Each is served by the form measured fastest for one row at registration.
    assert ready["models"]["cancer"]["predictor"] in ("compiled-linear", "onnxruntime")
    assert ready["models"]["forest"]["predictor"] in ("onnxruntime", "treelite", "sklearn")


def test_models_lists_name_version_environment_signature_and_since(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    reply = dev_server.get("/v1/models")
    assert reply.status == 200
    listed = {m["name"]: m for m in reply.json()["models"]}
    assert set(listed) == {*MODEL_NAMES, "iris-names"}
    for name, model in listed.items():
        assert model["version"] == 1
        assert model["environment"] == "dev"
        assert [c["name"] for c in model["signature"]["inputs"]] == zoo.columns[name]
        assert isinstance(model["since"], float) and model["since"] <= time.time()
        assert re.fullmatch(r"[0-9a-f]{64}", model["artifact_sha256"])
    assert listed["iris"]["signature"]["classes"] == [0, 1, 2]
    assert listed["iris"]["signature"]["has_probabilities"] is True
    assert listed["diabetes"]["signature"]["has_probabilities"] is False
    # Which predictor answers each workload, why, and what else was tried.
    forest = listed["forest"]["predictors"]
    assert forest["serving"]["workload"] == "one_row"
    assert forest["serving"]["form"] == listed["forest"]["predictor"]
    for workload in ("one_row", "batch"):
        assert forest[workload]["form"] and forest[workload]["why"]
    tried = {t["form"]: t for t in forest["tried"]}
    assert "compiled-linear" in tried and tried["compiled-linear"]["verified"] is False
    assert "linear" in tried["compiled-linear"]["reason"]
    assert forest["verified_rows"] > 100
    assert forest["one_row"]["one_row_us"] > 0


# -- GET /metrics ------------------------------------------------------------------------------


def scrape(server: RunningServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    reply = server.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_rows_and_latency_per_model_and_version(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    body = {"inputs": records(zoo.rows("iris", count=4))}
    assert dev_server.post("/v1/models/iris/predict", body).status == 200
    before = scrape(dev_server)
    for _ in range(5):
        assert dev_server.post("/v1/models/iris/predict", body).status == 200
    after = scrape(dev_server)
    ok = {"model": "iris", "version": "1", "status": "200"}
    assert (
        sample(after, "modelrail_requests_total", **ok)
        - sample(before, "modelrail_requests_total", **ok)
        == 5
    )
    assert (
        sample(after, "modelrail_predicted_rows_total", model="iris", version="1")
        - sample(before, "modelrail_predicted_rows_total", model="iris", version="1")
        == 20
    )
    latency = {"model": "iris", "version": "1"}
    count = "modelrail_request_latency_seconds_count"
    assert sample(after, count, **latency) - sample(before, count, **latency) == 5
    buckets = {
        dict(labels)["le"]: value
        for (name, labels), value in after.items()
        if name == "modelrail_request_latency_seconds_bucket"
        and dict(labels)["model"] == "iris"
        and dict(labels)["version"] == "1"
    }
    assert {"0.001", "0.01", "0.1", "1.0", "+Inf"} <= set(buckets)
    assert buckets["+Inf"] == sample(after, count, **latency)
    assert 0 < sample(after, "modelrail_request_latency_seconds_sum", **latency) < 5


def test_metrics_count_refused_requests_by_status_and_field(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    good = records(zoo.rows("diabetes", count=1))[0]
    bad = {"inputs": [{**good, "bmi": "heavy"}]}
    before = scrape(dev_server)
    for _ in range(3):
        assert dev_server.post("/v1/models/diabetes/predict", bad).status == 422
    assert (
        dev_server.post("/v1/models/diabetes/predict", b"{", content_type="application/json").status
        == 400
    )
    after = scrape(dev_server)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("modelrail_requests_total", model="diabetes", version="1", status="422") == 3
    assert grew("modelrail_requests_total", model="diabetes", version="1", status="400") == 1
    assert grew("modelrail_requests_total", model="diabetes", version="1", status="200") == 0
    assert grew("modelrail_request_errors_total", model="diabetes", reason="bmi") == 3
    assert grew("modelrail_request_errors_total", model="diabetes", reason="body") == 1


def test_metrics_expose_the_version_each_model_is_answered_with(
    dev_server: RunningServer,
) -> None:
    text = dev_server.get("/metrics").text
    assert "# TYPE modelrail_requests_total counter" in text
    assert "# TYPE modelrail_request_latency_seconds histogram" in text
    samples = scrape(dev_server)
    for name in (*MODEL_NAMES, "iris-names"):
        assert sample(samples, "modelrail_model_loaded_version", model=name, environment="dev") == 1


# -- OpenAPI and docs -------------------------------------------------------------------------


def test_openapi_describes_each_models_predict_path_and_columns(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    reply = dev_server.get("/openapi.json")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    spec = reply.json()
    assert spec["openapi"].startswith("3.")
    for path in ("/health", "/ready", "/v1/models", "/metrics", "/invocations"):
        assert path in spec["paths"]
    for name in MODEL_NAMES:
        operation = spec["paths"][f"/v1/models/{name}/predict"]["post"]
        content = operation["requestBody"]["content"]["application/json"]
        record = content["schema"]["oneOf"][0]["properties"]["inputs"]["items"]
        assert record["required"] == zoo.columns[name]
        assert set(record["properties"]) == set(zoo.columns[name])
        assert {p["type"] for p in record["properties"].values()} == {"number"}
        example = content["example"]["inputs"][0]
        assert list(example) == zoo.columns[name]
        # The documented example is a valid request.
        answered = dev_server.post(f"/v1/models/{name}/predict", content["example"])
        assert answered.status == 200, answered.text


def test_docs_page_is_self_contained_html_naming_every_path(
    dev_server: RunningServer, zoo: Zoo
) -> None:
    reply = dev_server.get("/docs")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    for name in MODEL_NAMES:
        assert f"/v1/models/{name}/predict" in page
    assert "/openapi.json" in page
    # Nothing is fetched from elsewhere: no scripts, styles or images from another host.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    for url in re.findall(r"https?://[^\s'\"<>]+", page):
        # Only the server itself, or the HOST placeholder of the curl samples.
        assert url.startswith((dev_server.address, "http://HOST/")), url
