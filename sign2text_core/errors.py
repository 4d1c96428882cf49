"""Every error the service can answer with, in one place.

Each error carries a stable machine-readable ``code`` that clients may branch on, a
human message that may change, and the HTTP status every adapter answers with. Code
that fails on input raises one of these; nothing else may reach a client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class Sign2TextError(Exception):
    """Base of every error a client can see."""

    code: ClassVar[str] = "sign2text_error"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    @property
    def permanent(self) -> bool:
        """True when retrying the same input can never succeed."""
        return self.status < 500

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class EmptyUpload(Sign2TextError):
    code = "empty_upload"
    status = 400
    default_message = "The upload is empty: send the video's bytes."


class MissingVideo(Sign2TextError):
    code = "missing_video"
    status = 400
    default_message = "No video in the request: send it as the form field 'video'."


class UnsupportedMediaType(Sign2TextError):
    code = "unsupported_media_type"
    status = 415
    default_message = (
        "Send the video as multipart/form-data (field 'video') or as a raw body "
        "with a video/* or application/octet-stream content type."
    )


class InvalidParameter(Sign2TextError):
    code = "invalid_parameter"
    status = 422
    default_message = "A request parameter is invalid."


class NotAVideo(Sign2TextError):
    code = "not_a_video"
    status = 422
    default_message = "The upload is not a video that can be decoded."


class VideoTooLarge(Sign2TextError):
    code = "video_too_large"
    status = 413
    default_message = "The video is larger than this service accepts."


class VideoTooLong(Sign2TextError):
    code = "video_too_long"
    status = 422
    default_message = "The video is longer than this service accepts."


class FrameTooLarge(Sign2TextError):
    code = "frame_too_large"
    status = 422
    default_message = "The video's frames are larger than this service accepts."


class NoFrames(Sign2TextError):
    code = "no_frames"
    status = 422
    default_message = "No frame of the video could be decoded."


class UnknownLabel(Sign2TextError):
    code = "unknown_label"
    status = 422
    default_message = "A requested label is not one the model knows."


class Unauthorized(Sign2TextError):
    code = "unauthorized"
    status = 401
    default_message = "A valid API key is required in the x-api-key header."


class Busy(Sign2TextError):
    code = "busy"
    status = 503
    default_message = "The service is busy with other clips; retry shortly."


class ModelUnavailable(Sign2TextError):
    code = "model_unavailable"
    status = 503
    default_message = "The model could not be loaded."


class MalformedRequest(Sign2TextError):
    code = "malformed_request"
    status = 400
    default_message = (
        "The request body could not be parsed as the content type it names."
    )


class NotFound(Sign2TextError):
    code = "not_found"
    status = 404
    default_message = "No such route."


class MethodNotAllowed(Sign2TextError):
    code = "method_not_allowed"
    status = 405
    default_message = "This route does not accept that HTTP method."


class InternalError(Sign2TextError):
    """A fault of the service, not of the request: logged with its traceback."""

    code = "internal_error"
    status = 500
    default_message = "The service failed on this request; it has been logged."


class ConfigurationError(ValueError):
    """A setting (environment variable, manifest) is invalid.

    Raised at start-up or on first use, naming the bad value; an operator's mistake,
    not a client's, so it is not a ``Sign2TextError``.
    """


ERRORS: tuple[type[Sign2TextError], ...] = (
    EmptyUpload,
    MissingVideo,
    UnsupportedMediaType,
    InvalidParameter,
    NotAVideo,
    VideoTooLarge,
    VideoTooLong,
    FrameTooLarge,
    NoFrames,
    UnknownLabel,
    Unauthorized,
    Busy,
    ModelUnavailable,
    MalformedRequest,
    NotFound,
    MethodNotAllowed,
    InternalError,
)
"""Every error class, for documentation and the OpenAPI schema."""
