"""What a clip may cost before it is refused, and where those limits come from.

Kept apart from :mod:`sign2text_core.video` and free of NumPy, OpenCV and FFmpeg, so
the adapters can read the limits (the health check, the model document, the request
size) without paying for the decoder's imports on a cold start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from sign2text_core import errors

_T = TypeVar("_T")

DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
DEFAULT_MAX_DURATION_S: Final = 20.0
DEFAULT_MAX_FRAME_SIZE: Final = (4096, 4096)

ENV_MAX_BYTES: Final = "SIGN2TEXT_MAX_BYTES"
ENV_MAX_DURATION_S: Final = "SIGN2TEXT_MAX_DURATION_S"
ENV_MAX_FRAME_SIZE: Final = "SIGN2TEXT_MAX_FRAME_SIZE"


@dataclass(frozen=True)
class Limits:
    """What a clip may cost before it is refused.

    A frame fits when it fits the ``max_width`` x ``max_height`` box in either
    orientation: the cost of a frame is its pixels, not which way it is held.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    max_width: int = DEFAULT_MAX_FRAME_SIZE[0]
    max_height: int = DEFAULT_MAX_FRAME_SIZE[1]

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise errors.ConfigurationError(f"max_bytes must be >= 1: {self.max_bytes}")
        if not (self.max_duration_s > 0 and math.isfinite(self.max_duration_s)):
            raise errors.ConfigurationError(
                f"max_duration_s must be a positive number: {self.max_duration_s}"
            )
        if self.max_width < 1 or self.max_height < 1:
            raise errors.ConfigurationError(
                f"max frame size must be positive: {self.max_width}x{self.max_height}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Limits from ``SIGN2TEXT_MAX_BYTES`` (an integer number of bytes),
        ``SIGN2TEXT_MAX_DURATION_S`` (seconds) and ``SIGN2TEXT_MAX_FRAME_SIZE``
        (``WIDTHxHEIGHT``); an unset or empty variable keeps its default.

        Raises:
            errors.ConfigurationError: a variable is set to a value that is not valid,
                naming the variable and the value.
        """
        env = os.environ if environ is None else environ
        max_bytes = _env_value(env, ENV_MAX_BYTES, _parse_positive_int)
        max_duration_s = _env_value(env, ENV_MAX_DURATION_S, _parse_positive_float)
        frame_size = _env_value(env, ENV_MAX_FRAME_SIZE, _parse_frame_size)

        width, height = frame_size or DEFAULT_MAX_FRAME_SIZE
        return cls(
            max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
            max_duration_s=(
                DEFAULT_MAX_DURATION_S if max_duration_s is None else max_duration_s
            ),
            max_width=width,
            max_height=height,
        )


def _env_value(
    env: Mapping[str, str], name: str, parse: Callable[[str], _T]
) -> _T | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise errors.ConfigurationError(f"{name}={text!r} is not valid: {exc}") from exc


def _parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def _parse_positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("expected a number > 0")
    return value


def _parse_frame_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise ValueError("expected WIDTHxHEIGHT, e.g. 4096x4096")
    return _parse_positive_int(parts[0]), _parse_positive_int(parts[1])


__all__ = ["Limits"]
