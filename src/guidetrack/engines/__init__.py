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


def get_engine(name: str) -> Engine:
    if name == "pyttsx3":
        from .pyttsx3_engine import shared_engine

        return shared_engine()
    raise InvalidInput(f"unknown speech engine '{name}'; available: pyttsx3")
