"""Load a YAML sequence script into frozen dataclasses.

Every problem in a script is collected in one pass and reported with file, line,
column and key path. Nothing here does I/O beyond reading the script itself.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import InvalidInput, Location, Problem
from .loudness import PRESETS, parse_loudness
from .languages import DEFAULT as DEFAULT_LANGUAGE, PHASES, SIDES, Language, Words, is_english, looks_like
from .languages import parse as parse_language
from .units import Samples, parse_duration, parse_level, to_samples

FORMAT_VERSION = 1
MAX_FILE_BYTES = 1_000_000
MAX_NODES = 50_000  # after alias expansion: stops "billion laughs" early
MAX_DEPTH = 40
MAX_TEXT = 5_000  # characters in one `say`
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tabs and line breaks are fine
MAX_CYCLES = 10_000

# ---------------------------------------------------------------- the model


# word or phrase -> how to say it: one text for every engine, or (engine, text) pairs
Said = str | tuple[tuple[str, str], ...]
Lexicon = tuple[tuple[str, Said], ...]
ENGINES = ("pyttsx3", "piper", "hibari")
ENGINE_VOICES = {"pyttsx3": "en-us", "piper": "joe", "hibari": "heart"}  # the voice when a script names only the engine


def said_by(how: Said, engine: str) -> str | None:
    """How a lexicon entry is said to `engine`; None leaves the word as written."""
    return how if isinstance(how, str) else dict(how).get(engine)


CueWords = tuple[tuple[str, Any], ...]  # `cues:` as (key, word) pairs; "numbers" has a tuple of words


@dataclass(frozen=True)
class VoiceSpec:
    """Which voice speaks, and how. Every field but `profile` changes the sound."""

    engine: str = "pyttsx3"
    voice: str = "en-us"
    rate: int = 135  # words per minute
    volume: float = 0.9  # 0..1
    pitch: int | None = None  # 0..100 where the engine has it (espeak-ng: 50 is its usual)
    lexicon: Lexicon = ()  # (word or phrase, how to say it), applied before synthesis
    profile: str = ""  # the profile it came from, for people to read
    cues: CueWords = ()  # a profile's own words for the cues (see `languages`), over the language's


BUILTIN_VOICES = Path(__file__).resolve().parent / "voices"
DEFAULT_VOICE = "gentle"  # for English: hibari's natural voice
ESPEAK_VOICE = "calm"  # for every other language (in its espeak-ng voice), and under espeak-only settings
LEXICON_SUFFIX = ".lexicon.yaml"


def voice_folders(script_path: Path | None = None, root: Path | None = None) -> list[Path]:
    """Where voice profiles are looked for, first match wins: `voices/` beside the script, in
    the library folder, in the current folder, then the profiles that come with guidetrack."""
    folders = [p / "voices" for p in (script_path.parent if script_path else None, root, Path.cwd()) if p]
    return list(dict.fromkeys(f.resolve() for f in folders)) + [BUILTIN_VOICES]


def voice_profiles(folders: list[Path]) -> dict[str, Path]:
    """Profile name -> its file (`NAME.yaml`; lexicons are `NAME.lexicon.yaml`)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            if not file.name.endswith(LEXICON_SUFFIX):
                found.setdefault(file.stem, file)
    return found


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
CUES = ("words", "count", "tone", "none")


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
    cue: str
    where: Location
    fade: int = 0  # spoken cues for this many cycles, softer each time, then tones only; 0: never
    cues: CueWords = ()  # the `cues:` of the blocks it is in, over the script's words


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
    steps: tuple["Step", ...]
    where: Location


@dataclass(frozen=True)
class Section:
    title: str
    steps: tuple["Step", ...]
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


# ---------------------------------------------------------------- schema

_DURATION = {"type": ["number", "string"], "description": "seconds, or a string like 4s, 1m30s, 1h"}
_LEVEL = {"type": ["number", "string"], "description": "decibels: -18 or '-18 dB'"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}

_SAID = {"type": "string", "minLength": 1, "maxLength": 200}
_CUE_WORD = {"type": "string", "minLength": 1, "maxLength": 60}
CUES_SCHEMA = {
    "type": "object",
    "properties": {**{key: _CUE_WORD for key in PHASES + SIDES},
                   "numbers": {"type": "array", "items": _CUE_WORD, "minItems": 1, "maxItems": 60,
                               "description": "counting words from two up"}},
    "additionalProperties": False,
    "description": "words guidetrack adds, replacing the language's: in, hold, out, rest (breath cues), "
                   "right, left (sides), numbers (counting from two)",
}
LEXICON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"\.ya?ml$", "description": "a lexicon file, relative to this file"},
        {"type": "object", "additionalProperties": {"anyOf": [
            {**_SAID, "description": "a respelling, for every engine"},
            {"type": "object", "properties": {engine: _SAID for engine in ENGINES}, "minProperties": 1,
             "additionalProperties": False, "description": "per engine; engines not named say the word as written"},
        ]}},
    ],
    "description": "word or phrase: how to say it: a respelling, or phonemes in [[...]] "
                   "(espeak-ng's phoneme names for pyttsx3, IPA for piper)",
}
_VOICE_FIELDS = {
    "engine": {"type": "string", "enum": list(ENGINES)},
    "voice": {"type": "string", "minLength": 1},
    "rate": {"type": "integer", "minimum": 60, "maximum": 400, "description": "words a minute"},
    "volume": {"type": "number", "minimum": 0.05, "maximum": 1},
    "pitch": {"type": "integer", "minimum": 0, "maximum": 100, "description": "espeak-ng: 50 is its usual"},
    "lexicon": LEXICON_SCHEMA,
}
VOICE_SCHEMA = {
    "anyOf": [
        {"type": "string", "description": "a voice profile: a file voices/NAME.yaml, or one that comes with guidetrack"},
        {"type": "object", "properties": _VOICE_FIELDS, "additionalProperties": False},
    ]
}
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {"guidetrack-voice": {"const": 1, "description": "voice profile format version"},
                   "description": {"type": "string"}, **_VOICE_FIELDS, "cues": CUES_SCHEMA},
    "required": ["guidetrack-voice", "engine", "voice"],
    "additionalProperties": False,
}

PARAM_NAME = r"^[a-z_][a-z0-9_]*$"
VARIANT_NAME = r"^[a-z0-9][a-z0-9-]*$"
_PARAMS = {
    "type": "object",
    "propertyNames": {"pattern": PARAM_NAME},
    "description": "parameters and their defaults (null: must be given); used as {name} in the steps",
}
_WITH = {"type": "object", "propertyNames": {"pattern": PARAM_NAME}, "description": "values for the parameters"}
_DUCK = {
    "anyOf": [
        {"type": "boolean"},
        _LEVEL,
        {
            "type": "object",
            "properties": {"depth": _LEVEL, "attack": _DURATION, "release": _DURATION},
            "additionalProperties": False,
        },
    ],
    "description": "how far the background dips under the voice (default 6 dB; false: never)",
}
_BACKGROUND = {
    "type": "object",
    "properties": {
        "sound": {"type": "string", "minLength": 1},
        "level": _LEVEL,
        "fade_in": _DURATION,
        "fade_out": _DURATION,
        "duck": _DUCK,
    },
    "required": ["sound"],
    "additionalProperties": False,
}
_BUMPER_SOUND = {"type": "string", "minLength": 1,
                 "description": f"an audio file relative to the script, or {' / '.join(GENERATED_SOUNDS)}"}
_BUMPER = {
    "anyOf": [
        _BUMPER_SOUND,
        {
            "type": "object",
            "properties": {"sound": _BUMPER_SOUND, "level": _LEVEL, "say": _TEXT, "title": _TEXT},
            "minProperties": 1,
            "additionalProperties": False,
        },
    ]
}
# What a variant may change; everything else comes from the top of the script.
_VARIANT_PROPERTIES = {
    "title": _TEXT,
    "author": {"type": "string"},
    "description": {"type": "string"},
    "album": {"type": "string"},
    "duration": _DURATION,
    "gap": _DURATION,
    "voice": VOICE_SCHEMA,
    "lexicon": {**LEXICON_SCHEMA, "description": "this script's own pronunciations, over the voice's"},
    "background": _BACKGROUND,
    "intro": {**_BUMPER, "description": "played before the first step: a sound, then optional words"},
    "outro": {**_BUMPER, "description": "played after the last step: a sound, then optional words"},
    "cover": {"type": "string", "pattern": r"(?i)\.(png|jpe?g)$",
              "description": "a PNG or JPEG image, relative to the script, embedded as cover art"},
    "chimes": {"enum": ["sections"], "description": "sections: a chime at the start of every section"},
    "loudness": {"anyOf": [{"type": "number"}, {"type": "string"}],
                 "description": "the voice's loudness in LUFS (-16), or a preset: " + ", ".join(PRESETS)},
    "language": {"type": "string", "minLength": 2, "maxLength": 35,
                 "description": "a BCP 47 tag (en, de, es, fr, it, pt, nl, pt-BR...): the words guidetrack "
                                "adds are in this language, and so is the default voice"},
    "cues": CUES_SCHEMA,
    "with": _WITH,
}
TOP_SCHEMA = {
    "type": "object",
    "properties": {
        "guidetrack": {"const": FORMAT_VERSION, "description": "format version"},
        **_VARIANT_PROPERTIES,
        "params": _PARAMS,
        "variants": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": VARIANT_NAME},
            "additionalProperties": {
                "anyOf": [
                    _DURATION,
                    {"type": "object", "properties": _VARIANT_PROPERTIES, "additionalProperties": False},
                ]
            },
            "description": "several renderings of one script, each to its own file: {name: {duration: 5m}}",
        },
        "steps": {"type": "array", "minItems": 1},
    },
    "required": ["guidetrack", "title", "steps"],
    "additionalProperties": False,
}
del TOP_SCHEMA["properties"]["with"]  # `with` belongs to variants and includes only
BLOCK_SCHEMA = {
    "type": "object",
    "properties": {
        "guidetrack": {"const": FORMAT_VERSION, "description": "format version"},
        "block": {**_TEXT, "description": "the block's name; marks the file as a block for `include`"},
        "description": {"type": "string"},
        "chapter": {"type": "boolean",
                    "description": "whether an include of this block is a chapter of its own (default true)"},
        "cues": {**CUES_SCHEMA, "properties": {k: v for k, v in CUES_SCHEMA["properties"].items() if k not in SIDES},
                 "description": "words for the cues of this block's breathing: in, hold, out, rest, numbers"},
        "params": _PARAMS,
        "steps": {"type": "array", "minItems": 1},
    },
    "required": ["guidetrack", "block", "steps"],
    "additionalProperties": False,
}

_PATTERN = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"in": _DURATION, "hold": _DURATION, "out": _DURATION, "rest": _DURATION},
            "required": ["in", "out"],
            "additionalProperties": False,
        },
    ]
}

STEP_SCHEMAS: dict[str, dict[str, Any]] = {
    "say": {"properties": {"say": _TEXT}},
    "pause": {"properties": {"pause": _DURATION}},
    "chime": {"properties": {"chime": {
        "anyOf": [{"enum": list(GENERATED_SOUNDS)}, {"type": ["object", "null"], "additionalProperties": False}],
        "description": "chime: a bell; bowl: a singing bowl"}}},
    "breathe": {
        "properties": {
            "breathe": {
                "type": "object",
                "properties": {
                    "pattern": _PATTERN,
                    "cycles": {"type": "integer", "minimum": 1, "maximum": MAX_CYCLES},
                    "for": _DURATION,
                    "cue": {"enum": list(CUES)},
                    "fade": {"type": "integer", "minimum": 1, "maximum": MAX_CYCLES,
                             "description": "speak the cues for this many cycles, softer each time, then only tones"},
                },
                "additionalProperties": False,
            }
        }
    },
    "hold": {
        "properties": {
            "hold": {
                "anyOf": [
                    _DURATION,
                    {
                        "type": "object",
                        "properties": {
                            "for": _DURATION,
                            "min": _DURATION,
                            "max": _DURATION,
                            "reminders": {"type": "array", "items": _TEXT},
                        },
                        "required": ["for"],
                        "additionalProperties": False,
                    },
                ]
            }
        }
    },
    "sides": {
        "properties": {
            "sides": {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": 8},
            "steps": {"type": "array", "minItems": 1},
        },
        "required": ["steps"],
    },
    "section": {
        "properties": {"section": _TEXT, "steps": {"type": "array", "minItems": 1}},
        "required": ["steps"],
    },
    "include": {
        "properties": {
            "include": {"type": "string", "pattern": r"\.ya?ml$",
                        "description": "a block file, relative to this file"},
            "with": _WITH,
        },
    },
}
for _kind, _schema in STEP_SCHEMAS.items():
    _schema.setdefault("type", "object")
    _schema["required"] = [_kind, *_schema.get("required", [])]
    _schema["additionalProperties"] = False
BARE_STEPS = ("chime",)


# ---------------------------------------------------------------- YAML with positions

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map")
}
KeyPath = tuple[Union[str, int], ...]


class _Tree:
    """Plain data from a YAML node graph, with the position of every value and key."""

    def __init__(self, path: Path, loader: yaml.SafeLoader):
        self.path = path
        self.loader = loader
        self.marks: dict[KeyPath, Location] = {}
        self.key_marks: dict[KeyPath, Location] = {}
        self.nodes = 0

    def location(self, mark: yaml.Mark) -> Location:
        return Location(self.path, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, keys: KeyPath = (), depth: int = 0) -> Any:
        self.nodes += 1
        where = self.location(node.start_mark)
        if self.nodes > MAX_NODES:
            raise InvalidInput(Problem(
                f"the script is too large or expands too far (over {MAX_NODES} values, "
                "often a YAML alias bomb); write it out plainly", where))
        if depth > MAX_DEPTH:
            raise InvalidInput(Problem(f"nesting is deeper than {MAX_DEPTH} levels", where))
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise InvalidInput(Problem(
                f"the tag {tag} is not allowed: scripts hold plain text, numbers, lists "
                "and mappings only", where))
        self.marks[keys] = where
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, keys + ("<key>",), depth + 1)
                if not isinstance(key, str):
                    raise InvalidInput(Problem(f"keys must be text, not {key!r}", self.location(key_node.start_mark)))
                if key in result:
                    raise InvalidInput(Problem(f"the key '{key}' appears twice", self.location(key_node.start_mark)))
                self.key_marks[keys + (key,)] = self.location(key_node.start_mark)
                result[key] = self.build(value_node, keys + (key,), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, keys + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as err:
            raise InvalidInput(Problem(f"unreadable value {node.value!r}: {err}", where)) from None

    def where(self, keys: KeyPath) -> Location:
        while keys not in self.marks and keys:
            keys = keys[:-1]
        return self.marks.get(keys, Location(self.path, 1, 1))


def _read_tree(path: Path) -> tuple[Any, _Tree]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a script") from None
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read it ({err.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidInput(f"{path}: {len(raw)} bytes is too large for a script (limit {MAX_FILE_BYTES})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidInput(Problem(
            f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x}); save it as UTF-8",
            Location(path, line, 1))) from None
    if "\x00" in text:
        raise InvalidInput(Problem("the file holds binary data, not a YAML script", Location(path, 1, 1)))
    if not text.strip():
        raise InvalidInput(Problem("the file is empty: a script needs guidetrack: 1, title and steps",
                                   Location(path, 1, 1)))
    loader = yaml.SafeLoader(text)
    tree = _Tree(path, loader)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput(Problem("the file has no content", Location(path, 1, 1)))
        data = tree.build(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path, 1, 1)
        problem = err.problem or "not valid YAML"
        raise InvalidInput(Problem(f"not valid YAML: {problem}", where)) from None
    except yaml.YAMLError as err:
        raise InvalidInput(Problem(f"not valid YAML: {err}", Location(path, 1, 1))) from None
    except RecursionError:
        raise InvalidInput(Problem(f"nesting is deeper than {MAX_DEPTH} levels", Location(path, 1, 1))) from None
    finally:
        loader.dispose()
    return data, tree


# ---------------------------------------------------------------- checking


def format_path(keys: KeyPath) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class _Context:
    """What one load shares across the script and its includes."""

    root: Path  # includes may not reach outside this folder
    problems: list[Problem] = field(default_factory=list)
    files: dict[Path, tuple[Any, _Tree] | InvalidInput] = field(default_factory=dict)
    sources: dict[Path, None] = field(default_factory=dict)  # every file the sound depends on
    steps: int = 0

    def settle(self) -> list[Problem]:
        """Every problem once (a step shared by variants is reported once); raises InvalidInput
        with the errors if there are any, else returns the warnings."""
        problems = list(dict.fromkeys(self.problems))
        if any(p.severity == "error" for p in problems):
            raise InvalidInput([p for p in problems if p.severity == "error"])
        return problems

    def read(self, shown: Path) -> tuple[Any, _Tree]:
        """Read a file once per load, however often it is included. Raises InvalidInput."""
        real = shown.resolve()
        if real not in self.files:
            try:
                self.files[real] = _read_tree(shown)
            except InvalidInput as err:
                self.files[real] = err
            self.sources[real] = None
        found = self.files[real]
        if isinstance(found, InvalidInput):
            raise found
        return found


class _Checker:
    """Reports problems for one file; blocks it includes get a child checker."""

    def __init__(self, tree: _Tree, context: _Context, chain: tuple[Path, ...], origin: str = "",
                 remap: dict[str, KeyPath] | None = None):
        self.tree = tree
        self.context = context
        self.chain = chain  # resolved files from the script down to this one: finds include cycles
        self.origin = origin  # " (included from a.yaml:3:5)"
        self.remap = remap or {}  # top-level keys a variant overrides -> where the override is written
        self.cues: dict[str, Any] = {}  # the `cues:` of the blocks being read, innermost last

    @property
    def problems(self) -> list[Problem]:
        return self.context.problems

    def _mapped(self, keys: KeyPath) -> KeyPath:
        if keys and keys[0] in self.remap:
            return self.remap[keys[0]] + keys[1:]
        return keys

    def error(self, keys: KeyPath, message: str, *, at_key: bool = False, severity: str = "error") -> None:
        keys = self._mapped(keys)
        where = self.tree.key_marks.get(keys) if at_key else None
        label = format_path(keys)
        text = f"{label}: {message}" if label else message
        self.problems.append(Problem(text + self.origin, where or self.tree.where(keys), severity))

    def warn(self, keys: KeyPath, message: str) -> None:
        self.error(keys, message, severity="warning")

    def child(self, tree: _Tree, real: Path, origin: str) -> "_Checker":
        child = _Checker(tree, self.context, self.chain + (real,), origin)
        child.cues = dict(self.cues)
        return child

    def schema(self, data: Any, schema: dict[str, Any], keys: KeyPath) -> bool:
        """Validate against a JSON Schema; report each error in the author's words."""
        from jsonschema import Draft202012Validator

        found = False
        for err in sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
            found = True
            at = keys + tuple(err.absolute_path)
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                for extra in sorted(set(err.instance) - set(allowed)):
                    self.error(at + (extra,), f"unknown key{suggest(extra, allowed)}; known keys: "
                               + ", ".join(allowed), at_key=True)
            elif err.validator == "required":
                missing = err.message.split("'")[1] if "'" in err.message else err.message
                self.error(at, f"missing the key '{missing}'")
            elif err.validator == "type":
                self.error(at, f"expected {_describe(err.validator_value)}, got {_describe_value(err.instance)}")
            elif err.validator == "enum":
                shown = ", ".join(str(v) for v in err.validator_value)
                self.error(at, f"'{err.instance}' is not one of {shown}{suggest(str(err.instance), [str(v) for v in err.validator_value])}")
            elif err.validator == "const":
                self.error(at, f"must be {err.validator_value!r} (this is format version {FORMAT_VERSION})")
            elif err.validator == "anyOf":
                where, message = _describe_any_of(err)
                self.error(keys + where, message)
            elif err.validator in ("minItems", "minLength"):
                self.error(at, "must not be empty")
            elif err.validator == "maxLength":
                self.error(at, f"is longer than {err.validator_value} characters; split it into several steps")
            else:
                self.error(at, err.message)
        return not found

    def duration(self, value: Any, keys: KeyPath, *, positive: bool = False) -> Samples | None:
        try:
            seconds = parse_duration(value)
        except (ValueError, OverflowError) as err:
            self.error(keys, str(err))
            return None
        if positive and seconds <= 0:
            self.error(keys, "must be longer than 0")
            return None
        return to_samples(seconds)

    def level(self, value: Any, keys: KeyPath) -> float | None:
        try:
            return parse_level(value)
        except ValueError as err:
            self.error(keys, str(err))
            return None

    def plain(self, text: Any, keys: KeyPath) -> bool:
        """Text that goes into tags, transcripts and feeds: no control characters (a NUL cut a
        title tag short, and they make feed.xml unreadable)."""
        found = _CONTROL.search(text) if isinstance(text, str) else None
        if found:
            self.error(keys, f"contains a control character (U+{ord(found.group()):04X}); remove it")
        return found is None

    def text(self, text: str, keys: KeyPath, sides: bool) -> None:
        self.plain(text, keys)
        try:
            parts = split_inline(text)
        except ValueError as err:
            self.error(keys, str(err))
            parts = []
        for part in parts:
            if isinstance(part, str) and not any(ch.isalnum() for ch in part):
                self.error(keys, f"'{part}' has no words to speak (a voice reads letters and numbers); "
                           "write words, or use `pause` for a silence")
        if SIDE_FIELD in text and not sides:
            self.error(keys, "{side} only works inside a `sides` block")
        for name in PARAM_FIELD.findall(text.replace(SIDE_FIELD, "")):
            self.error(keys, f"{{{name}}} is not a parameter here: declare it under `params:` at the top "
                       "of this file, or use {side} inside a `sides` block")


def _describe(types: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "number": "a number",
             "integer": "a whole number", "null": "nothing", "boolean": "true or false"}
    if isinstance(types, list):
        return " or ".join(names.get(t, t) for t in types)
    return names.get(types, str(types))


def _describe_value(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    return repr(value)


def _describe_any_of(err: Any) -> tuple[KeyPath, str]:
    """Where and what, for a value that fits none of the choices: the branch whose type matches
    the value has the useful message (looked for inside nested choices too)."""
    rank = {"additionalProperties": 0, "required": 1}
    for sub in sorted(err.context, key=lambda e: (-len(e.absolute_path), rank.get(e.validator, 2))):
        where = tuple(sub.absolute_path)
        if sub.validator == "anyOf":
            return _describe_any_of(sub)
        if sub.validator == "additionalProperties":
            allowed = sorted(sub.schema.get("properties", {}))
            extra = sorted(set(sub.instance) - set(allowed))
            return where, f"unknown key '{extra[0]}'{suggest(extra[0], allowed)}; known keys: {', '.join(allowed)}"
        if sub.validator == "required":
            return where, sub.message.replace("is a required property", "is required here")
        if sub.validator != "type":
            return where, sub.message
    kinds = [s.get("type") for s in err.validator_value if "type" in s]
    flat = sorted({t for k in kinds for t in (k if isinstance(k, list) else [k])})
    return tuple(err.absolute_path), f"expected {_describe(flat)}, got {_describe_value(err.instance)}"


# ---------------------------------------------------------------- parameters

PARAM_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
MAX_INCLUDE_DEPTH = 16
MAX_STEPS = 20_000  # steps after includes are expanded: stops include bombs


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Put parameter values into a block's steps: `{hold}` alone (quoted or not) takes the
    value itself, so a number stays a number; inside text, `{name}` becomes the value's text.
    Fields that are not parameters (such as {side}) are left for later."""
    if not params:
        return value
    if isinstance(value, str):
        whole = PARAM_FIELD.fullmatch(value.strip())
        if whole and whole.group(1) in params:
            return params[whole.group(1)]
        return PARAM_FIELD.sub(lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), value)
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        # Unquoted, `hold: {hold}` is YAML for a mapping {hold: null}; it means the parameter.
        if len(value) == 1:
            (name, inner), = value.items()
            if inner is None and name in params:
                return params[name]
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def _params(declared: Any, given: Any, given_keys: KeyPath, check: _Checker, owner: str,
            missing_at: KeyPath) -> dict[str, Any] | None:
    """Declared defaults overridden by the given values; None when something is wrong."""
    declared = declared if isinstance(declared, dict) else {}
    given = given if isinstance(given, dict) else {}
    ok = True
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            check.error(given_keys + (name,), f"{owner} has no parameter '{name}'{suggest(name, list(declared))}; "
                        f"its parameters: {known}", at_key=True)
            ok = False
    for name, default in declared.items():
        if default is None and name not in given:
            check.error(missing_at, f"{owner} needs the parameter '{name}': add `with: {{{name}: ...}}`")
            ok = False
    return {**declared, **given} if ok else None


# ---------------------------------------------------------------- building


def _open(path: Path, root: str | Path | None) -> tuple[_Context, Any, _Tree]:
    """Read a script or block; `root` is the library folder includes must stay inside
    (default: the file's folder)."""
    context = _Context(Path(root).resolve() if root is not None else path.resolve().parent)
    real = path.resolve()
    if not real.is_relative_to(context.root):
        raise InvalidInput(Problem(f"this script is a symbolic link to {real}, outside the library folder "
                                   f"{context.root}; copy it into the library instead", Location(path, 1, 1)))
    data, tree = context.read(path)
    return context, data, tree


def _is_block(data: Any) -> bool:
    return isinstance(data, dict) and "block" in data


def load_all(path: str | Path, root: str | Path | None = None) -> list[Script]:
    """Read, check and build one script: one Script per variant (one if it has none).

    `root` is the library folder includes must stay inside (default: the script's folder).
    Raises InvalidInput listing every problem in the script and the blocks it includes.
    """
    path = Path(path)
    context, data, tree = _open(path, root)
    if _is_block(data):
        raise InvalidInput(Problem(
            "this file is a block (it has `block:`), to be used with `- include: ...` from a script; "
            "render the script that includes it", tree.where(("block",))))
    return _scripts(path, context, data, tree)


def load_any(path: str | Path, root: str | Path | None = None) -> tuple[list[Script], tuple[Problem, ...]]:
    """A script or a block, read once: (the script's variants, ()) or, for a block, ([], its
    warnings), the block checked on its own. Raises InvalidInput."""
    path = Path(path)
    context, data, tree = _open(path, root)
    if _is_block(data):
        return [], _block_warnings(path, context, data, tree)
    return _scripts(path, context, data, tree), ()


def _scripts(path: Path, context: _Context, data: Any, tree: _Tree) -> list[Script]:
    if not isinstance(data, dict):
        raise InvalidInput(Problem(
            f"a script is a mapping with guidetrack: 1, title and steps; this file holds {_describe_value(data)}",
            Location(path, 1, 1)))
    check = _Checker(tree, context, (path.resolve(),))
    check.schema(data, TOP_SCHEMA, ())

    variants = data.get("variants")
    entries = list(variants.items()) if isinstance(variants, dict) and variants else [("", {})]
    built: list[tuple[Script | None, int]] = []
    for name, overrides in entries:
        first_problem = len(context.problems)
        if not isinstance(overrides, dict):  # shorthand: `short: 5m`
            overrides, remap = {"duration": overrides}, {"duration": ("variants", name)}
        else:
            remap = {key: ("variants", name, key) for key in overrides}
        merged = {**{k: v for k, v in data.items() if k != "variants"},
                  **{k: v for k, v in overrides.items() if k != "with"}}
        variant_check = _Checker(tree, context, check.chain, remap=remap)
        params = _params(data.get("params"), overrides.get("with"), ("variants", name, "with"), variant_check,
                         "this script", ("variants", name) if name else ())
        script = _build(path, name, merged, params, variant_check) if params is not None else None
        built.append((script, first_problem))

    context.settle()
    sources = tuple(context.sources)
    scripts = []
    for script, first_problem in built:
        assert script is not None
        warnings = tuple(dict.fromkeys(context.problems[first_problem:]))
        scripts.append(replace(script, sources=sources, warnings=warnings))
    return scripts


def load(path: str | Path, variant: str | None = None, root: str | Path | None = None) -> Script:
    """One rendering of a script: the named variant, or the first (the only one without variants)."""
    scripts = load_all(path, root)
    if variant is None:
        return scripts[0]
    names = [s.variant for s in scripts if s.variant]
    for script in scripts:
        if script.variant == variant:
            return script
    if not names:
        raise InvalidInput(f"{path}: this script has no variants, so there is no '{variant}'")
    raise InvalidInput(f"{path}: no variant '{variant}'{suggest(variant, names)}; its variants: {', '.join(names)}")


def variant_title(title: str, variant: str) -> str:
    return f"{title} ({variant})" if variant else title


def _build(path: Path, variant: str, data: dict[str, Any], params: dict[str, Any], check: _Checker) -> Script | None:
    duration = None
    if "duration" in data:
        duration = check.duration(data["duration"], ("duration",), positive=True)
    gap = check.duration(data["gap"], ("gap",)) if "gap" in data else to_samples(0.8)
    language = _language(data.get("language", DEFAULT_LANGUAGE), check)
    english = language is None or is_english(language)
    voice = _voice(data.get("voice", DEFAULT_VOICE if english else ESPEAK_VOICE), path, check, english)
    if voice is not None and language is not None:
        voice = _voice_for_language(voice, data.get("voice"), language, check)
    if voice is not None and "lexicon" in data:
        extra = _lexicon(data["lexicon"], path.parent, ("lexicon",), check)
        voice = replace(voice, lexicon=_merged(voice.lexicon, extra)) if extra is not None else None
    background = _background(data["background"], path, check) if isinstance(data.get("background"), dict) else None
    for key in ("title", "author", "album", "description"):
        check.plain(data.get(key), (key,))
    steps_data = substitute(data.get("steps"), params)
    steps = _steps(steps_data, ("steps",), check, sides=False) if isinstance(steps_data, list) else ()
    if language is not None:
        _check_language(steps, language, "language" in data, check)
    if not isinstance(data.get("title"), str) or not data["title"].strip() or language is None:
        return None
    cues = data.get("cues") if isinstance(data.get("cues"), dict) else {}
    _check_cues(cues, ("cues",), check)
    words = language.words.over(dict(voice.cues) if voice else {}).over(cues)
    title = data["title"].strip()
    if variant and "title" not in check.remap:
        title = variant_title(title, variant)
    return Script(
        path=path,
        title=title,
        steps=steps,
        author=data.get("author", "") or "",
        description=data.get("description", "") or "",
        album=data.get("album", "") or "",
        duration=duration,
        duration_where=check.tree.where(check._mapped(("duration",))) if duration is not None else None,
        voice=voice or VoiceSpec(),
        background=background,
        intro=_bumper(data.get("intro"), "intro", path, check),
        outro=_bumper(data.get("outro"), "outro", path, check),
        gap=gap if gap is not None else 0,
        cover=_cover(data.get("cover"), path, check),
        section_chimes=data.get("chimes") == "sections",
        loudness=_loudness(data["loudness"], check) if "loudness" in data else None,
        language=language.tag,
        words=words,
        variant=variant,
    )


def _language(value: Any, check: _Checker) -> Language | None:
    try:
        language = parse_language(value)
    except ValueError as err:
        check.error(("language",), str(err))
        return None
    check.context.sources[language.file] = None  # its words are part of what the script sounds like
    return language


def _check_cues(cues: Any, keys: KeyPath, check: _Checker) -> None:
    """Words in `cues:` are spoken as they are: words, without pauses, fields or control characters."""
    if not isinstance(cues, dict):
        return
    for key, value in cues.items():
        for index, word in enumerate(value if isinstance(value, list) else [value]):
            at = keys + (key, index) if isinstance(value, list) else keys + (key,)
            if not isinstance(word, str) or not check.plain(word, at):
                continue
            if INLINE_PAUSE.search(word) or PARAM_FIELD.search(word) or SIDE_FIELD in word:
                check.error(at, f"'{word}' is said as it is: no [pauses] or {{fields}} in a cue")
            elif not any(ch.isalnum() for ch in word):
                check.error(at, f"'{word}' has no words to speak; write the word the voice should say")


def _voice_for_language(spec: VoiceSpec, given: Any, language: Language, check: _Checker) -> VoiceSpec:
    if spec.engine in ("piper", "hibari") and not is_english(language):
        check.warn(("voice",), f"this {spec.engine} voice may not speak {language.name}; for espeak-ng's "
                   f"{language.name}, use voice: calm (or {{engine: pyttsx3, voice: {language.espeak}}})")
    return spec if isinstance(given, dict) and "voice" in given else voice_in_language(spec, language)


def voice_in_language(spec: VoiceSpec, language: Language) -> VoiceSpec:
    """A voice for text in `language`: an English espeak-ng voice (the default `calm` profile's,
    say) becomes espeak-ng's voice for the language, with the same settings and without the
    English lexicon. Any other voice is as it is: one chosen on purpose."""
    if is_english(language) or spec.engine != "pyttsx3" or \
            not spec.voice.lower().startswith("en"):
        return spec
    return replace(spec, voice=language.espeak, lexicon=())


def _check_language(steps: tuple[Step, ...], language: Language, declared: bool, check: _Checker) -> None:
    """Warn when the text is plainly in another language than the words guidetrack adds."""
    texts: list[str] = []

    def gather(items: tuple[Step, ...]) -> None:
        for step in items:
            if isinstance(step, Say):
                texts.append(step.text)
            elif isinstance(step, Hold):
                texts.extend(step.reminders)
            elif isinstance(step, (Sides, Section)):
                gather(step.steps)

    gather(steps)
    other = looks_like(texts, language)
    if other is not None:
        check.warn(("language",) if declared else (), f"the text looks like {other.name} ({other.tag}), but the "
                   f"cues and counts guidetrack adds will be in {language.name}; set `language: {other.tag}`")


def _cue_pairs(cues: dict[str, Any]) -> CueWords:
    return tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in sorted(cues.items()))


def _loudness(value: Any, check: _Checker) -> float | str | None:
    try:
        return parse_loudness(value)
    except ValueError as err:
        check.error(("loudness",), str(err))
        return None


MAX_COVER_BYTES = 20_000_000  # a cover larger than this is not cover art
MAX_COVER_PIXELS = 6000 * 6000  # podcast apps ask for 1400-3000 px a side


def named_file(value: str, here: Path, keys: KeyPath, check: _Checker, what: str) -> Path | None:
    """A file a script, block or voice profile names: `value` relative to `here` (the naming
    file's folder), with symlinks followed. It must be a regular file inside the library folder,
    or inside `here` for a voice profile kept elsewhere: a script never reaches out to read
    another file on the machine (`/proc/self/environ` through a symlink, say) into its output."""
    shown = here / value
    real = shown.resolve()
    root = check.context.root
    if not (real.is_relative_to(root) or real.is_relative_to(here.resolve())):
        check.error(keys, f"'{value}' is outside the library folder {root}; the {what} must be inside it "
                    "(symbolic links are followed)")
        return None
    if not real.exists():
        check.error(keys, f"the {what} {shown} does not exist (paths are relative to the file that names it)")
        return None
    if not real.is_file():
        check.error(keys, f"the {what} {shown} is not a regular file")
        return None
    check.context.sources[real] = None
    return real


def _cover(value: Any, script_path: Path, check: _Checker) -> Path | None:
    if not isinstance(value, str):
        return None
    file = named_file(value, script_path.parent, ("cover",), check, "cover image")
    if file is None:
        return None
    problem = cover_problem(file)
    if problem:
        check.error(("cover",), f"{value}: {problem}")
        return None
    return file


def cover_problem(file: Path) -> str:
    """Why an image cannot be cover art, or "": a real PNG or JPEG, decoded whole, of bounded size."""
    from PIL import Image

    size = file.stat().st_size
    if size > MAX_COVER_BYTES:
        return f"the image is {size / 1e6:.0f} MB; a cover must be under {MAX_COVER_BYTES // 1_000_000} MB"
    try:
        with Image.open(file, formats=("PNG", "JPEG")) as image:
            if image.format not in ("PNG", "JPEG"):
                return f"a cover must be a PNG or JPEG image, not {image.format or 'this kind of file'}"
            width, height = image.size
            if width * height > MAX_COVER_PIXELS:
                return (f"the image is {width}x{height} pixels; a cover must have at most "
                        f"{MAX_COVER_PIXELS // 1_000_000} million (3000x3000 is plenty)")
            image.load()
    except Image.DecompressionBombError:
        return (f"the image has far more pixels than a cover: at most {MAX_COVER_PIXELS // 1_000_000} million "
                "(3000x3000 is plenty)")
    except Image.UnidentifiedImageError:
        return "a cover must be a PNG or JPEG image, and this file is neither"
    except (OSError, ValueError, SyntaxError) as err:
        return f"not a readable PNG or JPEG image ({err})"
    return ""


FAST_RATE = 170  # words a minute: faster than this does not sound calm
VOICE_SETTINGS = ("engine", "voice", "rate", "volume", "pitch")  # the fields of a voice besides its lexicon


def _unknown_profile(name: str, profiles: dict[str, Path]) -> str:
    return (f"unknown voice profile '{name}'{suggest(name, list(profiles))}; "
            f"profiles: {', '.join(profiles)} (`guidetrack voices` lists them)")


def _warn_if_fast(rate: Any, keys: KeyPath, check: _Checker) -> None:
    if isinstance(rate, int) and rate > FAST_RATE:
        check.warn(keys, f"{rate} words a minute is fast for relaxation; "
                   f"calm narration is about 120-150 (at most {FAST_RATE})")


def _voice(value: Any, script_path: Path, check: _Checker, english: bool = True) -> VoiceSpec | None:
    """A profile by name, or fields over the default profile (for the script's language)."""
    name = value if isinstance(value, str) else _base_profile(value) if english else ESPEAK_VOICE
    profiles = voice_profiles(voice_folders(script_path, check.context.root))
    if name not in profiles:
        check.error(("voice",), _unknown_profile(name, profiles))
        return None
    spec = _profile(profiles[name], check)
    if spec is None or not isinstance(value, dict):
        return spec
    fields = {k: value[k] for k in VOICE_SETTINGS if k in value}
    spec = _engine_voice(replace(spec, **fields, profile=""), fields, script_path.parent,
                         script_path.parent / "voices", ("voice",), check)
    if spec is None:
        return None
    _warn_if_fast(fields.get("rate"), ("voice",), check)  # the profile's own rate warns in its file
    if "lexicon" in value:
        extra = _lexicon(value["lexicon"], script_path.parent, ("voice", "lexicon"), check)
        spec = replace(spec, lexicon=_merged(spec.lexicon, extra)) if extra is not None else None
    return spec


def _base_profile(fields: Any) -> str:
    """The profile a voice given as fields starts from: the default, unless the fields are
    espeak-ng's (`engine: pyttsx3`, a `pitch`, or an espeak-ng voice id with no engine named),
    when they start from the espeak-ng profile, as they did before hibari was the default."""
    if not isinstance(fields, dict):
        return DEFAULT_VOICE
    engine = fields.get("engine")
    if engine == "pyttsx3" or (engine is None and ("pitch" in fields or (
            "voice" in fields and fields["voice"] != ENGINE_VOICES["hibari"]))):
        return ESPEAK_VOICE
    return DEFAULT_VOICE


def load_profile(name: str) -> VoiceSpec:
    """A voice profile by name, as `voice: NAME` in a script in the current folder finds it."""
    profiles = voice_profiles(voice_folders())
    if name not in profiles:
        raise InvalidInput(_unknown_profile(name, profiles))
    context = _Context(root=profiles[name].parent)
    data, tree = context.read(profiles[name])
    spec = _profile_from(data, profiles[name], _Checker(tree, context, (profiles[name].resolve(),)))
    context.settle()
    return spec


def _profile(path: Path, check: _Checker) -> VoiceSpec | None:
    origin = f" (the voice profile named at {check.tree.where(check._mapped(('voice',)))})"
    try:
        data, tree = check.context.read(path)
    except InvalidInput as err:
        check.problems.extend(Problem(p.message + origin, p.where, p.severity) for p in err.problems)
        return None
    return _profile_from(data, path, check.child(tree, path.resolve(), origin))


def _profile_from(data: Any, path: Path, inner: _Checker) -> VoiceSpec | None:
    if not inner.schema(data, PROFILE_SCHEMA, ()):
        return None
    lexicon = _lexicon(data["lexicon"], path.parent, ("lexicon",), inner) if "lexicon" in data else ()
    if lexicon is None:
        return None
    fields = {k: data[k] for k in VOICE_SETTINGS if k in data}
    _check_cues(data.get("cues"), ("cues",), inner)
    spec = _engine_voice(VoiceSpec(**fields, lexicon=lexicon, profile=path.stem, cues=_cue_pairs(data.get("cues", {}))),
                         fields, path.parent, path.parent, (), inner)
    if spec is not None:
        _warn_if_fast(spec.rate, ("rate",), inner)
    return spec


def _engine_voice(spec: VoiceSpec, given: dict[str, Any], here: Path, voices: Path, keys: KeyPath,
                  check: _Checker) -> VoiceSpec | None:
    """What the engine needs settled: its own default voice when only the engine is named; for
    Piper, no pitch, and the model a voice names, found here so a missing one is reported at its
    line: a path to NAME.onnx (relative to `here`, the folder of the file that gives it),
    NAME.onnx in `voices` or another voices folder, or a voice that comes in a package."""
    if "engine" in given and "voice" not in given:
        spec = replace(spec, voice=ENGINE_VOICES[spec.engine])
    if spec.engine == "hibari":
        return _hibari_voice(spec, given, keys, check)
    if spec.engine != "piper":
        return spec
    from .engines.piper_voices import known, packaged_name

    if "pitch" in given:
        check.warn(keys + ("pitch",), "Piper voices have no pitch setting; it is ignored")
    spec = replace(spec, pitch=None)
    where = keys + ("voice",) if "voice" in given else keys
    if spec.voice.endswith(".onnx"):
        model = named_file(spec.voice, here, where, check, "Piper model")
        if model is None:
            return None
    else:
        models = [f / f"{spec.voice}.onnx" for f in [voices, *voice_folders(None, check.context.root)]]
        model = next((m for m in models if m.is_file()), None)
        if model is None:
            if packaged_name(spec.voice):
                return spec
            check.error(where, f"no Piper voice '{spec.voice}': use a packaged one "
                        f"({known()}) or put {spec.voice}.onnx and "
                        f"{spec.voice}.onnx.json in a voices/ folder")
            return None
    model = model.resolve()
    if not model.is_file() or not Path(f"{model}.json").is_file():
        check.error(where, f"the Piper model {model} and its {model.name}.json must both exist "
                    "(a path is relative to the file that gives it)")
        return None
    check.context.sources[model] = None
    return replace(spec, voice=str(model))


def _hibari_voice(spec: VoiceSpec, given: dict[str, Any], keys: KeyPath, check: _Checker) -> VoiceSpec | None:
    """hibari speaks with a voice inside its installed package, never one it would download."""
    from .engines.hibari_engine import bundled_voices

    if "pitch" in given:
        check.warn(keys + ("pitch",), "hibari voices have no pitch setting; it is ignored")
    bundled = bundled_voices()
    if spec.voice not in bundled:
        where = keys + ("voice",) if "voice" in given else keys
        check.error(where, f"no hibari voice '{spec.voice}' in the installed package"
                    f"{suggest(spec.voice, bundled)}; bundled: {', '.join(bundled) or 'none (is hibari-tts installed?)'}. "
                    "guidetrack never downloads a voice")
        return None
    return replace(spec, pitch=None)


def _lexicon(value: Any, folder: Path, keys: KeyPath, check: _Checker) -> Lexicon | None:
    """A lexicon given inline, or a file of `word: how to say it` lines relative to `folder`."""
    if isinstance(value, str):
        file = named_file(value, folder, keys, check, "lexicon")
        if file is None:
            return None
        try:
            value, tree = check.context.read(file)
        except InvalidInput as err:
            check.problems.extend(err.problems)
            return None
        check = check.child(tree, file.resolve(), check.origin)
        keys = ()
    if not check.schema(value, LEXICON_SCHEMA["anyOf"][1], keys):
        return None

    def said(how: str | dict[str, str]) -> Said:
        return how.strip() if isinstance(how, str) else tuple(sorted((e, h.strip()) for e, h in how.items()))

    return tuple((str(word).strip(), said(how)) for word, how in value.items() if str(word).strip())


def _merged(base: Lexicon, extra: Lexicon) -> Lexicon:
    """`extra` over `base`, matching words in any case."""
    merged = {word.lower(): (word, said) for word, said in base}
    merged.update({word.lower(): (word, said) for word, said in extra})
    return tuple(merged.values())


def _background(value: dict[str, Any], script_path: Path, check: _Checker) -> Background | None:
    sound = value.get("sound")
    if not isinstance(sound, str):
        return None
    keys = ("background", "sound")
    sound = _sound(sound, GENERATED_BACKGROUNDS, keys, script_path, check)
    if sound is None:
        return None
    level = check.level(value["level"], ("background", "level")) if "level" in value else None
    fade_in = check.duration(value["fade_in"], ("background", "fade_in")) if "fade_in" in value else 0
    fade_out = check.duration(value["fade_out"], ("background", "fade_out")) if "fade_out" in value else 0
    duck = _duck(value.get("duck", True), check)
    if ("level" in value and level is None) or fade_in is None or fade_out is None or duck is False:
        return None
    return Background(sound=sound, level_db=level, fade_in=fade_in, fade_out=fade_out, duck=duck,
                      where=check.tree.where(check._mapped(keys)))


def _sound(sound: str, generated: tuple[str, ...], keys: KeyPath, script_path: Path, check: _Checker) -> str | None:
    """A generated sound's name as it is, or an audio file's resolved path; None if neither."""
    if sound in generated:
        return sound
    if not sound.lower().endswith(AUDIO_SUFFIXES):
        check.error(keys, f"'{sound}' is neither a generated sound ({', '.join(generated)})"
                    f"{suggest(sound, generated)} nor an audio file ({', '.join(AUDIO_SUFFIXES)})")
        return None
    file = named_file(sound, script_path.parent, keys, check, "audio file")
    return str(file) if file is not None else None


def _duck(value: Any, check: _Checker) -> Duck | None | bool:
    """`true` (the default dip), `false` or 0 (none), a depth (`8` or `8 dB`; a dip either way,
    so -8 means the same), or {depth, attack, release}. False when the value is wrong."""
    if value is True:
        return Duck()
    if value is False:
        return None
    keys = ("background", "duck")
    fields = value if isinstance(value, dict) else {"depth": value}
    depth = check.level(fields["depth"], keys + ("depth",) if isinstance(value, dict) else keys) \
        if "depth" in fields else Duck().depth_db
    attack = check.duration(fields["attack"], keys + ("attack",)) if "attack" in fields else Duck().attack
    release = check.duration(fields["release"], keys + ("release",)) if "release" in fields else Duck().release
    if depth is None or attack is None or release is None:
        return False
    if abs(depth) > 40:
        check.error(keys, f"a dip of {abs(depth):g} dB silences the background; use at most 40 dB, or false")
        return False
    return Duck(abs(depth), attack, release) if depth else None


def _bumper(value: Any, name: str, script_path: Path, check: _Checker) -> Bumper | None:
    """An intro or outro: `intro: theme.mp3`, `intro: bowl`, or {sound, level, say, title}."""
    if isinstance(value, str):
        value = {"sound": value}
    if not isinstance(value, dict):
        return None
    sound = value.get("sound", "")
    if isinstance(sound, str) and sound:
        sound = _sound(sound, GENERATED_SOUNDS, (name, "sound"), script_path, check)
        if sound is None:
            return None
    level = check.level(value["level"], (name, "level")) if "level" in value else Bumper("").level_db
    if level is None or not isinstance(sound, str):
        return None
    text = value.get("say", "")
    if isinstance(text, str) and text:
        check.text(text, (name, "say"), sides=False)
    return Bumper(title=value.get("title") or name.capitalize(), sound=sound, level_db=level,
                  text=text.strip() if isinstance(text, str) else "", where=check.tree.where(check._mapped((name,))))


def _steps(items: list[Any], keys: KeyPath, check: _Checker, sides: bool) -> tuple[Step, ...]:
    steps: list[Step] = []
    for index, item in enumerate(items):
        check.context.steps += 1
        if check.context.steps > MAX_STEPS:
            check.error(keys + (index,), f"the script has more than {MAX_STEPS} steps once its includes are "
                        "expanded; an include is probably repeated far more often than meant")
            break
        if isinstance(item, dict) and "include" in item:
            steps.extend(_include(item, keys + (index,), check, sides))
            continue
        step = _step(item, keys + (index,), check, sides)
        if step is not None:
            steps.append(step)
    return tuple(steps)


def _include(item: dict[str, Any], keys: KeyPath, check: _Checker, sides: bool) -> tuple[Step, ...]:
    if not check.schema(item, STEP_SCHEMAS["include"], keys):
        return ()
    name = item["include"]
    at = keys + ("include",)
    shown = Path(os.path.normpath(check.tree.path.parent / name))
    real = shown.resolve()
    root = check.context.root
    if not real.is_relative_to(root):
        check.error(at, f"'{name}' is outside the library folder {root}; includes must stay inside it")
        return ()
    if real in check.chain:
        cycle = " -> ".join(_shown(p, root) for p in (*check.chain[check.chain.index(real):], real))
        check.error(at, f"include cycle: {cycle}; a block cannot include itself, directly or through others")
        return ()
    if len(check.chain) > MAX_INCLUDE_DEPTH:
        check.error(at, f"includes are nested more than {MAX_INCLUDE_DEPTH} deep")
        return ()
    if not real.is_file():
        check.error(at, f"no block file '{name}' (looked for {shown}; paths are relative to this file)")
        return ()
    origin = f" (included from {check.tree.where(at)})" + check.origin
    try:
        data, tree = check.context.read(shown)
    except InvalidInput as err:
        check.problems.extend(Problem(p.message + origin, p.where, p.severity) for p in err.problems)
        return ()
    if not _is_block(data):
        check.error(at, f"'{name}' is not a block: a block file has `guidetrack: 1`, `block: NAME` and `steps`")
        return ()
    child = check.child(tree, real, origin)
    if not child.schema(data, BLOCK_SCHEMA, ()):
        return ()
    params = _params(data.get("params"), item.get("with"), keys + ("with",), check, f"the block '{name}'", at)
    if params is None:
        return ()
    _check_cues(data.get("cues"), ("cues",), child)
    child.cues.update(data.get("cues", {}))
    steps = _steps(substitute(data["steps"], params), ("steps",), child, sides)
    if data.get("chapter", True) is False or not steps:
        return steps
    return (Section(data["block"].strip(), steps, check.tree.where(at), pose=True),)


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _block_warnings(path: Path, context: _Context, data: Any, tree: _Tree) -> tuple[Problem, ...]:
    """Check a block on its own, with its parameters' defaults. Parameters without a default
    are checked where the block is included."""
    check = _Checker(tree, context, (path.resolve(),))
    if check.schema(data, BLOCK_SCHEMA, ()):
        declared = data.get("params") or {}
        if all(v is not None for v in declared.values()):
            _steps(substitute(data["steps"], declared), ("steps",), check, sides=True)
    return tuple(context.settle())


ALL_STEP_KINDS = tuple(STEP_SCHEMAS)


def _step(item: Any, keys: KeyPath, check: _Checker, sides: bool) -> Step | None:
    where = check.tree.where(keys)
    if isinstance(item, str):
        if item in BARE_STEPS:
            return Chime(where)
        hint = suggest(item, ALL_STEP_KINDS)
        if item in STEP_SCHEMAS:
            check.error(keys, f"'{item}' needs a value, as in `- {item}: ...`")
        else:
            check.error(keys, f"unknown step '{item}'{hint}; steps are: {', '.join(ALL_STEP_KINDS)}")
        return None
    if not isinstance(item, dict):
        check.error(keys, f"a step is a mapping such as `- say: ...`, got {_describe_value(item)}")
        return None
    kinds = [k for k in item if k in STEP_SCHEMAS and k != "steps"]
    if len(kinds) != 1:
        if not kinds:
            first = next(iter(item), "")
            check.error(keys + (first,), f"unknown step '{first}'{suggest(str(first), ALL_STEP_KINDS)}; "
                        f"steps are: {', '.join(ALL_STEP_KINDS)}", at_key=True)
        else:
            check.error(keys, f"one step has one kind, this one has {' and '.join(kinds)}: "
                        "put each in its own list item")
        return None
    kind = kinds[0]
    if not check.schema(item, STEP_SCHEMAS[kind], keys):
        return None
    value = item[kind]
    at = keys + (kind,)
    if kind == "say":
        check.text(value, at, sides)
        return Say(value.strip(), where)
    if kind == "pause":
        length = check.duration(value, at)
        return None if length is None else Pause(length, where)
    if kind == "chime":
        return Chime(where, value if isinstance(value, str) else "chime")
    if kind == "breathe":
        return _breathe(value, at, check, where)
    if kind == "hold":
        return _hold(value, at, check, sides, where)
    if kind == "sides":
        names = item.get("sides")
        if not isinstance(names, list):
            check.error(at, "list the sides, as in `sides: [right, left]`")
            return None
        for index, name in enumerate(names):
            check.plain(name, at + (index,))
        inner = _steps(item["steps"], keys + ("steps",), check, sides=True)
        return Sides(tuple(str(n) for n in names), inner, where)
    check.plain(value, at)
    inner = _steps(item["steps"], keys + ("steps",), check, sides)
    return Section(value.strip(), inner, where)


def _breathe(value: dict[str, Any], at: KeyPath, check: _Checker, where: Location) -> Breathe | None:
    pattern_value = value.get("pattern", "relax")
    pattern: BreathPattern | None = None
    if isinstance(pattern_value, str):
        pattern = BREATH_PRESETS.get(pattern_value)
        if pattern is None:
            check.error(at + ("pattern",), f"unknown breath preset '{pattern_value}'"
                        f"{suggest(pattern_value, list(BREATH_PRESETS))}; presets: {', '.join(BREATH_PRESETS)}")
    elif isinstance(pattern_value, dict):
        lengths = [check.duration(pattern_value.get(k, 0), at + ("pattern", k)) for k in ("in", "hold", "out", "rest")]
        if None not in lengths:
            inhale, hold, exhale, rest = lengths
            if inhale == 0 or exhale == 0:
                check.error(at + ("pattern",), "`in` and `out` must be longer than 0")
            else:
                pattern = BreathPattern("custom", inhale, hold, exhale, rest)
    has_cycles, has_for = "cycles" in value, "for" in value
    if has_cycles == has_for:
        check.error(at, "give either `cycles: N` or `for: 2m`, not " + ("both" if has_cycles else "neither"))
        return None
    if pattern is None:
        return None
    if has_cycles:
        cycles = value["cycles"]
    else:
        span = check.duration(value["for"], at + ("for",), positive=True)
        if span is None:
            return None
        cycles = span // pattern.cycle
        if cycles < 1:
            check.error(at + ("for",), f"is shorter than one breath cycle ({pattern.cycle / 44100:.1f} s)")
            return None
        if cycles > MAX_CYCLES:
            check.error(at + ("for",), f"makes {cycles} cycles; at most {MAX_CYCLES}")
            return None
    cue = value.get("cue", "words")
    fade = value.get("fade", 0)
    if fade and cue not in ("words", "count"):
        check.error(at + ("fade",), f"fades out spoken cues, so it needs cue: words or count, not {cue}")
        return None
    return Breathe(pattern, int(cycles), cue, where, fade, _cue_pairs(check.cues))


def _hold(value: Any, at: KeyPath, check: _Checker, sides: bool, where: Location) -> Hold | None:
    if not isinstance(value, dict):
        length = check.duration(value, at, positive=True)
        return None if length is None else Hold(length, length, length, (), where)
    length = check.duration(value["for"], at + ("for",), positive=True)
    low = check.duration(value["min"], at + ("min",), positive=True) if "min" in value else length
    high = check.duration(value["max"], at + ("max",), positive=True) if "max" in value else length
    reminders = tuple(value.get("reminders", ()))
    for index, text in enumerate(reminders):
        check.text(text, at + ("reminders", index), sides)
        if INLINE_PAUSE.search(text):
            check.error(at + ("reminders", index), "inline pauses are not allowed in reminders")
    if length is None or low is None or high is None:
        return None
    if not low <= length <= high:
        check.error(at, "needs min <= for <= max")
        return None
    return Hold(length, low, high, tuple(r.strip() for r in reminders), where)


# ---------------------------------------------------------------- the schema for editors

STEP_HELP = {
    "say": "speak text; [2s] inside it is a pause",
    "pause": "silence",
    "chime": "a soft bell; `chime: bowl` for a singing bowl",
    "breathe": "paced breathing with cues on the breath grid",
    "hold": "a held pose, optionally elastic (min/max) with spoken reminders",
    "sides": "repeat the steps once per side; {side} in text is the side's name",
    "section": "a named part of the track: a chapter",
    "include": "insert the steps of a block file, with parameters",
}


def json_schema() -> dict[str, Any]:
    """The whole format as one JSON Schema (draft 7, what the YAML language server reads).

    It is built from the same schemas the loader checks with, so the two cannot disagree.
    """
    import copy

    steps_ref = {"$ref": "#/definitions/steps"}
    parameter = {"$ref": "#/definitions/parameter"}

    def allow_parameters(node: Any) -> Any:
        """Wherever a number goes, a parameter may stand: `"{cycles}"` or unquoted `{cycles}`."""
        if isinstance(node, list):
            return [allow_parameters(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = {k: v if k == "propertyNames" else allow_parameters(v) for k, v in node.items()}
        kinds = node.get("type")
        if set(kinds if isinstance(kinds, list) else [kinds]) & {"integer", "number"}:
            return {"anyOf": [node, parameter]}
        return node

    def with_steps(schema: dict[str, Any]) -> dict[str, Any]:
        schema = allow_parameters(copy.deepcopy(schema))
        if "steps" in schema.get("properties", {}):
            schema["properties"]["steps"] = steps_ref
        return schema

    steps = [{"const": kind, "description": STEP_HELP[kind]} for kind in BARE_STEPS]
    steps += [{**with_steps(schema), "description": STEP_HELP[kind]} for kind, schema in STEP_SCHEMAS.items()]
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://guidetrack.invalid/schema/format-1.json",
        "title": f"guidetrack sequence script or block (format {FORMAT_VERSION})",
        "definitions": {
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/step"}},
            "step": {"anyOf": steps},
            "parameter": {
                "description": "a parameter of this file, declared under `params`",
                "anyOf": [
                    {"type": "string", "pattern": PARAM_FIELD.pattern.join("^$")},
                    {"type": "object", "minProperties": 1, "maxProperties": 1,
                     "additionalProperties": {"type": "null"}},
                ],
            },
        },
        "if": {"type": "object", "required": ["block"]},
        "then": with_steps(BLOCK_SCHEMA),
        "else": with_steps(TOP_SCHEMA),
    }
