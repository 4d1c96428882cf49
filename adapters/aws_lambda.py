"""Lambda entry: send each event to the module for its source, never crash on a shape.

Each source module offers ``infer(event) -> bool`` and ``handle(event, context) ->
dict``; a new event source is a new module in ``SOURCES``, tried in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from adapters import lambda_http, lambda_s3
from adapters.runtime import configure_logging, event_log_line

logger = logging.getLogger(__name__)

SOURCES: tuple[ModuleType, ...] = (lambda_http, lambda_s3)


def route(event: Any, context: Any) -> dict[str, Any]:
    """The answer for one Lambda invocation.

    Events of no known source are logged and answered with ``{"status": "ignored"}``
    rather than raised: retrying them could never succeed.
    """
    configure_logging()
    if isinstance(event, Mapping):
        for source in SOURCES:
            if source.infer(event):
                answer: dict[str, Any] = source.handle(event, context)
                return answer

    reason = "not an HTTP or S3 object event"
    logger.warning(
        event_log_line(
            event="lambda_event_ignored",
            reason=reason,
            keys=sorted(event)[:20]
            if isinstance(event, Mapping)
            else type(event).__name__,
            request_id=getattr(context, "aws_request_id", None),
        )
    )
    return {"status": "ignored", "reason": reason}
