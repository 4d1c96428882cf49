"""A picture of what the model saw: sampled frames, their landmarks, the answer."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from sign2text_core.errors import InvalidParameter
from sign2text_core.prediction import Prediction

LEFT_HAND_START = 468
POSE_START = 489
RIGHT_HAND_START = 522
HAND_POINTS = 21

# Finger chains from the wrist (point 0) in MediaPipe's 21-point hand numbering.
HAND_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4),
    (0, 5, 6, 7, 8),
    (5, 9, 10, 11, 12),
    (9, 13, 14, 15, 16),
    (13, 17, 18, 19, 20),
    (0, 17),
)

# RGB colours.
LEFT_HAND_COLOUR = (255, 140, 0)
RIGHT_HAND_COLOUR = (0, 160, 255)
LIPS_COLOUR = (255, 60, 120)
POSE_COLOUR = (60, 220, 60)
TEXT_COLOUR = (255, 255, 255)
BAND_COLOUR = (30, 30, 30)


def contact_sheet(
    frames: Sequence[np.ndarray],
    landmarks: np.ndarray | None,
    prediction: Prediction,
    *,
    lip_indices: Sequence[int] = (),
    pose_indices: Sequence[int] = (),
    tiles: int = 12,
    columns: int = 4,
    tile_width: int = 320,
    frame_index: Sequence[int] | None = None,
) -> np.ndarray:
    """An RGB image: up to ``tiles`` evenly spaced frames with their points drawn.

    Hands are drawn as finger chains (left and right in different colours), lips and
    the pose points the model reads as dots; a band on top prints the top-3 labels.
    Each tile is numbered with its frame's position in the clip (``frame_index``) or,
    without it, in ``frames``.
    """
    if not frames:
        raise InvalidParameter("A contact sheet needs at least one frame.")
    count = min(tiles, len(frames))
    chosen = np.linspace(0, len(frames) - 1, count).round().astype(int)

    numbers = frame_index if frame_index is not None else range(len(frames))

    drawn = []
    for index in chosen:
        points = landmarks[index] if landmarks is not None else None
        drawn.append(
            _tile(
                frames[index],
                points,
                int(numbers[index]),
                lip_indices,
                pose_indices,
                tile_width,
            )
        )

    grid = _grid(drawn, columns)
    return np.vstack([_answer_band(prediction, grid.shape[1]), grid])


def write_contact_sheet(path: Path, sheet: np.ndarray) -> None:
    """Write an RGB image as PNG.

    Raises:
        InvalidParameter: the file cannot be written there.
    """
    encoded_ok, encoded = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not encoded_ok:
        raise InvalidParameter(f"Could not encode the contact sheet for {path}.")
    try:
        path.write_bytes(encoded.tobytes())
    except OSError as error:
        raise InvalidParameter(f"Could not write {path}: {error.strerror}.") from error


def _tile(
    frame: np.ndarray,
    points: np.ndarray | None,
    index: int,
    lip_indices: Sequence[int],
    pose_indices: Sequence[int],
    width: int,
) -> np.ndarray:
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    tile = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)

    if points is not None:
        _draw_hand(
            tile,
            points[LEFT_HAND_START : LEFT_HAND_START + HAND_POINTS],
            LEFT_HAND_COLOUR,
        )
        _draw_hand(
            tile,
            points[RIGHT_HAND_START : RIGHT_HAND_START + HAND_POINTS],
            RIGHT_HAND_COLOUR,
        )
        _draw_dots(tile, points[list(lip_indices)], LIPS_COLOUR, radius=1)
        _draw_dots(
            tile, points[[POSE_START + i for i in pose_indices]], POSE_COLOUR, radius=3
        )

    # A dark outline keeps the frame number legible on light backgrounds.
    font = cv2.FONT_HERSHEY_SIMPLEX
    for colour, thickness in ((BAND_COLOUR, 3), (TEXT_COLOUR, 1)):
        cv2.putText(
            tile, f"#{index}", (6, 18), font, 0.5, colour, thickness, cv2.LINE_AA
        )
    return tile


def _pixels(points: np.ndarray, image: np.ndarray) -> list[tuple[int, int] | None]:
    height, width = image.shape[:2]
    placed: list[tuple[int, int] | None] = []
    for x, y in points[:, :2]:
        found = bool(np.isfinite(x) and np.isfinite(y))
        placed.append(
            (round(float(x) * width), round(float(y) * height)) if found else None
        )
    return placed


def _draw_hand(
    image: np.ndarray, hand: np.ndarray, colour: tuple[int, int, int]
) -> None:
    placed = _pixels(hand, image)
    for chain in HAND_CHAINS:
        for start, end in itertools.pairwise(chain):
            a, b = placed[start], placed[end]
            if a is not None and b is not None:
                cv2.line(image, a, b, colour, 1, cv2.LINE_AA)
    for point in placed:
        if point is not None:
            cv2.circle(image, point, 2, colour, -1, cv2.LINE_AA)


def _draw_dots(
    image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], *, radius: int
) -> None:
    for point in _pixels(points, image):
        if point is not None:
            cv2.circle(image, point, radius, colour, -1, cv2.LINE_AA)


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    height = max(tile.shape[0] for tile in tiles)
    width = tiles[0].shape[1]
    rows = math.ceil(len(tiles) / columns)
    columns = min(columns, len(tiles))

    grid = np.zeros((rows * height, columns * width, 3), dtype=np.uint8)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, columns)
        top, left = row * height, column * width
        grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def _answer_band(prediction: Prediction, width: int) -> np.ndarray:
    band = np.full((36, width, 3), BAND_COLOUR, dtype=np.uint8)
    answers = "   ".join(f"{e.label} {e.score:.0%}" for e in prediction.top_k[:3])
    if prediction.no_hands:
        answers += "   (no hands found)"
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(band, answers, (8, 24), font, 0.6, TEXT_COLOUR, 1, cv2.LINE_AA)
    return band
