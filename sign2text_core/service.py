"""The HTTP contract, independent of any web framework.

Every HTTP adapter (FastAPI for uvicorn and Lambda, Flask for Cloud Functions) turns its
platform's request into an :class:`HttpRequest`, hands it to :meth:`Service.handle` and
writes the :class:`Reply` back. Routing, parameter parsing, the API key, CORS, the limit
on concurrent classifications, error documents and the per-request log line all live
here, so every platform answers the same request with the same JSON.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol
from urllib.parse import parse_qs

from sign2text_core import __version__, errors
from sign2text_core.limits import Limits

logger = logging.getLogger(__name__)

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries, part headers and small fields beside the video."""

MAX_TOP_K = 1000
DEFAULT_TOP_K = 5
MAX_FORM_PARTS = 32
RETRY_AFTER_S = 2

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DECIMAL = re.compile(r"\s*[0-9]{1,9}\s*")
_RAW_VIDEO_TYPES = ("application/octet-stream",)


class ClassifierLike(Protocol):
    """What the service needs from :class:`sign2text_core.signs.Classifier`."""

    @property
    def bundle(self) -> Any: ...

    def classify(
        self,
        video: bytes,
        *,
        top_k: int = ...,
        labels: Sequence[str] | None = ...,
        limits: Limits | None = ...,
    ) -> Any: ...


@dataclass(frozen=True)
class ServiceConfig:
    """Deployment settings, read once from the environment."""

    limits: Limits
    max_concurrency: int
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Read ``SIGN2TEXT_*`` settings.

        Raises:
            errors.ConfigurationError: a setting has a value that cannot be used.
        """
        env = os.environ if environ is None else environ
        origins = env.get("SIGN2TEXT_CORS_ORIGINS", "")
        return cls(
            limits=Limits.from_env(env),
            max_concurrency=_concurrency_from_env(env),
            api_key=env.get("SIGN2TEXT_API_KEY") or None,
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        )

    @property
    def max_request_bytes(self) -> int:
        """The largest body worth reading: the video limit plus form overhead."""
        return int(self.limits.max_bytes) + FORM_OVERHEAD_BYTES


def _concurrency_from_env(env: Mapping[str, str]) -> int:
    raw = env.get("SIGN2TEXT_MAX_CONCURRENCY", "").strip()
    if not raw:
        # One clip per core keeps latency predictable; decoding and ONNX inference
        # each use a core, so more would only queue inside the process.
        return max(1, min(4, os.cpu_count() or 1))
    if not raw.isdigit() or int(raw) < 1:
        raise errors.ConfigurationError(
            f"SIGN2TEXT_MAX_CONCURRENCY must be a whole number >= 1, got {raw!r}"
        )
    return int(raw)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as every adapter sees it; header names are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    query_string: str = ""
    body: bytes = b""
    request_id: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    """What an adapter sends back: a status, headers and the encoded body."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, status: int, document: Any, headers: Mapping[str, str] | None = None
    ) -> Reply:
        encoded = json.dumps(_finite(document), separators=(",", ":")).encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        return cls(status, encoded, all_headers)

    @classmethod
    def text(cls, status: int, text: str, content_type: str) -> Reply:
        return cls(status, text.encode(), {"content-type": content_type})

    def document(self) -> Any:
        """The decoded JSON body (for tests and logs)."""
        return json.loads(self.body)


def _finite(value: Any) -> Any:
    """The document with NaN and infinities replaced by null, which JSON lacks."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart/form-data body."""

    name: str | None
    filename: str | None
    content: bytes

    def text(self) -> str:
        try:
            return self.content.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidParameter(
                f"The form field {self.name!r} is not UTF-8 text."
            ) from None


def _header_params(name: str, value: str) -> Message:
    """A header parsed with its parameters (quoting and RFC 2231 handled)."""
    message = Message()
    message[name] = value
    return message


def parse_form(body: bytes, boundary: str) -> list[FormPart]:
    """Split a multipart/form-data body into its parts.

    Raises:
        errors.MalformedRequest: the body does not follow the multipart framing.
    """
    delimiter = b"--" + boundary.encode("latin-1", errors="replace")
    start = body.find(delimiter)
    if start < 0:
        raise errors.MalformedRequest("The multipart body never uses its boundary.")

    parts: list[FormPart] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):
        if len(parts) >= MAX_FORM_PARTS:
            raise errors.MalformedRequest(
                f"The multipart body has more than {MAX_FORM_PARTS} parts."
            )
        part, position = _read_part(body, position, delimiter)
        parts.append(part)
    return parts


def _read_part(body: bytes, position: int, delimiter: bytes) -> tuple[FormPart, int]:
    """The part after the delimiter ending at `position`, and where the next ends."""
    line_end = body.find(b"\r\n", position)
    if line_end < 0 or body[position:line_end].strip(b" \t"):
        raise errors.MalformedRequest("A multipart delimiter line is malformed.")

    header_start = line_end + 2
    if body.startswith(b"\r\n", header_start):
        header_block, content_start = b"", header_start + 2
    else:
        header_end = body.find(b"\r\n\r\n", header_start)
        if header_end < 0:
            raise errors.MalformedRequest("A multipart part's headers never end.")
        header_block, content_start = body[header_start:header_end], header_end + 4

    content_end = body.find(b"\r\n" + delimiter, content_start)
    if content_end < 0:
        raise errors.MalformedRequest("The multipart body ends before its last part.")

    part = _form_part(header_block, body[content_start:content_end])
    return part, content_end + 2 + len(delimiter)


def _form_part(header_block: bytes, content: bytes) -> FormPart:
    disposition = ""
    for line in header_block.decode("utf-8", errors="replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            disposition = value.strip()
    if not disposition:
        return FormPart(None, None, content)

    params = _header_params("content-disposition", disposition)
    field_name = params.get_param("name", header="content-disposition")
    return FormPart(
        name=field_name if isinstance(field_name, str) else None,
        filename=params.get_filename(),
        content=content,
    )


@dataclass(frozen=True)
class Upload:
    """The video and the parameters a classify request carries."""

    video: bytes
    top_k: int = DEFAULT_TOP_K
    labels: list[str] | None = None


def read_upload(request: HttpRequest) -> Upload:
    """The video and its parameters from a multipart form or a raw video body.

    Raises:
        errors.EmptyUpload, errors.MissingVideo, errors.UnsupportedMediaType,
        errors.MalformedRequest, errors.InvalidParameter: the request cannot be a
        classification request.
    """
    if not request.body:
        raise errors.EmptyUpload()

    content_type = request.header("content-type") or ""
    params = _header_params("content-type", content_type)
    media_type = params.get_content_type() if content_type else ""
    query = parse_qs(request.query_string, keep_blank_values=True)

    if media_type == "multipart/form-data":
        boundary = params.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise errors.MalformedRequest("The multipart content type has no boundary.")
        video, fields = _video_from_form(parse_form(request.body, boundary))
    elif media_type.startswith("video/") or media_type in _RAW_VIDEO_TYPES:
        video, fields = request.body, {}
    else:
        raise errors.UnsupportedMediaType(_unsupported_message(media_type))

    if not video:
        raise errors.EmptyUpload()
    top_k = _top_k(_one_source("top_k", query, fields))
    labels = _labels(_one_source("labels", query, fields))
    return Upload(video=video, top_k=top_k, labels=labels)


def _unsupported_message(media_type: str) -> str:
    named = repr(media_type) if media_type else "(none)"
    return (
        f"Content type {named} is not accepted: send multipart/form-data with the "
        "field 'video', or the raw video as video/* or application/octet-stream."
    )


def _video_from_form(parts: list[FormPart]) -> tuple[bytes, dict[str, list[str]]]:
    videos = [part for part in parts if part.name == "video"]
    if not videos:
        names = sorted({part.name for part in parts if part.name})
        raise errors.MissingVideo(fields=names)
    if len(videos) > 1:
        raise errors.InvalidParameter("Send one 'video' field, not several.")

    fields: dict[str, list[str]] = {}
    for part in parts:
        if part.name and part.name != "video":
            fields.setdefault(part.name, []).append(part.text())
    return videos[0].content, fields


def _one_source(
    name: str, query: Mapping[str, list[str]], fields: Mapping[str, list[str]]
) -> list[str] | None:
    """A parameter's values from the query or the form, refusing both at once."""
    if name in query and name in fields:
        raise errors.InvalidParameter(
            f"Give {name!r} in the query or in the form, not in both.", parameter=name
        )
    return fields.get(name, query.get(name))


def _top_k(values: list[str] | None) -> int:
    if values is None:
        return DEFAULT_TOP_K
    if len(values) != 1 or not _DECIMAL.fullmatch(values[0]):
        raise errors.InvalidParameter(
            f"top_k must be one whole number from 1 to {MAX_TOP_K}.", parameter="top_k"
        )
    top_k = int(values[0])
    if not 1 <= top_k <= MAX_TOP_K:
        raise errors.InvalidParameter(
            f"top_k must be from 1 to {MAX_TOP_K}, got {top_k}.", parameter="top_k"
        )
    return top_k


def _labels(values: list[str] | None) -> list[str] | None:
    """Comma-separated labels, possibly repeated; blanks between commas are ignored."""
    if values is None:
        return None
    return [
        label.strip() for value in values for label in value.split(",") if label.strip()
    ]


Handler = Callable[[HttpRequest, dict[str, Any]], Reply]


class Service:
    """Answers HTTP requests for one process; safe to share across threads."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        classifier: ClassifierLike | None = None,
        documents: Mapping[str, Reply] | None = None,
    ) -> None:
        """
        Args:
            config: the deployment's settings.
            classifier: the classifier to use; the core's shared default when None,
                created on the first classification.
            documents: fixed documents served on GET without an API key
                (the OpenAPI description, the docs page).
        """
        self.config = config
        self._classifier = classifier
        self._classifier_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._cold = True
        self._documents = dict(documents or {})
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/classify": {"POST": self._classify},
            "/sign": {"POST": self._sign},
            "/v1/model": {"GET": self._model},
            "/healthz": {"GET": self._health},
            "/": {"GET": self._index},
        }
        self._public = {"/", "/healthz", *self._documents}

    @property
    def classifier(self) -> ClassifierLike:
        with self._classifier_lock:
            if self._classifier is None:
                self._classifier = _default_classifier()
            return self._classifier

    def check_declared_length(self, headers: Mapping[str, str]) -> None:
        """Refuse a body by its Content-Length before reading it.

        Raises:
            errors.VideoTooLarge: the declared body is larger than any accepted upload.
        """
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.config.max_request_bytes:
            raise errors.VideoTooLarge(
                f"The request body is {int(declared)} bytes; at most "
                f"{self.config.max_request_bytes} are accepted.",
                max_bytes=int(self.config.limits.max_bytes),
            )

    def handle(self, request: HttpRequest) -> Reply:
        """The reply to one request; never raises."""
        started = time.perf_counter()
        request_id = _request_id(request)
        facts: dict[str, Any] = {}

        try:
            reply = self._route(request, facts)
        except errors.Sign2TextError as error:
            reply = error_reply(error)
            facts["error"] = error.code
        except errors.ConfigurationError:
            logger.exception("the service is misconfigured")
            misconfigured = "The service is misconfigured; its log says how."
            reply = error_reply(errors.InternalError(misconfigured))
            facts["error"] = errors.InternalError.code
        except Exception:
            logger.exception("request %s failed", request_id)
            reply = error_reply(errors.InternalError())
            facts["error"] = errors.InternalError.code

        reply.headers.update(self._cors_headers(request))
        reply.headers["x-request-id"] = request_id
        self._log(request, reply, request_id, facts, started)
        return reply

    def error_reply_for(
        self, error: errors.Sign2TextError, request: HttpRequest
    ) -> Reply:
        """An error found by an adapter before the body was read, logged like others."""
        started = time.perf_counter()
        request_id = _request_id(request)
        reply = error_reply(error)
        reply.headers.update(self._cors_headers(request))
        reply.headers["x-request-id"] = request_id
        self._log(request, reply, request_id, {"error": error.code}, started)
        return reply

    def _route(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        if request.path in self._documents:
            if request.method != "GET":
                raise errors.MethodNotAllowed(allow=["GET"])
            document = self._documents[request.path]
            # A copy: the headers of each reply get this request's id and CORS.
            return Reply(document.status, document.body, dict(document.headers))

        methods = self._routes.get(request.path)
        if methods is None:
            raise errors.NotFound(f"No route {request.path!r}.", path=request.path)
        if request.method == "OPTIONS" and self._preflight_allowed(request):
            return Reply(204, b"", {"allow": ", ".join([*methods, "OPTIONS"])})
        route = methods.get(request.method)
        if route is None:
            raise errors.MethodNotAllowed(allow=sorted(methods))

        if request.path not in self._public:
            self._authorize(request)
        return route(request, facts)

    def _authorize(self, request: HttpRequest) -> None:
        expected = self.config.api_key
        if expected is None:
            return
        given = request.header("x-api-key") or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise errors.Unauthorized()

    def _classify(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        document = self._predict(request, facts)
        return Reply.json(200, document, {"cache-control": "no-store"})

    def _sign(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        document = self._predict(request, facts)
        return Reply.json(200, {"target": document["label"]})

    def _predict(self, request: HttpRequest, facts: dict[str, Any]) -> dict[str, Any]:
        upload = read_upload(request)
        facts["bytes"] = len(upload.video)

        if not self._slots.acquire(blocking=False):
            raise errors.Busy(retry_after_s=RETRY_AFTER_S)
        try:
            prediction = self.classifier.classify(
                upload.video,
                top_k=upload.top_k,
                labels=upload.labels,
                limits=self.config.limits,
            )
        finally:
            self._slots.release()

        document: dict[str, Any] = prediction.to_dict()
        facts.update(_prediction_facts(document))
        return document

    def _model(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        return Reply.json(200, self.model_document())

    def model_document(self) -> dict[str, Any]:
        """The model's name, version and labels, and the limits uploads must meet."""
        classifier = self.classifier
        bundle = classifier.bundle
        limits = self.config.limits
        default_labels = getattr(classifier, "default_labels", None)
        return {
            "name": bundle.name,
            "version": bundle.version,
            "labels": list(bundle.labels),
            "default_labels": list(default_labels) if default_labels else None,
            "limits": {
                "max_bytes": limits.max_bytes,
                "max_duration_s": limits.max_duration_s,
                "max_width": limits.max_width,
                "max_height": limits.max_height,
                "max_request_bytes": self.config.max_request_bytes,
                "max_concurrency": self.config.max_concurrency,
                "max_top_k": MAX_TOP_K,
            },
        }

    def _health(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        return Reply.json(200, {"status": "ok", "version": __version__})

    def _index(self, request: HttpRequest, facts: dict[str, Any]) -> Reply:
        return Reply.json(
            200,
            {
                "name": "sign2text",
                "version": __version__,
                "classify": "POST /v1/classify",
                "docs": "/docs",
                "openapi": "/openapi.json",
            },
        )

    def _preflight_allowed(self, request: HttpRequest) -> bool:
        origin = request.header("origin")
        return (
            origin is not None
            and self._origin_allowed(origin)
            and request.header("access-control-request-method") is not None
        )

    def _origin_allowed(self, origin: str) -> bool:
        return "*" in self.config.cors_origins or origin in self.config.cors_origins

    def _cors_headers(self, request: HttpRequest) -> dict[str, str]:
        origin = request.header("origin")
        if origin is None or not self._origin_allowed(origin):
            return {}
        headers = {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "retry-after, x-request-id",
            "vary": "origin",
        }
        if request.method == "OPTIONS":
            headers["access-control-allow-headers"] = "content-type, x-api-key"
            headers["access-control-allow-methods"] = "GET, POST, OPTIONS"
            headers["access-control-max-age"] = "600"
        return headers

    def _log(
        self,
        request: HttpRequest,
        reply: Reply,
        request_id: str,
        facts: Mapping[str, Any],
        started: float,
    ) -> None:
        line = {
            "event": "http_request",
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": reply.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "cold_start": self._cold,
            **facts,
        }
        self._cold = False
        logger.info(json.dumps(_finite(line), separators=(",", ":")))


def error_reply(error: errors.Sign2TextError) -> Reply:
    """The error document with the error's status (and Retry-After / Allow)."""
    headers: dict[str, str] = {}
    if isinstance(error, errors.Busy):
        headers["retry-after"] = str(error.details.get("retry_after_s", RETRY_AFTER_S))
    if isinstance(error, errors.MethodNotAllowed):
        headers["allow"] = ", ".join(error.details.get("allow", []))
    return Reply.json(error.status, error.to_dict(), headers)


def _request_id(request: HttpRequest) -> str:
    given = request.header("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return request.request_id or uuid.uuid4().hex


def _prediction_facts(document: Mapping[str, Any]) -> dict[str, Any]:
    vocabulary = document.get("vocabulary") or {}
    return {
        "label": document.get("label"),
        "score": document.get("score"),
        "no_hands": document.get("no_hands"),
        "vocabulary_size": vocabulary.get("size"),
        "clip": document.get("clip"),
        "timings_ms": document.get("timings_ms"),
    }


def _default_classifier() -> ClassifierLike:
    from sign2text_core import signs

    return signs.default_classifier()  # type: ignore[no-any-return]
