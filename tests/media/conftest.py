"""Clips shared by the media tests, made once per test session by Debian ffmpeg."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media-clips")
