"""Loading: a script file -> one Script per variant, every problem reported at once."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, Location, Problem
from ..languages import DEFAULT as DEFAULT_LANGUAGE
from ..languages import Language, is_english, looks_like
from ..languages import parse as parse_language
from ..loudness import parse_loudness
from ..units import to_samples
from ..voice import VoiceSpec
from .checker import Checker, Context, KeyPath, check_cues, describe_value, suggest
from .library import is_library, library_settings
from .model import Hold, Say, Script, Section, Sides, Step, variant_title
from .params import merge_params, substitute
from .schema import TOP_SCHEMA
from .sounds import background_for, bumper_for, cover_for
from .steps import block_warnings, is_block, read_steps
from .voices import (
    DEFAULT_VOICE,
    ESPEAK_VOICE,
    lexicon_for,
    merged_lexicon,
    profile_warnings,
    voice_for,
    voice_for_language,
)
from .yamltree import Tree


def _open(path: Path, root: str | Path | None) -> tuple[Context, Any, Tree]:
    """Read a script or block; `root` is the library folder includes must stay inside
    (default: the file's folder)."""
    context = Context(Path(root).resolve() if root is not None else path.resolve().parent)
    real = path.resolve()
    if not real.is_relative_to(context.root):
        if Path(os.path.abspath(path)).is_relative_to(context.root):  # in the folder by its name only
            message = (f"this script is a symbolic link to {real}, outside the library folder {context.root}; "
                       "copy it into the library instead")
        else:  # --library names a folder the script is not in
            message = (f"this script is not in the library folder {context.root}: name the folder it belongs "
                       "to, or leave --library out")
        raise InvalidInput(Problem(message, Location(path, 1, 1)))
    data, tree = context.read(path)
    return context, data, tree



def load_all(path: str | Path, root: str | Path | None = None) -> list[Script]:
    """Read, check and build one script: one Script per variant (one if it has none).

    `root` is the library folder includes must stay inside (default: the script's folder).
    Raises InvalidInput listing every problem in the script and the blocks it includes.
    """
    path = Path(path)
    context, data, tree = _open(path, root)
    if is_block(data):
        raise InvalidInput(Problem(
            "this file is a block (it has `block:`), to be used with `- include: ...` from a script; "
            "render the script that includes it", tree.where(("block",))))
    return _scripts(path, context, data, tree)


class FileKind(StrEnum):
    SCRIPT = "script"
    BLOCK = "block"  # has `block:`; rendered as part of the scripts that include it
    PROFILE = "profile"  # a voice profile (`guidetrack-voice: 1`)
    LIBRARY = "library"  # a library's settings (library.yaml: `guidetrack-library: 1`)


@dataclass(frozen=True)
class Loaded:
    """What a YAML file of the library is: a script's variants, or a block or voice profile
    checked on its own (with its warnings)."""

    kind: FileKind
    scripts: tuple[Script, ...] = ()
    warnings: tuple[Problem, ...] = ()


def load_any(path: str | Path, root: str | Path | None = None) -> Loaded:
    """A script, a block or a voice profile, read once and checked. Raises InvalidInput."""
    path = Path(path)
    context, data, tree = _open(path, root)
    if is_block(data):
        return Loaded(FileKind.BLOCK, warnings=block_warnings(path, context, data, tree))
    if is_library(data):
        return Loaded(FileKind.LIBRARY, warnings=library_settings(path, context, data, tree)[1])
    if isinstance(data, dict) and "guidetrack-voice" in data:
        return Loaded(FileKind.PROFILE, warnings=profile_warnings(path, context, data, tree))
    return Loaded(FileKind.SCRIPT, tuple(_scripts(path, context, data, tree)))


def _scripts(path: Path, context: Context, data: Any, tree: Tree) -> list[Script]:
    if not isinstance(data, dict):
        raise InvalidInput(Problem(
            f"a script is a mapping with guidetrack: 1, title and steps; this file holds {describe_value(data)}",
            Location(path, 1, 1)))
    check = Checker(tree, context, (path.resolve(),))
    check.schema(data, TOP_SCHEMA, ())

    variants = data.get("variants")
    entries = list(variants.items()) if isinstance(variants, dict) and variants else [("", {})]
    if entries[0][0]:  # what every variant overrides is still checked where it is written
        params = merge_params(data.get("params"), None, ("with",), check, "this script", ())
        if params is not None:
            _build(path, "", {k: v for k, v in data.items() if k != "variants"}, params, check)
    built: list[tuple[Script | None, int]] = []
    for name, overrides in entries:
        first_problem = len(context.problems)
        remap: dict[str, KeyPath]
        if not isinstance(overrides, dict):  # shorthand: `short: 5m`
            overrides, remap = {"duration": overrides}, {"duration": ("variants", name)}
        else:
            remap = {key: ("variants", name, key) for key in overrides}
        merged = {**{k: v for k, v in data.items() if k != "variants"},
                  **{k: v for k, v in overrides.items() if k != "with"}}
        variant_check = Checker(tree, context, check.chain, remap=remap)
        params = merge_params(data.get("params"), overrides.get("with"), ("variants", name, "with"), variant_check,
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


def _build(path: Path, variant: str, data: dict[str, Any], params: dict[str, Any], check: Checker) -> Script | None:
    duration = None
    if "duration" in data:
        duration = check.duration(data["duration"], ("duration",), positive=True)
    gap = check.duration(data["gap"], ("gap",)) if "gap" in data else to_samples(0.8)
    language = _language(data.get("language", DEFAULT_LANGUAGE), check)
    english = language is None or is_english(language)
    voice = voice_for(data.get("voice", DEFAULT_VOICE if english else ESPEAK_VOICE), path, check, english)
    if voice is not None and language is not None:
        voice = voice_for_language(voice, data.get("voice"), language, check)
    if voice is not None and "lexicon" in data:
        extra = lexicon_for(data["lexicon"], path.parent, ("lexicon",), check)
        voice = replace(voice, lexicon=merged_lexicon(voice.lexicon, extra)) if extra is not None else None
    given = data.get("background")
    given = {"sound": given} if isinstance(given, str) else given  # `background: ocean`
    background = background_for(given, path, check) if isinstance(given, dict) else None
    for key in ("title", "author", "album", "description"):
        check.plain(data.get(key), (key,))
    steps_data = substitute(data.get("steps"), params)
    steps = read_steps(steps_data, ("steps",), check, sides=False) if isinstance(steps_data, list) else ()
    if language is not None:
        _check_language(steps, language, "language" in data, check)
    if not isinstance(data.get("title"), str) or not data["title"].strip() or language is None:
        return None
    cues: dict[str, Any] = data["cues"] if isinstance(data.get("cues"), dict) else {}
    check_cues(cues, ("cues",), check)
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
        duration_where=check.tree.where(check.mapped(("duration",))) if duration is not None else None,
        voice=voice or VoiceSpec(),
        background=background,
        intro=bumper_for(data.get("intro"), "intro", path, check),
        outro=bumper_for(data.get("outro"), "outro", path, check),
        gap=gap if gap is not None else 0,
        cover=cover_for(data.get("cover"), path, check),
        section_chimes=data.get("chimes") == "sections",
        loudness=_loudness(data["loudness"], check) if "loudness" in data else None,
        language=language.tag,
        words=words,
        variant=variant,
        props=tuple(p.strip() for p in data.get("props", ()) if isinstance(p, str) and check.plain(p, ("props",))),
        level=(data.get("level") or "").strip() if isinstance(data.get("level"), str) else "",
    )


def _language(value: Any, check: Checker) -> Language | None:
    try:
        language = parse_language(value)
    except ValueError as err:
        check.error(("language",), str(err))
        return None
    check.context.sources[language.file] = None  # its words are part of what the script sounds like
    return language


def _check_language(steps: tuple[Step, ...], language: Language, declared: bool, check: Checker) -> None:
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


def _loudness(value: Any, check: Checker) -> float | str | None:
    try:
        return parse_loudness(value)
    except ValueError as err:
        check.error(("loudness",), str(err))
        return None
