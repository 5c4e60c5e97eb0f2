"""Piper: a natural neural voice that runs offline (optional extra `piper`, GPL-3.0).

The model runs in a worker process (piper_worker) that loads each voice once; a
hang or crash there is retried once on a fresh worker, then reported by its text
(see worker.py). Piper's own text front end is espeak-ng, so the lexicon's
respellings work for it as they do for espeak-ng; its [[...]] phonemes are IPA.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

from ..errors import EngineError
from ..files import sha256_of
from ..voice import VoiceSpec
from .piper_voices import INSTALL_HINT, installed, model_files, names
from .worker import WorkerEngine

# How fast Piper voices speak at their own pace (length_scale 1), in the words a minute that
# espeak-ng's rate means: measured on en_US-joe-medium, the same sentence lasts 3.5-3.7 s as Piper
# and 3.75 s as espeak-ng at 180 wpm.
NATURAL_WPM = 180
# A clip's length is not proportional to length_scale: fitted on four sentences at scales 0.8-1.8,
# it is proportional to (length_scale + FIXED_SCALE), FIXED_SCALE 0.34-0.54 (0.4 taken). So a rate
# r becomes length_scale (1 + FIXED_SCALE) * NATURAL_WPM / r - FIXED_SCALE, and halving the rate
# doubles the clip.
FIXED_SCALE = 0.4


def length_scale(rate: int) -> float:
    return round(max(0.25, (1 + FIXED_SCALE) * NATURAL_WPM / rate - FIXED_SCALE), 4)
BASE_TIMEOUT = 30.0  # seconds for any utterance (the first loads the model), plus per character
PER_CHAR_TIMEOUT = 0.05


def engine_version() -> str:
    try:
        return f"piper-tts-{package_version('piper-tts')}"
    except PackageNotFoundError:
        raise EngineError(f"Piper is not installed; {INSTALL_HINT}") from None


@lru_cache(maxsize=16)
def _model_digest(model: Path, size: int, mtime: float) -> str:
    """The model's sha256, hashed once while its size and time stay the same (asked for every clip)."""
    return sha256_of(model)


class PiperEngine(WorkerEngine):
    name = "piper"
    worker_module = "guidetrack.engines.piper_worker"
    install_hint = INSTALL_HINT

    def __init__(self) -> None:
        super().__init__()
        self.version = engine_version()

    def _files(self, voice: VoiceSpec) -> tuple[Path, Path]:
        model, config = model_files(voice.voice)
        for file in (model, config):
            if not file.is_file():
                raise EngineError(f"the Piper voice file {file} is missing")
        return model, config

    def voice_key(self, voice: VoiceSpec) -> str:
        """What identifies the voice in the clip cache: its model's content, wherever it lies."""
        model, config = self._files(voice)
        stat = model.stat()
        return f"{_model_digest(model, stat.st_size, stat.st_mtime)}:{sha256_of(config)}"

    def voice_ids(self) -> list[str]:
        return installed()

    def request(self, text: str, path: Path, voice: VoiceSpec) -> dict:
        model, config = self._files(voice)
        return {"text": text, "path": str(path), "model": str(model), "config": str(config),
                "length_scale": length_scale(voice.rate), "volume": voice.volume}

    def timeout(self, text: str) -> float:
        return BASE_TIMEOUT + PER_CHAR_TIMEOUT * len(text)


def bundled_voices() -> tuple[str, ...]:
    return names()


@lru_cache(maxsize=1)
def shared_engine() -> PiperEngine:
    return PiperEngine()
