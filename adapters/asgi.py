"""The FastAPI app: uvicorn serves it locally, Mangum serves it on Lambda.

Every path goes to the shared service, so routing, errors and documents are the same
as on every other platform; FastAPI contributes the ASGI plumbing and the thread pool.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from adapters.openapi import openapi_document
from adapters.runtime import get_service
from sign2text_core import __version__, errors
from sign2text_core.service import HttpRequest, Reply

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def create_app() -> FastAPI:
    """A FastAPI app serving the Sign2Text contract (no model is loaded yet).

    Raises:
        ConfigurationError: a ``SIGN2TEXT_*`` setting is invalid, so the server
            stops at start-up rather than on its first request.
    """
    get_service()
    app = FastAPI(
        title="Sign2Text",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.openapi = openapi_document  # type: ignore[method-assign]
    app.add_api_route("/{path:path}", _serve, methods=METHODS, include_in_schema=False)
    return app


async def _serve(request: Request) -> Response:
    service = get_service()
    head = _http_request(request, b"")

    try:
        service.check_declared_length(head.headers)
        body = await _read_body(request, service.config.max_request_bytes)
    except errors.Sign2TextError as error:
        return _response(service.error_reply_for(error, head))

    reply = await run_in_threadpool(service.handle, _http_request(request, body))
    return _response(reply)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` (chunked uploads too)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.VideoTooLarge(
                f"The request body is larger than {limit} bytes.", max_bytes=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _http_request(request: Request, body: bytes) -> HttpRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    aws_context = request.scope.get("aws.context")
    return HttpRequest(
        method=request.method,
        path=request.url.path,
        headers=headers,
        query_string=request.url.query,
        body=body,
        request_id=getattr(aws_context, "aws_request_id", None),
    )


def _response(reply: Reply) -> Response:
    return Response(content=reply.body, status_code=reply.status, headers=reply.headers)
