"""Lambda HTTP events (API Gateway REST/HTTP APIs, Function URLs, ALB) via Mangum."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

name = "http"

_handler: Any = None
_handler_lock = threading.Lock()


def infer(event: Mapping[str, Any]) -> bool:
    """True for the HTTP shapes: v1 and ALB carry ``httpMethod``, v2 and Function URLs
    carry ``requestContext.http``."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return False
    return "httpMethod" in event or isinstance(context.get("http"), Mapping)


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = _mangum()(event, context)
    return response


def _mangum() -> Any:
    """Mangum over the FastAPI app, built on the first HTTP event and then reused.

    Lifespan is off: Mangum would otherwise run startup and shutdown on every
    invocation, and the app keeps its state in lazy module globals instead.
    """
    global _handler
    with _handler_lock:
        if _handler is None:
            from mangum import Mangum

            from adapters.asgi import create_app

            _handler = Mangum(create_app(), lifespan="off")
        return _handler
