"""The format as JSON Schemas: what the checker validates with, and what editors are given."""

from __future__ import annotations

import copy
from typing import Any

from ..engines import ENGINES
from ..languages import PHASES, SIDES
from ..loudness import PRESETS
from .model import CUES, FORMAT_VERSION, GENERATED_SOUNDS, MAX_CYCLES, MAX_TEXT, PARAM_FIELD

# ---------------------------------------------------------------- schema

_DURATION = {"type": ["number", "string"], "description": "seconds, or a string like 4s, 1m30s, 1h"}
_LEVEL = {"type": ["number", "string"], "description": "decibels: -18 or '-18 dB'"}
_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}

_SAID = {"type": "string", "minLength": 1, "maxLength": 200}
_CUE_WORD = {"type": "string", "minLength": 1, "maxLength": 60}
CUES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {**{key: _CUE_WORD for key in PHASES + SIDES},
                   "numbers": {"type": "array", "items": _CUE_WORD, "minItems": 1, "maxItems": 60,
                               "description": "counting words from two up"}},
    "additionalProperties": False,
    "description": "words guidetrack adds, replacing the language's: in, hold, out, rest (breath cues), "
                   "right, left (sides), numbers (counting from two)",
}
LEXICON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"\.ya?ml$", "description": "a lexicon file, relative to this file"},
        {"type": "object", "additionalProperties": {"anyOf": [
            {**_SAID, "description": "a respelling, for every engine"},
            {"type": "object", "properties": {engine: _SAID for engine in ENGINES}, "minProperties": 1,
             "additionalProperties": False, "description": "per engine; engines not named say the word as written"},
        ]}},
    ],
    "description": "word or phrase: how to say it: a respelling, or phonemes in [[...]] ("
                   + ", ".join(f"{info.phonemes} for {name}" for name, info in ENGINES.items()) + ")",
}
_VOICE_FIELDS = {
    "engine": {"type": "string", "enum": list(ENGINES)},
    "voice": {"type": "string", "minLength": 1},
    "rate": {"type": "integer", "minimum": 60, "maximum": 400, "description": "words a minute"},
    "volume": {"type": "number", "minimum": 0.05, "maximum": 1},
    "pitch": {"type": "integer", "minimum": 0, "maximum": 100, "description": "espeak-ng: 50 is its usual"},
    "lexicon": LEXICON_SCHEMA,
}
VOICE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "a voice profile: a file voices/NAME.yaml, or one that comes with guidetrack"},
        {"type": "object", "properties": _VOICE_FIELDS, "additionalProperties": False},
    ]
}
PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"guidetrack-voice": {"const": 1, "description": "voice profile format version"},
                   "description": {"type": "string"},
                   "extends": {"type": "string", "minLength": 1,
                               "description": "another profile (calm, gentle, or voices/NAME.yaml): this one "
                                              "starts from its settings, lexicon and cues"},
                   **_VOICE_FIELDS,
                   "lexicon": {"anyOf": [LEXICON_SCHEMA, {"type": "null"}],
                               "description": "pronunciations, over those of the profile it extends "
                                              "(null: none at all)"},
                   "cues": CUES_SCHEMA},
    "required": ["guidetrack-voice"],  # and engine and voice, unless it extends another
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
_BACKGROUND_FIELDS = {
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
_BACKGROUND = {
    "anyOf": [{"type": "string", "minLength": 1, "description": "the sound alone: `background: ocean`"},
              _BACKGROUND_FIELDS],
    "description": "a bed under the voice: brown-noise, pink-noise, white-noise, ocean, drone, or an audio file",
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
TOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "guidetrack": {"const": FORMAT_VERSION, "description": "format version"},
        **_VARIANT_PROPERTIES,
        "params": _PARAMS,
        "props": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}, "maxItems": 30,
                  "description": "what to have at hand (blanket, bolster, a wall): shown with the class"},
        "level": {"type": "string", "minLength": 1, "maxLength": 60,
                  "description": "who the class suits (beginners, all levels): shown with the class"},
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
BLOCK_SCHEMA: dict[str, Any] = {
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

_BREATH_BOUND = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_CYCLES, "description": "seconds"},
                           {"type": ["number", "string"]}]}

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
                    "min": {**_BREATH_BOUND, "description": "the fewest cycles fitting may leave: '3 cycles' or a time"},
                    "max": {**_BREATH_BOUND, "description": "the most cycles fitting may make: '12 cycles' or a time"},
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
