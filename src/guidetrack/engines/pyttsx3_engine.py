"""pyttsx3: espeak-ng on Linux, the system voices on macOS and Windows.

One engine per process (pyttsx3 keeps a global driver), one utterance per
`save_to_file` + `runAndWait`: pyttsx3 2.99 keeps only the last of several queued saves.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path

from ..errors import EngineError, InvalidInput
from ..script import VoiceSpec

INSTALL_HINT = "install espeak-ng (Debian: apt-get install espeak-ng; scripts/guidetrack does it for you)"


class Pyttsx3Engine:
    name = "pyttsx3"

    def __init__(self) -> None:
        try:
            import pyttsx3

            with contextlib.redirect_stdout(io.StringIO()):
                self._engine = pyttsx3.init()
        except Exception as err:  # the driver raises anything from OSError to RuntimeError
            raise EngineError(f"pyttsx3 could not start a speech driver ({err}); {INSTALL_HINT}") from err
        driver = type(self._engine.proxy._driver).__module__.rsplit(".", 1)[-1]
        self.version = f"pyttsx3-{package_version('pyttsx3')}/{driver}-{_driver_version(driver)}"
        self._voices = {v.id: v for v in self._engine.getProperty("voices")}
        self._current: VoiceSpec | None = None

    def voice_ids(self) -> list[str]:
        return sorted(self._voices)

    def _resolve_voice(self, wanted: str) -> str:
        if wanted in self._voices:
            return wanted
        lowered = wanted.lower()
        for voice_id, voice in self._voices.items():
            if lowered in (voice_id.lower().rsplit("/", 1)[-1], str(voice.name).lower()):
                return voice_id
        raise InvalidInput(
            f"the voice '{wanted}' is not installed for pyttsx3; try en-us, en-gb or one of: "
            + ", ".join(v.rsplit("/", 1)[-1] for v in sorted(self._voices)[:40])
        )

    def _apply(self, voice: VoiceSpec) -> None:
        if voice == self._current:
            return
        self._engine.setProperty("voice", self._resolve_voice(voice.voice))
        self._engine.setProperty("rate", voice.rate)
        self._engine.setProperty("volume", voice.volume)
        self._current = voice

    def synthesize(self, text: str, voice: VoiceSpec, path: Path) -> None:
        self._apply(voice)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the espeak driver prints "Audio saved"
                self._engine.save_to_file(text, str(path))
                self._engine.runAndWait()
        except Exception as err:
            raise EngineError(f"pyttsx3 failed to speak {text!r}: {err}") from err


def _driver_version(driver: str) -> str:
    if driver == "espeak":
        try:
            from pyttsx3.drivers import _espeak

            return _espeak.Info().decode()
        except Exception:
            return "unknown"
    return "system"


@lru_cache(maxsize=1)
def shared_engine() -> Pyttsx3Engine:
    return Pyttsx3Engine()
