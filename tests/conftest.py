"""Fixtures only; the shared helpers are in helpers.py (`from helpers import ...`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import GT


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One clip cache for the whole run: the first render is cold, later ones warm."""
    return tmp_path_factory.mktemp("clip-cache")


@pytest.fixture
def gt(cache_dir) -> GT:
    """Run `guidetrack ARGS...` as a user would: `gt("render", script, "-o", out, check=True)`."""
    return GT(cache_dir)
