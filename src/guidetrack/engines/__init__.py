"""Speech engines: one module each, behind one protocol, listed once in ENGINES.

An engine's module has `engine_version()` (its version without starting it; a missing engine is
an EngineError saying how to install it), `shared_engine()` (the one started engine of this
process) and `bundled_voices()` (the voices it has without starting, for checking scripts). Only
`voice` lies beneath this package: engines know voices, never scripts or plans.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Literal, Protocol

from ..errors import InvalidInput
from ..voice import VoiceSpec


class Engine(Protocol):
    name: str
    version: str  # changes whenever the same text may sound different

    def synthesize(self, text: str, voice: VoiceSpec, path: Path) -> None:
        """Speak `text` into a WAV file at `path`."""

    def synthesize_many(self, items: list[tuple[str, Path]], voice: VoiceSpec,
                        spoken: Callable[[int], None] | None = None) -> None:
        """Speak each (text, path), in one exchange with the engine where it can; `spoken` is
        told each item's index as soon as its file is written (in any order)."""

    def voice_key(self, voice: VoiceSpec) -> str:
        """What names the voice in the clip cache: everything about it that changes the sound."""

    def voice_ids(self) -> list[str]:
        """Every voice the engine can speak with here."""

    def ensure_started(self) -> None:
        """Start the engine's worker now, so that the next utterance does not wait for it."""

    def close(self) -> None:
        """Stop the engine's worker, if it has one."""


@dataclass(frozen=True)
class EngineInfo:
    """What the script checker and the CLI know of an engine without starting it."""

    name: str
    label: str  # its name in messages
    module: str  # under guidetrack.engines
    default_voice: str  # the voice when a script names only the engine
    phonemes: str  # what [[...]] in a lexicon entry holds, for this engine
    voices: Literal["any", "bundled", "models"]  # any id (checked when speaking); only `bundled_voices()`;
    # or a model file (NAME.onnx in a voices/ folder, a path) besides the packaged ones
    pitch: bool = False  # whether `pitch` means anything to it
    multilingual: bool = False  # whether its voices speak more than English


ENGINES: dict[str, EngineInfo] = {info.name: info for info in (
    EngineInfo("pyttsx3", "espeak-ng", "pyttsx3_engine", "en-us", "espeak-ng's phoneme names", "any",
               pitch=True, multilingual=True),
    EngineInfo("piper", "Piper", "piper_engine", "joe", "IPA", "models"),
    EngineInfo("hibari", "hibari", "hibari_engine", "heart", "its own phonemes (misaki's, IPA-like)", "bundled"),
)}


def _module(name: str) -> ModuleType:
    if name not in ENGINES:
        raise InvalidInput(f"unknown speech engine '{name}'; engines: {', '.join(ENGINES)}")
    return import_module(f"{__name__}.{ENGINES[name].module}")


def engine_version(name: str) -> str:
    """An engine's version without starting it; a missing engine is an EngineError saying how
    to install it."""
    version: str = _module(name).engine_version()
    return version


def get_engine(name: str) -> Engine:
    """The engine of this process (started on first use)."""
    engine: Engine = _module(name).shared_engine()
    return engine


def bundled_voices(name: str) -> tuple[str, ...]:
    """The voices an engine has by name without starting it: Piper's packaged voices, hibari's
    bundled ones; () where any id the engine knows will do (espeak-ng), checked when it speaks."""
    voices: tuple[str, ...] = _module(name).bundled_voices()
    return voices
