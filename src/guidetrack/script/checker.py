"""The checker: every problem in a script and its includes, in the author's words, at file:line."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, Problem, Severity
from ..units import Samples, parse_duration, parse_level, to_samples
from .model import FORMAT_VERSION, INLINE_PAUSE, PARAM_FIELD, SIDE_FIELD, split_inline
from .yamltree import KeyPath, Tree, read_tree

LOOSE_FIELD = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*\}")  # {Side}, { side }: fields written loosely
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tabs and line breaks are fine


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
class Context:
    """What one load shares across the script and its includes."""

    root: Path  # includes may not reach outside this folder
    problems: list[Problem] = field(default_factory=list)
    files: dict[Path, tuple[Any, Tree] | InvalidInput] = field(default_factory=dict)
    sources: dict[Path, None] = field(default_factory=dict)  # every file the sound depends on
    steps: int = 0

    def settle(self) -> list[Problem]:
        """Every problem once (a step shared by variants is reported once); raises InvalidInput
        with the errors if there are any, else returns the warnings."""
        problems = list(dict.fromkeys(self.problems))
        if any(p.severity is Severity.ERROR for p in problems):
            raise InvalidInput([p for p in problems if p.severity is Severity.ERROR])
        return problems

    def read(self, shown: Path) -> tuple[Any, Tree]:
        """Read a file once per load, however often it is included. Raises InvalidInput."""
        real = shown.resolve()
        if real not in self.files:
            try:
                self.files[real] = read_tree(shown)
            except InvalidInput as err:
                self.files[real] = err
            self.sources[real] = None
        found = self.files[real]
        if isinstance(found, InvalidInput):
            raise found
        return found


class Checker:
    """Reports problems for one file; blocks it includes get a child checker."""

    def __init__(self, tree: Tree, context: Context, chain: tuple[Path, ...], origin: str = "",
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

    def mapped(self, keys: KeyPath) -> KeyPath:
        if keys and keys[0] in self.remap:
            return self.remap[keys[0]] + keys[1:]
        return keys

    def error(self, keys: KeyPath, message: str, *, at_key: bool = False, severity: Severity = Severity.ERROR) -> None:
        keys = self.mapped(keys)
        where = self.tree.key_marks.get(keys) if at_key else None
        label = format_path(keys)
        text = f"{label}: {message}" if label else message
        self.problems.append(Problem(text + self.origin, where or self.tree.where(keys), severity))

    def warn(self, keys: KeyPath, message: str) -> None:
        self.error(keys, message, severity=Severity.WARNING)

    def read(self, path: Path, origin: str = "") -> tuple[Any, Tree] | None:
        """Another file this one names (a block, profile or lexicon), read once per load; None
        when it cannot be read, its problems reported with `origin` (where it was named)."""
        try:
            return self.context.read(path)
        except InvalidInput as err:
            self.problems.extend(Problem(p.message + origin, p.where, p.severity) for p in err.problems)
            return None

    def child(self, tree: Tree, real: Path, origin: str) -> Checker:
        child = Checker(tree, self.context, self.chain + (real,), origin)
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
                self.error(at, f"expected {describe(err.validator_value)}, got {describe_value(err.instance)}")
            elif err.validator == "enum":
                shown = ", ".join(str(v) for v in err.validator_value)
                self.error(at, f"'{err.instance}' is not one of {shown}{suggest(str(err.instance), [str(v) for v in err.validator_value])}")
            elif err.validator == "const":
                self.error(at, f"must be {err.validator_value!r} (this is format version {FORMAT_VERSION})")
            elif err.validator == "anyOf":
                where, message = describe_any_of(err)
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
        found = CONTROL.search(text) if isinstance(text, str) else None
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
        for odd in LOOSE_FIELD.finditer(text):
            name = odd.group(1).strip().lower().replace(" ", "_")
            if PARAM_FIELD.fullmatch(odd.group(0)):
                continue
            self.error(keys, f"'{odd.group(0)}' is not a field: fields are written in lower case without spaces, "
                       f"as {{{name}}}" + ("" if name == "side" else " (a parameter of this file)"))
        if SIDE_FIELD in text and not sides:
            self.error(keys, "{side} only works inside a `sides` block")
        for name in PARAM_FIELD.findall(text.replace(SIDE_FIELD, "")):
            self.error(keys, f"{{{name}}} is not a parameter here: declare it under `params:` at the top "
                       "of this file, or use {side} inside a `sides` block")


def describe(types: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "number": "a number",
             "integer": "a whole number", "null": "nothing", "boolean": "true or false"}
    if isinstance(types, list):
        return " or ".join(names.get(t, str(t)) for t in types)
    return names.get(types, str(types))


def describe_value(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing"
    return repr(value)


def describe_any_of(err: Any) -> tuple[KeyPath, str]:
    """Where and what, for a value that fits none of the choices: the branch whose type matches
    the value has the useful message (looked for inside nested choices too)."""
    rank = {"additionalProperties": 0, "required": 1}
    for sub in sorted(err.context, key=lambda e: (-len(e.absolute_path), rank.get(e.validator, 2))):
        where = tuple(sub.absolute_path)
        if sub.validator == "anyOf":
            return describe_any_of(sub)
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
    return tuple(err.absolute_path), f"expected {describe(flat)}, got {describe_value(err.instance)}"



def named_file(value: str, here: Path, keys: KeyPath, check: Checker, what: str) -> Path | None:
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


def check_cues(cues: Any, keys: KeyPath, check: Checker) -> None:
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
