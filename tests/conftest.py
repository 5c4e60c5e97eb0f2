"""Shared helpers: run the real CLI, decode and measure the real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
SESSIONS = ROOT / "sessions"
RATE = 44_100


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One clip cache for the whole run: the first render is cold, later ones warm."""
    return tmp_path_factory.mktemp("clip-cache")


@pytest.fixture
def gt(cache_dir):
    """Run `guidetrack ARGS...` as a user would, in a subprocess."""

    def run(*args: object, cache: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "GUIDETRACK_CACHE_DIR": str(cache or cache_dir)}
        result = subprocess.run([sys.executable, "-m", "guidetrack", *map(str, args)],
                                capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"guidetrack {args} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


def plan_json(gt, script: Path) -> dict:
    return json.loads(gt("plan", script, "--json", check=True).stdout)


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def decode(path: Path) -> np.ndarray:
    """The decoded file as float32 stereo frames at 44.1 kHz (ffmpeg removes the encoder's padding)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-ar", str(RATE), "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2)


def window_db(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[int(start * RATE): int(end * RATE)]
    return float(10 * np.log10(np.mean(np.square(part, dtype=np.float64)) + 1e-12))
