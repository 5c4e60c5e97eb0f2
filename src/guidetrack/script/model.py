"""The model of a script: frozen dataclasses for every step and setting, in samples."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Union

from ..errors import Location, Problem
from ..languages import DEFAULT as DEFAULT_LANGUAGE
from ..languages import Words
from ..languages import parse as parse_language
from ..units import Samples, parse_duration, to_samples
from ..voice import CueWords, VoiceSpec

FORMAT_VERSION = 1
MAX_TEXT = 5_000  # characters in one `say`
MAX_CYCLES = 10_000
PARAM_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")  # {name}: a parameter


GENERATED_BACKGROUNDS = ("brown-noise", "pink-noise", "white-noise", "ocean", "drone")
GENERATED_SOUNDS = ("chime", "bowl")  # for an intro or outro
AUDIO_SUFFIXES = (".mp3", ".wav", ".ogg", ".flac")


@dataclass(frozen=True)
class Duck:
    """How the background dips under the voice: `depth_db` lower while speech sounds, reached
    `attack` before the speech starts and left over `release` after it ends."""

    depth_db: float = 6.0
    attack: Samples = to_samples(0.4)
    release: Samples = to_samples(1.2)


@dataclass(frozen=True)
class Background:
    sound: str  # a generator name, or the resolved path of an audio file
    level_db: float | None = None  # loudness (LU) relative to the voice's; None: the target's default (-18)
    fade_in: Samples = 0
    fade_out: Samples = 0
    duck: Duck | None = Duck()  # None: the bed never dips
    where: Location | None = None  # where the script names the sound

    @property
    def is_file(self) -> bool:
        return self.sound not in GENERATED_BACKGROUNDS

    def cache_key(self, digest: Callable[[str], str]) -> dict[str, Any]:
        """What changes its sound, never where it is: a file is named by `digest`, its content's hash."""
        duck = [self.duck.depth_db, self.duck.attack, self.duck.release] if self.duck else None
        return {"sound": digest(self.sound) if self.is_file else self.sound, "level_db": self.level_db,
                "fade_in": self.fade_in, "fade_out": self.fade_out, "duck": duck}


@dataclass(frozen=True)
class Bumper:
    """An intro or outro: a sound (a generated one or an audio file), then optional words."""

    title: str  # its chapter's title
    sound: str = ""  # "", a name from GENERATED_SOUNDS, or the resolved path of an audio file
    level_db: float = -3.0  # the sound's level relative to the voice
    text: str = ""  # spoken after the sound
    where: Location | None = None

    @property
    def is_file(self) -> bool:
        return bool(self.sound) and self.sound not in GENERATED_SOUNDS


@dataclass(frozen=True)
class BreathPattern:
    name: str
    inhale: Samples
    hold: Samples
    exhale: Samples
    rest: Samples

    @property
    def cycle(self) -> Samples:
        return self.inhale + self.hold + self.exhale + self.rest

    def phases(self) -> tuple[tuple[str, Samples], ...]:
        return (("in", self.inhale), ("hold", self.hold), ("out", self.exhale), ("rest", self.rest))


def _preset(name: str, inhale: float, hold: float, exhale: float, rest: float) -> BreathPattern:
    return BreathPattern(name, to_samples(inhale), to_samples(hold), to_samples(exhale), to_samples(rest))


_COHERENT_PHASE = 60.0 / 5.5 / 2  # 5.5 breaths a minute, in and out equal: ~5.45 s
BREATH_PRESETS: dict[str, BreathPattern] = {
    "box": _preset("box", 4, 4, 4, 4),
    "4-7-8": _preset("4-7-8", 4, 7, 8, 0),
    "coherent": _preset("coherent", _COHERENT_PHASE, 0, _COHERENT_PHASE, 0),
    "relax": _preset("relax", 4, 0, 6, 0),
    "long-exhale": _preset("long-exhale", 4, 0, 8, 0),
    "equal": _preset("equal", 4, 0, 4, 0),
    "resonant": _preset("resonant", 5, 0, 5, 0),  # 6 breaths a minute
    "triangle": _preset("triangle", 4, 4, 4, 0),
    "calming": _preset("calming", 3, 0, 6, 0),  # exhale twice the inhale
}


class Cue(StrEnum):
    """How a `breathe` step marks its phases."""

    WORDS = "words"  # in, hold, out, rest: spoken
    COUNT = "count"  # the first word, then numbers
    TONE = "tone"  # a soft tone
    NONE = "none"  # silence on the grid


CUES = tuple(cue.value for cue in Cue)


@dataclass(frozen=True)
class Say:
    text: str
    where: Location


@dataclass(frozen=True)
class Pause:
    length: Samples
    where: Location


@dataclass(frozen=True)
class Chime:
    where: Location
    sound: str = "chime"  # "chime" (a bell) or "bowl" (a singing bowl)


@dataclass(frozen=True)
class Breathe:
    pattern: BreathPattern
    cycles: int
    cue: Cue
    where: Location
    fade: int = 0  # spoken cues for this many cycles, softer each time, then tones only; 0: never
    cues: CueWords = ()  # the `cues:` of the blocks it is in, over the script's words
    low: int = 0  # the fewest and most cycles fitting may make (0: as many as `cycles`)
    high: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cue", Cue(self.cue))  # "count" given as text is the same cue
        object.__setattr__(self, "low", self.low or self.cycles)
        object.__setattr__(self, "high", self.high or self.cycles)

    @property
    def elastic(self) -> bool:
        return self.low < self.cycles or self.high > self.cycles


@dataclass(frozen=True)
class Hold:
    length: Samples  # nominal
    min: Samples
    max: Samples
    reminders: tuple[str, ...]
    where: Location

    @property
    def elastic(self) -> bool:
        return self.min < self.length or self.max > self.length


@dataclass(frozen=True)
class Sides:
    sides: tuple[str, ...]
    steps: tuple[Step, ...]
    where: Location


@dataclass(frozen=True)
class Section:
    title: str
    steps: tuple[Step, ...]
    where: Location
    pose: bool = False  # an included block: a chapter of its own inside its section


Step = Union[Say, Pause, Chime, Breathe, Hold, Sides, Section]


@dataclass(frozen=True)
class Script:
    path: Path
    title: str
    steps: tuple[Step, ...]
    author: str = ""
    description: str = ""
    album: str = ""
    duration: Samples | None = None
    duration_where: Location | None = None
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    background: Background | None = None
    intro: Bumper | None = None
    outro: Bumper | None = None
    gap: Samples = to_samples(0.8)  # silence after each `say`
    cover: Path | None = None  # an image to embed; None: a generated cover
    section_chimes: bool = False  # a chime at the start of every section
    loudness: float | str | None = None  # the voice's loudness (LUFS) or a preset's name; None: podcast
    language: str = DEFAULT_LANGUAGE  # a BCP 47 tag: the language of the words guidetrack adds
    words: Words = field(default_factory=lambda: parse_language(DEFAULT_LANGUAGE).words)  # those words
    variant: str = ""  # the variant's name; "" for a script without variants
    props: tuple[str, ...] = ()  # what to have at hand, for the library's page
    level: str = ""  # who it suits, for the library's page
    sources: tuple[Path, ...] = ()  # the script, its blocks and audio files: all the sound depends on
    warnings: tuple[Problem, ...] = ()

    @property
    def slug(self) -> str:
        base = slugify(self.path.stem)
        return f"{base}-{self.variant}" if self.variant else base


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "track"



# ---------------------------------------------------------------- inline text

INLINE_PAUSE = re.compile(r"\[([^\[\]]*)\]")
SIDE_FIELD = "{side}"


def split_inline(text: str) -> list[str | Samples]:
    """`"Lie down. [2s] Breathe."` -> `["Lie down.", 88200, "Breathe."]`.

    Raises ValueError for a bracket that is not a duration.
    """
    parts: list[str | Samples] = []
    position = 0
    for match in INLINE_PAUSE.finditer(text):
        before = text[position:match.start()].strip()
        if before:
            parts.append(before)
        try:
            seconds = parse_duration(match.group(1).strip())
        except ValueError as err:
            raise ValueError(f"inline pause [{match.group(1)}]: {err}") from None
        parts.append(to_samples(seconds))
        position = match.end()
    rest = text[position:].strip()
    if rest:
        parts.append(rest)
    return parts



def variant_title(title: str, variant: str) -> str:
    return f"{title} ({variant})" if variant else title


def cue_pairs(cues: dict[str, Any]) -> CueWords:
    return tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in sorted(cues.items()))
