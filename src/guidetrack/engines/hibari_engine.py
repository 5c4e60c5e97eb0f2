"""hibari: a small natural English voice, offline (hibari-tts, Apache-2.0, a core dependency).

A model distilled from Kokoro-82M's af_heart voice, about 8 MB of int8 ONNX inside the wheel, run
on onnxruntime at 24 kHz. Only the voices inside the installed package are used ("heart"): hibari
fetches its others from a model hub on first use, which guidetrack never lets it do. The model runs
in a worker process (hibari_worker) with the same timeout, restart and retry as the other
engines; a fixed seed makes every clip bit-identical, so clips cache by content.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from importlib.util import find_spec
from pathlib import Path

from ..errors import EngineError
from ..voice import VoiceSpec
from .worker import WorkerEngine

INSTALL_HINT = "hibari-tts is a dependency of guidetrack: reinstall it (scripts/guidetrack does it for you)"
# hibari's own pace (speed 1.0), in the words a minute of espeak-ng's scale: four sentences of the
# library last 13.50 s as hibari and 14.09 s as espeak-ng at 180 wpm.
NATURAL_WPM = 188
# How fast hibari speaks at each `speed`, relative to speed 1.0: six sentences of the library, each
# trimmed to where it sounds, measured at every 0.05 of speed. The model rounds its phoneme
# durations, so the pace moves in steps rather than as 1 / speed; a rate is turned into the
# speed whose measured pace is rate / NATURAL_WPM, so that 120 wpm lasts 1.5x as long as 180.
PACE = ((0.5, 0.494), (0.55, 0.518), (0.6, 0.594), (0.65, 0.611), (0.7, 0.703), (0.75, 0.724),
        (0.8, 0.802), (0.85, 0.896), (0.9, 0.948), (0.95, 0.978), (1.0, 1.0), (1.1, 1.03), (1.2, 1.09),
        (1.3, 1.155), (1.35, 1.504), (1.5, 1.554), (1.7, 1.632), (2.0, 1.724))
SEED = 0  # the noise in its vocoder: fixed, so a text always gives the same clip
BASE_TIMEOUT = 30.0  # seconds for any utterance (the first loads the model), plus per character
PER_CHAR_TIMEOUT = 0.05


def speed(rate: int) -> float:
    """hibari's `speed` for a rate in words a minute (see PACE)."""
    import numpy as np

    speeds, paces = zip(*PACE, strict=True)
    return round(float(np.interp(rate / NATURAL_WPM, paces, speeds)), 4)


def engine_version() -> str:
    """hibari's version, and how its worker runs it: with numpy's FFT (see hibari_worker), whose
    samples differ from scipy's by a step of 16-bit at most, so clips made either way are not mixed."""
    try:
        return f"hibari-tts-{package_version('hibari-tts')}+numpy-fft"
    except PackageNotFoundError:
        raise EngineError(f"hibari is not installed; {INSTALL_HINT}") from None


def bundled_voices() -> tuple[str, ...]:
    """The voices whose model is inside the installed package (never one it would download)."""
    spec = find_spec("hibari")
    if spec is None or spec.origin is None:
        return ()
    import json

    assets = Path(spec.origin).parent / "assets"
    try:
        registry = json.loads((assets / "voices.json").read_text())
    except (OSError, ValueError):
        return ()
    return tuple(name for name, entry in registry.items()
                 if entry.get("bundled") and (assets / os.path.basename(str(entry.get("file", "")))).is_file())


class HibariEngine(WorkerEngine):
    name = "hibari"
    worker_module = "guidetrack.engines.hibari_worker"
    install_hint = INSTALL_HINT

    def __init__(self) -> None:
        super().__init__()
        self.version = engine_version()

    def worker_args(self) -> list[str]:
        return [str(self.keep_in)] if self.keep_in is not None else []

    def voice_key(self, voice: VoiceSpec) -> str:
        """What names the voice in the clip cache: the voice, and the speed and seed it is spoken at
        (a change to PACE gives new clips)."""
        return f"{voice.voice}:speed={speed(voice.rate)}:seed={SEED}"

    def voice_ids(self) -> list[str]:
        return list(bundled_voices())

    def request(self, text: str, path: Path, voice: VoiceSpec) -> dict:
        if voice.voice not in bundled_voices():
            raise EngineError(f"the hibari voice '{voice.voice}' is not inside the installed package "
                              f"(bundled: {', '.join(bundled_voices()) or 'none'}); guidetrack never downloads one")
        return {"text": text, "path": str(path), "voice": voice.voice, "speed": speed(voice.rate),
                "volume": voice.volume, "seed": SEED}

    def timeout(self, text: str) -> float:
        return BASE_TIMEOUT + PER_CHAR_TIMEOUT * len(text)


@lru_cache(maxsize=1)
def shared_engine() -> HibariEngine:
    return HibariEngine()
