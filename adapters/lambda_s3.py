"""Lambda events about S3 objects: notifications, S3 -> SQS and EventBridge."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

name = "s3"


def infer(event: Mapping[str, Any]) -> bool:
    """True for S3 notification records, SQS records carrying them, and EventBridge
    events from ``aws.s3``."""
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), Mapping):
        return True
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return False
    return all(_is_s3_record(record) for record in records)


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    from sign2text_core import buckets

    return buckets.handle_s3_event(dict(event))


def _is_s3_record(record: Any) -> bool:
    if not isinstance(record, Mapping):
        return False
    if record.get("eventSource") == "aws:s3":
        return True
    if record.get("eventSource") == "aws:sqs":
        return _carries_s3_event(record.get("body"))
    return False


def _carries_s3_event(body: Any) -> bool:
    if not isinstance(body, str):
        return False
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, Mapping) and (
        "Records" in message or message.get("Event") == "s3:TestEvent"
    )
