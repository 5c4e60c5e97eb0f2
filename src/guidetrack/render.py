"""The whole flow for one script: load -> plan -> speak -> mix -> encode; and checking."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .encode import Chapter, Output, Tags, encode
from .errors import InvalidInput, Location, Problem
from .mix import decode_file, mix
from .plan import Plan, make_plan
from .script import Script, load_any
from .files import sha256_of, write_atomically
from .sidecars import generated_cover, write_sidecars
from .speech import ClipCache, Speaker
from .units import to_ms

SCRIPT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Rendered:
    out: Path
    plan: Plan
    samples: int
    cache_hits: int
    cache_misses: int
    gain_db: float = 0.0  # applied to reach the loudness target
    sidecars: tuple[Path, ...] = ()


def plan_script(script: Script, cache_dir: Path | None = None) -> tuple[Plan, Speaker]:
    speaker = Speaker(script.voice, ClipCache(cache_dir))
    return make_plan(script, speaker.lengths, lambda path: len(decode_file(path))), speaker


def tags_for(script: Script, plan: Plan | None = None) -> Tags:
    if script.cover is not None:
        cover = script.cover.read_bytes()
        mime = "image/png" if cover.startswith(b"\x89PNG") else "image/jpeg"
    else:
        cover, mime = generated_cover(script.title, script.author or "guidetrack"), "image/png"
    chapters = tuple(Chapter(c.title, to_ms(c.start), to_ms(c.end))
                     for c in plan.chapters) if plan else ()
    return Tags(
        title=script.title,
        artist=script.author or "guidetrack",
        album=script.album or "guidetrack sessions",
        comment=script.description or f"Rendered by guidetrack {__version__} from {script.path.name}",
        chapters=chapters,
        cover=cover,
        cover_mime=mime,
    )


def output_path(script: Script, out: Path | None = None, several: bool = False, output: Output = Output()) -> Path:
    """out/<slug>.<ext> by default. With several variants, `-o x.mp3` becomes x-<variant>.mp3."""
    if out is None:
        return Path("out") / f"{script.slug}{output.suffix}"
    if several and script.variant:
        return out.with_name(f"{out.stem}-{script.variant}{out.suffix or output.suffix}")
    return out


def _gain_file(plan: Plan, speaker: Speaker, output: Output) -> Path:
    """Where the normalising gain of this exact mix and output is remembered.

    The key covers everything that changes the mix's samples: the timeline, the voice and
    engine, the background, the bytes of every file the script uses (audio files included),
    the output settings and guidetrack itself.
    """
    script = plan.script
    fields = {
        "plan": plan.to_json(), "voice": repr(speaker.voice),
        "engine": [speaker.engine.name, speaker.engine.version], "background": repr(script.background),
        "files": [sha256_of(path) for path in script.sources],
        "output": repr(output), "guidetrack": __version__,
    }
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return speaker.cache.folder / "gains" / f"{plan.script.slug[:40]}-{key[:24]}.json"


def _remembered_gain(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["gain_db"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def render(script: Script, out: Path, cache_dir: Path | None = None, output: Output = Output()) -> Rendered:
    """Render one script. The loudness measurement (a pass over the mix, an excerpt through the
    limiter and codec, the finished file) is done once per distinct mix; later renders of the
    same mix reuse the gain it found."""
    broken = audio_problems(script)
    if broken:
        raise InvalidInput(broken)
    plan, speaker = plan_script(script, cache_dir)
    remembered = _gain_file(plan, speaker, output)
    gain = _remembered_gain(remembered)
    samples, gain = encode(lambda: mix(plan, speaker.clip), out, tags_for(script, plan), output, gain)
    write_atomically(remembered, json.dumps({"gain_db": gain}).encode())
    sidecars = write_sidecars(plan, out)
    return Rendered(out, plan, samples, speaker.cache.hits, speaker.cache.misses, gain, tuple(sidecars))


# ---------------------------------------------------------------- checking


@dataclass
class Checked:
    """Everything found in one file: its plans (one per variant) and its problems."""

    path: Path
    block: bool = False
    plans: list[Plan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def failed(self, strict: bool) -> bool:
        return any(p.severity == "error" or strict for p in self.problems)


def script_files(paths: Iterable[Path]) -> Iterator[tuple[Path, Path | None]]:
    """(file, library root) for every script or block named, looking inside folders, where
    `voices/` folders hold voice profiles and lexicons, not scripts."""
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.suffix in SCRIPT_SUFFIXES and p.is_file()
                               and "voices" not in p.relative_to(path).parts[:-1]):
                yield file, path
        else:
            yield path, None


def check_file(path: Path, root: Path | None = None, cache_dir: Path | None = None) -> Checked:
    """Check a script (every variant: format, includes, audio files, fitting) or a block.

    Never raises for bad input: the problems are collected in the result.
    """
    checked = Checked(path)
    try:
        scripts, block_warnings = load_any(path, root)
    except InvalidInput as err:
        checked.problems.extend(err.problems)
        return checked
    if not scripts:
        checked.block = True
        checked.problems.extend(block_warnings)
        return checked
    for script in scripts:
        broken = audio_problems(script)
        checked.problems.extend(p for p in broken if p not in checked.problems)
        if broken:
            continue
        try:
            plan, _ = plan_script(script, cache_dir)
        except InvalidInput as err:
            label = f"variant '{script.variant}': " if script.variant else ""
            checked.problems.extend(Problem(label + p.message, p.where, p.severity) for p in err.problems)
            continue
        checked.plans.append(plan)
        checked.problems.extend(w for w in plan.warnings if w not in checked.problems)
    return checked


def audio_problems(script: Script) -> list[Problem]:
    """Every audio file the script names that ffmpeg cannot decode, at the line naming it."""
    named = (("background", script.background), ("intro", script.intro), ("outro", script.outro))
    problems = []
    for key, sound in named:
        if sound is not None and sound.is_file:
            try:
                decode_file(sound.sound)
            except InvalidInput as err:
                problems.extend(Problem(f"{key}.sound: {p.message}", p.where or sound.where or
                                        Location(script.path, 1, 1)) for p in err.problems)
    return problems
