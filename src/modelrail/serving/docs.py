"""The server's OpenAPI description and a self-contained docs page (no CDN: it works
offline and inside closed networks)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import orjson

from modelrail.serving.models import ServedModel

_JSON_TYPES = {"float64": "number", "int64": "integer", "bool": "boolean"}


def openapi_spec(models: Mapping[str, ServedModel]) -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": _get("Alive", "The process is up."),
        "/ready": _get(
            "Ready", "Every model is loaded and verified (503 otherwise, with details)."
        ),
        "/v1/models": _get(
            "Models", "What is loaded: name, version, environment, signature, since."
        ),
        "/metrics": _get("Metrics", "Prometheus metrics.", "text/plain"),
        "/invocations": {
            "post": {
                "summary": "MLflow scoring protocol",
                "description": "dataframe_split, dataframe_records, instances, inputs (JSON) or "
                "text/csv, as `mlflow models serve` accepts. With several models, use the "
                "per-model path instead.",
                "requestBody": {"content": {"application/json": {}, "text/csv": {}}},
                "parameters": [_REQUEST_ID],
                "responses": _responses(),
            }
        },
        "/v1/feedback": {"post": _feedback()},
    }
    for name, served in sorted(models.items()):
        record = {
            "type": "object",
            "required": list(served.scoring.columns),
            "additionalProperties": False,
            "properties": {
                c: {"type": _JSON_TYPES.get(d, "string")}
                for c, d in zip(served.scoring.columns, served.scoring.dtypes, strict=True)
            },
        }
        paths[f"/v1/models/{name}/predict"] = {
            "post": {
                "summary": f"Predict with {name} (version {served.version})",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "required": ["inputs"],
                                        "properties": {
                                            "inputs": {"type": "array", "items": record}
                                        },
                                    },
                                    {
                                        "type": "object",
                                        "required": ["data"],
                                        "properties": {
                                            "columns": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                            "data": {"type": "array", "items": {"type": "array"}},
                                        },
                                    },
                                ]
                            },
                            "example": _example(served),
                        }
                    },
                },
                "parameters": [_REQUEST_ID],
                "responses": _responses(),
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelrail prediction server", "version": "1"},
        "paths": paths,
    }


def docs_page(models: Mapping[str, ServedModel]) -> str:
    spec = openapi_spec(models)
    rows = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            example = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            )
            sample = ""
            if "example" in example:
                body = orjson.dumps(example["example"]).decode()
                sample = (
                    f"<pre>curl -s -H 'content-type: application/json' "
                    f"http://HOST{html.escape(path)} -d '{html.escape(body)}'</pre>"
                )
            rows.append(
                f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(operation.get('summary', ''))}. "
                f"{html.escape(operation.get('description', ''))}</p>{sample}</section>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>modelrail server</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
        "pre{background:#f4f4f4;padding:.6rem;overflow-x:auto}</style></head><body>"
        "<h1>modelrail prediction server</h1><p>Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a></p>" + "".join(rows) + "</body></html>"
    )


def _example(served: ServedModel) -> dict[str, Any]:
    example = served.scoring.version.input_example
    columns, data = example.get("columns", []), example.get("data", [])
    return {"inputs": [dict(zip(columns, row, strict=False)) for row in data[:1]]}


def _get(summary: str, description: str, media: str = "application/json") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": description,
            "responses": {"200": {"description": "OK", "content": {media: {}}}},
        }
    }


_REQUEST_ID = {
    "name": "x-request-id",
    "in": "header",
    "required": False,
    "description": "Your id for this request (1 to 128 letters, digits or - _ . : / + = @ ~); "
    "without one the server makes one. Every answer carries it in x-request-id: a logged "
    "prediction is stored under it, for POST /v1/feedback. A malformed one is refused (400).",
    "schema": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9_.:/+=@~-]+$"},
}
_ID_HEADER = {
    "x-request-id": {
        "description": "The request's id (yours, or one the server made)",
        "schema": {"type": "string"},
    }
}


def _feedback() -> dict[str, Any]:
    label = {
        "type": "object",
        "required": ["request_id", "label"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "maxLength": 1024,
                "description": "The x-request-id of the answer, or a batch output row's id "
                "(its id columns joined by '|')",
            },
            "row": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "The row within that request",
            },
            "label": {
                "type": ["number", "boolean", "string"],
                "description": "The true outcome; one kind (numbers, true/false or text) "
                "per request",
            },
        },
    }
    return {
        "summary": "Send true outcomes of logged predictions",
        "description": "Labels for predictions this server (or a batch run) logged, by request "
        "id and row. A later label for the same request and row replaces an earlier one. "
        "Answered once the labels are on disk. At most 10,000 labels per request.",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["model", "labels"],
                        "additionalProperties": False,
                        "properties": {
                            "model": {"type": "string", "description": "A model served here"},
                            "labels": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 10_000,
                                "items": label,
                            },
                        },
                    },
                    "example": {
                        "model": "churn",
                        "labels": [{"request_id": "5f0c9a1e3b7d2c44-1a2b", "row": 0, "label": 1}],
                    },
                }
            },
        },
        "parameters": [_REQUEST_ID],
        "responses": {
            "200": {
                "description": "model, stored (the number of labels stored)",
                "headers": _ID_HEADER,
            },
            "400": {
                "description": "a malformed body; names the field at fault (e.g. labels[3].label)"
            },
            "404": {"description": "no such model is served here"},
            "413": {"description": "too many labels or too large a body"},
            "415": {"description": "not JSON"},
            "503": {"description": "the labels could not be stored (nothing was)"},
        },
    }


def _responses() -> dict[str, Any]:
    return {
        "200": {
            "description": "model, version, environment, predictions[, probabilities]",
            "headers": _ID_HEADER,
        },
        "400": {"description": "malformed JSON or CSV, or a malformed x-request-id"},
        "404": {"description": "no such model is served"},
        "413": {"description": "too many rows or too large a body"},
        "415": {"description": "unsupported content type"},
        "422": {"description": "the input does not fit the model's signature (names the field)"},
    }
