"""The OpenAPI description of the HTTP contract, and the page that renders it.

Written out by hand rather than derived from route signatures: the classify routes take
either a form or a raw video body, and every platform (FastAPI, Flask, Lambda) serves
this same document.
"""

from __future__ import annotations

from typing import Any

from sign2text_core import __version__, errors
from sign2text_core.service import DEFAULT_TOP_K, MAX_TOP_K

JSON = "application/json"
ERROR_STATUSES = {
    "classify": (400, 401, 413, 415, 422, 503),
    "model": (401, 503),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _error_schema() -> dict[str, Any]:
    codes = sorted(error.code for error in errors.ERRORS)
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    }


def _prediction_schema() -> dict[str, Any]:
    label_score = {
        "type": "object",
        "required": ["label", "score"],
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    }
    vocabulary = {
        "type": "object",
        "required": ["restricted", "size"],
        "properties": {
            "restricted": {"type": "boolean"},
            "size": {"type": "integer"},
            "labels": _nullable({"type": "array", "items": {"type": "string"}}),
        },
    }
    return {
        "type": "object",
        "required": ["label", "score", "top_k", "no_hands", "frames_used", "model"],
        "properties": {
            "label": {"type": "string", "description": "The most likely sign."},
            "score": {"type": "number", "description": "Its probability."},
            "top_k": {"type": "array", "items": label_score},
            "no_hands": {
                "type": "boolean",
                "description": "True when no hand was found in any frame: the "
                "ranking is then a guess.",
            },
            "frames_used": {"type": "integer"},
            "frames_with_hands": _nullable({"type": "integer"}),
            "clip": {"type": "object", "description": "Facts about the decoded clip."},
            "model": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                },
            },
            "vocabulary": vocabulary,
            "timings_ms": {
                "type": "object",
                "additionalProperties": {"type": "number"},
            },
        },
    }


def _model_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name", "version", "labels", "limits"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "default_labels": _nullable({"type": "array", "items": {"type": "string"}}),
            "limits": {
                "type": "object",
                "additionalProperties": _nullable({"type": "number"}),
            },
        },
    }


def _schemas() -> dict[str, Any]:
    return {
        "Error": _error_schema(),
        "Prediction": _prediction_schema(),
        "SignTarget": {
            "type": "object",
            "required": ["target"],
            "properties": {"target": {"type": "string"}},
        },
        "Model": _model_schema(),
        "Index": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {
                name: {"type": "string"}
                for name in ("name", "version", "classify", "docs", "openapi")
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "version"],
            "properties": {"status": {"type": "string"}, "version": {"type": "string"}},
        },
    }


def _top_k_schema() -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_TOP_K,
        "default": DEFAULT_TOP_K,
    }


def _labels_description() -> str:
    return (
        "Comma-separated labels to choose among instead of the model's whole "
        "vocabulary (scores are renormalised over them); defaults to the "
        "deployment's SIGN2TEXT_LABELS, else every label."
    )


def _parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "top_k",
            "in": "query",
            "required": False,
            "description": "How many ranked labels to return.",
            "schema": _top_k_schema(),
        },
        {
            "name": "labels",
            "in": "query",
            "required": False,
            "description": _labels_description(),
            "schema": {"type": "string"},
        },
    ]


def _video_body(*, with_parameters: bool) -> dict[str, Any]:
    form_properties: dict[str, Any] = {
        "video": {"type": "string", "format": "binary", "description": "The clip."}
    }
    if with_parameters:
        form_properties["top_k"] = _top_k_schema()
        form_properties["labels"] = {
            "type": "string",
            "description": _labels_description(),
        }
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "required": True,
        "description": "The clip: a multipart form field 'video', or the raw bytes.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video"],
                    "properties": form_properties,
                }
            },
            "video/*": binary,
            "application/octet-stream": binary,
        },
    }


def _error_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    described = {
        400: "The request carries no usable video (empty, missing, malformed).",
        401: "The API key is missing or wrong.",
        413: "The upload is larger than the service accepts.",
        415: "The content type is not a form or a video.",
        422: "The video cannot be used, or a parameter is invalid.",
        503: "Busy with other clips (see Retry-After), or the model is unavailable.",
    }
    responses: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": described[status],
            "content": {JSON: {"schema": _ref("Error")}},
        }
        if status == 503:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "string"},
                }
            }
        responses[str(status)] = response
    return responses


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _security() -> list[dict[str, list[str]]]:
    # An empty requirement makes the key optional: it is enforced only when the
    # deployment sets SIGN2TEXT_API_KEY.
    return [{"ApiKey": []}, {}]


def _paths() -> dict[str, Any]:
    classify_errors = _error_responses(ERROR_STATUSES["classify"])
    return {
        "/v1/classify": {
            "post": {
                "operationId": "classify",
                "summary": "Classify the sign in a clip",
                "parameters": _parameters(),
                "requestBody": _video_body(with_parameters=True),
                "security": _security(),
                "responses": {
                    "200": _ok("The predicted sign and its facts.", "Prediction"),
                    **classify_errors,
                },
            }
        },
        "/sign": {
            "post": {
                "operationId": "sign",
                "summary": "Classify a clip, answering only the label (older clients)",
                "parameters": _parameters(),
                "requestBody": _video_body(with_parameters=True),
                "security": _security(),
                "responses": {
                    "200": _ok("The predicted sign.", "SignTarget"),
                    **classify_errors,
                },
            }
        },
        "/v1/model": {
            "get": {
                "operationId": "model",
                "summary": "The model's name, version, labels and upload limits",
                "security": _security(),
                "responses": {
                    "200": _ok("The model in use.", "Model"),
                    **_error_responses(ERROR_STATUSES["model"]),
                },
            }
        },
        "/": {
            "get": {
                "operationId": "index",
                "summary": "Where the API and its documentation are",
                "responses": {"200": _ok("Links to the API.", "Index")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness: answers without loading the model",
                "responses": {"200": _ok("The service is up.", "Health")},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description every adapter serves at /openapi.json."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sign2Text",
            "version": __version__,
            "description": "A video of one signed word in, the word out.",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
            },
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sign2Text API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="api"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
  <script>SwaggerUIBundle({url: "openapi.json", dom_id: "#api"});</script>
</body>
</html>
"""
"""The interactive docs: Swagger UI from a CDN, reading /openapi.json beside it."""
