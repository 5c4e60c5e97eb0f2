"""Speech engines: one module each, behind one small protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..errors import InvalidInput
from ..script import VoiceSpec


class Engine(Protocol):
    name: str
    version: str  # changes whenever the same text may sound different

    def synthesize(self, text: str, voice: VoiceSpec, path: Path) -> None:
        """Speak `text` into a WAV file at `path`."""


def engine_version(name: str) -> str:
    """An engine's version without starting it; a missing engine is an EngineError saying how
    to install it."""
    if name == "pyttsx3":
        from .pyttsx3_engine import engine_version as version
    elif name == "piper":
        from .piper_engine import engine_version as version
    elif name == "hibari":
        from .hibari_engine import engine_version as version
    else:
        raise InvalidInput(f"unknown speech engine '{name}'; engines: {', '.join(ENGINES)}")
    return version()


def voice_key(engine: Engine, voice: VoiceSpec) -> str:
    """What names the voice in the clip cache: its id, or (Piper) its model file's content."""
    key = getattr(engine, "voice_key", None)
    return key(voice) if key else voice.voice


ENGINES = ("pyttsx3", "piper", "hibari")


def get_engine(name: str) -> Engine:
    if name == "pyttsx3":
        from .pyttsx3_engine import shared_engine

        return shared_engine()
    if name == "piper":
        from .piper_engine import shared_engine as shared_piper

        return shared_piper()
    if name == "hibari":
        from .hibari_engine import shared_engine as shared_hibari

        return shared_hibari()
    raise InvalidInput(f"unknown speech engine '{name}'; engines: {', '.join(ENGINES)}")
