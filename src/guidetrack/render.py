"""The whole flow for one script: load -> plan -> speak -> mix -> encode; and checking."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .decoded import decoded
from .encode import CEILING_DB, MAX_GAIN_DB, Chapter, Output, Tags, codec_loss, cores, encode
from .engines import Engine
from .errors import GuidetrackError, InvalidInput, Location, Problem, Severity
from .files import check_writable, checked_json, intact_json, remove_stale_parts, sha256_of, write_atomically
from .loudness import Figures, target_for
from .manifest import Track, TrackChapter
from .mix import Levels, keep_sounds_in, levels, mix, prepare_background
from .plan import Plan, make_plan
from .report import SILENT, Progress
from .script import MAX_COVER_BYTES, FileKind, Script, load_any
from .sidecars import generated_cover, sidecar_files
from .speech import ClipCache, Speaker
from .units import Samples, to_ms, to_seconds

SCRIPT_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Rendered:
    out: Path
    plan: Plan
    samples: int
    cache_hits: int
    cache_misses: int
    figures: Figures  # measured on the finished file
    target_lufs: float  # what the voice was to measure
    gain_db: float = 0.0  # applied to bring the voice to its target
    sidecars: tuple[Path, ...] = ()
    problems: tuple[str, ...] = ()  # where the file misses the loudness promise
    encodes: int = 1  # 2 or 3 when the first encode's figures were off and it was made again
    cache_problem: str = ""  # why new clips could not be cached (the render went on without)
    kept: int = 0  # MP3 chunks (a minute each) taken unchanged from the file it replaced
    chunks: int = 0  # MP3 chunks in all, when it was encoded on every core


def free_memory_promptly() -> None:
    """Have the C library give big buffers back when they are freed (glibc, Linux). By default it
    raises its threshold for mapping them on its own to the size of the last one freed, after
    which buffers of a minute of audio come from the heap, where the mix's, the encoders' and the
    measurement's threads leave it fragmented: a one-hour render peaked at 243 MB, 181 MB with
    the threshold held at 4 MiB (as MALLOC_MMAP_THRESHOLD_ would set it; at 1 MiB, 178 MB and
    more time mapping pages). Holding it also holds the threshold for trimming the heaps at its
    default, 128 KB, and the heaps were given back and faulted in again for every 2-second block
    (117,000 page faults in a ten-minute render): up to 8 MiB is kept free in them, 41,000 page
    faults, a cold render 0.23 s sooner (interleaved medians 4.98 vs 5.21 s), the 8-hour track's
    peak 214 MB rather than 209."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        # the C library this process runs on, by its own symbols (ctypes.util.find_library would
        # run ldconfig: 35 ms on every start)
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD; a C library without mallopt has none
        libc.mallopt(-1, 8 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def plan_script(script: Script, cache_dir: Path | None = None, progress: Progress = SILENT,
                estimate: bool = False) -> tuple[Plan, Speaker]:
    """The script's plan, speaking what the cache does not hold; with `estimate`, nothing is
    spoken and a new clip's length is guessed (`speaker.estimated` counts the guesses)."""
    speaker = Speaker(script.voice, ClipCache(cache_dir))
    speaker.progress = progress
    measure = speaker.estimated_lengths if estimate else speaker.lengths
    return make_plan(script, measure, lambda path: len(decoded(path))), speaker


def track_of(plan: Plan, samples: Samples | None = None, order: int = 0,
             loudness: dict[str, float | None] | None = None) -> Track:
    """The class as the catalog, the feed and the pages show it: from its plan, and the rendered
    length and measured loudness once there is audio."""
    script = plan.script
    return Track(
        title=script.title, description=script.description, author=script.author, album=script.album,
        variant=script.variant, language=script.language,
        duration=round(to_seconds(plan.length if samples is None else samples), 3),
        chapters=tuple(TrackChapter(c.title, round(to_seconds(c.start), 3)) for c in plan.chapters),
        transcript=tuple(e.text for e in plan.speech()), loudness=dict(loudness or {}),
        spoken=tuple((round(to_seconds(e.start), 3), e.text) for e in plan.speech()),
        props=script.props, level=script.level, order=order,
    )


def tags_for(script: Script, plan: Plan | None = None) -> Tags:
    if script.cover is not None:
        with open(script.cover, "rb") as image:  # checked when the script was loaded; bounded again here
            cover = image.read(MAX_COVER_BYTES + 1)
        if len(cover) > MAX_COVER_BYTES:
            raise InvalidInput(f"{script.cover}: the cover grew past {MAX_COVER_BYTES // 1_000_000} MB while rendering")
        mime = "image/png" if cover.startswith(b"\x89PNG") else "image/jpeg"
    else:
        cover, mime = generated_cover(script.title, script.author), "image/png"
    return Tags(
        title=script.title,
        artist=script.author,  # the teacher's words only: with no author, no artist tag
        album=script.album,
        comment=script.description,
        chapters=chapters_of(plan) if plan else (),
        cover=cover,
        cover_mime=mime,
    )


def chapters_of(plan: Plan) -> tuple[Chapter, ...]:
    return tuple(Chapter(c.title, to_ms(c.start), to_ms(c.end)) for c in plan.chapters)


def output_path(script: Script, out: Path | None = None, several: bool = False, output: Output = Output()) -> Path:
    """out/<slug>.<ext> by default. With several variants, `-o x.mp3` becomes x-<variant>.mp3."""
    if out is None:
        return Path("out") / f"{script.slug}{output.suffix}"
    if several and script.variant:
        return out.with_name(f"{out.stem}-{script.variant}{out.suffix or output.suffix}")
    return out


def sound_key(plan: Plan, digest: Callable[[str], str], engine: Engine) -> dict[str, Any]:
    """Everything about a plan that changes its mix's samples: the timeline and background (an
    audio file by `digest`, its content's hash), the voice's settings and what names it to the
    engine (for Piper, its model's and config's bytes), and the engine."""
    voice = plan.script.voice
    return {"plan": plan.cache_key(digest), "voice": {**voice.cache_key(), "key": engine.voice_key(voice)},
            "engine": [engine.name, engine.version]}


def _gain_file(plan: Plan, speaker: Speaker, output: Output) -> Path:
    """Where the normalising gain of this exact mix and output is remembered.

    The key covers everything that changes the mix's samples: the timeline and background, the
    voice and engine, the bytes of every audio file and voice model the script uses, the output
    settings and guidetrack itself; never a path, a title or a line number, so a moved or
    reformatted library finds its gains again.
    """
    fields = {**sound_key(plan, lambda path: sha256_of(Path(path)), speaker.engine),
              "output": output.cache_key(), "guidetrack": __version__}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return speaker.cache.folder / "gains" / f"{plan.script.slug[:40]}-{key[:24]}.json"


def _layout_file(out: Path, speaker: Speaker) -> Path:
    """Where what the file at `out` was made from is kept (see `encode`): by its absolute path
    (its folder's real one: a link at `out` is replaced by the file, not followed)."""
    where = str(out.absolute().parent.resolve() / out.name)
    return speaker.cache.folder / "layouts" / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"


@dataclass(frozen=True)
class _Remembered:
    """What the last render of this exact mix found: every sound's level, the gain and limiter
    ceiling that put it on target, and the sha256 and measured figures of the audio they gave."""

    gain_db: float
    ceiling_db: float
    sha256: str
    figures: Figures
    levels: Levels | None = None  # None in a file written before levels were remembered

    def to_bytes(self) -> bytes:
        return checked_json({"gain_db": self.gain_db, "ceiling_db": self.ceiling_db, "sha256": self.sha256,
                             "figures": self.figures.to_json(), "levels": _levels_json(self.levels)})

    @classmethod
    def read(cls, path: Path) -> _Remembered | None:
        """The remembered values, or None if the file is missing, damaged or holds a value no
        render could have found: nothing cached is trusted unchecked."""
        try:
            body = intact_json(path.read_bytes(), ("gain_db", "ceiling_db", "sha256", "figures", "levels"))
            if body is None:
                return None
            gain, ceiling = body["gain_db"], body["ceiling_db"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (gain, ceiling)):
                return None
            if not (math.isfinite(gain) and -100.0 <= gain <= MAX_GAIN_DB and -12.0 <= ceiling <= CEILING_DB):
                return None
            sha = body["sha256"]
            if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
                return None
            return cls(float(gain), float(ceiling), sha, Figures.from_json(body["figures"]), _levels_from(body["levels"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def _levels_json(where: Levels | None) -> dict | None:
    if where is None:
        return None
    return {"voice_lufs": where.voice_lufs, "spans": [list(s) for s in where.spans], "gains": dict(where.gains),
            "voiced": [list(s) for s in where.voiced]}


def _levels_from(data: Any) -> Levels | None:
    """Levels as `_levels_json` wrote them; raises ValueError (or TypeError) on anything else."""
    if data is None:
        return None
    def spans(key: str) -> tuple[tuple[int, int], ...]:
        found = tuple((int(a), int(b)) for a, b in data[key])
        if any(a > b or a < 0 for a, b in found):
            raise ValueError(key)
        return found
    gains = {str(k): float(v) for k, v in data["gains"].items()}
    voice = float(data["voice_lufs"])
    if not all(math.isfinite(v) for v in (voice, *gains.values())):
        raise ValueError("levels")
    return Levels(voice, spans("spans"), gains, spans("voiced"))


def render(script: Script, out: Path, cache_dir: Path | None = None, output: Output = Output(),
           progress: Progress = SILENT, encoders: int | None = None) -> Rendered:
    """Render one script. The voice is brought to the loudness target (the script's, unless the
    command line gives one) and every other sound placed relative to it; the finished file is
    measured. The gain and ceiling that put a mix on target are remembered, so a later render of
    the same mix encodes once and, when it gives the same bytes, reuses the figures measured on them."""
    broken = audio_problems(script)
    if broken:
        raise InvalidInput(broken)
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder: name the file to write, such as {out / script.slug}.mp3")
    unwritable = check_writable(out.parent)
    if unwritable:
        raise GuidetrackError(unwritable)
    remove_stale_parts(out.parent)  # what a killed render left; a live one's are kept
    output = output.for_script(script.loudness)
    target = target_for(output.loudness, output.channels)
    keep_sounds_in(ClipCache(cache_dir).folder)
    early = ThreadPoolExecutor(max_workers=2, thread_name_prefix="guidetrack-early")
    try:  # the tags and the background need nothing spoken: the cover (0.15 s to draw) and a
        # generated bed are made while the clips are (a file bed is read; `levels` waits for it)
        untimed = early.submit(tags_for, script)
        early.submit(prepare_background, script.background, output.channels)
        plan, speaker = plan_script(script, cache_dir, progress)
    finally:
        early.shutdown(wait=False)
    state = _gain_file(plan, speaker, output)
    remembered = _Remembered.read(state)
    if remembered is not None and remembered.levels is not None:
        where = remembered.levels  # this exact mix's, found by the last render of it
    else:
        progress.stage("setting the levels")
        speaker.prepare_levels((e.text for e in plan.speech()), cores())  # a new text's, on every core
        where = levels(plan, speaker.clip, target.bed_db, output.channels, speaker.levels)
    if remembered is not None:
        gain, ceiling, known = remembered.gain_db, remembered.ceiling_db, (remembered.sha256, remembered.figures)
    else:
        gain = min(target.speech_lufs - where.voice_lufs + codec_loss(output), MAX_GAIN_DB)
        ceiling, known = CEILING_DB, None
    sidecars = sidecar_files(plan, out)
    def blocks() -> Iterator[np.ndarray]:
        done = 0
        progress.stage("", plan.length)  # the stage encode names, now with its length
        for block in mix(plan, speaker.clip, where):
            yield block
            done += len(block)
            progress.advance(done)

    tags = replace(untimed.result(), chapters=chapters_of(plan))
    done = encode(blocks, out, tags, output, gain, where.spans, ceiling, known, beside=sidecars, progress=progress,
                  samples=plan.length, encoders=encoders, layout=_layout_file(out, speaker))
    try:
        write_atomically(state, _Remembered(done.gain_db, done.ceiling_db, done.sha256, done.figures,
                                            where).to_bytes())
    except OSError:
        pass  # a read-only or full cache: the next render measures again
    decoded.cache_clear()  # the decoded copies of its audio files hold disk space; a long-lived worker lets go
    return Rendered(out, plan, done.samples, speaker.cache.hits, speaker.cache.misses, done.figures,
                    target.speech_lufs, done.gain_db, tuple(sidecars), tuple(done.problems), done.encodes,
                    speaker.cache.unwritable, done.kept, done.chunks)


# ---------------------------------------------------------------- checking


@dataclass
class Checked:
    """Everything found in one file: its plans (one per variant) and its problems."""

    path: Path
    kind: FileKind = FileKind.SCRIPT
    plans: list[Plan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    estimated: int = 0  # clips whose length was guessed (check_file's `estimate`)

    def failed(self, strict: bool) -> bool:
        return any(p.severity is Severity.ERROR or strict for p in self.problems)


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


def check_file(path: Path, root: Path | None = None, cache_dir: Path | None = None, estimate: bool = False) -> Checked:
    """Check a script (every variant: format, includes, audio files, fitting) or a block. With
    `estimate`, nothing is spoken: the lengths of clips not in the cache are guessed.

    Never raises for bad input: the problems are collected in the result.
    """
    checked = Checked(path)
    try:
        loaded = load_any(path, root)
    except InvalidInput as err:
        checked.problems.extend(err.problems)
        return checked
    checked.kind = loaded.kind
    checked.problems.extend(loaded.warnings)
    for script in loaded.scripts:
        broken = audio_problems(script)
        checked.problems.extend(p for p in broken if p not in checked.problems)
        if broken:
            continue
        try:
            plan, speaker = plan_script(script, cache_dir, estimate=estimate)
            checked.estimated += speaker.estimated
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
    problems: list[Problem] = []
    for key, sound in named:
        if sound is not None and sound.is_file:
            try:
                decoded(sound.sound)
            except InvalidInput as err:
                problems.extend(Problem(f"{key}.sound: {p.message}", p.where or sound.where or
                                        Location(script.path, 1, 1)) for p in err.problems)
    return problems
