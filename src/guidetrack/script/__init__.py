"""A YAML sequence script read into frozen dataclasses.

Every problem in a script and the blocks it includes is collected in one pass and reported
with file, line, column and key path. Nothing here does I/O beyond reading the script, its
includes, and the files it names (to check them).

    yamltree   YAML -> plain data, with the position of every value and key
    schema     the format as JSON Schemas (checked against; given to editors)
    checker    problems in the author's words, at file:line:column
    model      the dataclasses: Script, its steps and settings
    params     a block's parameters, filled by `with`
    steps      each step checked and built, includes expanded
    voices     voice profiles, lexicons, engine voices
    sounds     background, intro, outro, cover
    load       a file -> one Script per variant
"""

from ..voice import Lexicon, Said, VoiceSpec, said_by
from .library import LIBRARY_FILE, LibrarySettings, read_library
from .load import FileKind, Loaded, load, load_all, load_any
from .model import (
    BREATH_PRESETS,
    CUES,
    FORMAT_VERSION,
    GENERATED_BACKGROUNDS,
    GENERATED_SOUNDS,
    SIDE_FIELD,
    Background,
    Breathe,
    BreathPattern,
    Bumper,
    Chime,
    Cue,
    Duck,
    Hold,
    Pause,
    Say,
    Script,
    Section,
    Sides,
    Step,
    slugify,
    split_inline,
    variant_title,
)
from .schema import json_schema
from .sounds import MAX_COVER_BYTES, cover_problem
from .voices import (
    BUILTIN_VOICES,
    DEFAULT_VOICE,
    ESPEAK_VOICE,
    load_profile,
    voice_folders,
    voice_in_language,
    voice_profiles,
)

__all__ = [
    "FileKind", "Loaded", "LIBRARY_FILE", "LibrarySettings", "read_library", "BREATH_PRESETS", "BUILTIN_VOICES", "CUES", "DEFAULT_VOICE", "ESPEAK_VOICE", "FORMAT_VERSION",
    "GENERATED_BACKGROUNDS", "GENERATED_SOUNDS", "MAX_COVER_BYTES", "SIDE_FIELD", "Background", "BreathPattern",
    "Breathe", "Bumper", "Chime", "Cue", "Duck", "Hold", "Lexicon", "Pause", "Said", "Say", "Script", "Section",
    "Sides", "Step", "VoiceSpec", "cover_problem", "json_schema", "load", "load_all", "load_any", "load_profile",
    "said_by", "slugify", "split_inline", "variant_title", "voice_folders", "voice_in_language", "voice_profiles",
]
