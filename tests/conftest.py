"""Fixtures shared across the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import make_clip

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (real clips, reference landmarks), or skip."""
    if not (SHARED / "clips").is_dir():
        pytest.skip("../shared is not beside the project")
    return SHARED


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-second 320x240 H.264 MP4 test pattern."""
    folder = tmp_path_factory.mktemp("clips")
    return make_clip(folder / "small.mp4")
