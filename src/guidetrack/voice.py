"""What a voice is: the settings that choose and shape it, and its lexicon.

The bottom of the flow: scripts build these, engines speak with them, the clip cache keys on
them. Nothing here imports the rest of guidetrack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# word or phrase -> how to say it: one text for every engine, or (engine, text) pairs
Said = str | tuple[tuple[str, str], ...]
Lexicon = tuple[tuple[str, Said], ...]
CueWords = tuple[tuple[str, Any], ...]  # `cues:` as (key, word) pairs; "numbers" has a tuple of words


def said_by(how: Said, engine: str) -> str | None:
    """How a lexicon entry is said to `engine`; None leaves the word as written."""
    return how if isinstance(how, str) else dict(how).get(engine)


@dataclass(frozen=True)
class VoiceSpec:
    """Which voice speaks, and how. Every field but `profile` changes the sound."""

    engine: str = "pyttsx3"
    voice: str = "en-us"  # the engine's voice id; for Piper, a packaged voice's name or a model file's path
    rate: int = 135  # words per minute
    volume: float = 0.9  # 0..1
    pitch: int | None = None  # 0..100 where the engine has it (espeak-ng: 50 is its usual)
    lexicon: Lexicon = ()  # (word or phrase, how to say it), applied before synthesis
    profile: str = ""  # the profile it came from, for people to read
    cues: CueWords = ()  # a profile's own words for the cues (see `languages`), over the language's

    def cache_key(self) -> dict[str, Any]:
        """What changes the sound, without where a file happens to be: a model file is named by
        its file name (its bytes are keyed separately, as a source of the script)."""
        voice = self.voice.rsplit("/", 1)[-1] if self.voice.endswith(".onnx") else self.voice
        return {"engine": self.engine, "voice": voice, "rate": self.rate, "volume": self.volume,
                "pitch": self.pitch, "lexicon": [list(entry) for entry in self.lexicon],
                "cues": [list(pair) for pair in self.cues]}
