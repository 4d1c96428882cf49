"""Parity with MediaPipe Holistic on every shared clip (skipped without ../shared).

Each clip's first ``FRAMES_PER_CLIP`` consecutive frames go through the extractor as
one clip, so detection and tracking both happen as they do on a whole clip; the full
frames of every clip are compared by ``benchmarks/landmarks_parity.py``, which prints
the same figures per clip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.landmarks_parity import (
    MAX_MEDIAN_ERROR,
    MAX_P90_ERROR,
    MIN_FOUND_RATE,
    Comparison,
    parity,
    shared_clips,
)
from sign2text_core.landmarks import LandmarkExtractor

pytestmark = pytest.mark.shared

# About 1,600 of the 7,081 frames: keeps the module near a minute on two idle cores.
FRAMES_PER_CLIP = 24


@pytest.fixture(scope="module")
def comparisons(shared_dir: Path) -> tuple[Comparison, Comparison]:
    """(hands, lips) comparisons summed over every shared clip."""
    extractor = LandmarkExtractor(shared_dir / "models" / "mediapipe", pose=False)
    clips = shared_clips(shared_dir)
    assert len(clips) >= 60, "expected the 68 shared clips with reference landmarks"

    hands, lips = Comparison(), Comparison()
    for result in parity(extractor, clips, FRAMES_PER_CLIP):
        hands.merge(result.hands)
        lips.merge(result.lips)
    return hands, lips


def describe(comparison: Comparison) -> str:
    return (
        f"found {comparison.found}/{comparison.expected} "
        f"({comparison.found_rate:.1%}), error median {comparison.error(50):.4f}, "
        f"p90 {comparison.error(90):.4f}"
    )


def test_hands_are_found_where_mediapipe_found_them(
    comparisons: tuple[Comparison, Comparison],
) -> None:
    hands, _ = comparisons
    assert hands.expected > 500
    assert hands.found_rate >= MIN_FOUND_RATE, describe(hands)


def test_hand_landmarks_lie_where_mediapipe_put_them(
    comparisons: tuple[Comparison, Comparison],
) -> None:
    hands, _ = comparisons
    assert hands.error(50) <= MAX_MEDIAN_ERROR, describe(hands)
    assert hands.error(90) <= MAX_P90_ERROR, describe(hands)


def test_lips_are_found_where_mediapipe_found_them(
    comparisons: tuple[Comparison, Comparison],
) -> None:
    _, lips = comparisons
    assert lips.expected > 500
    assert lips.found_rate >= MIN_FOUND_RATE, describe(lips)


def test_lip_landmarks_lie_where_mediapipe_put_them(
    comparisons: tuple[Comparison, Comparison],
) -> None:
    _, lips = comparisons
    assert lips.error(50) <= MAX_MEDIAN_ERROR, describe(lips)
    assert lips.error(90) <= MAX_P90_ERROR, describe(lips)
