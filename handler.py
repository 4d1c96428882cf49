"""Every cloud entry point, each a few lines over the shared core.

- ``app``: the FastAPI app, for ``uvicorn handler:app`` and ``sign2text serve``.
- ``lambda_handler``: AWS Lambda; HTTP events through Mangum, S3 object events to the
  bucket processor, anything else logged and ignored.
- ``sign2text_http``: Cloud Functions HTTP (``functions-framework --target
  sign2text_http``), served from the Flask request without importing FastAPI.
- ``sign2text_gcs``: Cloud Functions CloudEvent for Cloud Storage uploads.

Importing this module loads no model and no web framework: each entry point imports
what its platform needs on first use, and the model loads on the first clip.
"""

from __future__ import annotations

from typing import Any


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    from adapters.aws_lambda import route

    return route(event, context)


def sign2text_http(request: Any) -> Any:
    from adapters.gcf_http import handle

    return handle(request)


def sign2text_gcs(cloud_event: Any) -> dict[str, Any]:
    from adapters.gcf_storage import handle

    return handle(cloud_event)


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access so that the Lambda and Cloud Functions entry
    # points never pay for importing FastAPI.
    if name == "app":
        from adapters.asgi import create_app

        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
