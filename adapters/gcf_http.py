"""Cloud Functions HTTP (functions-framework): a Flask request in, the contract out.

Imports neither FastAPI nor Starlette: only what the Flask request already carries.
"""

from __future__ import annotations

from typing import Any

from adapters.runtime import get_service
from sign2text_core import errors
from sign2text_core.service import HttpRequest

READ_CHUNK_BYTES = 1 << 20
DISCARD_LIMIT_BYTES = 256 << 20


def handle(request: Any) -> tuple[bytes, int, dict[str, str]]:
    """Answer a ``flask.Request``; functions-framework sends the tuple back."""
    service = get_service()
    head = _http_request(request, b"")

    try:
        service.check_declared_length(head.headers)
        body = _read_body(request, service.config.max_request_bytes)
    except errors.Sign2TextError as error:
        _discard_rest(request)
        reply = service.error_reply_for(error, head)
    else:
        reply = service.handle(_http_request(request, body))
    return reply.body, reply.status, reply.headers


def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` (chunked uploads too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = request.stream.read(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise errors.VideoTooLarge(
                f"The request body is larger than {limit} bytes.", max_bytes=limit
            )
        chunks.append(chunk)


def _discard_rest(request: Any) -> None:
    """Read what is left of a refused body without keeping it.

    functions-framework reads any unread body into memory after the response so the
    client does not see a reset connection; draining it here keeps that cheap.
    """
    # TODO: a client that declares a large body and never sends it holds this thread
    # until the platform's request timeout; answering without draining would need a
    # streamed response that functions-framework leaves alone.
    remaining = DISCARD_LIMIT_BYTES
    while remaining > 0:
        chunk = request.stream.read(min(READ_CHUNK_BYTES, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


def _http_request(request: Any, body: bytes) -> HttpRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return HttpRequest(
        method=request.method,
        path=request.path,
        headers=headers,
        query_string=request.query_string.decode("latin-1"),
        body=body,
    )
