"""Lambda HTTP events (API Gateway REST/HTTP APIs, Function URLs, ALB) via Mangum."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from adapters.runtime import event_log_line
from sign2text_core import errors

logger = logging.getLogger(__name__)

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
    """The HTTP response for the event, shaped for the platform that sent it.

    An event with an HTTP shape Mangum cannot read (fields missing) gets a 400
    answer, logged; failures of the service itself still raise.
    """
    mangum = _mangum()
    try:
        mangum.infer(event, context)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
        return _malformed(error, context)
    try:
        response: dict[str, Any] = mangum(event, context)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return _malformed(error, context)
    return response


def _malformed(error: Exception, context: Any) -> dict[str, Any]:
    logger.warning(
        event_log_line(
            event="lambda_event_malformed",
            error=repr(error),
            request_id=getattr(context, "aws_request_id", None),
        )
    )
    refusal = errors.MalformedRequest("The HTTP event could not be read.")
    return {
        "statusCode": refusal.status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(refusal.to_dict()),
        "isBase64Encoded": False,
    }


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
