"""Lambda events about S3 objects: notifications, S3 -> SQS or SNS, and EventBridge."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from adapters.runtime import event_log_line

logger = logging.getLogger(__name__)


def infer(event: Mapping[str, Any]) -> bool:
    from sign2text_core import buckets

    records = event.get("Records")
    if isinstance(records, list) and not all(isinstance(r, Mapping) for r in records):
        return False
    return buckets.is_bucket_event(event)


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The bucket processor's answer; transient failures raise so Lambda retries.

    An event of the right source but the wrong shape can never succeed, so it is
    logged and answered as ignored instead of raised.
    """
    from sign2text_core import buckets

    try:
        return buckets.handle_s3_event(dict(event))
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        logger.warning(
            event_log_line(
                event="lambda_event_ignored",
                reason="malformed S3 event",
                error=repr(error),
                request_id=getattr(context, "aws_request_id", None),
            )
        )
        return {"status": "ignored", "reason": "malformed S3 event"}
