"""Voice profiles, lexicons and engine voices, as a script names them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..engines import ENGINES
from ..engines import bundled_voices as engine_voices
from ..engines.piper_voices import known, packaged_name
from ..errors import InvalidInput, Problem
from ..languages import Language, is_english
from ..voice import Lexicon, Said, VoiceSpec
from .checker import Checker, Context, KeyPath, check_cues, named_file, suggest
from .model import cue_pairs
from .schema import LEXICON_SCHEMA, PROFILE_SCHEMA
from .yamltree import Tree

BUILTIN_VOICES = (Path(__file__).parent.parent / "voices").resolve()  # the top-level voices/ folder, shipped inside the package
DEFAULT_VOICE = "gentle"  # for English: hibari's natural voice
ESPEAK_VOICE = "calm"  # for every other language (in its espeak-ng voice), and under espeak-only settings
LEXICON_SUFFIX = ".lexicon.yaml"


def voice_folders(script_path: Path | None = None, root: Path | None = None) -> list[Path]:
    """Where voice profiles are looked for, first match wins: `voices/` beside the script and in
    the library folder, then the profiles that come with guidetrack. Never the current folder: a
    script sounds the same wherever it is rendered from. Without a script (`say`, `voices`), the
    current folder's `voices/` is the one looked in."""
    places = (script_path.parent, root) if script_path is not None else (Path.cwd(),)
    folders = [p / "voices" for p in places if p is not None]
    return list(dict.fromkeys(f.resolve() for f in folders)) + [BUILTIN_VOICES]


def voice_profiles(folders: list[Path]) -> dict[str, Path]:
    """Profile name -> its file (`NAME.yaml`; lexicons are `NAME.lexicon.yaml`)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for file in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            if not file.name.endswith(LEXICON_SUFFIX):
                found.setdefault(file.stem, file)
    return found


FAST_RATE = 170  # words a minute: faster than this does not sound calm
VOICE_SETTINGS = ("engine", "voice", "rate", "volume", "pitch")  # the fields of a voice besides its lexicon


def _unknown_profile(name: str, profiles: dict[str, Path], script_path: Path | None = None) -> str:
    stray = Path.cwd() / "voices" / f"{name}.yaml"
    if script_path is not None and stray.is_file():
        return (f"no voice profile '{name}' beside the script or in its library; {stray} is in the current "
                f"folder, which a script does not look in: move it to {script_path.parent / 'voices'}")
    return (f"unknown voice profile '{name}'{suggest(name, list(profiles))}; "
            f"profiles: {', '.join(profiles)} (`guidetrack voices` lists them)")


def _warn_if_fast(rate: Any, keys: KeyPath, check: Checker) -> None:
    if isinstance(rate, int) and rate > FAST_RATE:
        check.warn(keys, f"{rate} words a minute is fast for relaxation; "
                   f"calm narration is about 120-150 (at most {FAST_RATE})")


def voice_for(value: Any, script_path: Path, check: Checker, english: bool = True) -> VoiceSpec | None:
    """A profile by name, or fields over the default profile (for the script's language)."""
    name = value if isinstance(value, str) else _base_profile(value) if english else ESPEAK_VOICE
    profiles = voice_profiles(voice_folders(script_path, check.context.root))
    if name not in profiles:
        check.error(("voice",), _unknown_profile(name, profiles, script_path))
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
        extra = lexicon_for(value["lexicon"], script_path.parent, ("voice", "lexicon"), check)
        spec = replace(spec, lexicon=merged_lexicon(spec.lexicon, extra)) if extra is not None else None
    return spec


def _base_profile(fields: Any) -> str:
    """The profile a voice given as fields starts from: the default, unless the fields are
    espeak-ng's (`engine: pyttsx3`, a `pitch`, or an espeak-ng voice id with no engine named),
    when they start from the espeak-ng profile, as they did before hibari was the default."""
    if not isinstance(fields, dict):
        return DEFAULT_VOICE
    engine = fields.get("engine")
    if engine == "pyttsx3" or (engine is None and ("pitch" in fields or (
            "voice" in fields and fields["voice"] != ENGINES["hibari"].default_voice))):
        return ESPEAK_VOICE
    return DEFAULT_VOICE


def load_profile(name: str) -> VoiceSpec:
    """A voice profile by name, as `voice: NAME` in a script in the current folder finds it."""
    profiles = voice_profiles(voice_folders())
    if name not in profiles:
        raise InvalidInput(_unknown_profile(name, profiles))
    context = Context(root=profiles[name].parent)
    data, tree = context.read(profiles[name])
    spec = _profile_from(data, profiles[name], Checker(tree, context, (profiles[name].resolve(),)))
    context.settle()  # raises InvalidInput when the profile has errors, so there is a spec
    assert spec is not None
    return spec


def profile_warnings(path: Path, context: Context, data: Any, tree: Tree) -> tuple[Problem, ...]:
    """Check a voice profile file on its own (`guidetrack validate voices/slow.yaml`). Raises
    InvalidInput with its errors."""
    _profile_from(data, path, Checker(tree, context, (path.resolve(),)))
    return tuple(context.settle())


def _profile(path: Path, check: Checker) -> VoiceSpec | None:
    origin = f" (the voice profile named at {check.tree.where(check.mapped(('voice',)))})"
    found = check.read(path, origin)
    if found is None:
        return None
    return _profile_from(found[0], path, check.child(found[1], path.resolve(), origin))


def _profile_from(data: Any, path: Path, inner: Checker) -> VoiceSpec | None:
    if not inner.schema(data, PROFILE_SCHEMA, ()):
        return None
    base = _extended(data["extends"], path, inner) if "extends" in data else None
    if "extends" in data and base is None:
        return None
    if base is None:
        missing = [key for key in ("engine", "voice") if key not in data]
        if missing:
            inner.error((), f"missing the key '{missing[0]}' (or `extends: calm`, say, to start from another profile)")
            return None
        base = VoiceSpec()
    own = data.get("lexicon", ())
    lexicon = lexicon_for(own, path.parent, ("lexicon",), inner) if own else ()
    if lexicon is None:
        return None
    lexicon = () if "lexicon" in data and own is None else merged_lexicon(base.lexicon, lexicon)
    fields = {k: data[k] for k in VOICE_SETTINGS if k in data}
    check_cues(data.get("cues"), ("cues",), inner)
    cues = cue_pairs({**{k: list(v) if isinstance(v, tuple) else v for k, v in base.cues}, **data.get("cues", {})})
    spec = _engine_voice(replace(base, **fields, lexicon=lexicon, profile=path.stem, cues=cues),
                         fields, path.parent, path.parent, (), inner)
    if spec is not None:
        _warn_if_fast(spec.rate, ("rate",), inner)
    return spec


def _engine_voice(spec: VoiceSpec, given: dict[str, Any], here: Path, voices: Path, keys: KeyPath,
                  check: Checker) -> VoiceSpec | None:
    """What the engine needs settled: its own default voice when only the engine is named; for
    Piper, no pitch, and the model a voice names, found here so a missing one is reported at its
    line: a path to NAME.onnx (relative to `here`, the folder of the file that gives it),
    NAME.onnx in `voices` or another voices folder, or a voice that comes in a package."""
    info = ENGINES[spec.engine]
    if "engine" in given and "voice" not in given:
        spec = replace(spec, voice=info.default_voice)
    if not info.pitch:
        if "pitch" in given:
            check.warn(keys + ("pitch",), f"{info.label} voices have no pitch setting; it is ignored")
        spec = replace(spec, pitch=None)
    where = keys + ("voice",) if "voice" in given else keys
    if info.voices == "bundled":
        return _bundled_voice(spec, where, check)
    if info.voices == "models":
        return _model_voice(spec, here, voices, where, check)
    return spec


def _model_voice(spec: VoiceSpec, here: Path, voices: Path, where: KeyPath, check: Checker) -> VoiceSpec | None:
    """A Piper voice: a packaged one, NAME.onnx in a voices/ folder, or a path to a model file."""
    if spec.voice.endswith(".onnx"):
        model = named_file(spec.voice, here, where, check, "Piper model")
        if model is None:
            return None
    else:
        models = [f / f"{spec.voice}.onnx" for f in (voices, check.context.root / "voices", BUILTIN_VOICES)]
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


def _bundled_voice(spec: VoiceSpec, where: KeyPath, check: Checker) -> VoiceSpec | None:
    """An engine that speaks only with the voices inside its installed package (hibari), never
    one it would download."""
    bundled = engine_voices(spec.engine)
    if spec.voice not in bundled:
        name = ENGINES[spec.engine].label
        check.error(where, f"no {name} voice '{spec.voice}' in the installed package"
                    f"{suggest(spec.voice, bundled)}; bundled: {', '.join(bundled) or f'none (is {name} installed?)'}. "
                    "guidetrack never downloads a voice")
        return None
    return spec


def _extended(name: str, path: Path, inner: Checker) -> VoiceSpec | None:
    """The profile `extends:` names: beside this one, in the library's voices/, or built in (a
    profile that extends its own name, as voices/calm.yaml extending calm, finds the next one)."""
    folders = list(dict.fromkeys([path.parent.resolve(), (inner.context.root / "voices").resolve(), BUILTIN_VOICES]))
    found = [folder / f"{name}.yaml" for folder in folders if (folder / f"{name}.yaml").is_file()]
    found = [f for f in found if f.resolve() != path.resolve()]
    if not found:
        profiles = voice_profiles(folders)
        inner.error(("extends",), _unknown_profile(name, profiles))
        return None
    base = found[0].resolve()
    if base in inner.chain:
        inner.error(("extends",), f"'{name}' extends this profile in turn: profiles cannot extend each other in a circle")
        return None
    read = inner.read(base)
    if read is None:
        return None
    return _profile_from(read[0], base, inner.child(read[1], base, inner.origin))


def lexicon_for(value: Any, folder: Path, keys: KeyPath, check: Checker) -> Lexicon | None:
    """A lexicon given inline, or a file of `word: how to say it` lines relative to `folder`, or
    one that comes with guidetrack (`yoga-terms.lexicon.yaml`), named by its file name."""
    if isinstance(value, str):
        builtin = BUILTIN_VOICES / value
        if "/" not in value and not (folder / value).exists() and builtin.is_file():
            check.context.sources[builtin] = None
            file: Path | None = builtin
        else:
            file = named_file(value, folder, keys, check, "lexicon")
        if file is None:
            return None
        found = check.read(file)
        if found is None:
            return None
        value, tree = found
        check = check.child(tree, file.resolve(), check.origin)
        keys = ()
    if not check.schema(value, LEXICON_SCHEMA["anyOf"][1], keys):
        return None

    def said(how: str | dict[str, str]) -> Said:
        return how.strip() if isinstance(how, str) else tuple(sorted((e, h.strip()) for e, h in how.items()))

    return tuple((str(word).strip(), said(how)) for word, how in value.items() if str(word).strip())


def merged_lexicon(base: Lexicon, extra: Lexicon) -> Lexicon:
    """`extra` over `base`, matching words in any case."""
    merged = {word.lower(): (word, said) for word, said in base}
    merged.update({word.lower(): (word, said) for word, said in extra})
    return tuple(merged.values())



def voice_for_language(spec: VoiceSpec, given: Any, language: Language, check: Checker) -> VoiceSpec:
    if not ENGINES[spec.engine].multilingual and not is_english(language):
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
