"""Cloud Functions CloudEvent for Cloud Storage uploads (object finalized)."""

from __future__ import annotations

from typing import Any

from adapters.runtime import configure_logging


def handle(cloud_event: Any) -> dict[str, Any]:
    """Hand a ``cloudevents`` event's attributes and data to the bucket processor."""
    from sign2text_core import buckets

    configure_logging()
    attributes = dict(cloud_event.get_attributes())
    data = cloud_event.get_data() if hasattr(cloud_event, "get_data") else None
    if data is None:
        data = getattr(cloud_event, "data", None)
    return buckets.handle_gcs_event(attributes, dict(data or {}))
