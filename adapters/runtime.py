"""The process-wide service every adapter shares, and logging set up once."""

from __future__ import annotations

import json
import logging
import sys
import threading

from adapters.openapi import DOCS_PAGE, openapi_document
from sign2text_core.service import Reply, Service, ServiceConfig

_service: Service | None = None
_service_lock = threading.Lock()
_logging_ready = False


def get_service() -> Service:
    """The one :class:`Service` of this process, created on first use.

    Raises:
        ConfigurationError: a ``SIGN2TEXT_*`` setting is invalid.
    """
    global _service
    with _service_lock:
        if _service is None:
            configure_logging()
            documents = {
                "/openapi.json": Reply.json(200, openapi_document()),
                "/docs": Reply.text(200, DOCS_PAGE, "text/html; charset=utf-8"),
            }
            _service = Service(ServiceConfig.from_env(), documents=documents)
        return _service


def reset_service() -> None:
    """Forget the service, so the next request reads the environment again."""
    global _service
    with _service_lock:
        _service = None


def configure_logging() -> None:
    """Let the project's INFO lines (one JSON line per request) reach stdout.

    Platforms that already route the root logger (Cloud Functions, Lambda) keep their
    handlers; a bare process gets one on stdout that prints each line as is.
    """
    global _logging_ready
    if _logging_ready:
        return
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, format="%(message)s")
    for name in ("sign2text_core", "adapters"):
        logging.getLogger(name).setLevel(logging.INFO)
    _logging_ready = True


def event_log_line(**fields: object) -> str:
    """One structured line for a non-HTTP event."""
    return json.dumps(fields, separators=(",", ":"), default=str)
