"""Lambda events about S3 objects: notifications, S3 -> SQS or SNS, and EventBridge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def infer(event: Mapping[str, Any]) -> bool:
    from sign2text_core import buckets

    records = event.get("Records")
    if isinstance(records, list) and not all(isinstance(r, Mapping) for r in records):
        return False
    return buckets.is_bucket_event(event)


def handle(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The bucket processor's answer; failures raise so Lambda retries.

    Malformed records are logged and skipped by the processor itself. Nothing else is
    caught here: a misconfiguration or a bug must surface as a failed invocation (and
    end in the function's dead-letter destination), never as a silently lost upload.
    """
    from sign2text_core import buckets

    return buckets.handle_s3_event(dict(event))
