"""Fixtures only; the shared helpers are in helpers.py (`from helpers import ...`)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import GT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `slow(SECONDS)` (each renders minutes of audio) run first, the longest
    first, the rest after them in their own order: in parallel, the run does not end with one
    worker still on a long render while the others have nothing left to do."""

    def seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return (slow.args[0] if slow.args else 1) if slow else 0

    items.sort(key=lambda item: -seconds(item))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One clip cache for the whole run: the first render is cold, later ones warm. Under
    pytest-xdist every worker shares the same folder (the clip cache is safe for concurrent
    processes), so a clip is spoken once per run, not once per worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("clip-cache")
    shared = tmp_path_factory.getbasetemp().parent / "clip-cache"  # the run's folder, above each worker's
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def run_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """`run_once(name, make)`: a folder that `make(folder)` fills once in the whole run. Under
    pytest-xdist the first worker to ask makes it, holding a lock; the others wait for it and
    share the folder (read it, do not change it). For a render that several tests measure."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's

    def once(name: str, make: Callable[[Path], None]) -> Path:
        folder = root / f"once-{name}"
        with open(root / f"once-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / ".done").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                make(folder)
                (folder / ".done").touch()
        return folder

    return once


@pytest.fixture
def gt(cache_dir) -> GT:
    """Run `guidetrack ARGS...` as a user would: `gt("render", script, "-o", out, check=True)`."""
    return GT(cache_dir)
