"""pyttsx3: espeak-ng on Linux, the system voices on macOS and Windows.

Speech runs in a worker process (see pyttsx3_worker) that speaks each
utterance in a fresh fork with its own single pyttsx3 engine: one `save_to_file` +
`runAndWait` per utterance (pyttsx3 2.99 keeps only the last of several queued
saves), the same engine state for every utterance, and a timeout, one retry
with a restarted worker, then a clear error naming the text.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path

from ..errors import EngineError, InvalidInput
from ..voice import VoiceSpec
from .worker import WorkerEngine

INSTALL_HINT = "install espeak-ng (Debian: apt-get install espeak-ng; scripts/guidetrack does it for you)"
BASE_TIMEOUT = 20.0  # seconds allowed for any utterance, plus PER_CHAR_TIMEOUT a character
PER_CHAR_TIMEOUT = 0.05


def _driver_name() -> str:
    # the same choice pyttsx3.init() makes
    return {"darwin": "nsss", "win32": "sapi5"}.get(sys.platform, "espeak")


def engine_version() -> str:
    """pyttsx3's version and its driver's, without starting a worker."""
    driver = _driver_name()
    detail = "system"
    if driver == "espeak":
        try:
            from pyttsx3.drivers import _espeak

            detail = _espeak.Info().decode()
        except Exception as err:  # the library is missing or broken
            raise EngineError(f"pyttsx3 cannot load espeak-ng ({err}); {INSTALL_HINT}") from None
    return f"pyttsx3-{package_version('pyttsx3')}/{driver}-{detail}"


class Pyttsx3Engine(WorkerEngine):
    name = "pyttsx3"
    worker_module = "guidetrack.engines.pyttsx3_worker"
    install_hint = INSTALL_HINT

    def __init__(self) -> None:
        super().__init__()
        self.version = engine_version()
        self._voices: dict[str, str] = {}

    def worker_command(self) -> list[str]:
        # its file, not its module: it needs only the standard library and pyttsx3, and Python
        # starts it in 60 ms rather than 100 (no guidetrack package imported first)
        return ["-P", str(Path(__file__).with_name("pyttsx3_worker.py"))]  # -P: its folder not on sys.path

    def worker_args(self) -> list[str]:
        # a child spends much of its time waiting: for espeak-ng's thread, and in pyttsx3's loop,
        # which looks for the end of speech every 10 ms; four a core keep the cores busy (the main
        # track's 45 utterances: 0.25 s with two a core, 0.20 s with four)
        return [str(4 * (os.cpu_count() or 1))]

    def hello(self) -> dict:
        return {"voices": True}

    def started(self, answer: dict) -> None:
        self._voices = {v["id"]: v["name"] for v in answer["voices"]}

    def voice_ids(self) -> list[str]:
        self.ensure_started()
        return sorted(self._voices)

    def _resolve_voice(self, wanted: str) -> str:
        if wanted in self._voices:
            return wanted
        lowered = wanted.lower()
        for voice_id, name in self._voices.items():
            if lowered in (voice_id.lower().rsplit("/", 1)[-1], name.lower()):
                return voice_id
        raise InvalidInput(
            f"the voice '{wanted}' is not installed for pyttsx3; try en-us, en-gb or one of: "
            + ", ".join(v.rsplit("/", 1)[-1] for v in sorted(self._voices)[:40])
        )

    def request(self, text: str, path: Path, voice: VoiceSpec) -> dict:
        return {"text": text, "path": str(path), "voice": self._resolve_voice(voice.voice),
                "rate": voice.rate, "volume": voice.volume, "pitch": voice.pitch}

    def timeout(self, text: str) -> float:
        return BASE_TIMEOUT + PER_CHAR_TIMEOUT * len(text)


def bundled_voices() -> tuple[str, ...]:
    """() : espeak-ng has a voice for most languages; an id it lacks is reported when it speaks."""
    return ()


@lru_cache(maxsize=1)
def shared_engine() -> Pyttsx3Engine:
    return Pyttsx3Engine()
